"""im2col and col2im in Numba: the copies that turn a convolution into matrix products.

``im2col`` copies every receptive field of a batch of images into one column of a patch matrix,
``col2im`` (its adjoint) adds a patch matrix back onto the pixels its entries came from; see
``minidl.kernels.reference.conv`` for the maths and a NumPy version of each. The Numba functions
``im2col_band`` and ``col2im_band`` work on a range of images and a band of output rows, writing
into (or adding into) arrays they are given, so that the fast convolution (``conv_fast.py``) can
call them tile by tile, in buffers it reuses, from its parallel loops.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _valid_outputs(offset, size, stride, out_size):
    """The range [lo, hi) of outputs o < out_size whose input position o*stride + offset lies inside
    [0, size); 0 <= lo <= hi <= out_size even when the range is empty."""
    lo = min(out_size, max(0, -(offset // stride)))  # ceil(-offset / stride), clipped to [0, out_size]
    hi = min(out_size, (size - 1 - offset) // stride + 1)
    return lo, max(lo, hi)


# The loops below index flat views of x and cols with unsigned integers and write zeros with plain
# loops: with short lines, Numba's wrap-around check of signed indices, a view per line and slice
# assignments cost more than the copy itself (timings in benchmarks/README.md). Nothing checks
# bounds: every index stays inside x and cols because _valid_outputs clips the ranges to both.
@njit(cache=True)
def _im2col_rows(x, cols, task, kernel_size, stride, padding, dilation, images, band, out_w):
    """Fill the kW rows (c, i, 0..kW-1) of cols, where task = c * kH + i, for the images n in
    images = (n0, n1) and the output rows oy in band = (row0, row1); column (n - n0, oy - row0, ox)."""
    channels, height, width = x.shape[1:]
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
        for n in range(images[0], images[1]):
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
def im2col_band(x, cols, kernel_size, stride, padding, dilation, images, band, out_w):
    """The patch matrix of the images n0 <= n < n1 (images = (n0, n1)) of a C-contiguous x and the output
    rows in band, written into cols (C*kH*kW, (n1 - n0)*(row1 - row0)*out_w); callable from Numba kernels."""
    for task in range(x.shape[1] * kernel_size[0]):
        _im2col_rows(x, cols, task, kernel_size, stride, padding, dilation, images, band, out_w)


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
    im2col_band(np.ascontiguousarray(x), cols, tuple(kernel_size), stride, padding, dilation, (0, n_batch), band,
                output_size[1])
    return cols


@njit(cache=True)
def _col2im_plane(cols, image, task, kernel_size, stride, padding, dilation, first_image, band, out_w):
    """Add the entries of cols that came from plane (n, c) of image back onto it, where
    task = (n - first_image) * C + c (cols holds the images from first_image on, and only the output
    rows oy in band = (row0, row1))."""
    channels, height, width = image.shape[1:]
    kh, kw = kernel_size
    row0, row1 = band
    n, c = task // channels, task % channels  # n counts from first_image
    source, target = cols.reshape(-1), image.reshape(-1)
    for i in range(kh):
        y_offset = i * dilation[0] - padding[0]
        y_lo, y_hi = _valid_outputs(y_offset, height, stride[0], row1)
        for j in range(kw):
            x_offset = j * dilation[1] - padding[1]
            x_lo, x_hi = _valid_outputs(x_offset, width, stride[1], out_w)
            # cols entry (c, i, j), (n, oy, ox) of this band;
            # image entry (first_image + n, c, oy*sh + y_offset, ox*sw + x_offset)
            s = ((c * kh + i) * kw + j) * cols.shape[1] + (n * (row1 - row0) - row0) * out_w
            row_start = (first_image * channels + task) * height * width + x_offset  # the plane's x_offset column, flat
            for oy in range(max(y_lo, row0), y_hi):
                s_row = s + oy * out_w
                t_row = row_start + (oy * stride[0] + y_offset) * width
                for k in range(x_lo, x_hi):
                    target[np.uint64(t_row + k * stride[1])] += source[np.uint64(s_row + k)]


@njit(cache=True, nogil=True)
def col2im_band(cols, image, kernel_size, stride, padding, dilation, images, band, out_w):
    """col2im of the images n0 <= n < n1 (images = (n0, n1)) and the output rows in band, added into the
    C-contiguous image (N, C, H, W); callable from Numba kernels."""
    for task in range((images[1] - images[0]) * image.shape[1]):
        _col2im_plane(cols, image, task, kernel_size, stride, padding, dilation, images[0], band, out_w)


def col2im(cols, image_size, kernel_size, stride, padding, dilation, output_size):
    """Adjoint of im2col: add every patch entry back onto the pixel it came from.

    cols: (C*kH*kW, N*H_out*W_out) -> x: (N, C, H, W) with image_size = (H, W);
    x[n, c, y, x] = sum of cols[(c, i, j), (n, oy, ox)] over all (i, j, oy, ox) that read pixel (y, x).
    """
    kernel_area, plane = kernel_size[0] * kernel_size[1], output_size[0] * output_size[1]
    image = np.zeros((cols.shape[1] // plane, cols.shape[0] // kernel_area, *image_size), dtype=cols.dtype)
    col2im_band(np.ascontiguousarray(cols), image, tuple(kernel_size), stride, padding, dilation, (0, len(image)),
                (0, output_size[0]), output_size[1])
    return image
