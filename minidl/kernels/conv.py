"""2-D convolution on raw arrays: im2col / col2im in Numba, the multiply-adds in BLAS.

A convolution is a matrix product in disguise. ``im2col`` ("image to columns") copies every
receptive field of a batch of images into one column of a patch matrix:

    cols[(c, i, j), (n, oy, ox)] = x_padded[n, c, oy*sh + i*dh, ox*sw + j*dw]

so the whole convolution is one GEMM with the weight seen as a (C_out, C_in*kH*kW) matrix W:

    y[n, o, oy, ox] = (W @ cols)[o, (n, oy, ox)]

Its two gradients are matrix products too (g = dL/dy laid out as a (C_out, N*H_out*W_out) matrix):

    dL/dW    = g @ cols^T
    dL/dcols = W^T @ g,     dL/dx = col2im(dL/dcols)

``col2im`` is the adjoint of ``im2col``: it adds every column entry back onto the input pixel it was
copied from. Pixels that sit in several receptive fields receive several additions, so a parallel
col2im must never let two threads add into the same pixel: here each thread owns whole (n, c)
planes, and every column entry of plane (n, c) belongs to exactly one thread.

Memory and threads. The patch matrix is kH*kW times larger than the input, so the batch goes
through in chunks of images whose patch matrix stays near ``CHUNK_ELEMENTS``: small enough to
stay in cache from the GEMM to col2im and to be reused by the allocator (a fresh 75 MB buffer per
call costs more in page faults than the copy itself), large enough for an efficient GEMM. Each
chunk is one Numba loop and one multithreaded GEMM, one after the other and never nested, so
Numba's and BLAS's threads never compete for the cores (see ``minidl/kernels/__init__.py`` for
how they wait).

Sizes follow PyTorch; kernel_size, stride, padding, dilation and output sizes are (h, w) pairs.
Each public function has a NumPy twin of the same name in ``minidl.kernels.reference.conv``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# A patch-matrix chunk of at most about this many entries (1 MB in float32, fits the L2 cache with
# room to spare), unless one image needs more. Measured on the UNet shapes: 4x larger chunks make
# the transposed convolutions up to 2x slower, as the patch matrix no longer stays in cache between
# the GEMM that writes it and the col2im that reads it.
CHUNK_ELEMENTS = 1 << 18
# Waking the second thread costs more than copying a small patch matrix on one: below this many
# entries the loops run serially (measured: the gradient-check tests run ~2x faster with it).
PARALLEL_MIN_ELEMENTS = 1 << 16


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output length of a convolution along one axis: floor((size + 2p - d(k-1) - 1) / s) + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


# ----------------------------------------------------------------------------- im2col / col2im


@njit(cache=True)
def _valid_outputs(offset, size, stride, out_size):
    """The range [lo, hi) of outputs o whose input position o*stride + offset lies inside [0, size)."""
    lo = max(0, -(offset // stride))  # ceil(-offset / stride)
    hi = min(out_size, (size - 1 - offset) // stride + 1)
    return lo, max(lo, hi)


@njit(cache=True)
def _im2col_rows(x, cols, task, kernel_size, stride, padding, dilation, output_size):
    """Fill the kW rows (c, i, 0..kW-1) of cols for every image, where task = c * kH + i."""
    n_batch, _, height, width = x.shape
    kh, kw = kernel_size
    out_h, out_w = output_size
    plane = out_h * out_w
    c, i = task // kh, task % kh
    y_offset = i * dilation[0] - padding[0]
    y_lo, y_hi = _valid_outputs(y_offset, height, stride[0], out_h)
    for j in range(kw):
        x_offset = j * dilation[1] - padding[1]
        x_lo, x_hi = _valid_outputs(x_offset, width, stride[1], out_w)
        for n in range(n_batch):
            row = cols[task * kw + j, n * plane:(n + 1) * plane]
            row[:y_lo * out_w] = 0
            row[y_hi * out_w:] = 0
            for oy in range(y_lo, y_hi):
                line = row[oy * out_w:(oy + 1) * out_w]
                source = x[n, c, oy * stride[0] + y_offset]
                line[:x_lo] = 0
                for ox in range(x_lo, x_hi):
                    line[ox] = source[ox * stride[1] + x_offset]
                line[x_hi:] = 0


@njit(cache=True)
def _im2col_serial(x, cols, kernel_size, stride, padding, dilation, output_size):
    for task in range(x.shape[1] * kernel_size[0]):
        _im2col_rows(x, cols, task, kernel_size, stride, padding, dilation, output_size)


@njit(cache=True, parallel=True)
def _im2col_parallel(x, cols, kernel_size, stride, padding, dilation, output_size):
    for task in prange(x.shape[1] * kernel_size[0]):
        _im2col_rows(x, cols, task, kernel_size, stride, padding, dilation, output_size)


def im2col(x, kernel_size, stride, padding, dilation, output_size):
    """Patch matrix:  cols[(c, i, j), (n, oy, ox)] = x_padded[n, c, oy*sh + i*dh, ox*sw + j*dw].

    x: (N, C, H, W) -> cols: (C*kH*kW, N*H_out*W_out); entries that fall in the padding are 0.
    output_size (H_out, W_out) may be smaller than the full convolution output (then only the
    first H_out x W_out positions are taken). Threads split the (c, i) row blocks.
    """
    n_batch, channels = x.shape[:2]
    cols = np.empty((channels * kernel_size[0] * kernel_size[1], n_batch * output_size[0] * output_size[1]),
                    dtype=x.dtype)
    run = _im2col_parallel if cols.size >= PARALLEL_MIN_ELEMENTS else _im2col_serial
    run(x, cols, tuple(kernel_size), stride, padding, dilation, tuple(output_size))
    return cols


@njit(cache=True)
def _col2im_plane(cols, image, task, kernel_size, stride, padding, dilation, output_size):
    """Add the entries of cols that came from plane (n, c) of image back onto it; task = n * C + c."""
    channels, height, width = image.shape[1:]
    kh, kw = kernel_size
    out_h, out_w = output_size
    n, c = task // channels, task % channels
    target = image[n, c]
    for i in range(kh):
        y_offset = i * dilation[0] - padding[0]
        y_lo, y_hi = _valid_outputs(y_offset, height, stride[0], out_h)
        for j in range(kw):
            x_offset = j * dilation[1] - padding[1]
            x_lo, x_hi = _valid_outputs(x_offset, width, stride[1], out_w)
            row = cols[(c * kh + i) * kw + j, n * out_h * out_w:(n + 1) * out_h * out_w]
            for oy in range(y_lo, y_hi):
                line = row[oy * out_w:(oy + 1) * out_w]
                target_line = target[oy * stride[0] + y_offset]
                for ox in range(x_lo, x_hi):
                    target_line[ox * stride[1] + x_offset] += line[ox]


@njit(cache=True)
def _col2im_serial(cols, image, kernel_size, stride, padding, dilation, output_size):
    for task in range(image.shape[0] * image.shape[1]):
        _col2im_plane(cols, image, task, kernel_size, stride, padding, dilation, output_size)


@njit(cache=True, parallel=True)
def _col2im_parallel(cols, image, kernel_size, stride, padding, dilation, output_size):
    for task in prange(image.shape[0] * image.shape[1]):
        _col2im_plane(cols, image, task, kernel_size, stride, padding, dilation, output_size)


def col2im(cols, image_size, kernel_size, stride, padding, dilation, output_size):
    """Adjoint of im2col: add every patch entry back onto the pixel it came from.

    cols: (C*kH*kW, N*H_out*W_out) -> x: (N, C, H, W) with image_size = (H, W);
    x[n, c, y, x] = sum of cols[(c, i, j), (n, oy, ox)] over all (i, j, oy, ox) that read pixel (y, x).
    Threads split the (n, c) planes, so no two threads ever add into the same pixel.
    """
    kernel_area, plane = kernel_size[0] * kernel_size[1], output_size[0] * output_size[1]
    image = np.zeros((cols.shape[1] // plane, cols.shape[0] // kernel_area, *image_size), dtype=cols.dtype)
    _col2im_add(cols, image, kernel_size, stride, padding, dilation, output_size)
    return image


def _col2im_add(cols, image, kernel_size, stride, padding, dilation, output_size):
    """col2im added into an existing C-contiguous (N, C, H, W) array (saves a copy per chunk)."""
    run = _col2im_parallel if cols.size >= PARALLEL_MIN_ELEMENTS else _col2im_serial
    run(cols, image, tuple(kernel_size), stride, padding, dilation, tuple(output_size))


# ----------------------------------------------------------------------------- convolution


def _chunks(n_batch: int, entries_per_image: int) -> list:
    """Equal slices of the batch whose patch matrices hold about CHUNK_ELEMENTS entries (>= 1 image)."""
    count = max(1, min(n_batch, -(-n_batch * entries_per_image // CHUNK_ELEMENTS)))
    size = max(1, -(-n_batch // count))  # an empty batch gives no chunks
    return [slice(start, start + size) for start in range(0, n_batch, size)]


def _as_matrix(a):
    """(N, C, H, W) -> (C, N*H*W): channels as rows, the layout of the GEMMs above."""
    return a.transpose(1, 0, 2, 3).reshape(a.shape[1], -1)


def conv2d_forward(x, weight, stride, padding, dilation, output_size):
    """y = W @ im2col(x):  x (N, C_in, H, W), weight (C_out, C_in, kH, kW) -> y (N, C_out, H_out, W_out)."""
    n_batch, c_out = x.shape[0], weight.shape[0]
    matrix = weight.reshape(c_out, -1)
    y = np.empty((n_batch, c_out, *output_size), dtype=x.dtype)
    for chunk in _chunks(n_batch, matrix.shape[1] * output_size[0] * output_size[1]):
        cols = im2col(x[chunk], weight.shape[2:], stride, padding, dilation, output_size)
        y[chunk] = (matrix @ cols).reshape(c_out, -1, *output_size).transpose(1, 0, 2, 3)
    return y


def conv2d_backward_input(g, weight, image_size, stride, padding, dilation):
    """dL/dx = col2im(W^T @ g):  g (N, C_out, H_out, W_out) -> dL/dx (N, C_in, H, W), image_size = (H, W)."""
    n_batch, c_out = g.shape[:2]
    matrix_t = weight.reshape(c_out, -1).T
    grad = np.zeros((n_batch, weight.shape[1], *image_size), dtype=g.dtype)
    for chunk in _chunks(n_batch, matrix_t.shape[0] * g.shape[2] * g.shape[3]):
        _col2im_add(matrix_t @ _as_matrix(g[chunk]), grad[chunk], weight.shape[2:], stride, padding, dilation,
                    g.shape[2:])
    return grad


def conv2d_backward_weight(g, x, kernel_size, stride, padding, dilation):
    """dL/dW = g @ im2col(x)^T:  g (N, C_out, H_out, W_out), x (N, C_in, H, W) -> (C_out, C_in, kH, kW)."""
    n_batch, c_out = g.shape[:2]
    grad = np.zeros((c_out, x.shape[1] * kernel_size[0] * kernel_size[1]), dtype=g.dtype)
    for chunk in _chunks(n_batch, grad.shape[1] * g.shape[2] * g.shape[3]):
        grad += _as_matrix(g[chunk]) @ im2col(x[chunk], kernel_size, stride, padding, dilation, g.shape[2:]).T
    return grad.reshape(c_out, x.shape[1], *kernel_size)
