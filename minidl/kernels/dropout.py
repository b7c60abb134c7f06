"""Dropout's fast path: y = x * m with the mask m made on the fly from the boolean draws.

The lesson is ``minidl.ops.dropout.Dropout`` (plain NumPy: m = keep * scale as an array of x's
dtype, then y = x * m and dL/dx = g * m); this loop computes the same numbers, bit for bit (each
value is multiplied by the same scale or by 0), and tests/test_nn_dropout.py compares them. It
never builds m: a UNet step of the example holds 4.4 M dropout values, so m was 18 MB of fresh
memory a step (float32) where the boolean draws already say everything. The loop runs on Numba's
threads from ``PARALLEL_SIZE`` values on, so that the page faults of its fresh output are taken on
both threads, into an output allocated by NumPy (as for ReLU, see ``minidl.kernels.activation``);
below that NumPy does the work.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .activation import PARALLEL_SIZE


def masked_scale(x, keep, scale):
    """x * (scale where keep, else 0) for 1-D x and boolean keep; ``scale`` is a scalar of x's dtype."""
    if x.size < PARALLEL_SIZE:
        return x * np.multiply(keep, scale, dtype=x.dtype)
    return _masked_scale_loop(x, keep, scale, np.empty_like(x))


@njit(cache=True, parallel=True)
def _masked_scale_loop(x, keep, scale, out):
    zero = scale - scale  # 0 in the dtype of scale
    for i in prange(x.size):
        out[i] = x[i] * (scale if keep[i] else zero)  # x * 0 even where dropped: NaN stays NaN, as x * m
    return out
