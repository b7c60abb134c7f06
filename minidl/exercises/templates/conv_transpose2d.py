"""Exercise 8: transposed convolution, the adjoint of conv2d.

conv2d(., w) with stride s and padding p is linear: a matrix A_w. The transposed convolution is
A_w^T, the map with  <conv2d(u, w), x> = <u, conv_transpose2d(x, w)>  for all u, x: it is conv2d's
input gradient (exercise 5) applied to x. Every input pixel spreads a kernel-sized patch over a
larger output (learned upsampling, as in UNet's decoder):

    y_padded[n, o, h*s + i, w*s + j] += x[n, c, h, w] * w[c, o, i, j]     (summed over c, h, w, i, j)
    y = y_padded with p cut off every side
    H_out = (H - 1) * s - 2p + kH,   W_out = (W - 1) * s - 2p + kW

The weight is (C_in, C_out, kH, kW), as PyTorch's: the same array conv2d would use as (C_out', C_in').
Library: ``minidl/ops/conv.py``.  Check:  python -m minidl.exercises check conv_transpose2d
"""

import numpy as np


def conv_transpose2d(x, w, stride, padding):
    """x: (N, C_in, H, W), w: (C_in, C_out, kH, kW); stride, padding: ints -> y (N, C_out, H_out, W_out)."""
    raise NotImplementedError
