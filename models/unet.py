"""UNet (Ronneberger, Fischer & Brox, 2015), built step by step in the order the DeepLearning.AI course
"Advanced Computer Vision with TensorFlow" (week 3) teaches it.

The U: an encoder halves the image size and doubles the channels ``depth`` times, a bottleneck
works at the coarsest scale, and a decoder doubles the size back, each time concatenating the
encoder's features of the same scale (the "skip"), so fine detail lost by pooling comes back.
With ``base_channels = c``, ``depth = 4`` and a 64x64 RGB input (padding="same"):

    step               module          maps (N, C, H, W)
    conv2d_block       conv2d_block    (N, 3, 64, 64)   -> (N, c, 64, 64)      two 3x3 conv + BN + ReLU
    encoder_block      EncoderBlock    (N, 3, 64, 64)   -> skip (N, c, 64, 64), down (N, c, 32, 32)
    encoder            Encoder         (N, 3, 64, 64)   -> (N, 8c, 4, 4) + skips at 64, 32, 16, 8
    bottleneck         bottleneck      (N, 8c, 4, 4)    -> (N, 16c, 4, 4)
    decoder_block      DecoderBlock    (N, 16c, 4, 4) + skip (N, 8c, 8, 8) -> (N, 8c, 8, 8)
    decoder            Decoder         (N, 16c, 4, 4) + 4 skips             -> (N, c, 64, 64)
    unet               UNet            (N, 3, 64, 64)   -> logits (N, num_classes, 64, 64)  (final 1x1 conv)

padding="same" (the course's Keras choice) pads every 3x3 conv by 1, so sizes only change at the
pools and up-convolutions and the output has the input's size; H and W must be multiples of
2**depth. padding="valid" is the paper's network: unpadded 3x3 convs shrink each map by 2 pixels,
so the skip is larger than the upsampled map it joins and is centre-cropped to it. With the
paper's sizes (depth 4, base 64) a 572x572 tile gives a 388x388 map of the tile's centre; the
crop sizes follow from the tensors' shapes, and ``UNet.output_size`` walks the same geometry
without computing anything.

``UNet.course()`` is the network of the DeepLearning.AI course "Advanced Computer Vision with
TensorFlow" (week 3, UNet on Oxford pets) layer for layer; the default ``UNet()`` differs from it in
five ways, each for a reason:

    course (Keras)                               default UNet()          why
    conv -> ReLU, conv with a bias               conv -> BN -> ReLU      batch norm allows the higher
                                                 (no bias)               learning rate that trains the
                                                                         small net in minutes (Ioffe &
                                                                         Szegedy 2015); BN's shift is the bias
    up-conv 3x3, stride 2, "same" (+ bias)       2x2, stride 2 (paper)   the paper's; each output pixel
                                                                         sees one input pixel, no overlap
    64 -> 1024 channels (34.5 M parameters)      16 -> 256 (1.9 M)       NumPy on a CPU: 1/16 of the work
    He-normal (truncated) convs, Glorot-uniform  PyTorch's default       the layers' own reset, as PyTorch;
    up-convs and 1x1 conv, zero biases           (Kaiming-unif. a=5^.5)  batch norm makes the scale moot
    softmax output, 3 classes, 128x128 input     logits, 2 classes,      F.cross_entropy takes logits
                                                 64x64 (bundled)         (log-softmax is stabler); pet vs
                                                                         background; the bundled sample

``UNet.course()`` ends in logits too (apply ``F.softmax(logits, dim=1)`` for the course's output).
Keras' "same" 3x3 stride-2 transposed conv crops its one extra row/column at the bottom/right; here
``padding=1, output_padding=1`` (PyTorch's way to the same 2x size) crops one at the top/left, so
the learned kernel sits one pixel shifted: the same family of functions. Dropout (0.3) sits where
the course puts it in both: after each pool, and after each concatenation.
"""

from __future__ import annotations

import math

from minidl import functional as F
from minidl import nn

from .segmenter import Segmenter, conv_stage

PADDINGS = {"same": 1, "valid": 0}  # padding of each 3x3 conv
UP_KERNEL_SIZES = (2, 3)  # 2: the paper's 2x2 up-convolution; 3: the course's 3x3 (padding 1, output_padding 1)
KERAS_TRUNCATED_NORMAL_STD = 0.87962566103423978  # std of N(0, 1) truncated to [-2, 2]


def conv2d_block(in_channels: int, out_channels: int, padding: str = "same", batch_norm: bool = True) -> nn.Sequential:
    """Two rounds of 3x3 conv -> batch norm -> ReLU (the building brick of every UNet stage).

    (N, in_channels, H, W) -> (N, out_channels, H', W') with H' = H ("same") or H - 4 ("valid").
    batch_norm=False: conv (with bias) -> ReLU, twice, as the course builds it.
    """
    pixels = _padding_pixels(padding)
    if batch_norm:
        return conv_stage(in_channels, out_channels, convs=2, padding=pixels)
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=pixels), nn.ReLU(),
                         nn.Conv2d(out_channels, out_channels, 3, padding=pixels), nn.ReLU())


class EncoderBlock(nn.Module):
    """One step down the U: ``skip = conv2d_block(x)``, ``down = dropout(max_pool_2x2(skip))``.

    forward: (N, C_in, H, W) -> (skip (N, C_out, H', W'), down (N, C_out, H'/2, W'/2)),
    H' as in ``conv2d_block``. ``skip`` goes to the decoder, ``down`` to the next block.
    """

    def __init__(self, in_channels: int, out_channels: int, padding: str = "same", dropout: float = 0.3,
                 batch_norm: bool = True):
        super().__init__()
        self.block = conv2d_block(in_channels, out_channels, padding, batch_norm)
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        skip = self.block(x)
        return skip, self.dropout(self.pool(skip))


class Encoder(nn.Module):
    """``depth`` encoder blocks with ``base_channels * 2**i`` channels at level i = 0 .. depth-1.

    forward: (N, C_in, H, W) -> (x (N, base * 2**(depth-1), H / 2**depth, W / 2**depth) for "same",
    skips [level 0 (N, base, H, W), ..., level depth-1]).
    """

    def __init__(self, in_channels: int, base_channels: int, depth: int, padding: str = "same",
                 dropout: float = 0.3, batch_norm: bool = True):
        super().__init__()
        widths = [base_channels * 2**i for i in range(depth)]
        self.blocks = nn.ModuleList(EncoderBlock(c_in, c_out, padding, dropout, batch_norm)
                                    for c_in, c_out in zip([in_channels, *widths[:-1]], widths))

    def forward(self, x):
        skips = []
        for block in self.blocks:
            skip, x = block(x)
            skips.append(skip)
        return x, skips


def bottleneck(in_channels: int, padding: str = "same", batch_norm: bool = True) -> nn.Sequential:
    """The bottom of the U: a ``conv2d_block`` that doubles the channels at the coarsest scale.

    (N, C, h, w) -> (N, 2C, h', w'), h' = h ("same") or h - 4 ("valid").
    """
    return conv2d_block(in_channels, 2 * in_channels, padding, batch_norm)


class DecoderBlock(nn.Module):
    """One step up the U: upsample x2, join the skip, then a ``conv2d_block``.

    up = conv_transpose_2x2_stride2(x): (N, C_in, h, w) -> (N, C_out, 2h, 2w)
         (up_kernel_size=3: 3x3, stride 2, padding 1, output_padding 1, the same 2h x 2w)
    joined = dropout(cat([up, centre_crop(skip to 2h x 2w)], channels)): (N, C_out + C_skip, 2h, 2w)
    forward(x, skip) = conv2d_block(joined): -> (N, C_out, 2h', 2w'), with 2h' = 2h or 2h - 4.
    The crop is the identity for padding="same" (skip and up have the same size).
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, padding: str = "same",
                 dropout: float = 0.3, batch_norm: bool = True, up_kernel_size: int = 2):
        super().__init__()
        if up_kernel_size not in UP_KERNEL_SIZES:
            raise ValueError(f"UNet: up_kernel_size must be one of {UP_KERNEL_SIZES}, got {up_kernel_size!r}")
        overlap = up_kernel_size - 2  # 3x3 kernels overlap by one pixel: crop it to keep exactly 2h
        self.up = nn.ConvTranspose2d(in_channels, out_channels, up_kernel_size, stride=2, padding=overlap,
                                     output_padding=overlap)
        self.dropout = nn.Dropout(dropout)
        self.block = conv2d_block(out_channels + skip_channels, out_channels, padding, batch_norm)

    def forward(self, x, skip):
        up = self.up(x)
        if skip.shape[2:] != up.shape[2:]:
            skip = F.center_crop(skip, up.shape[2:])
        joined = F.cat([up, skip], dim=1)
        return self.block(self.dropout(joined))


class Decoder(nn.Module):
    """``depth`` decoder blocks, mirror images of the encoder's, consuming its skips deepest first.

    forward(x, skips): (N, base * 2**depth, h, w) -> (N, base, h * 2**depth, w * 2**depth) for "same".
    """

    def __init__(self, base_channels: int, depth: int, padding: str = "same", dropout: float = 0.3,
                 batch_norm: bool = True, up_kernel_size: int = 2):
        super().__init__()
        widths = [base_channels * 2**i for i in reversed(range(depth))]  # 8c, 4c, 2c, c for depth 4
        self.blocks = nn.ModuleList(DecoderBlock(2 * width, width, width, padding, dropout, batch_norm, up_kernel_size)
                                    for width in widths)

    def forward(self, x, skips):
        for block, skip in zip(self.blocks, reversed(skips)):
            x = block(x, skip)
        return x


class UNet(Segmenter):
    """encoder -> bottleneck -> decoder -> 1x1 conv to class scores.

    x: (N, in_channels, H, W) -> logits (N, num_classes, H_out, W_out), H_out = H for padding="same",
    the paper's smaller centre for "valid" (572 -> 388 at depth 4). Softmax over dim 1 gives the
    per-pixel class probabilities; train with ``F.cross_entropy(logits, mask)``.
    ``UNet.paper()`` builds the 2015 network (base 64, depth 4, unpadded convs, one input channel),
    ``UNet.course()`` the DeepLearning.AI course's (module docstring). batch_norm=False drops batch
    norm (the convs get biases); up_kernel_size=3 uses 3x3 up-convolutions.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 2, base_channels: int = 16, depth: int = 4,
                 padding: str = "same", dropout: float = 0.3, batch_norm: bool = True, up_kernel_size: int = 2):
        super().__init__(in_channels, num_classes)
        _padding_pixels(padding)
        if depth < 1 or base_channels < 1:
            raise ValueError(f"UNet: depth and base_channels must be >= 1, got depth={depth}, "
                             f"base_channels={base_channels}")
        self.depth, self.padding = depth, padding
        self.encoder = Encoder(in_channels, base_channels, depth, padding, dropout, batch_norm)
        self.bottleneck = bottleneck(base_channels * 2 ** (depth - 1), padding, batch_norm)
        self.decoder = Decoder(base_channels, depth, padding, dropout, batch_norm, up_kernel_size)
        self.classifier = nn.Conv2d(base_channels, num_classes, 1)

    @classmethod
    def paper(cls, in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0) -> "UNet":
        """The network of the paper: 64 channels doubling to 1024, unpadded convs, 572 -> 388."""
        return cls(in_channels, num_classes, base_channels=64, depth=4, padding="valid", dropout=dropout)

    @classmethod
    def course(cls, in_channels: int = 3, num_classes: int = 3, dropout: float = 0.3, generator=None) -> "UNet":
        """The DeepLearning.AI course's UNet (module docstring): 64 -> 1024 channels, no batch norm,
        3x3 stride-2 up-convs, 3 classes (pet / background / border), trained on 128x128 images.

        Keras' initialisers: every 3x3 conv of a ``conv2d_block`` He-normal, i.e. N(0, s^2) truncated
        to +-2 s (Keras rescales s = sqrt(2 / fan_in) / 0.8796 so the truncated draw keeps variance
        2 / fan_in); the up-convs and the final 1x1 conv Glorot-uniform U(-b, b),
        b = sqrt(6 / (fan_in + fan_out)); every bias 0. 34,513,475 parameters for 3 classes.
        """
        model = cls(in_channels, num_classes, base_channels=64, depth=4, padding="same", dropout=dropout,
                    batch_norm=False, up_kernel_size=3)
        for module in model.modules():
            if isinstance(module, nn.ConvTranspose2d) or module is model.classifier:
                nn.init.xavier_uniform_(module.weight, generator=generator)
            elif isinstance(module, nn.Conv2d):
                fan_in, _ = nn.init.fan_in_and_fan_out(module.weight)
                std = math.sqrt(2 / fan_in) / KERAS_TRUNCATED_NORMAL_STD
                nn.init.trunc_normal_(module.weight, 0.0, std, -2 * std, 2 * std, generator=generator)
            else:
                continue
            nn.init.zeros_(module.bias)
        return model

    def forward(self, x):
        self.check_input(x)
        x, skips = self.encoder(x)
        return self.classifier(self.decoder(self.bottleneck(x), skips))

    def _output_size(self, size: int) -> int | None:
        """Walk one spatial size through the U: each conv2d_block takes ``shrink`` pixels (4 if
        "valid", else 0), each pool halves an even size, each up-convolution doubles it."""
        shrink = 4 * (1 - PADDINGS[self.padding])
        for _ in range(self.depth):
            size -= shrink
            if size < 2 or size % 2:
                return None
            size //= 2
        size -= shrink  # bottleneck
        for _ in range(self.depth):
            size = 2 * size - shrink
            if size < 1:
                return None
        return size

    @property
    def size_rule(self) -> str:
        if self.padding == "same":
            return f"height and width must be multiples of 2**depth = {2**self.depth}"
        return (f"with unpadded convs every 2x2 max-pool must see an even size of at least 2 "
                f"(each conv2d_block takes 4 pixels, depth {self.depth})")


def _padding_pixels(padding: str) -> int:
    if padding not in PADDINGS:
        raise ValueError(f"UNet: padding must be one of {sorted(PADDINGS)}, got {padding!r}")
    return PADDINGS[padding]
