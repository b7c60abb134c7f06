"""Pooling layers: max pooling (optionally returning argmax indices), max unpooling, adaptive average pooling."""

from __future__ import annotations

from .. import functional as F
from ..tensor import Tensor
from .module import Module


class MaxPool2d(Module):
    """Max over each kernel_size window (see ``F.max_pool2d``); stride defaults to kernel_size.

    With ``return_indices=True`` the forward returns (output, indices): the argmax positions,
    flat per H×W plane, which ``MaxUnpool2d`` uses to put values back (SegNet's decoder).
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, input: Tensor):
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                            self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxUnpool2d(Module):
    """Put each value back at its pooling argmax, zeros elsewhere (see ``F.max_unpool2d``).

    ``forward(input, indices, output_size=None)``; ``output_size`` resolves the ambiguity of odd
    input sizes (pass the shape of the tensor that was pooled).
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def forward(self, input: Tensor, indices, output_size=None) -> Tensor:
        return F.max_unpool2d(input, indices, self.kernel_size, self.stride, self.padding, output_size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average over a grid of bins to a fixed ``output_size``; ``AdaptiveAvgPool2d(1)`` is global average pooling."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
