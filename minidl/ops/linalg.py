"""Matrix product (batched and broadcast like ``np.matmul``)."""

from __future__ import annotations

import numpy as np

from ..kernels import workers
from ..tensor import Function, Tensor
from .elementwise import unbroadcast


class MatMul(Function):
    """y = a @ b;  dL/da = g @ b^T,  dL/db = a^T @ g  (batch dims un-broadcast; 1-d operands promoted).

    ``workers.matmul(a, b)`` is ``a @ b`` computed on Numba's threads rather than BLAS's own."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return workers.matmul(a, b)  # a @ b

    def backward(self, g):
        a = self.a[None, :] if self.a.ndim == 1 else self.a
        b = self.b[:, None] if self.b.ndim == 1 else self.b
        if self.b.ndim == 1:  # restore the axes matmul dropped: b's column first, then a's row
            g = np.expand_dims(g, -1)
        if self.a.ndim == 1:
            g = np.expand_dims(g, -2)
        grad_a = unbroadcast(workers.matmul(g, np.swapaxes(b, -1, -2)), a.shape).reshape(self.a.shape)
        grad_b = unbroadcast(workers.matmul(np.swapaxes(a, -1, -2), g), b.shape).reshape(self.b.shape)
        return grad_a, grad_b


def matmul(a: Tensor, b: Tensor) -> Tensor:
    a = a if isinstance(a, Tensor) else Tensor(a)
    b = b if isinstance(b, Tensor) else Tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dim, got shapes {a.shape} and {b.shape}")
    if a.dtype != b.dtype:
        raise ValueError(f"matmul: operands have different dtypes {a.dtype} and {b.dtype} "
                         f"(shapes {a.shape} and {b.shape})")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match "
                         f"(inner dims {a.shape[-1]} and {b.shape[-2 if b.ndim > 1 else 0]})")
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dims of {a.shape} and {b.shape} cannot be broadcast") from None
    return MatMul.apply(a, b)
