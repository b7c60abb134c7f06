"""Reductions over dimensions: sum, mean, amax/max, var (``dim`` an int, a tuple or None = all)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..tensor import Function, Tensor
from .arguments import normalize_dims, require_floating


def expand_reduced(g: np.ndarray, dims: tuple, keepdim: bool) -> np.ndarray:
    """Put back the reduced axes of ``g`` as size 1, so it broadcasts against the input shape."""
    return g if keepdim else np.expand_dims(g, dims)


class Sum(Function):
    """y = sum_dims x;  dL/dx = g broadcast back over the summed dims"""

    def forward(self, x, dims, keepdim):
        self.shape, self.dims, self.keepdim = x.shape, dims, keepdim
        return x.sum(axis=dims, keepdims=keepdim)

    def backward(self, g):
        return np.broadcast_to(expand_reduced(g, self.dims, self.keepdim), self.shape).copy()


class Mean(Function):
    """y = sum_dims x / n;  dL/dx = g / n broadcast back (n = number of elements reduced)"""

    def forward(self, x, dims, keepdim):
        self.shape, self.dims, self.keepdim = x.shape, dims, keepdim
        self.n = int(np.prod([x.shape[d] for d in dims]))
        return x.mean(axis=dims, keepdims=keepdim)

    def backward(self, g):
        g = expand_reduced(g, self.dims, self.keepdim) / np.asarray(self.n, dtype=g.dtype)
        return np.broadcast_to(g, self.shape).copy()


class Max(Function):
    """y = max_dims x;  dL/dx = g at the maximum, split equally among ties"""

    def forward(self, x, dims, keepdim):
        self.x, self.dims, self.keepdim = x, dims, keepdim
        self.y = x.max(axis=dims, keepdims=True)
        return self.y if keepdim else np.squeeze(self.y, axis=dims)

    def backward(self, g):
        is_max = (self.x == self.y).astype(g.dtype)
        return expand_reduced(g, self.dims, self.keepdim) * is_max / is_max.sum(axis=self.dims, keepdims=True)


class Var(Function):
    """y = sum_dims (x - mean)^2 / (n - correction);  dL/dx = g * 2 (x - mean) / (n - correction)"""

    def forward(self, x, dims, keepdim, correction):
        self.dims, self.keepdim = dims, keepdim
        n = int(np.prod([x.shape[d] for d in dims]))
        self.denominator = np.asarray(n - correction, dtype=x.dtype)
        self.centered = x - x.mean(axis=dims, keepdims=True)
        return (self.centered ** 2).sum(axis=dims, keepdims=keepdim) / self.denominator

    def backward(self, g):
        g = expand_reduced(g, self.dims, self.keepdim)
        return g * 2 * self.centered / self.denominator


def sum(x: Tensor, dim=None, keepdim=False) -> Tensor:
    return Sum.apply(x, dims=normalize_dims(dim, x.ndim, "sum"), keepdim=keepdim)


def mean(x: Tensor, dim=None, keepdim=False) -> Tensor:
    require_floating(x, "mean")
    return Mean.apply(x, dims=normalize_dims(dim, x.ndim, "mean"), keepdim=keepdim)


def amax(x: Tensor, dim=None, keepdim=False) -> Tensor:
    """Maximum values over ``dim`` (an int, a tuple or None = all), as ``torch.amax``."""
    return Max.apply(x, dims=normalize_dims(dim, x.ndim, "amax"), keepdim=keepdim)


class MaxResult(NamedTuple):
    """What ``max(x, dim)`` returns, as ``torch.max``: the values and their positions along ``dim``."""

    values: Tensor
    indices: Tensor


def max(x: Tensor, dim=None, keepdim=False):
    """As ``torch.max``: ``max(x)`` is the largest element (a 0-d Tensor); ``max(x, dim)`` is a
    ``(values, indices)`` pair along one dim, the indices an int64 Tensor outside the graph."""
    if dim is None:
        return amax(x)
    if not isinstance(dim, int):
        raise TypeError(f"max: dim must be one int (use amax for several dims), got {dim!r}")
    values = amax(x, dim, keepdim)
    axis = normalize_dims(dim, x.ndim, "max")[0]
    return MaxResult(values, Tensor(np.argmax(x.data, axis=axis, keepdims=keepdim).astype(np.int64)))


def var(x: Tensor, dim=None, unbiased=True, keepdim=False) -> Tensor:
    """Variance over ``dim``; ``unbiased=True`` divides by n - 1 (Bessel), as PyTorch's default."""
    dims = normalize_dims(dim, x.ndim, "var")
    return Var.apply(x, dims=dims, keepdim=keepdim, correction=int(unbiased))
