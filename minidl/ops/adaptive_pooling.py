"""Adaptive average pooling: average over a grid of bins that divides any input size into a fixed output size."""

from __future__ import annotations

import numbers

import numpy as np

from ..tensor import Function, Tensor


def _bins(size: int, bins: int) -> list:
    """PyTorch's bins along one axis: bin i covers [floor(i * size / bins), ceil((i + 1) * size / bins))."""
    return [(i * size // bins, -(-(i + 1) * size // bins)) for i in range(bins)]


class AdaptiveAvgPool2d(Function):
    """y[n, c, i, j] = mean of x[n, c] over bin (i, j);  dL/dx = g[i, j] / (bin area) spread over each bin

    Bins may overlap by one pixel when the sizes do not divide; each pixel then collects the
    gradient of every bin it belongs to. x: (N, C, H, W), y: (N, C, out_H, out_W).
    """

    def forward(self, x, output_size):
        self.shape = x.shape
        self.rows, self.cols = _bins(x.shape[2], output_size[0]), _bins(x.shape[3], output_size[1])
        y = np.empty(x.shape[:2] + output_size, dtype=x.dtype)
        for i, (top, bottom) in enumerate(self.rows):
            for j, (left, right) in enumerate(self.cols):
                y[:, :, i, j] = x[:, :, top:bottom, left:right].mean(axis=(2, 3))
        return y

    def backward(self, g):
        grad = np.zeros(self.shape, dtype=g.dtype)
        for i, (top, bottom) in enumerate(self.rows):
            for j, (left, right) in enumerate(self.cols):
                area = (bottom - top) * (right - left)
                grad[:, :, top:bottom, left:right] += g[:, :, i, j, None, None] / area
        return grad


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Average-pool ``input`` (N, C, H, W) to ``output_size`` (int or (h, w)); 1 = global average pooling."""
    size = (output_size, output_size) if isinstance(output_size, numbers.Integral) else tuple(output_size)
    if len(size) != 2 or not all(isinstance(s, numbers.Integral) and s >= 1 for s in size):
        raise ValueError(f"adaptive_avg_pool2d: output_size must be a positive int or (h, w), got {output_size!r}")
    if input.ndim != 4:
        raise ValueError(f"adaptive_avg_pool2d: input must be (N, C, H, W), got shape {input.shape}")
    return AdaptiveAvgPool2d.apply(input, output_size=tuple(int(s) for s in size))
