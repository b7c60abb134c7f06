"""What every segmentation model here shares: the input contract and its error messages.

A segmenter maps a batch of images to per-pixel class scores (logits, no softmax)::

    x: (N, in_channels, H, W)  ->  logits: (N, num_classes, H_out, W_out)

The logits have the input's size for UNet (padding="same"), SegNet and FCN, and cover a smaller
centre for the paper's UNet (padding="valid"). Each model says which input sizes it
accepts through ``output_size(size)``, a shape-only walk through its layers that raises a
ValueError naming the nearest sizes that work.
"""

from __future__ import annotations

import numpy as np

from minidl import nn
from minidl.tensor import Tensor

from .blocks import conv_bn_relu


def conv_stage(in_channels: int, out_channels: int, convs: int, padding: int = 1,
               first_padding: int | None = None) -> nn.Sequential:
    """``convs`` 3x3 conv_bn_relu layers, the first from in_channels to out_channels (a VGG stage).

    (N, in_channels, H, W) -> (N, out_channels, H', W'), H' = H when every padding is 1.
    ``first_padding`` overrides the first conv's padding (FCN's paper geometry pads conv1_1 by 100).
    """
    first = padding if first_padding is None else first_padding
    layers = conv_bn_relu(in_channels, out_channels, padding=first)
    for _ in range(convs - 1):
        layers += conv_bn_relu(out_channels, out_channels, padding=padding)
    return nn.Sequential(*layers)


# VGG16's five stages as (channels / base_channels, 3x3 convs): 64-128-256-512-512 for base 64.
VGG16_STAGES = ((1, 2), (2, 2), (4, 3), (8, 3), (8, 3))


class Segmenter(nn.Module):
    """Base class: stores ``in_channels`` / ``num_classes`` and checks inputs before the forward pass."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        name = type(self).__name__
        if int(in_channels) != in_channels or in_channels < 1:
            raise ValueError(f"{name}: in_channels must be a positive integer, got {in_channels!r}")
        if int(num_classes) != num_classes or num_classes < 2:
            raise ValueError(f"{name}: num_classes must be an integer >= 2 (background and at least one "
                             f"class; binary masks use 2 classes with cross-entropy), got {num_classes!r}")
        self.in_channels = int(in_channels)
        self.num_classes = int(num_classes)

    def conv_flops(self, height: int, width: int) -> int:
        """Floating-point operations (2 per multiply-add) of the convolutions for one image of H x W.

        conv: 2 * C_in * C_out * k_h * k_w * H_out * W_out;  transposed conv: the same with the
        *input* size (each input pixel is spread over a k_h x k_w patch). Batch norm, ReLU and pooling
        add O(C * H * W) each, well under 1 % here, and are not counted. Measured with forward hooks
        on one forward pass of zeros (``forward_with_hooks``).
        """
        total = 0

        def count(module, inputs, output):
            nonlocal total
            macs_per_pixel = module.weight.size  # C_in * C_out * k_h * k_w
            pixels = inputs[0].shape[2:] if isinstance(module, nn.ConvTranspose2d) else output.shape[2:]
            total += 2 * macs_per_pixel * int(np.prod(pixels))

        convs = [m for m in self.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        self.forward_with_hooks(Tensor(np.zeros((1, self.in_channels, height, width), dtype=np.float32)), count, convs)
        return total

    def output_size(self, size: int) -> int:
        """Spatial size of the logits for an input of height (or width) ``size``.

        Raises a ValueError that states the model's size rule and the nearest sizes that work.
        """
        out = self._output_size(size)
        if out is None:
            working = [s for s in (_nearest(self._output_size, size, -1), _nearest(self._output_size, size, 1))
                       if s is not None]
            raise ValueError(f"{type(self).__name__}: input height/width {size} does not work: {self.size_rule}; "
                             f"sizes that work near {size}: {', '.join(map(str, working))}")
        return out

    def _output_size(self, size: int) -> int | None:
        """The shape-only walk through the layers: output size, or None where the rule breaks."""
        raise NotImplementedError

    @property
    def size_rule(self) -> str:
        """Which input sizes work, in words (used in error messages)."""
        raise NotImplementedError

    def check_input(self, x) -> None:
        """Raise a ValueError naming the model, the expected shape and the actual one if ``x`` does not fit."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__}: expected input of shape (N, {self.in_channels}, H, W) "
                             f"(in_channels={self.in_channels}), got shape {tuple(x.shape)}")
        for size in x.shape[2:]:
            self.output_size(size)


def _nearest(output_size, size: int, step: int, search: int = 4096) -> int | None:
    """The closest accepted input size to ``size`` going in direction ``step`` (-1 or +1), if any."""
    for candidate in range(size + step, size + step * search, step):
        if candidate < 1:
            return None
        if output_size(candidate) is not None:
            return candidate
    return None
