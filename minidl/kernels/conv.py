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

# A patch-matrix chunk of at most about this many entries (4 MB in float32: well inside the 32 MB
# L3 cache of the 2-core AMD EPYC we measure on), unless one image needs more. Measured on the
# UNet shapes of benchmarks/bench_kernels.py (forward + both gradients, batch 8): against 1 MB chunks,
# 4 MB chunks are 5-20% faster on the layers with 32-256 channels (fewer, larger GEMMs and Numba
# loops) and no slower on the 128 x 128 layers; 16 MB chunks make the 16->16 transposed
# convolution ~20% slower, as the patch matrix no longer stays in cache between the GEMM that
# writes it and the col2im that reads it.
CHUNK_ELEMENTS = 1 << 20
# Waking the second thread costs more than copying a small patch matrix on one: below this many
# entries the loops run serially (measured: the gradient-check tests run ~2x faster with it).
PARALLEL_MIN_ELEMENTS = 1 << 16


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output length of a convolution along one axis: floor((size + 2p - d(k-1) - 1) / s) + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


# ----------------------------------------------------------------------------- im2col / col2im


# The innermost loops of im2col and col2im copy or add one output row of one plane. They index with
# unsigned integers: Numba wraps a negative signed index around (x[-1] is the last element), and that
# per-element check (and a view per row) costs more than the copy itself. The callers guarantee
# every index is >= 0 (_valid_outputs clips the range), and with count 0 the loop never runs.
# Measured against the same loops on signed indices over row views (batch 8, 16 channels, 3x3): a
# one-threaded im2col or col2im of 64 x 64 or 128 x 128 images went from 5 to 15-19 GB/s, and with
# the 4 MB chunks above the 16->16 @128 convolution from 22.7 / 19.2 / 23.0 ms to 14.3 / 11.5 /
# 15.3 ms (forward / dL/dx / dL/dw).
@njit(cache=True)
def _copy_line(source, y, x0, step, target, t0, count):
    """target[t0 + k] = source[y, x0 + k*step] for k < count; source 2-D, target 1-D."""
    y, x0, step, t0 = np.uint64(y), np.uint64(x0), np.uint64(step), np.uint64(t0)
    for k in range(np.uint64(count)):
        target[t0 + k] = source[y, x0 + k * step]


@njit(cache=True)
def _add_line(source, s0, count, target, y, x0, step):
    """target[y, x0 + k*step] += source[s0 + k] for k < count; source 1-D, target 2-D (the adjoint of _copy_line)."""
    s0, y, x0, step = np.uint64(s0), np.uint64(y), np.uint64(x0), np.uint64(step)
    for k in range(np.uint64(count)):
        target[y, x0 + k * step] += source[s0 + k]


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
        row = cols[task * kw + j]
        for n in range(n_batch):
            source = x[n, c]
            start = n * plane
            row[start:start + y_lo * out_w] = 0
            row[start + y_hi * out_w:start + plane] = 0
            for oy in range(y_lo, y_hi):
                begin = start + oy * out_w
                row[begin:begin + x_lo] = 0
                _copy_line(source, oy * stride[0] + y_offset, x_lo * stride[1] + x_offset, stride[1],
                           row, begin + x_lo, x_hi - x_lo)
                row[begin + x_hi:begin + out_w] = 0


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
            row = cols[(c * kh + i) * kw + j]
            start = n * out_h * out_w
            for oy in range(y_lo, y_hi):
                _add_line(row, start + oy * out_w + x_lo, x_hi - x_lo,
                          target, oy * stride[0] + y_offset, x_lo * stride[1] + x_offset, stride[1])


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
