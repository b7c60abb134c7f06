"""Convolution layers: ``Conv2d`` and ``ConvTranspose2d`` (learnable weight and bias around ``F.conv2d`` etc.)."""

from __future__ import annotations


import numpy as np

from .. import functional as F
from ..kernels.conv import conv_transpose_output_size
from ..ops.arguments import pair, positive_sizes
from ..tensor import Tensor
from . import init
from .module import Module, Parameter


class _ConvNd(Module):
    """Shared construction of Conv2d and ConvTranspose2d: settings as pairs, weight, bias, PyTorch's init.

    Both initialise weight and bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) where fan_in =
    weight.shape[1] * kH * kW (``init.default_layer_init_``).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, output_padding, bias,
                 weight_shape):
        super().__init__()
        name = type(self).__name__
        positive_sizes(name, in_channels=in_channels, out_channels=out_channels)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = pair(name, "kernel_size", kernel_size, 1), pair(name, "stride", stride, 1)
        self.padding, self.dilation = pair(name, "padding", padding, 0), pair(name, "dilation", dilation, 1)
        self.output_padding = pair(name, "output_padding", output_padding, 0)
        self.weight = Parameter(np.empty(weight_shape + self.kernel_size, dtype=np.float32))
        self.register_parameter("bias", Parameter(np.empty(out_channels, dtype=np.float32)) if bias else None)
        init.default_layer_init_(self.weight, self.bias)

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.output_padding != (0, 0):
            text += f", output_padding={self.output_padding}"
        if self.bias is None:
            text += ", bias=False"
        return text


class Conv2d(_ConvNd):
    """2-D convolution (cross-correlation, as PyTorch): see ``F.conv2d`` for the math and gradients.

    input (N, in_channels, H, W) -> (N, out_channels, H_out, W_out);
    weight (out_channels, in_channels, kH, kW), bias (out_channels,).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1, *,
                 bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, 0, bias,
                         (out_channels, in_channels))

    def forward(self, input: Tensor) -> Tensor:
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation)


class ConvTranspose2d(_ConvNd):
    """2-D transposed convolution (the adjoint of conv2d; learnable upsampling): see ``F.conv_transpose2d``.

    input (N, in_channels, H, W) -> (N, out_channels, H_out, W_out),
    H_out = (H - 1) * stride - 2 * padding + dilation * (kH - 1) + output_padding + 1;
    weight (in_channels, out_channels, kH, kW), bias (out_channels,).
    ``forward(input, output_size=None)``: an ``output_size`` ((H, W) or (N, C, H, W)) picks the
    output_padding that yields it, as PyTorch.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0, *,
                 bias: bool = True, dilation=1):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, output_padding, bias,
                         (in_channels, out_channels))

    def forward(self, input: Tensor, output_size=None) -> Tensor:
        output_padding = self.output_padding if output_size is None else self._output_padding(input, output_size)
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding, output_padding,
                                  self.dilation)

    def _output_padding(self, input: Tensor, output_size) -> tuple:
        size = tuple(output_size)[-2:]
        if len(output_size) not in (2, 4) or input.ndim != 4:
            raise ValueError(f"ConvTranspose2d: output_size must be (H, W) or (N, C, H, W) for a 4-D input, "
                             f"got {output_size!r} for input {input.shape}")
        padding = []
        for axis in range(2):
            smallest = conv_transpose_output_size(input.shape[2 + axis], self.kernel_size[axis], self.stride[axis],
                                                  self.padding[axis], self.dilation[axis])
            if not smallest <= size[axis] < smallest + self.stride[axis]:
                raise ValueError(f"ConvTranspose2d: output_size {tuple(output_size)} is not reachable from input "
                                 f"{input.shape}: dim {axis} must be in [{smallest}, "
                                 f"{smallest + self.stride[axis] - 1}]")
            padding.append(size[axis] - smallest)
        return tuple(padding)
