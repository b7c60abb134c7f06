"""Greedy non-maximum suppression on raw arrays, as a Numba kernel.

Given boxes (x1, y1, x2, y2) sorted by decreasing score, walk down the list: a box that no kept box
has suppressed is kept, and it suppresses every later box whose IoU with it exceeds the threshold:

    keep[0] = True,   keep[j] = not any(keep[i] and IoU(i, j) > threshold for i < j)
    IoU(a, b) = |a ∩ b| / (|a| + |b| - |a ∩ b|)   (0 when the union is empty)

The NumPy twin (``minidl.kernels.reference.nms``) builds the whole N x N IoU matrix first; this
kernel computes each IoU when it is needed and skips boxes already suppressed, so it needs no N x N
memory and does far less work when many boxes go (timings in benchmarks/README.md). The
arithmetic is the twin's, in the boxes' own dtype, so both keep the same boxes.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def nms_keep(boxes, iou_threshold):
    """Which of the score-sorted boxes (N, 4) greedy NMS keeps: a bool mask (N,).

    iou_threshold must have the boxes' dtype (the comparison happens in it)."""
    n = boxes.shape[0]
    keep = np.ones(n, dtype=np.bool_)
    zero = np.zeros(1, dtype=boxes.dtype)[0]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for i in range(n):
        if not keep[i]:
            continue
        for j in range(i + 1, n):
            if not keep[j]:
                continue
            width = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
            height = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
            intersection = max(width, zero) * max(height, zero)
            union = areas[i] + areas[j] - intersection
            iou = intersection / union if union > zero else zero
            if iou > iou_threshold:
                keep[j] = False
    return keep
