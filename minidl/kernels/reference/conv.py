"""NumPy twins of ``minidl.kernels.conv``: convolution as a sum over kernel offsets.

For each kernel offset (i, j) the inputs that meet weight[:, :, i, j] form one strided slice of the
padded input, ``window(x_padded, i, j)[n, c, oy, ox] = x_padded[n, c, oy*sh + i*dh, ox*sw + j*dw]``.
The convolution and both of its gradients are then a loop over the kH*kW offsets of one einsum each.
"""

from __future__ import annotations

import numpy as np


def _window(x_padded, i, j, stride, dilation, output_size):
    """The (N, C, H_out, W_out) slice of x_padded that kernel offset (i, j) sees."""
    top, left = i * dilation[0], j * dilation[1]
    bottom = top + stride[0] * (output_size[0] - 1) + 1
    right = left + stride[1] * (output_size[1] - 1) + 1
    return x_padded[:, :, top:bottom:stride[0], left:right:stride[1]]


def _pad(x, padding):
    return np.pad(x, ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1])))


def _crop(x_padded, padding, image_size):
    return x_padded[:, :, padding[0]:padding[0] + image_size[0], padding[1]:padding[1] + image_size[1]]


def _padded_zeros(n_batch, channels, image_size, padding, dtype):
    return np.zeros((n_batch, channels, image_size[0] + 2 * padding[0], image_size[1] + 2 * padding[1]), dtype=dtype)


def im2col(x, kernel_size, stride, padding, dilation, output_size):
    """cols[(c, i, j), (n, oy, ox)] = x_padded[n, c, oy*sh + i*dh, ox*sw + j*dw], via as_strided."""
    n_batch, channels = x.shape[:2]
    x_padded = np.ascontiguousarray(_pad(x, padding))
    s_n, s_c, s_h, s_w = x_padded.strides
    patches = np.lib.stride_tricks.as_strided(  # patches[n, c, i, j, oy, ox]
        x_padded,
        shape=(n_batch, channels, *kernel_size, *output_size),
        strides=(s_n, s_c, s_h * dilation[0], s_w * dilation[1], s_h * stride[0], s_w * stride[1]),
        writeable=False,
    )
    return patches.transpose(1, 2, 3, 0, 4, 5).reshape(channels * kernel_size[0] * kernel_size[1], -1)


def col2im(cols, image_size, kernel_size, stride, padding, dilation, output_size):
    """x[n, c, y, x] = sum of the cols entries copied from pixel (y, x): one slice-add per kernel offset."""
    channels = cols.shape[0] // (kernel_size[0] * kernel_size[1])
    patches = cols.reshape(channels, *kernel_size, -1, *output_size).transpose(3, 0, 1, 2, 4, 5)
    x_padded = _padded_zeros(patches.shape[0], channels, image_size, padding, cols.dtype)
    for i in range(kernel_size[0]):
        for j in range(kernel_size[1]):
            _window(x_padded, i, j, stride, dilation, output_size)[...] += patches[:, :, i, j]
    return _crop(x_padded, padding, image_size)


def conv2d_forward(x, weight, stride, padding, dilation, output_size):
    """y[n, o] = sum_{c, i, j} weight[o, c, i, j] * window(x_padded, i, j)[n, c]."""
    x_padded = _pad(x, padding)
    y = np.zeros((x.shape[0], weight.shape[0], *output_size), dtype=x.dtype)
    for i in range(weight.shape[2]):
        for j in range(weight.shape[3]):
            window = _window(x_padded, i, j, stride, dilation, output_size)
            y += np.einsum("oc,nchw->nohw", weight[:, :, i, j], window)
    return y


def conv2d_backward_input(g, weight, image_size, stride, padding, dilation):
    """dL/dwindow(x_padded, i, j)[n, c] += sum_o weight[o, c, i, j] * g[n, o], then crop the padding."""
    x_padded = _padded_zeros(g.shape[0], weight.shape[1], image_size, padding, g.dtype)
    for i in range(weight.shape[2]):
        for j in range(weight.shape[3]):
            window = _window(x_padded, i, j, stride, dilation, g.shape[2:])
            window += np.einsum("oc,nohw->nchw", weight[:, :, i, j], g)
    return _crop(x_padded, padding, image_size)


def conv2d_backward_weight(g, x, kernel_size, stride, padding, dilation):
    """dL/dweight[o, c, i, j] = sum_{n, oy, ox} g[n, o, oy, ox] * window(x_padded, i, j)[n, c, oy, ox]."""
    x_padded = _pad(x, padding)
    grad = np.zeros((g.shape[1], x.shape[1], *kernel_size), dtype=x.dtype)
    for i in range(kernel_size[0]):
        for j in range(kernel_size[1]):
            grad[:, :, i, j] = np.einsum("nohw,nchw->oc", g, _window(x_padded, i, j, stride, dilation, g.shape[2:]))
    return grad
