"""Exercise 7: max unpooling, SegNet's upsampling.

SegNet's decoder puts every value back where its encoder's max-pool found the maximum, zeros
elsewhere (a sparse map the next convolutions densify):

    y = zeros (N, C, H, W);   y[n, c].flat[indices[n, c, i, j]] = x[n, c, i, j]

It moves values along fixed indices, so its gradient is the reverse move, a gather:

    dL/dx[n, c, i, j] = g[n, c].flat[indices[n, c, i, j]]

(and <unpool(x), g> = <x, unpool_backward(g)>: the two are adjoint). Library: ``minidl/ops/pooling.py``,
``models/segnet.py``.  Check:  python -m minidl.exercises check max_unpool2d
"""

import numpy as np


def max_unpool2d(x, indices, output_size):
    """x, indices: (N, C, h, w) (indices flat in each H x W plane); output_size: (H, W) -> y (N, C, H, W)."""
    raise NotImplementedError


def max_unpool2d_backward(g, indices):
    """g: (N, C, H, W), indices: (N, C, h, w) -> dL/dx (N, C, h, w)."""
    raise NotImplementedError
