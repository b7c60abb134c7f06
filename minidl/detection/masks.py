"""Moving instance masks between image space and the M x M grid of a box, both ways.

The mask head predicts each object's mask on an M x M grid stretched over its box: cell (i, j)
is centred at image position (x1 + (j + 0.5) w / M, y1 + (i + 0.5) h / M) for a box of size
(w, h). ``mask_targets`` brings ground-truth masks onto that grid (training targets) by RoIAlign
with aligned=True, which samples exactly those centres; ``paste_masks`` is the way back (inference):
it reads the grid at every image pixel centre inside the box by bilinear interpolation.
"""

from __future__ import annotations

import numpy as np

from ..kernels.roi_align import roi_align_forward


def mask_targets(gt_masks, boxes, matched, size: int) -> np.ndarray:
    """Binary M x M targets: ground-truth mask matched[k], resampled over box k and thresholded at 0.5.

    gt_masks (G, H, W) bool, boxes (P, 4), matched (P,) int indices into gt_masks -> (P, M, M) float32.
    """
    masks = np.ascontiguousarray(np.asarray(gt_masks, dtype=np.float32)[..., None])  # (G, H, W, 1)
    resampled = roi_align_forward(masks, np.asarray(boxes, dtype=np.float64), np.asarray(matched, dtype=np.int64),
                                  1.0, (size, size), 2, True)
    return (resampled[..., 0] >= 0.5).astype(np.float32)


def _interpolation_weights(start: float, stop: float, cells: int, length: int) -> np.ndarray:
    """(length, cells) weights that read a grid of ``cells`` cells spread over [start, stop] at the
    pixel centres 0.5, 1.5, ..., length - 0.5: linear between the two nearest cell centres, clamped
    at the first and last cell, zero for pixels whose centre lies outside [start, stop]."""
    centres = np.arange(length) + 0.5
    position = (centres - start) / max(stop - start, 1e-6) * cells - 0.5  # in cell units, cell i at i
    clamped = np.clip(position, 0, cells - 1)
    low = np.floor(clamped).astype(np.int64)
    high = np.minimum(low + 1, cells - 1)
    fraction = clamped - low
    weights = np.zeros((length, cells))
    rows = np.arange(length)
    np.add.at(weights, (rows, low), 1 - fraction)
    np.add.at(weights, (rows, high), fraction)
    return weights * ((centres >= start) & (centres <= stop))[:, None]


def paste_masks(masks, boxes, image_size) -> np.ndarray:
    """Paste M x M mask probabilities into the image, each over its box:  (D, M, M), (D, 4) -> (D, H, W).

    pasted[d] = R_d m_d C_d^T with R_d (H, M), C_d (W, M) the row and column interpolation weights of
    box d (``_interpolation_weights``); zero outside the box. Returned in the masks' float dtype.
    """
    masks, boxes = np.asarray(masks), np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if masks.ndim != 3 or len(masks) != len(boxes):
        raise ValueError(f"paste_masks: masks must be (D, M, M) with one box each, got masks {masks.shape} "
                         f"and boxes {boxes.shape}")
    height, width = image_size
    out = np.zeros((len(masks), height, width), dtype=masks.dtype if masks.dtype.kind == "f" else np.float32)
    for d, ((x1, y1, x2, y2), mask) in enumerate(zip(boxes, masks)):
        rows = _interpolation_weights(y1, y2, mask.shape[0], height)
        cols = _interpolation_weights(x1, x2, mask.shape[1], width)
        out[d] = rows @ mask @ cols.T
    return out
