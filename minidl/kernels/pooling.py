"""Max pooling and unpooling on raw arrays, as Numba kernels over a stack of H×W planes.

Max pooling is a data-dependent gather. For every output position it finds the input position
holding the window's maximum, as a flat index inside the plane, h * W + w (PyTorch's convention):

    indices[p, oy, ox] = argmax over (i, j) of x_padded[p, oy*sh + i*dh, ox*sw + j*dw]

Padding counts as -inf, so it never wins. Once the indices are known, everything else moves
values along them:

    max_pool2d forward:     y[p, k] = x[p].flat[indices[p, k]]           (gather)
    max_pool2d backward:    dL/dx[p].flat[indices[p, k]] += g[p, k]      (scatter-add)
    max_unpool2d forward:   y[p].flat[indices[p, k]] = x[p, k]           (scatter)
    max_unpool2d backward:  dL/dx[p, k] = g[p].flat[indices[p, k]]       (gather)

All kernels take arrays of shape (P, H, W), one plane per (n, c). Finding the maxima compares
every tap of every window, so it runs the planes in parallel (``prange``; a plane is written by
one thread). ``max_pool2d_2x2`` is a fast path for the pooling of every model here (2x2 windows,
stride 2, no padding): the same maxima and indices, and the values with them, in one pass.
The gathers and scatters only move values; they run the planes in parallel too, mostly so that
both threads take the page faults of a fresh output (see benchmarks/README.md), and a plane's
scatter-adds stay on one thread, in order. Like all Numba code the kernels do not check bounds:
``minidl.ops.pooling`` validates sizes and indices first.
Each function has a NumPy twin of the same name in ``minidl.kernels.reference.pooling``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def max_pool2d_indices(x, kernel_size, stride, padding, dilation, output_size):
    """Flat position of each window's maximum:  x (P, H, W) -> indices (P, H_out, W_out), int64.

    Scans each window row by row and keeps the first maximum (a later value must be strictly
    larger; NaN always wins), like PyTorch's CPU kernel. Taps in the padding are skipped, which is
    padding with -inf; every window must hold at least one input element (the caller checks).
    """
    planes, height, width = x.shape
    kh, kw = kernel_size
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    out_h, out_w = output_size
    indices = np.empty((planes, out_h, out_w), dtype=np.int64)
    for p in prange(planes):
        for oy in range(out_h):
            for ox in range(out_w):
                best = x[p, 0, 0]  # any value of x's dtype: replaced by the first tap inside x
                best_index = -1
                for i in range(kh):
                    h = oy * sh - ph + i * dh
                    if h < 0 or h >= height:
                        continue
                    for j in range(kw):
                        w = ox * sw - pw + j * dw
                        if w < 0 or w >= width:
                            continue
                        value = x[p, h, w]
                        if best_index < 0 or value > best or np.isnan(value):
                            best = value
                            best_index = h * width + w
                indices[p, oy, ox] = best_index
    return indices


@njit(inline="always")
def _later_tap(value, index, best, best_index):
    """(best, best_index) after one more tap of the window: it wins if strictly larger, or if NaN."""
    if value > best or np.isnan(value):
        return value, index
    return best, best_index


@njit(cache=True, parallel=True)
def max_pool2d_2x2(x):
    """Non-overlapping 2x2 windows (kernel 2, stride 2, no padding):  x (P, H, W) -> (values, indices),
    both (P, H // 2, W // 2); a last odd row or column belongs to no window.

    The numbers of ``max_pool2d_indices`` followed by ``gather_at_indices`` for that geometry (same
    scan order and rule), in one pass. The four taps are written out instead of looped over, and
    LLVM compiles the comparisons into selects instead of branches that a random input makes
    unpredictable: 0.21 against 2.5 ms for 256 planes of 64 x 64 (benchmarks/README.md).
    """
    planes, height, width = x.shape
    out_h, out_w = height // 2, width // 2
    values = np.empty((planes, out_h, out_w), dtype=x.dtype)
    indices = np.empty((planes, out_h, out_w), dtype=np.int64)
    for p in prange(planes):
        for oy in range(out_h):
            top = 2 * oy
            for ox in range(out_w):
                left = 2 * ox
                corner = top * width + left
                best, best_index = x[p, top, left], corner
                best, best_index = _later_tap(x[p, top, left + 1], corner + 1, best, best_index)
                best, best_index = _later_tap(x[p, top + 1, left], corner + width, best, best_index)
                best, best_index = _later_tap(x[p, top + 1, left + 1], corner + width + 1, best, best_index)
                values[p, oy, ox] = best
                indices[p, oy, ox] = best_index
    return values, indices


def scatter_at_indices(values, indices, plane_size, accumulate):
    """out[p].flat[indices[p, k]] (+)= values[p, k]:  values, indices (P, h, w) -> out (P, plane_size).

    ``accumulate=True`` adds repeated indices up (the max-pool gradient, where overlapping windows
    can pick the same maximum); ``False`` lets the last write win (max-unpool, as PyTorch on CPU).
    The output comes from NumPy, which asks the kernel for 2 MB pages for arrays of 4 MB and more
    (Numba's own allocations do not): fewer page faults on fresh memory (benchmarks/README.md).
    """
    out = np.empty((values.shape[0], plane_size), dtype=values.dtype)
    _scatter_into(values, indices, out, accumulate)
    return out


@njit(cache=True, parallel=True)
def _scatter_into(values, indices, out, accumulate):
    """out[p] = zeros, then the scatter of plane p, a plane per thread (its zeros are still in cache)."""
    planes, rows, cols = values.shape
    for p in prange(planes):
        out[p, :] = 0
        for r in range(rows):
            for c in range(cols):
                if accumulate:
                    out[p, indices[p, r, c]] += values[p, r, c]
                else:
                    out[p, indices[p, r, c]] = values[p, r, c]


def gather_at_indices(source, indices):
    """out[p, r, c] = source[p, indices[p, r, c]]:  source (P, plane_size), indices (P, h, w) -> (P, h, w)."""
    out = np.empty(indices.shape, dtype=source.dtype)  # from NumPy, as in scatter_at_indices
    _gather_into(source, indices, out)
    return out


@njit(cache=True, parallel=True)
def _gather_into(source, indices, out):
    planes, rows, cols = indices.shape
    for p in prange(planes):
        for r in range(rows):
            for c in range(cols):
                out[p, r, c] = source[p, indices[p, r, c]]
