"""NumPy twins of ``minidl.kernels.interpolate``, written as matrix products.

A separable resize is y[p] = A_rows @ x[p] @ A_cols^T, where row o of A_rows holds the weights with
which output row o mixes the input rows (one 1 for nearest, two weights for bilinear). Its
adjoint, the backward pass, is then just dL/dx[p] = A_rows^T @ g[p] @ A_cols.
"""

from __future__ import annotations

import numpy as np


def _nearest_matrix(index, size, dtype):
    """(len(index), size) with A[o, index[o]] = 1."""
    return np.eye(size, dtype=dtype)[index]


def _linear_matrix(taps, size):
    """(len(index0), size) with A[o, index0[o]] += weight0[o] and A[o, index1[o]] += weight1[o]."""
    index0, index1, weight0, weight1 = taps
    identity = np.eye(size, dtype=weight0.dtype)
    return identity[index0] * weight0[:, None] + identity[index1] * weight1[:, None]


def resize_nearest(x, rows, cols):
    """y[p, oy, ox] = x[p, rows[oy], cols[ox]]:  x (P, H, W) -> y (P, len(rows), len(cols))."""
    _, height, width = x.shape
    return _nearest_matrix(rows, height, x.dtype) @ x @ _nearest_matrix(cols, width, x.dtype).T


def resize_nearest_backward(g, rows, cols, height, width):
    """dL/dx[p] = A_rows^T @ g[p] @ A_cols:  g (P, H_out, W_out) -> (P, H, W)."""
    return _nearest_matrix(rows, height, g.dtype).T @ g @ _nearest_matrix(cols, width, g.dtype)


def resize_bilinear(x, rows, cols):
    """y[p] = A_rows @ x[p] @ A_cols^T:  x (P, H, W) -> (P, H_out, W_out)."""
    _, height, width = x.shape
    return _linear_matrix(rows, height) @ x @ _linear_matrix(cols, width).T


def resize_bilinear_backward(g, rows, cols, height, width):
    """dL/dx[p] = A_rows^T @ g[p] @ A_cols:  g (P, H_out, W_out) -> (P, H, W)."""
    return _linear_matrix(rows, height).T @ g @ _linear_matrix(cols, width)
