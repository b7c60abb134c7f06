"""ReLU's fast path: one parallel Numba loop forward and one backward.

The lesson is ``minidl.ops.activation.ReLU`` (plain NumPy: y = max(x, 0), dL/dx = g * [x > 0]);
these loops compute the same numbers and are its fast twin (tests/test_ops_elementwise.py compares
them), except where x <= 0 meets an inf or NaN in g: 0 here, as in PyTorch, and NaN from g * [x > 0]. With NumPy, ``np.maximum(x, 0)`` runs a NaN-checking loop, and ``g * (x > 0)`` walks x to
make a boolean temporary, then multiplies a float array by a boolean one; here each is one walk.
The backward reads y instead of x: y > 0 exactly where x > 0.

Why parallel for an op this simple: in a training step its output is fresh memory, and the first
write to each 4 kB page is a page fault that costs far more than the arithmetic (2.7 ms for a
million float32 values against 0.09 ms into memory already mapped); two threads take those faults
side by side. Below ``PARALLEL_SIZE`` values starting the threads costs more than it saves, and
NumPy does the work. The outputs are allocated with NumPy, which asks the kernel for 2 MB pages for
arrays of 4 MB and more (Numba's own allocations do not), so a large output takes far fewer faults.
Arrays are 1-D and C-contiguous (the op flattens them). Numbers in benchmarks/README.md.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

PARALLEL_SIZE = 1 << 16  # 256 kB of float32: 64 page faults, ~170 us, against a ~30 us parallel start


def relu(x):
    """y = max(x, 0) for a 1-D x; NaN stays NaN, as with np.maximum."""
    return _relu_loop(x, np.empty_like(x)) if x.size >= PARALLEL_SIZE else np.maximum(x, 0)


def relu_backward(g, y):
    """dL/dx = g where y > 0, else 0, for 1-D g and y = relu(x) (0, not 0 * g, where g is inf or NaN, as PyTorch)."""
    return _relu_backward_loop(g, y, np.empty_like(g)) if g.size >= PARALLEL_SIZE else np.where(y > 0, g, 0)


@njit(cache=True, parallel=True)
def _relu_loop(x, y):
    for i in prange(x.size):
        value = x[i]
        y[i] = 0 if value <= 0 else value
    return y


@njit(cache=True, parallel=True)
def _relu_backward_loop(g, y, grad):
    for i in prange(g.size):
        grad[i] = g[i] if y[i] > 0 else 0
    return grad
