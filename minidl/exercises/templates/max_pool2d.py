"""Exercise 6: max pooling with indices, and its backward.

    y[n, c, oy, ox] = max over i, j < k of x[n, c, oy*s + i, ox*s + j],   H_out = (H - k) // s + 1

Remember *where* each maximum was: indices[n, c, oy, ox] = h * W + w, the flat position of the
winning element inside its whole H x W plane (PyTorch's convention; SegNet's decoder needs it).
The gradient goes only to the winners:

    dL/dx = zeros;  dL/dx[n, c].flat[indices[n, c, oy, ox]] += g[n, c, oy, ox]

(+=: with stride < k windows overlap and one element can win several of them.) The check's
inputs have no ties. Library: ``minidl/ops/pooling.py``, ``minidl/kernels/reference/pooling.py``.
Check:  python -m minidl.exercises check max_pool2d
"""

import numpy as np


def max_pool2d(x, kernel_size, stride):
    """x: (N, C, H, W); kernel_size, stride: ints -> (y (N, C, H_out, W_out), indices int (N, C, H_out, W_out))."""
    raise NotImplementedError


def max_pool2d_backward(g, indices, input_shape):
    """g: (N, C, H_out, W_out), indices as returned above, input_shape: (N, C, H, W) -> dL/dx (N, C, H, W)."""
    raise NotImplementedError
