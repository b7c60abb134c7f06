"""Softmax and log-softmax along a dim, computed stably by subtracting the maximum first."""

from __future__ import annotations

import numpy as np

from ..tensor import Function, Tensor
from .arguments import normalize_dim


def _log_softmax(x: np.ndarray, dim: int) -> np.ndarray:
    shifted = x - x.max(axis=dim, keepdims=True)  # exp never overflows: every value <= 0
    return shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))


class Softmax(Function):
    """y_i = exp(x_i) / sum_j exp(x_j);  dL/dx = y * (g - sum(g * y))"""

    def forward(self, x, dim):
        self.dim = dim
        self.y = np.exp(_log_softmax(x, dim))
        return self.y

    def backward(self, g):
        return self.y * (g - (g * self.y).sum(axis=self.dim, keepdims=True))


class LogSoftmax(Function):
    """y_i = x_i - log sum_j exp(x_j);  dL/dx = g - softmax(x) * sum(g)"""

    def forward(self, x, dim):
        self.dim = dim
        self.y = _log_softmax(x, dim)
        return self.y

    def backward(self, g):
        return g - np.exp(self.y) * g.sum(axis=self.dim, keepdims=True)


def softmax(x: Tensor, dim: int) -> Tensor:
    return Softmax.apply(x, dim=normalize_dim(dim, x.ndim, "softmax"))


def log_softmax(x: Tensor, dim: int) -> Tensor:
    return LogSoftmax.apply(x, dim=normalize_dim(dim, x.ndim, "log_softmax"))
