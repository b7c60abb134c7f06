"""Activation functions: ReLU, sigmoid and tanh elementwise; softmax and log-softmax along a dim
(computed stably by subtracting the maximum first)."""

from __future__ import annotations

import numpy as np

from ..kernels import activation as fast
from ..tensor import Function, Tensor
from .arguments import normalize_dim, require_floating
from .elementwise import Unary


class ReLU(Unary):
    """y = max(x, 0);  dL/dx = g * [x > 0]"""
    f = staticmethod(lambda x: np.maximum(x, 0))
    derivative = staticmethod(lambda x, y: x > 0)


class FusedReLU(Function):
    """The same op as ``ReLU`` (same maths), computed by the Numba loops of ``minidl.kernels.activation``:
    one walk each way instead of NumPy's two, and only y kept for the backward. ``relu`` uses it for
    float tensors; tests check it against ``ReLU``. One difference: where x <= 0 and g is inf or NaN,
    dL/dx is 0 (as in PyTorch), not ``ReLU``'s 0 * inf = NaN.
    """

    def forward(self, x):
        self.y = fast.relu(np.ascontiguousarray(x).reshape(-1)).reshape(x.shape)
        return self.y

    def backward(self, g):
        return fast.relu_backward(np.ascontiguousarray(g).reshape(-1), self.y.reshape(-1)).reshape(g.shape)


class Sigmoid(Unary):
    """y = 1 / (1 + exp(-x));  dL/dx = g * y * (1 - y)"""

    @staticmethod
    def f(x):
        # exp of a non-positive number only: no overflow for large |x|
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)

    derivative = staticmethod(lambda x, y: y * (1 - y))


class Tanh(Unary):
    """y = tanh(x);  dL/dx = g * (1 - y^2)"""
    f = staticmethod(np.tanh)
    derivative = staticmethod(lambda x, y: 1 - y * y)


def relu(x) -> Tensor:
    """max(x, 0) elementwise; float32 and float64 tensors take the fast path ``FusedReLU``."""
    data = x.data if isinstance(x, Tensor) else np.asarray(x)
    return (FusedReLU if data.dtype in (np.float32, np.float64) else ReLU).apply(x)


def sigmoid(x) -> Tensor:
    return Sigmoid.apply(x)


def tanh(x) -> Tensor:
    return Tanh.apply(x)


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
    require_floating(x, "softmax")
    return Softmax.apply(x, dim=normalize_dim(dim, x.ndim, "softmax"))


def log_softmax(x: Tensor, dim: int) -> Tensor:
    require_floating(x, "log_softmax")
    return LogSoftmax.apply(x, dim=normalize_dim(dim, x.ndim, "log_softmax"))
