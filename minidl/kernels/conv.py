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
copied from (pixels that sit in several receptive fields receive several additions).

Tiles. The patch matrix is kH*kW times larger than the input, so the work goes through in tiles
whose patch matrix holds about ``CHUNK_ELEMENTS`` entries: groups of whole images, or bands of
output rows of one image when a single image needs more. A tile's patch matrix is written by
im2col and read by the GEMM (or written by the GEMM and read by col2im) while it is still in
cache. Tiles live in scratch buffers that each thread keeps from call to call (``_scratch_matrix``).

Threads. Each worker thread of ``minidl.kernels.workers`` takes a share of the images (or of the
output rows, for a batch smaller than the number of workers, except in col2im, where bands of one
image add into shared pixels) and runs its tiles one after the other: im2col, then a
single-threaded GEMM on the patch matrix it has just written and still holds in its own cache.
The earlier way, im2col on the calling thread and then a GEMM on all of BLAS's threads, made the
other core fetch half of every patch matrix from this one, and left OpenBLAS's idle threads
spinning (about 0.1 s after each GEMM) against any other parallel loop; the workers are 10-13%
faster (numbers in ``workers.py``). Where BLAS's thread count cannot be set, everything runs on the
calling thread, im2col and col2im serially and the GEMMs on BLAS's threads.

Sizes follow PyTorch; kernel_size, stride, padding, dilation and output sizes are (h, w) pairs.
Each public function has a NumPy twin of the same name in ``minidl.kernels.reference.conv``, except
``conv2d_forward_and_backward_weight``, which the tests compare with the twins of its two products.
"""

from __future__ import annotations

import functools
import threading

import numpy as np
from numba import njit

from . import workers

# A patch-matrix tile of about this many entries (1 MB in float32: about the size of the 1 MB L2
# cache of the core that works on it). Measured on the conv2d shapes of
# benchmarks/bench_kernels.py (forward + both gradients, batch 8, two worker threads, block timing,
# min of 3 rounds): 2^18 entries 72.1 ms, 2^19 72.1 ms, 2^20 76.7 ms in all.
CHUNK_ELEMENTS = 1 << 18
# Up to this many output channels the weight gradient is computed transposed (see _patch_products).
TRANSPOSED_GRADIENT_CHANNELS = 64


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output length of a convolution along one axis: floor((size + 2p - d(k-1) - 1) / s) + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


# ----------------------------------------------------------------------------- im2col / col2im


@njit(cache=True)
def _valid_outputs(offset, size, stride, out_size):
    """The range [lo, hi) of outputs o < out_size whose input position o*stride + offset lies inside
    [0, size); 0 <= lo <= hi <= out_size even when the range is empty."""
    lo = min(out_size, max(0, -(offset // stride)))  # ceil(-offset / stride), clipped to [0, out_size]
    hi = min(out_size, (size - 1 - offset) // stride + 1)
    return lo, max(lo, hi)


# The loops below index flat views of x and cols with unsigned integers and write zeros with plain
# loops. Numba wraps a negative signed index around (x[-1] is the last element), and that
# per-element check, an array view per line and numpy-style slice assignments cost more than the
# copy itself when the lines are short. On 8 x 8 images with 128 channels (batch 8, 3x3)
# this made im2col 2.1x faster (0.72 -> 0.34 ms), on 128 x 128 images 1.4x. Nothing checks bounds:
# every index stays inside x and cols because _valid_outputs clips the ranges to both.
@njit(cache=True)
def _im2col_rows(x, cols, task, kernel_size, stride, padding, dilation, band, out_w):
    """Fill the kW rows (c, i, 0..kW-1) of cols, where task = c * kH + i, for every image and the
    output rows oy in band = (row0, row1)."""
    n_batch, channels, height, width = x.shape
    kh, kw = kernel_size
    row0, row1 = band
    c, i = task // kh, task % kh
    source, target = x.reshape(-1), cols.reshape(-1)
    y_offset = i * dilation[0] - padding[0]
    y_lo, y_hi = _valid_outputs(y_offset, height, stride[0], row1)
    for j in range(kw):
        x_offset = j * dilation[1] - padding[1]
        x_lo, x_hi = _valid_outputs(x_offset, width, stride[1], out_w)
        t = (task * kw + j) * cols.shape[1]  # start of cols row (c, i, j)
        for n in range(n_batch):
            row_start = (n * channels + c) * height * width + x_offset  # x[n, c, 0, x_offset], flat
            for oy in range(row0, row1):
                if y_lo <= oy < y_hi:
                    s = row_start + (oy * stride[0] + y_offset) * width
                    for k in range(x_lo):
                        target[np.uint64(t + k)] = 0
                    for k in range(x_lo, x_hi):
                        target[np.uint64(t + k)] = source[np.uint64(s + k * stride[1])]
                    for k in range(x_hi, out_w):
                        target[np.uint64(t + k)] = 0
                else:
                    for k in range(out_w):
                        target[np.uint64(t + k)] = 0
                t += out_w


@njit(cache=True, nogil=True)
def _im2col_all(x, cols, kernel_size, stride, padding, dilation, band, out_w):
    for task in range(x.shape[1] * kernel_size[0]):
        _im2col_rows(x, cols, task, kernel_size, stride, padding, dilation, band, out_w)


def im2col(x, kernel_size, stride, padding, dilation, output_size, band=None, out=None):
    """Patch matrix:  cols[(c, i, j), (n, oy, ox)] = x_padded[n, c, oy*sh + i*dh, ox*sw + j*dw].

    x: (N, C, H, W) -> cols: (C*kH*kW, N*(row1 - row0)*W_out) for the output rows oy in
    band = (row0, row1) (default: all H_out); entries that fall in the padding are 0.
    output_size (H_out, W_out) may be smaller than the full convolution output (then only the
    first H_out x W_out positions are taken). out: a C-contiguous array of that shape to fill
    (default: a new one).
    """
    band = (0, output_size[0]) if band is None else tuple(band)
    n_batch, channels = x.shape[:2]
    shape = (channels * kernel_size[0] * kernel_size[1], n_batch * (band[1] - band[0]) * output_size[1])
    cols = np.empty(shape, dtype=x.dtype) if out is None else out
    _im2col_all(np.ascontiguousarray(x), cols, tuple(kernel_size), stride, padding, dilation, band, output_size[1])
    return cols


@njit(cache=True)
def _col2im_plane(cols, image, task, kernel_size, stride, padding, dilation, band, out_w):
    """Add the entries of cols that came from plane (n, c) of image back onto it, where task = n * C + c,
    for the output rows oy in band = (row0, row1) (cols holds only those)."""
    channels, height, width = image.shape[1:]
    kh, kw = kernel_size
    row0, row1 = band
    n, c = task // channels, task % channels
    source, target = cols.reshape(-1), image.reshape(-1)
    for i in range(kh):
        y_offset = i * dilation[0] - padding[0]
        y_lo, y_hi = _valid_outputs(y_offset, height, stride[0], row1)
        for j in range(kw):
            x_offset = j * dilation[1] - padding[1]
            x_lo, x_hi = _valid_outputs(x_offset, width, stride[1], out_w)
            # cols entry (c, i, j), (n, oy, ox) of this band; image entry (n, c, oy*sh + y_offset, ox*sw + x_offset)
            s = ((c * kh + i) * kw + j) * cols.shape[1] + (n * (row1 - row0) - row0) * out_w
            row_start = task * height * width + x_offset  # image[n, c, 0, x_offset], flat
            for oy in range(max(y_lo, row0), y_hi):
                s_row = s + oy * out_w
                t_row = row_start + (oy * stride[0] + y_offset) * width
                for k in range(x_lo, x_hi):
                    target[np.uint64(t_row + k * stride[1])] += source[np.uint64(s_row + k)]


@njit(cache=True, nogil=True)
def _col2im_all(cols, image, kernel_size, stride, padding, dilation, band, out_w):
    for task in range(image.shape[0] * image.shape[1]):
        _col2im_plane(cols, image, task, kernel_size, stride, padding, dilation, band, out_w)


def col2im(cols, image_size, kernel_size, stride, padding, dilation, output_size):
    """Adjoint of im2col: add every patch entry back onto the pixel it came from.

    cols: (C*kH*kW, N*H_out*W_out) -> x: (N, C, H, W) with image_size = (H, W);
    x[n, c, y, x] = sum of cols[(c, i, j), (n, oy, ox)] over all (i, j, oy, ox) that read pixel (y, x).
    """
    kernel_area, plane = kernel_size[0] * kernel_size[1], output_size[0] * output_size[1]
    image = np.zeros((cols.shape[1] // plane, cols.shape[0] // kernel_area, *image_size), dtype=cols.dtype)
    _col2im_add(cols, image, kernel_size, stride, padding, dilation, output_size)
    return image


def _col2im_add(cols, image, kernel_size, stride, padding, dilation, output_size, band=None):
    """col2im of the output rows in band = (row0, row1) (default all), added into a C-contiguous (N, C, H, W) array."""
    band = (0, output_size[0]) if band is None else tuple(band)
    _col2im_all(np.ascontiguousarray(cols), image, tuple(kernel_size), stride, padding, dilation, band, output_size[1])


# ----------------------------------------------------------------------------- convolution

_scratch = threading.local()


def _scratch_matrix(slot, rows: int, columns: int, dtype):
    """A C-contiguous (rows, columns) array in a buffer that this thread keeps for ``slot``.

    Every tile needs a patch matrix and a product of about CHUNK_ELEMENTS entries, used once.
    Arrays of that size that the allocator has handed back to the system come back as untouched
    pages, and the first write to each 4 kB page is a page fault (about 2 us on this virtual
    machine). With a new array per tile, a conv2d forward of 8 x 3 x 128 x 128 inputs took ~3200
    faults and 8 ms, against 2.2 ms when no fault happened; with these buffers it takes none.
    So the tiles reuse buffers that stay allocated: one per slot and thread, grown to the largest
    tile seen and kept for the thread's life. A patch tile holds about CHUNK_ELEMENTS entries (1 MB
    in float32, 2 MB in float64) unless one output row needs more; product and upstream tiles are
    C_out / (C_in kH kW) times that. An array is valid until the next request for the same slot on
    the same thread.
    """
    buffers = _scratch.__dict__.setdefault("buffers", {})
    nbytes = rows * columns * np.dtype(dtype).itemsize
    if slot not in buffers or buffers[slot].nbytes < nbytes:
        buffers[slot] = np.empty(nbytes, dtype=np.uint8)
    return buffers[slot][:nbytes].view(dtype).reshape(rows, columns)


def _patch_buffer(tile: int, rows: int, columns: int, dtype):
    """The patch matrix of tile number ``tile``: two scratch buffers in turn. Rewriting the one the
    previous tile's GEMM has just read (partly into the other core's cache) made a 16 -> 16 channel
    conv2d forward at 128 x 128 15% slower (9.3 vs 7.9 ms) than alternating."""
    return _scratch_matrix(("patches", tile % 2), rows, columns, dtype)


def _tiles(n_batch: int, out_h: int, entries_per_row: int) -> list:
    """Pieces (images, (row0, row1)) of the output whose patch matrices hold about CHUNK_ELEMENTS entries
    (at least one image or one row): groups of ceil(N / groups) whole images (the last may be smaller),
    or, when one image needs more, bands of each image's output rows whose sizes differ by at most one."""
    per_image = entries_per_row * out_h
    if per_image > CHUNK_ELEMENTS and out_h > 1:
        bands = min(out_h, -(-per_image // CHUNK_ELEMENTS))
        edges = [k * out_h // bands for k in range(bands + 1)]
        return [(slice(n, n + 1), (edges[k], edges[k + 1])) for n in range(n_batch) for k in range(bands)]
    groups = max(1, min(n_batch, -(-n_batch * per_image // CHUNK_ELEMENTS)))
    size = max(1, -(-n_batch // groups))  # an empty batch gives no tiles
    return [(slice(start, min(start + size, n_batch)), (0, out_h)) for start in range(0, n_batch, size)]


def _parts(n_batch: int, out_h: int, entries_per_row: int, rows_may_split: bool) -> list:
    """The output cut into one list of tiles per worker thread (see ``workers``): contiguous groups
    of images; with fewer images than workers, bands of output rows when ``rows_may_split`` (their
    work must not write to shared places, as col2im's does where bands meet); else one list."""
    count = workers.workers()
    if count > 1 and n_batch >= count:
        edges = [k * n_batch // count for k in range(count + 1)]
        return [[(slice(start + images.start, start + images.stop), rows)
                 for images, rows in _tiles(stop - start, out_h, entries_per_row)]
                for start, stop in zip(edges, edges[1:])]
    if count > 1 and rows_may_split and out_h >= count:
        edges = [k * out_h // count for k in range(count + 1)]
        return [[(images, (low + row0, low + row1))
                 for images, (row0, row1) in _tiles(n_batch, high - low, entries_per_row)]
                for low, high in zip(edges, edges[1:])]
    return [_tiles(n_batch, out_h, entries_per_row)]


def _as_matrix(a):
    """(n, C, h, w) -> (C, n*h*w): channels as rows, the layout of the GEMMs above. A view when n = 1,
    else a copy into the "upstream" scratch buffer."""
    n_images, channels = a.shape[:2]
    if n_images == 1:
        return a[0].reshape(channels, -1)
    matrix = _scratch_matrix("upstream", channels, a.size // channels, a.dtype)
    matrix.reshape(channels, n_images, *a.shape[2:])[...] = a.transpose(1, 0, 2, 3)
    return matrix


def _patch_products(x, kernel_size, stride, padding, dilation, output_size, weight=None, g=None):
    """The two products that read the patch matrix of x, tile by tile, with one im2col per tile:

        y = W @ im2col(x)               (when weight is given; else None)
        dL/dW = g @ im2col(x)^T         (when g is given; else None)

    With at most TRANSPOSED_GRADIENT_CHANNELS output channels the second is computed as its
    transpose im2col(x) @ g^T: single-threaded OpenBLAS runs that (long reduction, few columns)
    product 1.2-1.9x faster on the 16- to 64-channel layers of benchmarks/bench_kernels.py. With
    more channels the direct product needs no transposing copy of the result at the end, and won
    overall (forward and both gradients of 256 -> 256 channels at 8 x 8: 11.9 against 12.9 ms).
    Each worker thread sums its own tiles; the workers' sums are added in a fixed order, so the
    result does not depend on which thread finishes first.
    """
    n_batch, channels = x.shape[:2]
    patch_rows = channels * kernel_size[0] * kernel_size[1]
    y = None
    if weight is not None:
        matrix = weight.reshape(weight.shape[0], -1)
        y = np.empty((n_batch, weight.shape[0], *output_size), dtype=x.dtype)
    if g is not None:
        transposed = g.shape[1] <= TRANSPOSED_GRADIENT_CHANNELS
        grad_shape = (patch_rows, g.shape[1]) if transposed else (g.shape[1], patch_rows)

    def work(tiles):  # one worker's share; returns its part of dL/dW (None without g)
        grad = None if g is None else np.zeros(grad_shape, dtype=x.dtype)
        for k, (images, (row0, row1)) in enumerate(tiles):
            tile = x[images]
            columns = len(tile) * (row1 - row0) * output_size[1]
            cols = im2col(tile, kernel_size, stride, padding, dilation, output_size, (row0, row1),
                          out=_patch_buffer(k, patch_rows, columns, x.dtype))
            if y is not None:
                product = np.matmul(matrix, cols, out=_scratch_matrix("product", len(matrix), columns, x.dtype))
                product = product.reshape(len(matrix), -1, row1 - row0, output_size[1])
                y[images, :, row0:row1] = product.transpose(1, 0, 2, 3)
            if g is not None:
                upstream = _as_matrix(g[images, :, row0:row1])
                factors = (cols, upstream.T) if transposed else (upstream, cols.T)
                grad += np.matmul(*factors, out=_scratch_matrix("product", *grad.shape, x.dtype))
        return grad

    partial_grads = workers.run(_parts(n_batch, output_size[0], patch_rows * output_size[1], rows_may_split=True), work)
    grad = None
    if g is not None:
        grad = functools.reduce(np.add, partial_grads)  # the workers' sums, in a fixed order
        grad = (np.ascontiguousarray(grad.T) if transposed else grad).reshape(g.shape[1], channels, *kernel_size)
    return y, grad


def conv2d_forward(x, weight, stride, padding, dilation, output_size):
    """y = W @ im2col(x):  x (N, C_in, H, W), weight (C_out, C_in, kH, kW) -> y (N, C_out, H_out, W_out)."""
    return _patch_products(x, weight.shape[2:], stride, padding, dilation, output_size, weight=weight)[0]


def conv2d_backward_input(g, weight, image_size, stride, padding, dilation):
    """dL/dx = col2im(W^T @ g):  g (N, C_out, H_out, W_out) -> dL/dx (N, C_in, H, W), image_size = (H, W)."""
    n_batch, c_out = g.shape[:2]
    matrix_t = weight.reshape(c_out, -1).T
    grad = np.zeros((n_batch, weight.shape[1], *image_size), dtype=g.dtype)

    def work(tiles):  # one worker's share of the images (bands of one image would add to shared pixels)
        for k, (images, (row0, row1)) in enumerate(tiles):
            upstream = _as_matrix(g[images, :, row0:row1])
            cols = np.matmul(matrix_t, upstream, out=_patch_buffer(k, len(matrix_t), upstream.shape[1], g.dtype))
            _col2im_add(cols, grad[images], weight.shape[2:], stride, padding, dilation, g.shape[2:], (row0, row1))

    workers.run(_parts(n_batch, g.shape[2], matrix_t.shape[0] * g.shape[3], rows_may_split=False), work)
    return grad


def conv2d_backward_weight(g, x, kernel_size, stride, padding, dilation):
    """dL/dW = g @ im2col(x)^T:  g (N, C_out, H_out, W_out), x (N, C_in, H, W) -> (C_out, C_in, kH, kW)."""
    return _patch_products(x, kernel_size, stride, padding, dilation, g.shape[2:], g=g)[1]


def conv2d_forward_and_backward_weight(x, weight, g, stride, padding, dilation, output_size):
    """(conv2d_forward(x, weight, ...), conv2d_backward_weight(g, x, ...)) with one im2col of x for both.

    conv_transpose2d's backward needs exactly these two (its dL/dx is the conv2d of the upstream
    gradient, its dL/dW the weight gradient of that conv2d), and sharing the patch matrix saves a
    pass over it.
    """
    return _patch_products(x, weight.shape[2:], stride, padding, dilation, output_size, weight=weight, g=g)
