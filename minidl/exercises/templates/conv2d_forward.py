"""Exercise 4: convolution as im2col + one matrix product.

A 2-D convolution (cross-correlation, as in every deep-learning library) with stride s and padding p:

    y[n, o, oy, ox] = sum_{c, i, j} w[o, c, i, j] * x_padded[n, c, oy*s + i, ox*s + j]
    H_out = (H + 2p - kH) // s + 1,   W_out = (W + 2p - kW) // s + 1

im2col copies every patch the kernel sees into one column of a matrix, so the whole convolution is
one product:

    cols[(c, i, j), (n, oy, ox)] = x_padded[n, c, oy*s + i, ox*s + j]     (C*kH*kW, N*H_out*W_out)
    y = w.reshape(C_out, C*kH*kW) @ cols                                 (C_out, N*H_out*W_out)

Rows are ordered (c, i, j) like w.reshape(C_out, -1); columns (n, oy, ox). Library version:
``minidl/kernels/reference/conv.py`` (``im2col``).  Check:  python -m minidl.exercises check conv2d_forward
"""

import numpy as np


def im2col(x, kernel_size, stride, padding):
    """The patch matrix of x.

    x: (N, C, H, W); kernel_size: (kH, kW); stride, padding: ints (same on both axes)
    -> cols (C*kH*kW, N*H_out*W_out) as in the module docstring.
    """
    raise NotImplementedError


def conv2d_forward(x, w, stride, padding):
    """y = conv2d(x, w): x (N, C, H, W), w (C_out, C, kH, kW) -> y (N, C_out, H_out, W_out).

    Use im2col and one matrix product, then reshape (C_out, N, H_out, W_out) and move N first.
    """
    raise NotImplementedError
