"""NumPy twins of ``minidl.kernels.pooling``: gather every window with fancy indexing, take argmax."""

from __future__ import annotations

import numpy as np


def max_pool2d_indices(x, kernel_size, stride, padding, dilation, output_size):
    """Flat position of each window's maximum:  x (P, H, W) -> indices (P, H_out, W_out), int64.

    (For finite inputs; with ±inf or NaN ties the kernel follows PyTorch's scan rule instead.)
    """
    planes, height, width = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (out_h, out_w) = kernel_size, stride, padding, dilation, output_size
    # rows[oy, i] = oy*sh - ph + i*dh: the input row of tap i of window oy (likewise cols)
    rows = np.arange(out_h)[:, None] * sh - ph + np.arange(kh)[None, :] * dh
    cols = np.arange(out_w)[:, None] * sw - pw + np.arange(kw)[None, :] * dw
    # pad with -inf far enough on every side for all taps, then shift the taps into the padded array
    extra_h, extra_w = rows.max() + 1 - height, cols.max() + 1 - width
    padded = np.pad(x, ((0, 0), (ph, max(extra_h, 0)), (pw, max(extra_w, 0))), constant_values=-np.inf)
    windows = padded[:, (rows + ph)[:, None, :, None], (cols + pw)[None, :, None, :]]  # (P, oy, ox, i, j)
    windows = windows.reshape(planes, out_h, out_w, kh * kw)
    best = windows.argmax(axis=-1)  # first maximum in row-major window order
    tap_i, tap_j = np.divmod(best, kw)
    h = rows[np.arange(out_h)[:, None], tap_i]  # the input row of the winning tap, (P, oy, ox)
    w = cols[np.arange(out_w), tap_j]
    return (h * width + w).astype(np.int64)


def max_pool2d_2x2(x):
    """Non-overlapping 2x2 windows:  x (P, H, W) -> (values, indices), both (P, H // 2, W // 2)."""
    planes, height, width = x.shape
    output_size = (height // 2, width // 2)
    indices = max_pool2d_indices(x, (2, 2), (2, 2), (0, 0), (1, 1), output_size)
    return gather_at_indices(x.reshape(planes, -1), indices), indices


def scatter_at_indices(values, indices, plane_size, accumulate):
    """out[p].flat[indices[p, k]] (+)= values[p, k]:  values, indices (P, h, w) -> out (P, plane_size)."""
    planes = values.shape[0]
    out = np.zeros((planes, plane_size), dtype=values.dtype)
    flat_values, flat_indices = values.reshape(planes, -1), indices.reshape(planes, -1)
    if accumulate:
        np.add.at(out, (np.arange(planes)[:, None], flat_indices), flat_values)
    else:
        for p, k in np.ndindex(flat_indices.shape):  # one by one, in order: the last write wins
            out[p, flat_indices[p, k]] = flat_values[p, k]
    return out


def gather_at_indices(source, indices):
    """out[p, r, c] = source[p, indices[p, r, c]]:  source (P, plane_size), indices (P, h, w) -> (P, h, w)."""
    planes = indices.shape[0]
    return np.take_along_axis(source, indices.reshape(planes, -1), axis=1).reshape(indices.shape)
