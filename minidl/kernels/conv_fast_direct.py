"""A faster stride-1 convolution for few input channels (a first layer): the sums computed directly.

Nothing here is needed to understand a convolution (``minidl.kernels.reference.conv`` is the lesson);
it computes the same sums as ``y = W @ im2col(x)`` and ``dL/dW = g @ im2col(x)^T`` without building the
patch matrix. With x_padded the zero-padded input and t = (c, i, j) the taps of the kernel,

    y[n, o, oy, ox]  = sum_t w[o, t] * x_padded[n, c, oy + i*dh, ox + j*dw]
    dL/dw[o, t]      = sum_{n, oy, ox} g[n, o, oy, ox] * x_padded[n, c, oy + i*dh, ox + j*dw]

Why it is faster when C_in * kH * kW is small (``applies``): the patch matrix then has only that many
rows (27 for RGB and a 3x3 kernel), so its products are thin and im2col's copy of kH * kW values
per input pixel costs about as much as the multiply-adds. Here each tap is a shifted read of the
padded input, which is copied once, a band of rows at a time, into a buffer that stays in cache.

How the loops are laid out (timings in ``benchmarks/README.md``):

- Wide rows. Output row oy at tap (c, i, j) reads padded row oy + i*dh from column j*dw on. Laid out
  with the padded rows' length Wp instead of W_out, a band of output rows at one tap is one shifted
  run of the padded band: ``acc[q] += w[o, t] * band[taps[t] + q]`` for q over the whole band, one
  long SIMD loop instead of a short one per row. The Wp - W_out entries between rows are computed
  and dropped (forward) or multiplied by zeros of g (dL/dw: exact zeros unless the band holds inf or
  NaN, and such a band is summed one row at a time).
- Register blocks. Each pass over a band reads 3 taps and updates 4 output channels, so every value
  loaded serves 4 multiply-adds and every sum stored 3 (a pass per tap and channel took about 3x as
  long).
- Threads: the bands of all images in parallel (``prange``). Each band sums its part of dL/dw into a
  slot of its own, and the slots are added in order afterwards: the result depends on the shapes,
  not on the number of threads or on which finishes first.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange

from . import workers

# At most this many patch-matrix rows (C_in * kH * kW) take the direct sums (measured in benchmarks/README.md).
MAX_PATCH_ROWS = 27
# A band of output rows spans at most this many wide-row entries (the sums of 4 channels, 256 kB in
# float32, stay in a core's L2 cache), and a batch has at least MIN_BANDS bands (work for every thread)
# unless its images have fewer rows.
BAND_ENTRIES = 1 << 14
MIN_BANDS = 8
# Taps and output channels per pass (the register block above); the loops below are written out for these.
TAPS_PER_PASS, CHANNELS_PER_PASS = 3, 4
# Let LLVM reorder sums (the weight gradient's are reductions, which it then spreads over SIMD lanes) and
# fuse multiply-adds; no other fast-math licence, so NaN and inf still propagate.
REORDER_SUMS = {"reassoc", "contract"}


def applies(kernel_size, stride, c_in: int) -> bool:
    """Whether this module computes the convolution: stride 1 and at most MAX_PATCH_ROWS patch-matrix rows."""
    return tuple(stride) == (1, 1) and c_in * kernel_size[0] * kernel_size[1] <= MAX_PATCH_ROWS


# The loops index flat arrays with unsigned integers (np.uint64): Numba wraps a negative signed index
# around, and that per-element check keeps LLVM from vectorising the loop (see im2col.py). Every index
# stays inside its array: a band of `rows` output rows reads rows 0 .. rows - 1 + (kH-1)*dh of its
# padded input band (band_height rows), and in a row the columns 0 .. W_out - 1 + (kW-1)*dw <= Wp - 1.
@njit(cache=True)
def _padded_band(x, n, row0, padding, band, band_height):
    """band[c, r, :] = row row0 + r of image n of x zero-padded, for every channel c and r < band_height
    (zeros past the padded image's last row); band: flat C-contiguous (C_in, band_height, Wp)."""
    channels, height, width = x.shape[1:]
    pad_h, pad_w = padding
    row_length = width + 2 * pad_w
    source = x.reshape(-1)
    for c in range(channels):
        for r in range(band_height):
            target = (c * band_height + r) * row_length
            y = row0 + r - pad_h
            if 0 <= y < height:
                start = ((n * channels + c) * height + y) * width
                for k in range(pad_w):
                    band[np.uint64(target + k)] = 0
                for k in range(width):
                    band[np.uint64(target + pad_w + k)] = source[np.uint64(start + k)]
                for k in range(pad_w + width, row_length):
                    band[np.uint64(target + k)] = 0
            else:
                for k in range(row_length):
                    band[np.uint64(target + k)] = 0


@njit(cache=True)
def _task_band(x, task, bands, out_h, padding, bands_rows, band_height):
    """(n, oy0, rows, band) of band `task`: band k = task % bands of image n = task // bands holds output rows
    oy0 = k*H_out // bands up to the next band's; band is its scratch row, filled with the padded input rows
    that it reads (``_padded_band``)."""
    n, k = task // bands, task % bands
    oy0 = k * out_h // bands
    band = bands_rows[task, :x.shape[1] * band_height * (x.shape[3] + 2 * padding[1])]
    _padded_band(x, n, oy0, padding, band, band_height)
    return n, oy0, (k + 1) * out_h // bands - oy0, band


@njit(cache=True, parallel=True, fastmath=REORDER_SUMS)
def _forward(x, matrix, taps, padding, bands, band_height, y, bands_rows, sums_rows):
    """y[n, o, oy, ox] = sum_t matrix[o, t] * band[taps[t] + (oy - oy0)*Wp + ox] for each band k < bands of
    image n, output rows oy0 = k*H_out // bands up to the next band's, band = its padded input rows
    (``_padded_band``, band_height of them: as many as the tallest band reads), tap t = (c, i, j) at
    taps[t] = (c*band_height + i*dh)*Wp + j*dw. matrix: the weight as (C_out rounded up to
    CHANNELS_PER_PASS, C_in*kH*kW), zero rows past C_out. Sums in wide rows (module docstring).
    bands_rows, sums_rows: a scratch row per band for its padded input and its sums (``_scratch_rows``)."""
    n_batch, _, _, width = x.shape
    c_out, out_h, out_w = y.shape[1:]
    row_length = width + 2 * padding[1]
    tap_count = taps.shape[0]
    outputs = y.reshape(-1)  # y is C-contiguous
    for task in prange(n_batch * bands):
        n, oy0, rows, band = _task_band(x, task, bands, out_h, padding, bands_rows, band_height)
        length = (rows - 1) * row_length + out_w  # entries of the wide rows, the last one cut at W_out
        acc = sums_rows[task, :CHANNELS_PER_PASS * length]
        a0, a1, a2, a3 = np.uint64(0), np.uint64(length), np.uint64(2 * length), np.uint64(3 * length)
        for o0 in range(0, matrix.shape[0], CHANNELS_PER_PASS):
            for q in range(acc.size):
                acc[np.uint64(q)] = 0
            t = 0
            while t < tap_count:
                if t + TAPS_PER_PASS <= tap_count:  # 3 taps x 4 channels
                    s0, s1, s2 = taps[t], taps[t + 1], taps[t + 2]
                    w00, w01, w02 = matrix[o0, t], matrix[o0, t + 1], matrix[o0, t + 2]
                    w10, w11, w12 = matrix[o0 + 1, t], matrix[o0 + 1, t + 1], matrix[o0 + 1, t + 2]
                    w20, w21, w22 = matrix[o0 + 2, t], matrix[o0 + 2, t + 1], matrix[o0 + 2, t + 2]
                    w30, w31, w32 = matrix[o0 + 3, t], matrix[o0 + 3, t + 1], matrix[o0 + 3, t + 2]
                    for q in range(length):
                        k = np.uint64(q)
                        x0, x1, x2 = band[np.uint64(s0 + q)], band[np.uint64(s1 + q)], band[np.uint64(s2 + q)]
                        acc[a0 + k] += w00 * x0 + w01 * x1 + w02 * x2
                        acc[a1 + k] += w10 * x0 + w11 * x1 + w12 * x2
                        acc[a2 + k] += w20 * x0 + w21 * x1 + w22 * x2
                        acc[a3 + k] += w30 * x0 + w31 * x1 + w32 * x2
                    t += TAPS_PER_PASS
                else:  # the last one or two taps, 1 tap x 4 channels
                    s0 = taps[t]
                    w00, w10, w20, w30 = matrix[o0, t], matrix[o0 + 1, t], matrix[o0 + 2, t], matrix[o0 + 3, t]
                    for q in range(length):
                        k = np.uint64(q)
                        x0 = band[np.uint64(s0 + q)]
                        acc[a0 + k] += w00 * x0
                        acc[a1 + k] += w10 * x0
                        acc[a2 + k] += w20 * x0
                        acc[a3 + k] += w30 * x0
                    t += 1
            for o in range(o0, min(o0 + CHANNELS_PER_PASS, c_out)):
                for r in range(rows):  # the wide rows' first W_out entries
                    first, line = (o - o0) * length + r * row_length, ((n * c_out + o) * out_h + oy0 + r) * out_w
                    for ox in range(out_w):
                        outputs[np.uint64(line + ox)] = acc[np.uint64(first + ox)]


@njit(cache=True, parallel=True, fastmath=REORDER_SUMS)
def _weight_gradient(x, g, taps, padding, bands, band_height, parts, bands_rows, upstream_rows):
    """parts[task, o, t] = sum over the band's output positions (oy, ox) of g[n, o, oy, ox] *
    band[taps[t] + (oy - oy0)*Wp + ox], for each band (task) k of image n (bands and taps as in
    ``_forward``); parts (tasks, C_out rounded up to CHANNELS_PER_PASS, C_in*kH*kW) of zeros;
    bands_rows, upstream_rows: a scratch row per band for its padded input and g (``_scratch_rows``).

    In wide rows g is laid out with zeros between its rows, which multiply band values that no output
    reads: exact zeros when those are finite. A band whose sum is not finite (it holds inf or NaN, or
    overflows) is summed one row at a time instead, without the entries between rows."""
    n_batch, _, _, width = x.shape
    c_out, out_h, out_w = g.shape[1:]
    row_length = width + 2 * padding[1]
    tap_count = taps.shape[0]
    for task in prange(n_batch * bands):
        n, oy0, rows, band = _task_band(x, task, bands, out_h, padding, bands_rows, band_height)
        segment_rows = rows if np.isfinite(band.sum()) else 1
        length = (segment_rows - 1) * row_length + out_w
        upstream = upstream_rows[task, :CHANNELS_PER_PASS * length]  # g of 4 channels in wide rows
        upstream[:] = 0  # the entries between rows stay 0
        a0, a1, a2, a3 = np.uint64(0), np.uint64(length), np.uint64(2 * length), np.uint64(3 * length)
        own = parts[task]
        for r0 in range(0, rows, segment_rows):
            for o0 in range(0, parts.shape[1], CHANNELS_PER_PASS):
                for o in range(o0, min(o0 + CHANNELS_PER_PASS, c_out)):
                    for r in range(segment_rows):
                        first = (o - o0) * length + r * row_length
                        for ox in range(out_w):
                            upstream[np.uint64(first + ox)] = g[n, o, oy0 + r0 + r, ox]
                shift = r0 * row_length
                t = 0
                while t < tap_count:
                    if t + TAPS_PER_PASS <= tap_count:  # 3 taps x 4 channels
                        s0, s1, s2 = taps[t] + shift, taps[t + 1] + shift, taps[t + 2] + shift
                        d00 = d01 = d02 = d10 = d11 = d12 = d20 = d21 = d22 = d30 = d31 = d32 = x.dtype.type(0)
                        for q in range(length):
                            k = np.uint64(q)
                            x0, x1, x2 = band[np.uint64(s0 + q)], band[np.uint64(s1 + q)], band[np.uint64(s2 + q)]
                            g0, g1, g2, g3 = upstream[a0 + k], upstream[a1 + k], upstream[a2 + k], upstream[a3 + k]
                            d00, d01, d02 = d00 + g0 * x0, d01 + g0 * x1, d02 + g0 * x2
                            d10, d11, d12 = d10 + g1 * x0, d11 + g1 * x1, d12 + g1 * x2
                            d20, d21, d22 = d20 + g2 * x0, d21 + g2 * x1, d22 + g2 * x2
                            d30, d31, d32 = d30 + g3 * x0, d31 + g3 * x1, d32 + g3 * x2
                        for o, (e0, e1, e2) in enumerate(((d00, d01, d02), (d10, d11, d12), (d20, d21, d22),
                                                          (d30, d31, d32))):
                            own[o0 + o, t] += e0
                            own[o0 + o, t + 1] += e1
                            own[o0 + o, t + 2] += e2
                        t += TAPS_PER_PASS
                    else:  # the last one or two taps, 1 tap x 4 channels
                        s0 = taps[t] + shift
                        d00 = d10 = d20 = d30 = x.dtype.type(0)
                        for q in range(length):
                            k = np.uint64(q)
                            x0 = band[np.uint64(s0 + q)]
                            d00 += upstream[a0 + k] * x0
                            d10 += upstream[a1 + k] * x0
                            d20 += upstream[a2 + k] * x0
                            d30 += upstream[a3 + k] * x0
                        for o, e0 in enumerate((d00, d10, d20, d30)):
                            own[o0 + o, t] += e0
                        t += 1


@functools.lru_cache(maxsize=64)
def _taps(channels: int, band_height: int, row_length: int, kernel_size, dilation):
    """taps[(c, i, j)] = (c*band_height + i*dh)*Wp + j*dw: where tap (c, i, j) of output (0, 0) reads in a flat
    padded input band (``_padded_band``)."""
    c, i, j = np.meshgrid(np.arange(channels), np.arange(kernel_size[0]), np.arange(kernel_size[1]), indexing="ij")
    taps = ((c * band_height + i * dilation[0]) * row_length + j * dilation[1]).reshape(-1).astype(np.int64)
    taps.flags.writeable = False  # shared by every call with these shapes
    return taps


def _bands(x_shape, kernel_size, padding, dilation, out_h) -> tuple:
    """(bands, band_rows, band_height, taps): bands per image, the rows of the tallest, the padded input
    rows that it reads, and the taps. An image is cut into as few bands as BAND_ENTRIES and MIN_BANDS
    allow, at rows k*H_out // bands (heights within one row of each other): a 128-row image in two
    bands of 64 rows took half the time of bands of 126 and 2. The bands depend on the shapes only,
    so dL/dw is summed in the same order whatever the number of threads."""
    n_batch, channels, _, width = x_shape
    row_length = width + 2 * padding[1]
    max_rows = max(1, BAND_ENTRIES // row_length)
    bands = min(out_h, max(-(-MIN_BANDS // max(1, n_batch)), -(-out_h // max_rows)))
    band_rows = -(-out_h // max(1, bands))
    band_height = band_rows + dilation[0] * (kernel_size[0] - 1)
    return bands, band_rows, band_height, _taps(channels, band_height, row_length, tuple(kernel_size),
                                                tuple(dilation))


def _scratch_rows(x, padding, bands, band_rows, band_height, output_size) -> tuple:
    """Scratch rows (``workers.scratch``), one per band: its padded input rows, and 4 channels' sums (or g)
    in wide rows. Arrays allocated in every call (hundreds of kB) page-faulted on every first write."""
    n_batch, channels, _, width = x.shape
    row_length = width + 2 * padding[1]
    wide = CHANNELS_PER_PASS * max(0, (band_rows - 1) * row_length + output_size[1])
    return (workers.scratch("direct bands", n_batch * bands, channels * band_height * row_length, x.dtype),
            workers.scratch("direct wide rows", n_batch * bands, wide, x.dtype))


def conv2d_forward(x, weight, padding, dilation, output_size):
    """y = conv2d(x, weight) with stride 1, by the direct sums: x (N, C_in, H, W), weight (C_out, C_in, kH, kW)
    -> y (N, C_out, H_out, W_out) = output_size (the first H_out x W_out positions when it is smaller
    than the full output)."""
    c_out = weight.shape[0]
    matrix = np.zeros((-(-c_out // CHANNELS_PER_PASS) * CHANNELS_PER_PASS, weight[0].size), dtype=x.dtype)
    matrix[:c_out] = weight.reshape(c_out, -1)
    y = np.empty((x.shape[0], c_out, *output_size), dtype=x.dtype)
    bands, band_rows, band_height, taps = _bands(x.shape, weight.shape[2:], padding, dilation, output_size[0])
    _forward(np.ascontiguousarray(x), matrix, taps, tuple(padding), bands, band_height, y,
             *_scratch_rows(x, padding, bands, band_rows, band_height, output_size))
    return y


def weight_gradient(g, x, kernel_size, padding, dilation):
    """dL/dw of a stride-1 conv2d, by the direct sums: g (N, C_out, H_out, W_out), x (N, C_in, H, W)
    -> (C_out, C_in, kH, kW)."""
    n_batch, c_out, out_h = g.shape[:3]
    bands, band_rows, band_height, taps = _bands(x.shape, kernel_size, padding, dilation, out_h)
    parts = np.zeros((n_batch * bands, -(-c_out // CHANNELS_PER_PASS) * CHANNELS_PER_PASS, len(taps)), dtype=x.dtype)
    _weight_gradient(np.ascontiguousarray(x), g, taps, tuple(padding), bands, band_height, parts,
                     *_scratch_rows(x, padding, bands, band_rows, band_height, g.shape[2:]))
    return parts[:, :c_out].sum(axis=0).reshape(c_out, x.shape[1], *kernel_size)  # the bands' parts in order
