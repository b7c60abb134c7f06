"""The fast path of ``minidl.kernels.conv``: the same products, computed tile by tile on worker threads.

Nothing here is needed to understand a convolution (``minidl.kernels.reference.conv`` is the lesson,
and the tests compare every kernel with it). What this adds, and why (timings in
``benchmarks/README.md``):

- Tiles. The patch matrix is kH*kW times larger than the input, so the work goes through in tiles
  whose patch matrix holds about ``CHUNK_ELEMENTS`` entries (about a core's L2 cache): groups of
  whole images, or bands of output rows of one image. A tile's patch matrix is written by im2col
  and read by the product (or written by the product and read by col2im) while it is in cache.
- Workers. Each worker thread of ``workers.py`` takes a share of the images (or of the output rows,
  for a batch smaller than the number of workers, except in col2im, where bands of one image add
  into shared pixels) and runs its tiles one after the other: im2col, then a single-threaded
  product on the patch matrix it has just written, instead of fetching it from the other core.
- Scratch buffers. Tiles reuse arrays that each thread keeps from call to call, because a freshly
  allocated large array page-faults on its first write to every 4 kB page.
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from . import workers
from .im2col import col2im_add, im2col

# A patch-matrix tile of about this many entries: 1 MB in float32, the L2 cache of the core that works on it.
CHUNK_ELEMENTS = 1 << 18
# Up to this many output channels the weight gradient is computed transposed (see patch_products).
TRANSPOSED_GRADIENT_CHANNELS = 64

_scratch = threading.local()


def scratch_matrix(slot, rows: int, columns: int, dtype):
    """A C-contiguous (rows, columns) array in a buffer that this thread keeps for ``slot``, grown to
    the largest request seen; valid until the next request for the same slot on the same thread."""
    buffers = _scratch.__dict__.setdefault("buffers", {})
    nbytes = rows * columns * np.dtype(dtype).itemsize
    if slot not in buffers or buffers[slot].nbytes < nbytes:
        buffers[slot] = np.empty(nbytes, dtype=np.uint8)
    return buffers[slot][:nbytes].view(dtype).reshape(rows, columns)


def _patch_buffer(tile: int, rows: int, columns: int, dtype):
    """The patch matrix of tile number ``tile``: two scratch buffers in turn, so that im2col does not
    rewrite the buffer the previous tile's product has just read."""
    return scratch_matrix(("patches", tile % 2), rows, columns, dtype)


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


def _as_matrix(a):
    """(n, C, h, w) -> (C, n*h*w): channels as rows. A view when n = 1, else a copy into a scratch buffer."""
    n_images, channels = a.shape[:2]
    if n_images == 1:
        return a[0].reshape(channels, -1)
    matrix = scratch_matrix("upstream", channels, a.size // channels, a.dtype)
    matrix.reshape(channels, n_images, *a.shape[2:])[...] = a.transpose(1, 0, 2, 3)
    return matrix


def patch_products(x, kernel_size, stride, padding, dilation, output_size, weight=None, g=None):
    """The two products that read the patch matrix of x, with one im2col per tile for both:

        y = W @ im2col(x)               (when weight is given; else None)
        dL/dW = g @ im2col(x)^T         (when g is given; else None)

    With at most TRANSPOSED_GRADIENT_CHANNELS output channels the second is computed as its
    transpose im2col(x) @ g^T, which single-threaded OpenBLAS runs faster for few columns.
    Each worker sums its own tiles; the workers' sums are added in a fixed order, so the result does
    not depend on which thread finishes first.
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

    def work(own_tiles):  # one worker's share; returns its part of dL/dW (None without g)
        grad = None if g is None else np.zeros(grad_shape, dtype=x.dtype)
        for k, (images, (row0, row1)) in enumerate(own_tiles):
            tile = x[images]
            columns = len(tile) * (row1 - row0) * output_size[1]
            cols = im2col(tile, kernel_size, stride, padding, dilation, output_size, (row0, row1),
                          out=_patch_buffer(k, patch_rows, columns, x.dtype))
            if y is not None:
                product = np.matmul(matrix, cols, out=scratch_matrix("product", len(matrix), columns, x.dtype))
                product = product.reshape(len(matrix), -1, row1 - row0, output_size[1])
                y[images, :, row0:row1] = product.transpose(1, 0, 2, 3)
            if g is not None:
                upstream = _as_matrix(g[images, :, row0:row1])
                factors = (cols, upstream.T) if transposed else (upstream, cols.T)
                grad += np.matmul(*factors, out=scratch_matrix("product", *grad.shape, x.dtype))
        return grad

    partial_grads = workers.run(parts(n_batch, output_size[0], patch_rows * output_size[1], rows_may_split=True), work)
    grad = None
    if g is not None:
        grad = functools.reduce(np.add, partial_grads)  # the workers' sums, in a fixed order
        grad = (np.ascontiguousarray(grad.T) if transposed else grad).reshape(g.shape[1], channels, *kernel_size)
    return y, grad


def input_gradient(g, weight, image_size, stride, padding, dilation):
    """dL/dx = col2im(W^T @ g), one tile at a time: W^T @ g of the tile in a scratch buffer, then col2im."""
    n_batch, c_out = g.shape[:2]
    matrix_t = weight.reshape(c_out, -1).T
    grad = np.zeros((n_batch, weight.shape[1], *image_size), dtype=g.dtype)

    def work(own_tiles):  # one worker's share of the images (bands of one image would add to shared pixels)
        for k, (images, (row0, row1)) in enumerate(own_tiles):
            upstream = _as_matrix(g[images, :, row0:row1])
            cols = np.matmul(matrix_t, upstream, out=_patch_buffer(k, len(matrix_t), upstream.shape[1], g.dtype))
            col2im_add(cols, grad[images], weight.shape[2:], stride, padding, dilation, g.shape[2:], (row0, row1))

    workers.run(parts(n_batch, g.shape[2], matrix_t.shape[0] * g.shape[3], rows_may_split=False), work)
    return grad
