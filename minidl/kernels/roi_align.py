"""RoIAlign on raw arrays, as Numba kernels: average bilinear samples over a grid in every output bin.

For region r with box (x1, y1, x2, y2) on image n = batch_index[r], an output of P_h x P_w bins
and a feature map of size H x W (``spatial_scale`` maps image coordinates onto it):

    start = (x1, y1) * spatial_scale - offset,    offset = 0.5 if aligned else 0
    size  = (x2 - x1, y2 - y1) * spatial_scale    (not aligned: at least 1 x 1, the legacy rule)
    bin   = size / (P_w, P_h)
    grid  = sampling_ratio x sampling_ratio points per bin, or ceil(size / P) per axis when
            sampling_ratio <= 0 (adaptive)
    y[r, c, ph, pw] = mean over grid points (iy, ix) of  bilinear(x[n, c], py, px),
        py = start_y + ph * bin_h + (iy + 0.5) * bin_h / grid_h      (likewise px)

``bilinear`` reads the feature value at a real position: a sample more than one pixel outside the
map is 0; otherwise its position is clamped into [0, H - 1] x [0, W - 1] and the four neighbouring
values are mixed with weights (1 - ly)(1 - lx), (1 - ly) lx, ly (1 - lx), ly lx. Feature value
x[i, j] sits at position (i, j); with ``aligned=True`` that is the pixel centre (i + 0.5, j + 0.5)
of image coordinates, which is why the box is shifted by half a pixel.

The output is linear in the features, y = S x with a sparse sampling matrix S, so the gradient is
its adjoint: dL/dx = S^T g, every sample scattering g / count back onto its four neighbours with
the same weights. The box coordinates get no gradient (as torchvision).

These are torchvision's ``roi_align`` semantics (same sampling, clamping and aligned offset).
The kernels work channels-last, x (N, H, W, C) and y (R, P_h, P_w, C): one sample point's
geometry and weights are computed once and applied to all C channels in a contiguous loop. The
forward runs the regions in parallel; the backward runs the images in parallel, because two
regions of the same image may scatter into the same feature value.
``minidl.kernels.reference.roi_align`` has the NumPy twins (same layout).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(cache=True)
def region_geometry(box, spatial_scale, pooled_size, sampling_ratio, aligned):
    """(start_y, start_x, bin_h, bin_w, grid_h, grid_w) of one box (x1, y1, x2, y2)."""
    offset = 0.5 if aligned else 0.0
    start_x = box[0] * spatial_scale - offset
    start_y = box[1] * spatial_scale - offset
    width = box[2] * spatial_scale - offset - start_x
    height = box[3] * spatial_scale - offset - start_y
    if not aligned:
        width, height = max(width, 1.0), max(height, 1.0)
    bin_h, bin_w = height / pooled_size[0], width / pooled_size[1]
    grid_h = sampling_ratio if sampling_ratio > 0 else int(math.ceil(height / pooled_size[0]))
    grid_w = sampling_ratio if sampling_ratio > 0 else int(math.ceil(width / pooled_size[1]))
    return start_y, start_x, bin_h, bin_w, grid_h, grid_w


@njit(cache=True)
def bilinear_taps(y, x, height, width):
    """The four neighbours of position (y, x) and their weights:
    (valid, y_low, y_high, x_low, x_high, w_ll, w_lh, w_hl, w_hh); valid is False (and the sample
    counts as 0) when the position lies more than one pixel outside the map."""
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return False, 0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_low = y_high = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_low = x_high = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    return True, y_low, y_high, x_low, x_high, hy * hx, hy * lx, ly * hx, ly * lx


@njit(cache=True)
def sample_taps(geometry, ph, pw, iy, ix, height, width):
    """bilinear_taps of sample point (iy, ix) of bin (ph, pw), each weight divided by the number of
    sample points per bin (a bin's value is their mean). geometry is region_geometry's tuple.
    The forward pass gathers and the backward pass scatters along exactly these taps."""
    start_y, start_x, bin_h, bin_w, grid_h, grid_w = geometry
    count = max(grid_h * grid_w, 1)
    py = start_y + ph * bin_h + (iy + 0.5) * bin_h / grid_h
    px = start_x + pw * bin_w + (ix + 0.5) * bin_w / grid_w
    valid, yl, yh, xl, xh, w1, w2, w3, w4 = bilinear_taps(py, px, height, width)
    return valid, yl, yh, xl, xh, w1 / count, w2 / count, w3 / count, w4 / count


@njit(cache=True, parallel=True)
def roi_align_forward(x, boxes, batch_index, spatial_scale, pooled_size, sampling_ratio, aligned):
    """x (N, H, W, C) channels-last, boxes (R, 4), batch_index (R,) int64 -> y (R, P_h, P_w, C), in x's dtype.

    Channels-last keeps the innermost loop (over channels, for one sample point and its four
    weights) contiguous in memory. Parallel over regions: each writes only its own output.
    """
    height, width, channels = x.shape[1:]
    regions = boxes.shape[0]
    out = np.zeros((regions, pooled_size[0], pooled_size[1], channels), dtype=x.dtype)
    for r in prange(regions):
        image = x[batch_index[r]]
        geometry = region_geometry(boxes[r], spatial_scale, pooled_size, sampling_ratio, aligned)
        grid_h, grid_w = geometry[4], geometry[5]
        for ph in range(pooled_size[0]):
            for pw in range(pooled_size[1]):
                cell = out[r, ph, pw]
                for iy in range(grid_h):
                    for ix in range(grid_w):
                        valid, yl, yh, xl, xh, w1, w2, w3, w4 = sample_taps(geometry, ph, pw, iy, ix, height, width)
                        if not valid:
                            continue
                        for c in range(channels):
                            cell[c] += (w1 * image[yl, xl, c] + w2 * image[yl, xh, c]
                                        + w3 * image[yh, xl, c] + w4 * image[yh, xh, c])
    return out


@njit(cache=True, parallel=True)
def roi_align_backward(g, boxes, batch_index, input_shape, spatial_scale, sampling_ratio, aligned):
    """The adjoint of ``roi_align_forward``: g (R, P_h, P_w, C) -> dL/dx (N, H, W, C), input_shape = (N, H, W, C).

    Parallel over images: the regions of image n scatter only into dL/dx[n], which one thread owns.
    """
    batch, height, width, channels = input_shape
    regions, pooled_h, pooled_w, _ = g.shape
    grad = np.zeros((batch, height, width, channels), dtype=g.dtype)
    for n in prange(batch):
        image = grad[n]
        for r in range(regions):
            if batch_index[r] != n:
                continue
            geometry = region_geometry(boxes[r], spatial_scale, (pooled_h, pooled_w), sampling_ratio, aligned)
            grid_h, grid_w = geometry[4], geometry[5]
            for ph in range(pooled_h):
                for pw in range(pooled_w):
                    cell = g[r, ph, pw]
                    for iy in range(grid_h):
                        for ix in range(grid_w):
                            valid, yl, yh, xl, xh, w1, w2, w3, w4 = sample_taps(geometry, ph, pw, iy, ix, height, width)
                            if not valid:
                                continue
                            for c in range(channels):
                                image[yl, xl, c] += w1 * cell[c]
                                image[yl, xh, c] += w2 * cell[c]
                                image[yh, xl, c] += w3 * cell[c]
                                image[yh, xh, c] += w4 * cell[c]
    return grad
