"""Training targets of a two-stage detector: match boxes to ground truth, then sample a balanced batch.

Both stages of Mask R-CNN train on a few hundred reference boxes per image (anchors for the RPN,
proposals for the box head). Each reference is first *matched* to the ground-truth object it
overlaps most; an IoU above ``high`` makes it a positive (it must find that object), below ``low``
a negative (background), in between it is ignored (too ambiguous to teach anything). Then a fixed
number of them is *sampled* with at most a given fraction of positives, because background would
otherwise outnumber objects a hundred to one.
"""

from __future__ import annotations

import numpy as np

from .boxes import box_iou

BACKGROUND = -1  # matched index of a negative reference
IGNORED = -2     # matched index of a reference between the thresholds


def match_to_ground_truth(references, gt_boxes, high: float, low: float,
                          allow_low_quality_matches: bool = False) -> np.ndarray:
    """For each reference box the index of its ground-truth object, or BACKGROUND / IGNORED.

    IoU >= high: the argmax object; IoU < low: BACKGROUND; otherwise IGNORED.
    ``allow_low_quality_matches`` (the RPN's rule) also makes positive, for every object, the
    references whose IoU with it equals its best IoU, so that an object no anchor covers by
    ``high`` still gets an anchor. references (R, 4), gt_boxes (G, 4) -> (R,) int64.
    """
    references, gt_boxes = np.asarray(references), np.asarray(gt_boxes).reshape(-1, 4)
    if len(gt_boxes) == 0:
        return np.full(len(references), BACKGROUND, dtype=np.int64)
    ious = box_iou(gt_boxes, references)  # (G, R)
    best = ious.argmax(axis=0)
    best_iou = ious.max(axis=0)
    matched = np.where(best_iou >= high, best, np.where(best_iou < low, BACKGROUND, IGNORED)).astype(np.int64)
    if allow_low_quality_matches:
        best_for_object = ious.max(axis=1, keepdims=True)
        rescued = ((ious == best_for_object) & (best_for_object > 0)).any(axis=0)
        matched[rescued] = best[rescued]
    return matched


def sample_balanced(matched: np.ndarray, batch_size: int, positive_fraction: float,
                    rng: np.random.Generator) -> tuple:
    """Draw up to ``batch_size`` references: positives (matched >= 0), at most
    ``int(batch_size * positive_fraction)`` of them, then negatives (BACKGROUND) fill the rest.

    Returns (positive indices, negative indices), each int64 and drawn without replacement.
    """
    positives = np.flatnonzero(matched >= 0)
    negatives = np.flatnonzero(matched == BACKGROUND)
    num_positive = min(int(batch_size * positive_fraction), len(positives))
    num_negative = min(batch_size - num_positive, len(negatives))
    return (rng.permutation(positives)[:num_positive].astype(np.int64),
            rng.permutation(negatives)[:num_negative].astype(np.int64))
