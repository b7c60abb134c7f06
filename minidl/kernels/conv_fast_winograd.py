"""A faster 3x3, stride-1 convolution: Winograd's minimal filtering F(2x2, 3x3), on worker threads.

Nothing here is needed to understand a convolution (``minidl.kernels.reference.conv`` is the lesson);
it computes exactly the same sums as ``y = W @ im2col(x)``, in another order. Lavin & Gray, "Fast
Algorithms for Convolutional Neural Networks" (CVPR 2016), section 4: a 2x2 block of outputs of a
3x3 filter g over the 4x4 input tile d that it reads is

    Y = A^T [ (G g G^T) * (B^T d B) ] A          (* elementwise, 4x4)

    B^T = [[1, 0, -1,  0],      G = [[  1,    0,   0],      A^T = [[1, 1,  1,  0],
           [0, 1,  1,  0],           [1/2,  1/2, 1/2],             [0, 1, -1, -1]]
           [0, -1, 1,  0],           [1/2, -1/2, 1/2],
           [0, 1,  0, -1]]           [  0,    0,   1]]

Summed over input channels c, each of the 16 entries (a, b) of the 4x4 products is one matrix product,

    M[a, b] = U[a, b] @ V[a, b],   U[a, b] (C_out, C_in) from the weights, V[a, b] (C_in, tiles) from x,

so a convolution is an input transform (V), 16 products with 16/36 of im2col's multiply-adds (2.25x
fewer), and an output transform (A^T M A). V holds 4 entries per input pixel, im2col 9. The sums
are the same up to rounding: on random data the results differ from the direct sums by about 1e-6
of the largest output in float32 and 1e-15 in float64 (``tests/test_kernels_conv.py`` compares them).

The gradients take the same road: dL/dx of a stride-1 convolution is itself such a convolution (of g,
with the kernel flipped and the channel axes swapped, padding 2 - p: ``input_gradient``), and dL/dw
is 16 products of the transformed g and V (``weight_gradient``). Work is cut into pieces of whole
images or bands of tile rows (``conv_fast.parts``), one part per Numba thread, run in one parallel
Numba loop that calls BLAS itself (``blas.gemm``), with V and M in scratch buffers
(``workers.scratch``). Timings in ``benchmarks/README.md``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import blas, workers
from .conv_fast import plan

# Below this many multiply-adds per output pixel (C_in * C_out) the 16 products are too thin to beat
# one im2col product (measured in benchmarks/README.md).
MIN_CHANNEL_PRODUCT = 16 * 16
# At most this many outputs computed per output kept (odd sizes: the last row and column of tiles
# compute a half that is dropped; measured in benchmarks/README.md).
MAX_TILE_WASTE = 1.15
# A piece's V holds about this many entries (V and M of a piece then stay in a core's L2 cache), or
# MIN_PIECE_TILES tiles when that is more (thinner products run far below BLAS's speed).
PIECE_ELEMENTS = 1 << 16
MIN_PIECE_TILES = 256

_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def applies(kernel_size, stride, dilation, c_in: int, c_out: int, output_size) -> bool:
    """Whether this module computes the convolution: 3x3 kernel, stride 1, no dilation, enough
    channels, and an output that the 2x2 tiles cover with little waste (a 7 x 7 output takes 4 x 4
    tiles, 8 x 8 outputs)."""
    covered = 4 * -(-output_size[0] // 2) * -(-output_size[1] // 2)
    return (tuple(kernel_size) == (3, 3) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1)
            and c_in * c_out >= MIN_CHANNEL_PRODUCT and covered <= MAX_TILE_WASTE * output_size[0] * output_size[1])


def weight_transform(weight):
    """U[4a + b, o, c] = (G w[o, c] G^T)[a, b] = sum_{i, j} G[a, i] G[b, j] w[o, c, i, j]:
    weight (C_out, C_in, 3, 3), any strides -> (16, C_out, C_in) in a scratch buffer (valid until the
    calling thread's next weight_transform), block k a view into row k of a (16, C_out * C_in + 16)
    array (``_sixteen_blocks``: 16 write streams a power of two apart would share cache sets)."""
    u = _filter_blocks("winograd U", 1, *weight.shape[:2], weight.dtype)[0]
    _filter_transforms(weight, u)
    return u


def _filter_blocks(slot: str, parts: int, c_out: int, c_in: int, dtype):
    """A (parts, 16, C_out, C_in) view of scratch rows (``workers.scratch``; U is 4 MB for 256 x 256
    channels, and a new array that size page-faulted for about 1 ms a call) whose 16 blocks lie
    C_out * C_in + 16 entries apart, as in ``_sixteen_blocks``."""
    size = c_out * c_in
    rows = workers.scratch(slot, parts, 16 * (size + 16), dtype)
    return rows.reshape(parts, 16, size + 16)[..., :size].reshape(parts, 16, c_out, c_in)


@njit(cache=True, nogil=True)
def _g(v0, v1, v2):
    """G @ (v0, v1, v2): the four rows of G (above) applied to a column of a filter."""
    return v0, 0.5 * (v0 + v1 + v2), 0.5 * (v0 - v1 + v2), v2


@njit(cache=True, nogil=True)
def _g_transposed(x0, x1, x2, x3):
    """G^T @ (x0, x1, x2, x3)."""
    return x0 + 0.5 * (x1 + x2), 0.5 * (x1 - x2), 0.5 * (x1 + x2) + x3


@njit(cache=True, nogil=True)
def _filter_transform(weight, u, o):
    """u[4a + b, o, c] = (G w G^T)[a, b] for the 3x3 filters w = weight[o, c] of output channel o."""
    for c in range(weight.shape[1]):
        p0, p1, p2, p3 = _g(weight[o, c, 0, 0], weight[o, c, 1, 0], weight[o, c, 2, 0])  # G w, column 0
        q0, q1, q2, q3 = _g(weight[o, c, 0, 1], weight[o, c, 1, 1], weight[o, c, 2, 1])
        r0, r1, r2, r3 = _g(weight[o, c, 0, 2], weight[o, c, 1, 2], weight[o, c, 2, 2])
        u[0, o, c], u[1, o, c], u[2, o, c], u[3, o, c] = _g(p0, q0, r0)  # row a of G w, times G^T
        u[4, o, c], u[5, o, c], u[6, o, c], u[7, o, c] = _g(p1, q1, r1)
        u[8, o, c], u[9, o, c], u[10, o, c], u[11, o, c] = _g(p2, q2, r2)
        u[12, o, c], u[13, o, c], u[14, o, c], u[15, o, c] = _g(p3, q3, r3)


@njit(cache=True, nogil=True, parallel=True)
def _filter_transforms(weight, u):
    """_filter_transform of every output channel, shared among Numba's threads."""
    for o in prange(weight.shape[0]):
        _filter_transform(weight, u, o)


@njit(cache=True, nogil=True)
def _filter_gradient(grads_u, grad_w, o):
    """grad_w[o, c] = G^T dU G for dU[a, b] = sum over parts p (in order) of grads_u[p, 4a + b, o, c]:
    the adjoint of _filter_transform."""
    c_in = grads_u.shape[3]
    d = np.empty((16, c_in), dtype=grads_u.dtype)  # dU of every filter of channel o
    for k in range(16):
        for c in range(c_in):
            d[k, c] = grads_u[0, k, o, c]
        for p in range(1, grads_u.shape[0]):
            for c in range(c_in):
                d[k, c] += grads_u[p, k, o, c]
    for c in range(c_in):
        p0, p1, p2 = _g_transposed(d[0, c], d[4, c], d[8, c], d[12, c])  # G^T dU, column 0
        q0, q1, q2 = _g_transposed(d[1, c], d[5, c], d[9, c], d[13, c])
        r0, r1, r2 = _g_transposed(d[2, c], d[6, c], d[10, c], d[14, c])
        s0, s1, s2 = _g_transposed(d[3, c], d[7, c], d[11, c], d[15, c])
        grad_w[o, c, 0, 0], grad_w[o, c, 0, 1], grad_w[o, c, 0, 2] = _g_transposed(p0, q0, r0, s0)
        grad_w[o, c, 1, 0], grad_w[o, c, 1, 1], grad_w[o, c, 1, 2] = _g_transposed(p1, q1, r1, s1)
        grad_w[o, c, 2, 0], grad_w[o, c, 2, 1], grad_w[o, c, 2, 2] = _g_transposed(p2, q2, r2, s2)


@njit(cache=True, nogil=True, parallel=True)
def _filter_gradients(grads_u, grad_w):
    """_filter_gradient of every output channel, shared among Numba's threads."""
    for o in prange(grads_u.shape[2]):
        _filter_gradient(grads_u, grad_w, o)


# The loops below index with unsigned integers (np.uint64) where they are hot: Numba wraps a negative
# signed index around, and that per-element check keeps LLVM from vectorising the loop (see im2col.py).
@njit(cache=True, nogil=True)
def _input_transform(x, v, padding, images, band, tiles_w):
    """V[4a + b, c, t] = (B^T d B)[a, b] for the 4x4 tile d of x padded (zeros) whose 2x2 output block is
    t = (n - n0, ty - ty0, tx), for the images in images = (n0, n1) and the tile rows ty in band = (ty0, ty1);
    tile (ty, tx) reads rows 2ty - p_h ... + 3 and columns 2tx - p_w ... + 3. x is C-contiguous; v is the
    C-contiguous buffer under V (see _sixteen_blocks): V[k, c, t] is v[k, c * tiles + t] (contiguous rows,
    which LLVM vectorises)."""
    channels, height, width = x.shape[1:]
    n0, n1 = images
    ty0, ty1 = band
    tiles = (n1 - n0) * (ty1 - ty0) * tiles_w
    span = 2 * tiles_w + 2  # padded columns that one row of tiles reads
    rows = np.empty(4 * span, x.dtype)  # B^T d of a row of tiles: 4 rows of span entries, flat
    source = x.reshape(-1)
    lo, hi = min(padding[1], span), min(span, padding[1] + width)  # x's columns in a padded row
    for n in range(n0, n1):
        for c in range(channels):
            for ty in range(ty0, ty1):
                y0 = 2 * ty - padding[0]  # the tiles' first padded input row; rows y0 .. y0 + 3 are d0 .. d3
                start = ((n * channels + c) * height + y0) * width - padding[1]  # x[n, c, y0, -p_w], flat
                inside0, inside1, inside2, inside3 = (0 <= y0 < height, 0 <= y0 + 1 < height,
                                                      0 <= y0 + 2 < height, 0 <= y0 + 3 < height)
                for b in range(span):  # B^T d, for every tile of the row at once
                    column = lo <= b < hi
                    d0 = source[np.uint64(start + b)] if column and inside0 else 0
                    d1 = source[np.uint64(start + width + b)] if column and inside1 else 0
                    d2 = source[np.uint64(start + 2 * width + b)] if column and inside2 else 0
                    d3 = source[np.uint64(start + 3 * width + b)] if column and inside3 else 0
                    rows[np.uint64(b)], rows[np.uint64(span + b)] = d0 - d2, d1 + d2
                    rows[np.uint64(2 * span + b)], rows[np.uint64(3 * span + b)] = d2 - d1, d1 - d3
                t0 = ((n - n0) * (ty1 - ty0) + ty - ty0) * tiles_w
                for a in range(4):  # (B^T d) B
                    for tx in range(tiles_w):
                        i, t = np.uint64(a * span + 2 * tx), np.uint64(c * tiles + t0 + tx)
                        q0, q1, q2, q3 = rows[i], rows[i + np.uint64(1)], rows[i + np.uint64(2)], rows[i + np.uint64(3)]
                        v[4 * a, t], v[4 * a + 1, t] = q0 - q2, q1 + q2
                        v[4 * a + 2, t], v[4 * a + 3, t] = q2 - q1, q1 - q3


@njit(cache=True, nogil=True)
def _output_transform(m, y, images, band, tiles_w):
    """y[n, o, 2ty + a, 2tx + b] = (A^T M A)[a, b] of tile t = (n - n0, ty - ty0, tx), for n in images =
    (n0, n1) and ty in band = (ty0, ty1); outputs beyond y's edge (odd sizes) are dropped. m: the
    C-contiguous buffer under M, M[k, o, t] = m[k, o * tiles + t] (see _input_transform)."""
    c_out, out_h, out_w = y.shape[1:]
    n0, n1 = images
    ty0, ty1 = band
    tiles = (n1 - n0) * (ty1 - ty0) * tiles_w
    pairs = out_w // 2  # tiles whose two columns are both inside y
    s = np.empty((2, 4, tiles_w), m.dtype)
    for n in range(n0, n1):
        for o in range(c_out):
            for ty in range(ty0, ty1):
                t0 = o * tiles + ((n - n0) * (ty1 - ty0) + ty - ty0) * tiles_w
                for b in range(4):  # A^T M
                    for tx in range(tiles_w):
                        t = np.uint64(t0 + tx)
                        m1, m2 = m[4 + b, t], m[8 + b, t]
                        s[0, b, tx] = m[b, t] + m1 + m2
                        s[1, b, tx] = m1 - m2 - m[12 + b, t]
                for a in range(min(2, out_h - 2 * ty)):  # (A^T M) A
                    row = y[n, o, 2 * ty + a]
                    for tx in range(pairs):
                        row[2 * tx] = s[a, 0, tx] + s[a, 1, tx] + s[a, 2, tx]
                        row[2 * tx + 1] = s[a, 1, tx] - s[a, 2, tx] - s[a, 3, tx]
                    if pairs < tiles_w:  # odd width: the last tile's first column
                        row[2 * pairs] = s[a, 0, pairs] + s[a, 1, pairs] + s[a, 2, pairs]


@njit(cache=True, nogil=True)
def _upstream_transform(g, gt, images, band, tiles_w):
    """Gt[4a + b, o, t] = (A gy A^T)[a, b] for the 2x2 block gy of g at tile t = (n - n0, ty - ty0, tx)
    (zeros beyond g's edge), n in images = (n0, n1), ty in band = (ty0, ty1): the adjoint of the output
    transform, for the weight gradient.
    gt: the C-contiguous buffer under Gt, Gt[k, o, t] = gt[k, o * tiles + t] (see _input_transform).
    A gy A^T spreads the block's rows (r0, r1) as (r0, r0 + r1, r0 - r1, -r1), then its columns alike."""
    c_out, out_h, out_w = g.shape[1:]
    n0, n1 = images
    ty0, ty1 = band
    tiles = (n1 - n0) * (ty1 - ty0) * tiles_w
    for n in range(n0, n1):
        for o in range(c_out):
            for ty in range(ty0, ty1):
                t0 = o * tiles + ((n - n0) * (ty1 - ty0) + ty - ty0) * tiles_w
                for tx in range(tiles_w):
                    top0 = g[n, o, 2 * ty, 2 * tx]
                    top1 = g[n, o, 2 * ty, 2 * tx + 1] if 2 * tx + 1 < out_w else 0
                    low0 = g[n, o, 2 * ty + 1, 2 * tx] if 2 * ty + 1 < out_h else 0
                    low1 = g[n, o, 2 * ty + 1, 2 * tx + 1] if 2 * ty + 1 < out_h and 2 * tx + 1 < out_w else 0
                    for a in range(4):
                        if a == 0:
                            r0, r1 = top0, top1
                        elif a == 1:
                            r0, r1 = top0 + low0, top1 + low1
                        elif a == 2:
                            r0, r1 = top0 - low0, top1 - low1
                        else:
                            r0, r1 = -low0, -low1
                        t = np.uint64(t0 + tx)
                        gt[4 * a, t], gt[4 * a + 1, t], gt[4 * a + 2, t], gt[4 * a + 3, t] = r0, r0 + r1, r0 - r1, -r1


def conv2d_forward(x, weight, padding, output_size):
    """y = conv2d(x, weight) for a 3x3 kernel, stride 1, dilation 1 (``applies``), by F(2x2, 3x3):
    x (N, C_in, H, W), weight (C_out, C_in, 3, 3) -> y (N, C_out, H_out, W_out) = output_size (which
    may be smaller than the full output: then only the first H_out x W_out positions are computed)."""
    x = np.ascontiguousarray(x)  # the input transform reads it flat
    n_batch, c_in = x.shape[:2]
    c_out = weight.shape[0]
    tiles_h, tiles_w = -(-output_size[0] // 2), -(-output_size[1] // 2)
    table, counts, largest = _pieces(n_batch, tiles_h, tiles_w, c_in)
    y = np.empty((n_batch, c_out, *output_size), dtype=x.dtype)
    u = weight_transform(weight)
    with workers.single_threaded_blas():
        _forward_parts(blas.functions(), x, u, y, padding, table, counts, tiles_w,
                       *_buffers(len(counts), largest * tiles_w, c_in, c_out, x.dtype))
    return y


@njit(cache=True, nogil=True, parallel=True)
def _forward_parts(functions, x, u, y, padding, table, counts, tiles_w, v_buffers, m_buffers):
    """conv2d_forward's loop: part p's pieces on one thread, V and M in its rows of the buffers."""
    c_in, c_out = x.shape[1], y.shape[1]
    for p in prange(len(counts)):
        for k in range(counts[p]):
            images, band, tiles, v = _transformed_piece(x, v_buffers[p], padding, table[p, k], tiles_w)
            m = _sixteen_blocks(m_buffers[p], c_out, tiles)
            for e in range(16):  # the 16 products U[a, b] @ V[a, b]
                blas.gemm(functions, u[e], False, _block(v, e, c_in, tiles), False, _block(m, e, c_out, tiles), 0.0)
            _output_transform(m, y, images, band, tiles_w)


@njit(cache=True, nogil=True)
def _transformed_piece(x, v_buffer, padding, piece, tiles_w):
    """(images, band, tiles, V) of a piece = (n0, n1, ty0, ty1): its images, its band of tile rows, its
    number of tiles and its input transform V, written at the start of v_buffer."""
    images, band = (piece[0], piece[1]), (piece[2], piece[3])
    tiles = (images[1] - images[0]) * (band[1] - band[0]) * tiles_w
    v = _sixteen_blocks(v_buffer, x.shape[1], tiles)
    _input_transform(x, v, padding, images, band, tiles_w)
    return images, band, tiles, v


def _pieces(n_batch: int, tiles_h: int, tiles_w: int, c_in: int) -> tuple:
    """The pieces (images, band of tile rows) of each part (``conv_fast.parts``) as ``conv_fast.plan``'s
    arrays and largest piece, each piece's V about PIECE_ELEMENTS entries or MIN_PIECE_TILES tiles; each
    band has output rows of its own."""
    return plan(n_batch, tiles_h, 16 * c_in * tiles_w, rows_may_split=True,
                chunk=max(PIECE_ELEMENTS, 16 * c_in * MIN_PIECE_TILES))


def _buffers(part_count: int, tiles: int, c_in: int, c_out: int, dtype) -> tuple:
    """Scratch rows for V and M (or Gt) of each part, big enough for a piece of ``tiles`` tiles (``_sixteen_blocks``)."""
    return (workers.scratch("winograd V", part_count, 16 * (c_in * tiles + 16), dtype),
            workers.scratch("winograd M", part_count, 16 * (c_out * tiles + 16), dtype))


def weight_gradient(g, x, padding):
    """dL/dw of a 3x3, stride-1 conv2d: g (N, C_out, H_out, W_out), x (N, C_in, H, W) -> (C_out, C_in, 3, 3).

    The forward is y = A^T [U * V] A per tile and channel pair, summed over c, so
    dL/dU[a, b] = sum over tiles of (A gy A^T)[a, b] V[a, b]: 16 products (C_out, tiles) @ (tiles, C_in),
    and dL/dw = G^T dL/dU G (the adjoint of ``weight_transform``). Each part sums its own pieces; the
    parts' sums are added in a fixed order.
    """
    x, g = np.ascontiguousarray(x), np.ascontiguousarray(g)  # the transforms read them flat
    n_batch, c_in = x.shape[:2]
    c_out = g.shape[1]
    tiles_w = -(-g.shape[3] // 2)
    table, counts, largest = _pieces(n_batch, -(-g.shape[2] // 2), tiles_w, c_in)
    grads_u = _filter_blocks("winograd dL/dU", len(counts), c_out, c_in, x.dtype)  # each part's dL/dU
    with workers.single_threaded_blas():
        _weight_gradient_parts(blas.functions(), g, x, grads_u, padding, table, counts, tiles_w,
                               *_buffers(len(counts), largest * tiles_w, c_in, c_out, x.dtype))
    grad_w = np.empty((c_out, c_in, 3, 3), dtype=x.dtype)
    _filter_gradients(grads_u, grad_w)  # the parts' sums, added in a fixed order, then G^T dU G
    return grad_w


@njit(cache=True, nogil=True, parallel=True)
def _weight_gradient_parts(functions, g, x, grads_u, padding, table, counts, tiles_w, v_buffers, gt_buffers):
    """weight_gradient's loop: part p's pieces on one thread, summing its dL/dU into grads_u[p] (which the
    first piece overwrites: the scratch rows hold old values)."""
    c_in, c_out = x.shape[1], g.shape[1]
    for p in prange(len(counts)):
        if counts[p] == 0:
            grads_u[p] = 0
        for k in range(counts[p]):
            images, band, tiles, v = _transformed_piece(x, v_buffers[p], padding, table[p, k], tiles_w)
            gt = _sixteen_blocks(gt_buffers[p], c_out, tiles)
            _upstream_transform(g, gt, images, band, tiles_w)
            for e in range(16):  # dL/dU[a, b] += Gt[a, b] @ V[a, b]^T
                blas.gemm(functions, _block(gt, e, c_out, tiles), False, _block(v, e, c_in, tiles), True,
                          grads_u[p, e], 1.0 if k > 0 else 0.0)


@njit(cache=True, nogil=True)
def _sixteen_blocks(buffer, rows: int, columns: int):
    """A C-contiguous (16, rows * columns + 16) array at the start of a scratch row: block k, the
    (rows, columns) matrix of entry k of the 4x4 products, is its row k (``_block``). The transforms
    read or write all 16 blocks at once, and 16 streams a power of two apart would share cache sets,
    hence the 16 entries between blocks."""
    return buffer[:16 * (rows * columns + 16)].reshape(16, rows * columns + 16)


@njit(cache=True, nogil=True)
def _block(blocks, k: int, rows: int, columns: int):
    """Block k of _sixteen_blocks as a (rows, columns) matrix."""
    return blocks[k, :rows * columns].reshape(rows, columns)


def input_gradient(g, weight, image_size, padding):
    """dL/dx of a 3x3, stride-1 conv2d with padding p <= 2: the conv2d of g with the kernel flipped and
    its channel axes swapped, padding 2 - p:
    dL/dx[n, c, y, x] = sum_{o, i, j} g_padded[n, o, y + (2 - p) + i, x + (2 - p) + j] w[o, c, 2 - i, 2 - j]."""
    flipped = weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # a view: the weight transform reads any strides
    return conv2d_forward(g, flipped, (2 - padding[0], 2 - padding[1]), image_size)
