"""NumPy twins of ``minidl.kernels.roi_align``: RoIAlign as an explicit sampling matrix.

For each region, ``sampling_matrix`` builds the dense (P_h * P_w, H * W) matrix S whose row for
bin (ph, pw) holds the averaged bilinear weights of that bin's sample points. Then the forward is
y_r = S x_n and the backward is dL/dx_n += S^T g_r: plain matrix products, obviously adjoint.
Arrays are channels-last, as in the kernels: x (N, H, W, C), y (R, P_h, P_w, C).
"""

from __future__ import annotations

import math

import numpy as np


def _axis_samples(start: float, size: float, bins: int, grid: int) -> np.ndarray:
    """Sample positions along one axis: start + b * size/bins + (i + 0.5) * size/(bins*grid), shape (bins, grid)."""
    bin_size = size / bins
    return start + np.arange(bins)[:, None] * bin_size + (np.arange(grid)[None, :] + 0.5) * bin_size / grid


def _axis_weights(positions: np.ndarray, length: int) -> np.ndarray:
    """Linear-interpolation weights of each position onto the grid 0 .. length-1: (..., length).

    Positions below -1 or above ``length`` weigh nothing; the others are clamped into [0, length - 1]
    and split between floor and floor + 1 (torchvision's rule)."""
    inside = (positions >= -1.0) & (positions <= length)
    clamped = np.clip(positions, 0.0, length - 1)
    low = np.floor(clamped).astype(np.int64)
    high = np.minimum(low + 1, length - 1)
    fraction = clamped - low
    weights = np.zeros(positions.shape + (length,))
    np.put_along_axis(weights, low[..., None], (1 - fraction)[..., None], axis=-1)
    # += so that low == high (the last row/column) still receives weight 1 in total
    high_weights = np.take_along_axis(weights, high[..., None], axis=-1) + fraction[..., None]
    np.put_along_axis(weights, high[..., None], high_weights, axis=-1)
    return weights * inside[..., None]


def sampling_matrix(box, feature_size, spatial_scale, pooled_size, sampling_ratio, aligned) -> np.ndarray:
    """S of one box: (P_h * P_w, H * W), so that roi_align(x)[..., c].ravel() = S @ x[n, ..., c].ravel()."""
    height, width = feature_size
    pooled_h, pooled_w = pooled_size
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (float(v) * spatial_scale - offset for v in box)
    box_w, box_h = x2 - x1, y2 - y1
    if not aligned:
        box_w, box_h = max(box_w, 1.0), max(box_h, 1.0)
    grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(box_h / pooled_h)
    grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(box_w / pooled_w)
    # A 2-D bilinear weight is (row weight) x (column weight); a point outside in either axis is 0.
    rows = _axis_weights(_axis_samples(y1, box_h, pooled_h, grid_h), height)  # (P_h, grid_h, H)
    cols = _axis_weights(_axis_samples(x1, box_w, pooled_w, grid_w), width)   # (P_w, grid_w, W)
    matrix = np.einsum("aih,bjw->abhw", rows, cols) / max(grid_h * grid_w, 1)
    return matrix.reshape(pooled_h * pooled_w, height * width)


def roi_align_forward(x, boxes, batch_index, spatial_scale, pooled_size, sampling_ratio, aligned):
    """x (N, H, W, C), boxes (R, 4), batch_index (R,) -> y (R, P_h, P_w, C), in x's dtype."""
    _, height, width, channels = x.shape
    out = np.zeros((len(boxes), *pooled_size, channels), dtype=x.dtype)
    for r, (box, n) in enumerate(zip(boxes, batch_index)):
        matrix = sampling_matrix(box, (height, width), spatial_scale, pooled_size, sampling_ratio, aligned)
        out[r] = (matrix @ x[n].reshape(-1, channels)).reshape(*pooled_size, channels)
    return out


def roi_align_backward(g, boxes, batch_index, input_shape, spatial_scale, sampling_ratio, aligned):
    """dL/dx (input_shape = (N, H, W, C)) = sum over regions of S_r^T g_r, added into image batch_index[r]."""
    _, height, width, channels = input_shape
    grad = np.zeros(input_shape, dtype=g.dtype)
    for r, (box, n) in enumerate(zip(boxes, batch_index)):
        matrix = sampling_matrix(box, (height, width), spatial_scale, g.shape[1:3], sampling_ratio, aligned)
        grad[n] += (matrix.T @ g[r].reshape(-1, channels)).reshape(height, width, channels)
    return grad
