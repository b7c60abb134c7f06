"""The fast path of ``minidl.kernels.conv``: the same products, computed tile by tile on Numba's threads.

Nothing here is needed to understand a convolution (``minidl.kernels.reference.conv`` is the lesson,
and the tests compare every kernel with it). What this adds, and why (timings in
``benchmarks/README.md``):

- Tiles. The patch matrix is kH*kW times larger than the input, so the work goes through in tiles
  whose patch matrix holds about ``CHUNK_ELEMENTS`` entries (about a core's L2 cache): groups of
  whole images, or bands of output rows of one image. A tile's patch matrix is written by im2col
  and read by the product (or written by the product and read by col2im) while it is in cache.
- Parts. The tiles are shared among Numba's threads in parts (a share of the images, or of the
  output rows for a batch smaller than the number of threads, except in col2im, where bands of one
  image add into shared pixels), and one parallel Numba loop runs each part's tiles one after the
  other: im2col, then a single-threaded BLAS product (``blas.gemm``) on the patch matrix the same
  thread has just written. Where a tile is one image, the products read g and write y in place
  (the rows of one image's channels are evenly spaced); tiles of several images go through a copy.
- Scratch buffers. Tiles reuse arrays that the calling thread keeps from call to call
  (``workers.scratch``), because a freshly allocated large array page-faults on its first write to
  every 4 kB page.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange

from . import blas, workers
from .im2col import col2im_band, im2col_band

# A patch-matrix tile of about this many entries: 1 MB in float32, the L2 cache of the core that works on it.
CHUNK_ELEMENTS = 1 << 18
# Up to this many output channels the weight gradient is computed transposed (see patch_products).
TRANSPOSED_GRADIENT_CHANNELS = 64

def tiles(n_batch: int, out_h: int, entries_per_row: int, chunk: int | None = None) -> list:
    """Pieces (images, (row0, row1)) of the output whose patch matrices hold about ``chunk`` entries
    (default CHUNK_ELEMENTS; at least one image or one row): groups of ceil(N / groups) whole images (the
    last may be smaller), or, when one image needs more, bands of each image's output rows whose sizes
    differ by at most one."""
    chunk = chunk or CHUNK_ELEMENTS
    per_image = entries_per_row * out_h
    if per_image > chunk and out_h > 1:
        bands = min(out_h, -(-per_image // chunk))
        edges = [k * out_h // bands for k in range(bands + 1)]
        return [(slice(n, n + 1), (edges[k], edges[k + 1])) for n in range(n_batch) for k in range(bands)]
    groups = max(1, min(n_batch, -(-n_batch * per_image // chunk)))
    size = max(1, -(-n_batch // groups))  # an empty batch gives no tiles
    return [(slice(start, min(start + size, n_batch)), (0, out_h)) for start in range(0, n_batch, size)]


def parts(n_batch: int, out_h: int, entries_per_row: int, rows_may_split: bool, chunk: int | None = None) -> list:
    """The output cut into one list of tiles per worker thread: contiguous groups of images; with
    fewer images than workers, bands of output rows when ``rows_may_split`` (their work must not
    write to shared places, as col2im's does where bands meet); else one list. Tiles as in ``tiles``."""
    count = workers.workers()
    if count > 1 and n_batch >= count:
        edges = [k * n_batch // count for k in range(count + 1)]
        return [[(slice(start + images.start, start + images.stop), rows)
                 for images, rows in tiles(stop - start, out_h, entries_per_row, chunk)]
                for start, stop in zip(edges, edges[1:])]
    if count > 1 and rows_may_split and out_h >= count:
        edges = [k * out_h // count for k in range(count + 1)]
        return [[(images, (low + row0, low + row1))
                 for images, (row0, row1) in tiles(n_batch, high - low, entries_per_row, chunk)]
                for low, high in zip(edges, edges[1:])]
    return [tiles(n_batch, out_h, entries_per_row, chunk)]


def plan(n_batch: int, out_h: int, entries_per_row: int, rows_may_split: bool, chunk: int | None = None) -> tuple:
    """(table, counts, largest): ``tile_table(parts(...))`` and the images x rows of its largest tile (its
    columns in a patch matrix are that times W_out), remembered: a training step asks for the same few
    plans again and again."""
    return _plan(n_batch, out_h, entries_per_row, rows_may_split, chunk or CHUNK_ELEMENTS, workers.workers())


@functools.lru_cache(maxsize=512)
def _plan(n_batch, out_h, entries_per_row, rows_may_split, chunk, count):  # count: the key changes with it
    table, counts = tile_table(parts(n_batch, out_h, entries_per_row, rows_may_split, chunk))
    return table, counts, int(((table[..., 1] - table[..., 0]) * (table[..., 3] - table[..., 2])).max(initial=0))


def tile_table(parts_list: list) -> tuple:
    """The parts as arrays for the Numba loops: table[p, k] = (n0, n1, row0, row1) of part p's k-th
    tile (images n0 <= n < n1, output rows row0 <= oy < row1), counts[p] = its number of tiles."""
    counts = np.array([len(tiles_of_part) for tiles_of_part in parts_list], dtype=np.int64)
    table = np.zeros((len(parts_list), max(1, counts.max(initial=0)), 4), dtype=np.int64)
    for p, tiles_of_part in enumerate(parts_list):
        for k, (images, (row0, row1)) in enumerate(tiles_of_part):
            table[p, k] = images.start, images.stop, row0, row1
    return table, counts


@njit(cache=True, nogil=True)
def _rows_of_images(a, n0, n1, row0, row1, buffer):
    """The (C, (n1 - n0) * (row1 - row0) * W) matrix of a[n0:n1, :, row0:row1] (channels as rows): a view
    into a when n1 = n0 + 1 (each channel's rows are contiguous), else gathered into buffer."""
    channels, width = a.shape[1], a.shape[3]
    columns = (n1 - n0) * (row1 - row0) * width
    if n1 == n0 + 1:
        return a[n0].reshape(channels, -1)[:, row0 * width:row1 * width]
    matrix = buffer[:channels * columns].reshape(channels, columns)
    for n in range(n0, n1):
        start = (n - n0) * (row1 - row0) * width
        for c in range(channels):
            matrix[c, start:start + (row1 - row0) * width] = a[n, c].reshape(-1)[row0 * width:row1 * width]
    return matrix


@njit(cache=True, nogil=True)
def _put_rows_of_images(matrix, a, n0, n1, row0, row1):
    """The inverse of _rows_of_images' gather: a[n0:n1, :, row0:row1] = the (C, columns) matrix."""
    channels, width = a.shape[1], a.shape[3]
    for n in range(n0, n1):
        start = (n - n0) * (row1 - row0) * width
        for c in range(channels):
            a[n, c].reshape(-1)[row0 * width:row1 * width] = matrix[c, start:start + (row1 - row0) * width]


def patch_products(x, kernel_size, stride, padding, dilation, output_size, weight=None, g=None):
    """The two products that read the patch matrix of x, with one im2col per tile for both:

        y = W @ im2col(x)               (when weight is given; else None)
        dL/dW = g @ im2col(x)^T         (when g is given; else None)

    With at most TRANSPOSED_GRADIENT_CHANNELS output channels the second is computed as its
    transpose im2col(x) @ g^T, which single-threaded OpenBLAS runs faster for few columns.
    Each part sums its own tiles; the parts' sums are added in a fixed order, so the result does
    not depend on which thread finishes first.
    """
    x = np.ascontiguousarray(x)
    n_batch, channels = x.shape[:2]
    patch_rows = channels * kernel_size[0] * kernel_size[1]
    table, counts, largest = plan(n_batch, output_size[0], patch_rows * output_size[1], rows_may_split=True)
    columns = largest * output_size[1]
    forward, gradient = weight is not None, g is not None
    c_out = weight.shape[0] if forward else g.shape[1]
    y = np.empty((n_batch, c_out, *output_size) if forward else (0, 0, 0, 0), dtype=x.dtype)
    matrix = np.ascontiguousarray(weight.reshape(c_out, -1) if forward else np.empty((0, 0), x.dtype))
    g = np.ascontiguousarray(g) if gradient else np.empty((0, 0, 0, 0), dtype=x.dtype)
    transposed = gradient and c_out <= TRANSPOSED_GRADIENT_CHANNELS
    grads = np.zeros((len(counts), *((patch_rows, c_out) if transposed else (c_out, patch_rows))) if gradient
                     else (len(counts), 0, 0), dtype=x.dtype)
    with workers.single_threaded_blas():
        _patch_products_parts(blas.functions(), x, matrix, y, g, grads, transposed, table, counts,
                              tuple(kernel_size), stride, padding, dilation, output_size[1],
                              workers.scratch("patches", len(counts), patch_rows * columns, x.dtype),
                              workers.scratch("outputs", len(counts), c_out * columns, x.dtype))
    grad = None
    if gradient:
        grad = functools.reduce(np.add, grads)  # the parts' sums, in a fixed order
        grad = (np.ascontiguousarray(grad.T) if transposed else grad).reshape(c_out, channels, *kernel_size)
    return (y if forward else None), grad


@njit(cache=True, nogil=True, parallel=True)
def _patch_products_parts(functions, x, matrix, y, g, grads, transposed, table, counts, kernel_size, stride,
                          padding, dilation, out_w, patches, outputs):
    """patch_products' loop: part p's tiles on one thread; y (forward) when y is not empty, grads[p]
    (its part of dL/dW) when g is not empty. patches[p] and outputs[p]: part p's scratch rows."""
    forward, gradient = y.size > 0, g.size > 0
    patch_rows = x.shape[1] * kernel_size[0] * kernel_size[1]
    for p in prange(len(counts)):
        for k in range(counts[p]):
            n0, n1, row0, row1 = table[p, k, 0], table[p, k, 1], table[p, k, 2], table[p, k, 3]
            columns = (n1 - n0) * (row1 - row0) * out_w
            cols = patches[p][:patch_rows * columns].reshape(patch_rows, columns)
            im2col_band(x, cols, kernel_size, stride, padding, dilation, (n0, n1), (row0, row1), out_w)
            if forward:
                if n1 == n0 + 1:  # W @ cols straight into y[n0]'s rows
                    rows_of_y = _rows_of_images(y, n0, n1, row0, row1, outputs[p])
                    blas.gemm(functions, matrix, False, cols, False, rows_of_y, 0.0)
                else:
                    product = outputs[p][:len(matrix) * columns].reshape(len(matrix), columns)
                    blas.gemm(functions, matrix, False, cols, False, product, 0.0)
                    _put_rows_of_images(product, y, n0, n1, row0, row1)
            if gradient:
                upstream = _rows_of_images(g, n0, n1, row0, row1, outputs[p])
                if transposed:
                    blas.gemm(functions, cols, False, upstream, True, grads[p], 1.0)
                else:
                    blas.gemm(functions, upstream, False, cols, True, grads[p], 1.0)


def input_gradient(g, weight, image_size, stride, padding, dilation):
    """dL/dx = col2im(W^T @ g), one tile at a time: W^T @ g of the tile in a scratch buffer, then col2im."""
    g = np.ascontiguousarray(g)
    n_batch, c_out = g.shape[:2]
    matrix = np.ascontiguousarray(weight.reshape(c_out, -1))
    patch_rows = matrix.shape[1]
    table, counts, largest = plan(n_batch, g.shape[2], patch_rows * g.shape[3], rows_may_split=False)
    columns = largest * g.shape[3]
    grad = np.zeros((n_batch, weight.shape[1], *image_size), dtype=g.dtype)
    with workers.single_threaded_blas():
        _input_gradient_parts(blas.functions(), g, matrix, grad, table, counts, tuple(weight.shape[2:]), stride,
                              padding, dilation, workers.scratch("patches", len(counts), patch_rows * columns, g.dtype),
                              workers.scratch("outputs", len(counts), c_out * columns, g.dtype))
    return grad


@njit(cache=True, nogil=True, parallel=True)
def _input_gradient_parts(functions, g, matrix, grad, table, counts, kernel_size, stride, padding, dilation,
                          patches, outputs):
    """input_gradient's loop: part p's tiles on one thread (its images are its own: col2im adds into them)."""
    out_w = g.shape[3]
    for p in prange(len(counts)):
        for k in range(counts[p]):
            n0, n1, row0, row1 = table[p, k, 0], table[p, k, 1], table[p, k, 2], table[p, k, 3]
            upstream = _rows_of_images(g, n0, n1, row0, row1, outputs[p])
            cols = patches[p][:matrix.shape[1] * upstream.shape[1]].reshape(matrix.shape[1], upstream.shape[1])
            blas.gemm(functions, matrix, True, upstream, False, cols, 0.0)
            col2im_band(cols, grad, kernel_size, stride, padding, dilation, (n0, n1), (row0, row1), out_w)
