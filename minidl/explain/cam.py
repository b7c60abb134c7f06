"""Class activation maps (Zhou et al., 2016) for networks ending in conv -> global average pool -> linear.

Write the network as ``logits = linear(GAP(A))`` with feature maps ``A = features(x)`` of shape
(N, K, h, w) and the linear layer's weight ``w`` (num_classes, K) and bias ``b``. Then

    y_c = sum_k w_ck * mean_ij A_k[i, j] + b_c = mean_ij CAM_c[i, j] + b_c,
    CAM_c = sum_k w_ck A_k                         (an h x w map)

so the class score is exactly the spatial average of the CAM plus the bias: CAM_c[i, j] is how
much location (i, j) contributes to class c. No gradient is needed; the map is upsampled to the
image with bilinear interpolation for display.
"""

from __future__ import annotations

import numpy as np

from ..tensor import Tensor, no_grad
from .gradients import as_array, check_eval_mode, resolve_target
from .maps import upsample as upsample_maps


def class_activation_map(features, linear, x, target=None, upsample: bool = True) -> np.ndarray:
    """CAM of the target class for each image: ``(N, H, W)`` raw (unnormalised) values.

    features: callable x (N, C, H, W) -> feature maps A (N, K, h, w), the network before the
    global average pool;  linear: the final layer, with ``weight`` (num_classes, K) and ``bias``
    (num_classes,) or None;  target: None (predicted class), an int, or N ints.
    upsample=False returns the map at feature resolution (N, h, w), where
    ``CAM.mean((1, 2)) + b[target] == logits[target]`` holds exactly.
    """
    x = as_array(x)
    weight = as_array(linear.weight)
    bias = np.zeros(weight.shape[0], weight.dtype) if linear.bias is None else as_array(linear.bias)
    check_eval_mode(features)
    with no_grad():
        activations = features(Tensor(x)).data
    if activations.ndim != 4 or activations.shape[1] != weight.shape[1]:
        raise ValueError(f"class_activation_map: features must return (N, K, h, w) with K = {weight.shape[1]} "
                         f"(the linear layer's in_features), got {activations.shape}")
    logits = activations.mean(axis=(2, 3)) @ weight.T + bias
    target = resolve_target(logits, target)
    cams = np.einsum("nk,nkhw->nhw", weight[target], activations)
    return upsample_maps(cams, x.shape[-2:]) if upsample else cams
