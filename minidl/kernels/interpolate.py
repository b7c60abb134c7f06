"""Nearest and bilinear resizing of a stack of H×W planes, and their adjoints, as Numba kernels.

Both resizes are separable: each output row reads one or two input rows, each output column one or
two input columns. The caller (``minidl.ops.resize``) works out PyTorch's coordinate rules once
per axis and hands the kernels the result:

    nearest:   rows[oy] = the input row output row oy copies            (int64, length H_out)
               y[p, oy, ox] = x[p, rows[oy], cols[ox]]
    bilinear:  rows = (index0, index1, weight0, weight1), each of length H_out, likewise cols:
               y[p, oy, ox] = sum over a, b in {0, 1} of
                              rows.weight_a[oy] * cols.weight_b[ox] * x[p, rows.index_a[oy], cols.index_b[ox]]

The backward passes are the adjoints (transposes) of these linear maps: every output gradient is
added back onto the input pixels it was read from, with the same weights. Several outputs read
the same pixel, so the planes are split between threads (``prange``) and each thread adds only
into its own planes: no races. NumPy twins: ``minidl.kernels.reference.interpolate``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def resize_nearest(x, rows, cols):
    """y[p, oy, ox] = x[p, rows[oy], cols[ox]]:  x (P, H, W) -> y (P, len(rows), len(cols))."""
    planes = x.shape[0]
    y = np.empty((planes, rows.size, cols.size), dtype=x.dtype)
    for p in prange(planes):
        for oy in range(rows.size):
            for ox in range(cols.size):
                y[p, oy, ox] = x[p, rows[oy], cols[ox]]
    return y


@njit(cache=True, parallel=True)
def resize_nearest_backward(g, rows, cols, height, width):
    """dL/dx[p, h, w] = sum of g[p, oy, ox] over rows[oy] = h, cols[ox] = w:  g (P, H_out, W_out) -> (P, H, W)."""
    planes = g.shape[0]
    grad = np.zeros((planes, height, width), dtype=g.dtype)
    for p in prange(planes):
        for oy in range(rows.size):
            for ox in range(cols.size):
                grad[p, rows[oy], cols[ox]] += g[p, oy, ox]
    return grad


@njit(cache=True, parallel=True)
def resize_bilinear(x, rows, cols):
    """y[p, oy, ox] = weighted sum of the 2×2 input pixels around the source point:  x (P, H, W) -> (P, H_out, W_out).

    rows, cols: (index0, index1, weight0, weight1) per axis, weights in x's dtype.
    """
    row0, row1, row_weight0, row_weight1 = rows
    col0, col1, col_weight0, col_weight1 = cols
    planes = x.shape[0]
    y = np.empty((planes, row0.size, col0.size), dtype=x.dtype)
    for p in prange(planes):
        for oy in range(row0.size):
            top, bottom = x[p, row0[oy]], x[p, row1[oy]]
            for ox in range(col0.size):
                c0, c1, wc0, wc1 = col0[ox], col1[ox], col_weight0[ox], col_weight1[ox]
                y[p, oy, ox] = (row_weight0[oy] * (wc0 * top[c0] + wc1 * top[c1])
                                + row_weight1[oy] * (wc0 * bottom[c0] + wc1 * bottom[c1]))
    return y


@njit(cache=True, parallel=True)
def resize_bilinear_backward(g, rows, cols, height, width):
    """Adjoint of ``resize_bilinear``: each g[p, oy, ox] is added to its 2×2 source pixels with the
    same weights.  g (P, H_out, W_out) -> dL/dx (P, H, W)."""
    row0, row1, row_weight0, row_weight1 = rows
    col0, col1, col_weight0, col_weight1 = cols
    planes = g.shape[0]
    grad = np.zeros((planes, height, width), dtype=g.dtype)
    for p in prange(planes):
        for oy in range(row0.size):
            top, bottom = grad[p, row0[oy]], grad[p, row1[oy]]
            for ox in range(col0.size):
                c0, c1, wc0, wc1 = col0[ox], col1[ox], col_weight0[ox], col_weight1[ox]
                g_top, g_bottom = row_weight0[oy] * g[p, oy, ox], row_weight1[oy] * g[p, oy, ox]
                top[c0] += wc0 * g_top
                top[c1] += wc1 * g_top
                bottom[c0] += wc0 * g_bottom
                bottom[c1] += wc1 * g_bottom
    return grad
