"""2-D convolution on raw arrays: im2col / col2im in Numba, the multiply-adds in BLAS.

A convolution is a matrix product in disguise. ``im2col`` ("image to columns") copies every
receptive field of the input into one column of a patch matrix:

    cols[n, (c, i, j), (oy, ox)] = x_padded[n, c, oy*sh + i*dh, ox*sw + j*dw]

so that the convolution of image n is one GEMM with the weight seen as a (C_out, C_in*kH*kW) matrix:

    y[n] = W @ cols[n]                               (C_out, H_out*W_out)

Its two gradients are matrix products too:

    dL/dW     = sum_n g[n] @ cols[n]^T                (C_out, C_in*kH*kW)
    dL/dcols  = W^T @ g[n],  dL/dx = col2im(dL/dcols)

``col2im`` is the adjoint of ``im2col``: it adds every column entry back onto the input pixel it was
copied from. Pixels that sit in several receptive fields receive several additions, so a parallel
col2im must never let two threads add into the same pixel: here each thread owns whole (n, c)
planes, and every column entry of plane (n, c) belongs to exactly one thread.

Threads: the Numba loops run in parallel (``prange`` over planes), the GEMMs run in BLAS's own
threads, one after the other and never nested, so the two thread pools never compete for the cores.

Sizes use PyTorch's conventions; every function takes pairs ``(h, w)`` for kernel_size, stride,
padding, dilation and output sizes. Each function has a NumPy twin of the same name in
``minidl.kernels.reference.conv`` that the tests compare against.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output length of a convolution along one axis: floor((size + 2p - d(k-1) - 1) / s) + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


# Waking the second thread costs more than copying a small patch matrix on one; below this many
# elements the loops run serially (measured: the gradient-check tests run ~2x faster with it).
PARALLEL_MIN_ELEMENTS = 1 << 16


@njit(cache=True)
def _valid_outputs(offset, size, stride, out_size):
    """The range [lo, hi) of outputs o whose input position o*stride + offset lies inside [0, size)."""
    lo = max(0, -(offset // stride))  # ceil(-offset / stride)
    hi = min(out_size, (size - 1 - offset) // stride + 1)
    return lo, max(lo, hi)


@njit(cache=True)
def _im2col_rows(x, cols, task, kernel_size, stride, padding, dilation, output_size):
    """Fill the kW rows (c, i, 0..kW-1) of cols, where task = c * kH + i."""
    height, width = x.shape[1:]
    kh, kw = kernel_size
    out_h, out_w = output_size
    c, i = task // kh, task % kh
    y_offset = i * dilation[0] - padding[0]
    y_lo, y_hi = _valid_outputs(y_offset, height, stride[0], out_h)
    for j in range(kw):
        x_offset = j * dilation[1] - padding[1]
        x_lo, x_hi = _valid_outputs(x_offset, width, stride[1], out_w)
        row = cols[task * kw + j]
        row[:y_lo * out_w] = 0
        row[y_hi * out_w:] = 0
        for oy in range(y_lo, y_hi):
            line = row[oy * out_w:(oy + 1) * out_w]
            source = x[c, oy * stride[0] + y_offset]
            line[:x_lo] = 0
            for ox in range(x_lo, x_hi):
                line[ox] = source[ox * stride[1] + x_offset]
            line[x_hi:] = 0


@njit(cache=True)
def _im2col_serial(x, cols, kernel_size, stride, padding, dilation, output_size):
    for task in range(x.shape[0] * kernel_size[0]):
        _im2col_rows(x, cols, task, kernel_size, stride, padding, dilation, output_size)


@njit(cache=True, parallel=True)
def _im2col_parallel(x, cols, kernel_size, stride, padding, dilation, output_size):
    for task in prange(x.shape[0] * kernel_size[0]):
        _im2col_rows(x, cols, task, kernel_size, stride, padding, dilation, output_size)


def im2col(x, kernel_size, stride, padding, dilation, output_size):
    """Patch matrix of one image:  cols[(c, i, j), (oy, ox)] = x_padded[c, oy*sh + i*dh, ox*sw + j*dw].

    x: (C, H, W) -> cols: (C*kH*kW, H_out*W_out); entries that fall in the padding are 0.
    output_size (H_out, W_out) may be smaller than the full convolution output (then only the
    first H_out x W_out positions are taken). Threads split the (c, i) row blocks.
    """
    cols = np.empty((x.shape[0] * kernel_size[0] * kernel_size[1], output_size[0] * output_size[1]), dtype=x.dtype)
    run = _im2col_parallel if cols.size >= PARALLEL_MIN_ELEMENTS else _im2col_serial
    run(x, cols, tuple(kernel_size), stride, padding, dilation, tuple(output_size))
    return cols


@njit(cache=True)
def _col2im_plane(cols, image, c, kernel_size, stride, padding, dilation, output_size):
    """Add the rows (c, *, *) of cols into plane c of image."""
    height, width = image.shape[1:]
    kh, kw = kernel_size
    out_h, out_w = output_size
    for i in range(kh):
        y_offset = i * dilation[0] - padding[0]
        y_lo, y_hi = _valid_outputs(y_offset, height, stride[0], out_h)
        for j in range(kw):
            x_offset = j * dilation[1] - padding[1]
            x_lo, x_hi = _valid_outputs(x_offset, width, stride[1], out_w)
            row = cols[(c * kh + i) * kw + j]
            for oy in range(y_lo, y_hi):
                line = row[oy * out_w:(oy + 1) * out_w]
                target = image[c, oy * stride[0] + y_offset]
                for ox in range(x_lo, x_hi):
                    target[ox * stride[1] + x_offset] += line[ox]


@njit(cache=True)
def _col2im_serial(cols, image, kernel_size, stride, padding, dilation, output_size):
    for c in range(image.shape[0]):
        _col2im_plane(cols, image, c, kernel_size, stride, padding, dilation, output_size)


@njit(cache=True, parallel=True)
def _col2im_parallel(cols, image, kernel_size, stride, padding, dilation, output_size):
    for c in prange(image.shape[0]):
        _col2im_plane(cols, image, c, kernel_size, stride, padding, dilation, output_size)


def col2im(cols, image_size, kernel_size, stride, padding, dilation, output_size):
    """Adjoint of im2col for one image: add every patch entry back onto the pixel it came from.

    cols: (C*kH*kW, H_out*W_out) -> x: (C, H, W) with image_size = (H, W);
    x[c, y, x] = sum of cols[(c, i, j), (oy, ox)] over all (i, j, oy, ox) that read pixel (y, x).
    Threads split the channel planes, so no two threads ever add into the same pixel.
    """
    image = np.zeros((cols.shape[0] // (kernel_size[0] * kernel_size[1]), *image_size), dtype=cols.dtype)
    run = _col2im_parallel if cols.size >= PARALLEL_MIN_ELEMENTS else _col2im_serial
    run(cols, image, tuple(kernel_size), stride, padding, dilation, tuple(output_size))
    return image


def conv2d_forward(x, weight, stride, padding, dilation, output_size):
    """y[n] = W @ im2col(x[n]):  x (N, C_in, H, W), weight (C_out, C_in, kH, kW) -> y (N, C_out, H_out, W_out)."""
    n_batch, c_out = x.shape[0], weight.shape[0]
    matrix = weight.reshape(c_out, -1)
    y = np.empty((n_batch, c_out, output_size[0] * output_size[1]), dtype=x.dtype)
    for n in range(n_batch):
        np.matmul(matrix, im2col(x[n], weight.shape[2:], stride, padding, dilation, output_size), out=y[n])
    return y.reshape(n_batch, c_out, *output_size)


def conv2d_backward_input(g, weight, image_size, stride, padding, dilation):
    """dL/dx[n] = col2im(W^T @ g[n]):  g (N, C_out, H_out, W_out) -> dL/dx (N, C_in, H, W), image_size = (H, W)."""
    n_batch, c_out = g.shape[:2]
    matrix_t = weight.reshape(c_out, -1).T
    grad = np.empty((n_batch, weight.shape[1], *image_size), dtype=g.dtype)
    for n in range(n_batch):
        cols = matrix_t @ g[n].reshape(c_out, -1)
        grad[n] = col2im(cols, image_size, weight.shape[2:], stride, padding, dilation, g.shape[2:])
    return grad


def conv2d_backward_weight(g, x, kernel_size, stride, padding, dilation):
    """dL/dW = sum_n g[n] @ im2col(x[n])^T:  g (N, C_out, H_out, W_out), x (N, C_in, H, W) -> (C_out, C_in, kH, kW)."""
    c_out = g.shape[1]
    grad = np.zeros((c_out, x.shape[1] * kernel_size[0] * kernel_size[1]), dtype=g.dtype)
    for n in range(x.shape[0]):
        cols = im2col(x[n], kernel_size, stride, padding, dilation, g.shape[2:])
        grad += g[n].reshape(c_out, -1) @ cols.T
    return grad.reshape(c_out, x.shape[1], *kernel_size)
