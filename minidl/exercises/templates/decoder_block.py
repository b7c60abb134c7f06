"""Exercise 10: the UNet decoder block, with its skip connection.

One step up the U (``models/unet.py``, ``DecoderBlock``), written with minidl's differentiable ops
(``import minidl.functional as F``) so autograd gives the gradients:

    up     = F.conv_transpose2d(x, params["up.weight"], params["up.bias"], stride=2)   # (N, C_out, 2h, 2w)
    skip   = F.center_crop(skip, up.shape[2:])      # only needed for padding="valid" (skip is larger)
    joined = F.cat([up, skip], dim=1)               # up first, then the skip: (N, C_out + C_skip, 2h, 2w)
    then twice (k = 0, then k = 3), with padding 1 for "same" and 0 for "valid":
        joined = F.relu(F.batch_norm(F.conv2d(joined, params[f"block.{k}.weight"], padding=...),
                                     params[f"block.{k+1}.running_mean"], params[f"block.{k+1}.running_var"],
                                     params[f"block.{k+1}.weight"], params[f"block.{k+1}.bias"], training=False))

(evaluation mode: batch norm uses its running statistics and dropout does nothing, so it is left out).
params holds the block's state_dict: "up.weight" (C_in, C_out, 2, 2), "up.bias", "block.0.weight"
(the first 3x3 conv, no bias), "block.1.*" (its batch norm), "block.3.weight", "block.4.*".
Check:  python -m minidl.exercises check decoder_block
"""

import minidl.functional as F


def decoder_block(x, skip, params, padding):
    """x: Tensor (N, C_in, h, w); skip: Tensor (N, C_skip, H_s, W_s) from the encoder; params: dict of Tensors;
    padding: "same" or "valid"  ->  Tensor (N, C_out, 2h, 2w) ("same") or (N, C_out, 2h - 4, 2w - 4) ("valid")."""
    raise NotImplementedError
