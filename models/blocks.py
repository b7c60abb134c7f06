"""Building blocks shared by the models."""

from __future__ import annotations

from minidl import nn


def conv_bn_relu(in_channels: int, out_channels: int, padding: int = 1, stride: int = 1) -> list:
    """3x3 conv (no bias: the batch norm right after it removes the channel mean) -> batch norm -> ReLU.

    (N, in_channels, H, W) -> (N, out_channels, H', W') with H' = floor((H + 2 * padding - 3) / stride) + 1
    (H + 2 * padding - 2 at stride 1). Returned as a list of three modules so that a stage is one flat
    ``nn.Sequential``.
    """
    return [nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU()]
