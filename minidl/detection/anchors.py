"""Anchor boxes: the fixed reference boxes the region proposal network scores and refines.

Every cell (row y, column x) of a feature map with ``stride`` s sees the image patch centred at
((x + 0.5) s, (y + 0.5) s). Each cell carries A = len(sizes) * len(aspect_ratios) anchors centred
there, one per (size, ratio), with area size^2 and height / width = ratio:

    w = size / sqrt(ratio),  h = size * sqrt(ratio),  box = (cx - w/2, cy - h/2, cx + w/2, cy + h/2)

The RPN predicts, per cell and anchor, an objectness logit and four deltas (``boxes.encode_boxes``)
that move the anchor onto an object. Anchors are listed cell by cell, row-major, the A anchors of a
cell together: index = (y * W + x) * A + a, the order in which ``RPNHead`` outputs are flattened.
"""

from __future__ import annotations

import numpy as np


def cell_anchors(sizes, aspect_ratios, dtype=np.float32) -> np.ndarray:
    """The A anchors of one cell centred at (0, 0):  -> (A, 4), sizes outer loop, ratios inner."""
    sizes, ratios = np.asarray(sizes, dtype=np.float64), np.asarray(aspect_ratios, dtype=np.float64)
    if sizes.ndim != 1 or ratios.ndim != 1 or sizes.size == 0 or ratios.size == 0 or (sizes <= 0).any() \
            or (ratios <= 0).any():
        raise ValueError(f"cell_anchors: sizes and aspect_ratios must be non-empty lists of positive numbers, "
                         f"got {sizes.tolist()} and {ratios.tolist()}")
    widths = (sizes[:, None] / np.sqrt(ratios)[None, :]).ravel()
    heights = (sizes[:, None] * np.sqrt(ratios)[None, :]).ravel()
    return (np.stack([-widths, -heights, widths, heights], axis=1) / 2).astype(dtype)


def anchor_grid(feature_size, stride: int, sizes, aspect_ratios=(1.0,), dtype=np.float32) -> np.ndarray:
    """All anchors of an (H, W) feature map:  -> (H * W * A, 4), index (y * W + x) * A + a.

    feature_size: (H, W) of the feature map; stride: image pixels per feature cell.
    """
    height, width = feature_size
    centres_x = (np.arange(width) + 0.5) * stride
    centres_y = (np.arange(height) + 0.5) * stride
    grid_y, grid_x = np.meshgrid(centres_y, centres_x, indexing="ij")
    shifts = np.stack([grid_x, grid_y, grid_x, grid_y], axis=-1).reshape(-1, 1, 4)  # (H*W, 1, 4)
    return (shifts + cell_anchors(sizes, aspect_ratios, np.float64)[None]).reshape(-1, 4).astype(dtype)
