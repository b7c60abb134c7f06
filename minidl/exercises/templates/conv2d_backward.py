"""Exercise 5: both gradients of a convolution.

Forward (stride s, padding p):  y[n, o, oy, ox] = sum_{c, i, j} w[o, c, i, j] * x_padded[n, c, oy*s + i, ox*s + j]

Each product w[o, c, i, j] * x_padded[n, c, oy*s + i, ox*s + j] sends g[n, o, oy, ox] times the
other factor to each of its two factors:

    dL/dx_padded[n, c, oy*s + i, ox*s + j] += sum_o w[o, c, i, j] * g[n, o, oy, ox]
        (the transposed convolution of g; then cut the padding off to get dL/dx)
    dL/dw[o, c, i, j] = sum_{n, oy, ox} g[n, o, oy, ox] * x_padded[n, c, oy*s + i, ox*s + j]
        (a sum over the whole batch too)

With the im2col of exercise 4:  dw = g_mat @ cols.T  and  d_cols = w_mat.T @ g_mat, where
g_mat = g as (C_out, N*H_out*W_out), w_mat = w as (C_out, C*kH*kW); then col2im adds every column
back to the pixels it came from. Library: ``minidl/ops/conv.py`` (rules) and
``minidl/kernels/reference/conv.py`` (arithmetic).  Check:  python -m minidl.exercises check conv2d_backward
"""

import numpy as np


def conv2d_backward(x, w, g, stride, padding):
    """Gradients of y = conv2d(x, w, stride, padding).

    x: (N, C, H, W), w: (C_out, C, kH, kW), g = dL/dy: (N, C_out, H_out, W_out); stride, padding: ints
    -> (dL/dx (N, C, H, W), dL/dw (C_out, C, kH, kW)).
    """
    raise NotImplementedError
