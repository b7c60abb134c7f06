"""NumPy twin of ``minidl.kernels.nms``: greedy NMS over the full IoU matrix."""

from __future__ import annotations

import numpy as np

from ...detection.boxes import box_iou


def nms_keep(boxes, iou_threshold):
    """Keep mask of greedy NMS over score-sorted boxes: each kept box suppresses the later ones it overlaps."""
    overlaps = box_iou(boxes, boxes)  # all pairs at once: one vectorised (N, N) computation
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep = np.zeros(len(boxes), dtype=bool)
    for rank in range(len(boxes)):
        if not suppressed[rank]:
            keep[rank] = True
            suppressed |= overlaps[rank] > iou_threshold
    return keep
