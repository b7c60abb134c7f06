"""COCO-style average precision for boxes and masks, and the detector's diagnostics.

Per class c and IoU threshold t (the COCO evaluation protocol, without crowd regions or area ranges):

1. In every image, take the detections of class c by decreasing score (at most ``max_detections``)
   and match each to the unmatched ground-truth object of class c it overlaps most, if that IoU
   is >= t. A matched detection is a true positive (TP); any other is a false positive (FP), so
   a second detection of an already-found object counts against the detector.
2. Pool the detections of all images, sort by score, and after the k best of them compute
       recall_k = TP_k / G,   precision_k = TP_k / k       (G = number of ground-truth objects of c)
3. Make precision non-increasing from the right (p_k <- max_{j >= k} p_j), then average it over
   the 101 recall levels r = 0, 0.01, ..., 1: p(r) = the precision at the first k with
   recall_k >= r, or 0 if recall never reaches r.

AP@t is the mean over classes that have ground truth; "AP" is the mean of AP@t over
t = 0.50, 0.55, ..., 0.95. IoU is box IoU for boxes and pixel IoU |A ∩ B| / |A ∪ B| for masks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .boxes import box_iou

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_LEVELS = np.linspace(0.0, 1.0, 101)


def mask_iou(masks1, masks2) -> np.ndarray:
    """Pixel IoU of every pair of binary masks:  (N, H, W), (M, H, W) -> (N, M); empty unions give 0."""
    a, b = np.asarray(masks1, dtype=bool), np.asarray(masks2, dtype=bool)
    if a.ndim != 3 or b.ndim != 3 or a.shape[1:] != b.shape[1:]:
        raise ValueError(f"mask_iou: masks must be (N, H, W) and (M, H, W) of one size, got {a.shape} and {b.shape}")
    a = a.reshape(len(a), a.shape[1] * a.shape[2]).astype(np.float64)
    b = b.reshape(len(b), b.shape[1] * b.shape[2]).astype(np.float64)
    intersection = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1), 0.0)


def match_detections(ious: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy COCO matching in one image. ious: (D, G), detections already sorted by decreasing score.

    Detection d takes the not-yet-matched object with the highest IoU >= threshold (ties: the
    first). Returns (D,) bool: True where d is a true positive.
    """
    matched = np.zeros(ious.shape[1], dtype=bool)
    true_positive = np.zeros(ious.shape[0], dtype=bool)
    for d in range(ious.shape[0]):
        candidates = np.where(matched, -1.0, ious[d])
        if candidates.size and candidates.max() >= threshold:
            matched[int(np.argmax(candidates))] = True
            true_positive[d] = True
    return true_positive


def average_precision(scores: np.ndarray, true_positive: np.ndarray, num_ground_truth: int) -> float:
    """101-point interpolated AP from pooled detections (scores, TP flags) and G ground-truth objects.

    Returns NaN when G = 0 (the class is absent and does not enter the mean).
    """
    if num_ground_truth == 0:
        return float("nan")
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    hits = np.asarray(true_positive, dtype=np.float64)[order]
    tp = np.cumsum(hits)
    recall = tp / num_ground_truth
    precision = tp / np.arange(1, len(hits) + 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # the envelope: non-increasing
    first = np.searchsorted(recall, RECALL_LEVELS, side="left")  # first k with recall_k >= r
    return float(np.mean(np.where(first < len(precision), precision[np.minimum(first, len(precision) - 1)], 0.0)))


def evaluate_detections(predictions: Sequence[dict], ground_truths: Sequence[dict], num_classes: int,
                        kind: str = "box", max_detections: int = 100) -> dict:
    """COCO-style AP over a data set.

    predictions: per image a dict with "boxes" (D, 4), "scores" (D,), "labels" (D,) and, for
    kind="mask", "masks" (D, H, W) bool; ground_truths: per image "boxes", "labels" (and "masks").
    num_classes: foreground classes, labelled 1..num_classes.
    Returns {"ap50", "ap75", "ap" (0.5:0.95 mean), "per_class": {label: {"ap50", "ap75", "ap"}}};
    per-class entries are NaN for classes without ground truth, and the means skip them.
    """
    if kind not in ("box", "mask"):
        raise ValueError(f"evaluate_detections: kind must be 'box' or 'mask', got {kind!r}")
    if len(predictions) != len(ground_truths):
        raise ValueError(f"evaluate_detections: {len(predictions)} predictions for {len(ground_truths)} images")
    key, overlap = ("boxes", box_iou) if kind == "box" else ("masks", mask_iou)
    table = np.full((num_classes, len(IOU_THRESHOLDS)), np.nan)
    for c in range(1, num_classes + 1):
        scores, hits, total = [], [[] for _ in IOU_THRESHOLDS], 0
        for prediction, truth in zip(predictions, ground_truths):
            mine = np.flatnonzero(np.asarray(prediction["labels"]) == c)
            mine = mine[np.argsort(-np.asarray(prediction["scores"])[mine], kind="mergesort")][:max_detections]
            theirs = np.flatnonzero(np.asarray(truth["labels"]) == c)
            total += len(theirs)
            ious = overlap(np.asarray(prediction[key])[mine], np.asarray(truth[key])[theirs])
            scores.append(np.asarray(prediction["scores"])[mine])
            for t, threshold in enumerate(IOU_THRESHOLDS):
                hits[t].append(match_detections(ious, threshold))
        scores = np.concatenate(scores)
        for t in range(len(IOU_THRESHOLDS)):
            table[c - 1, t] = average_precision(scores, np.concatenate(hits[t]), total)
    present = ~np.isnan(table[:, 0])
    at = {"ap50": 0, "ap75": 5}

    def mean(values):
        return float(np.mean(values)) if values.size else float("nan")

    summary = {name: mean(table[present, t]) for name, t in at.items()}
    summary["ap"] = mean(table[present].mean(axis=1))
    summary["per_class"] = {c + 1: {**{name: float(table[c, t]) for name, t in at.items()},
                                    "ap": float(table[c].mean())} for c in range(num_classes)}
    return summary


def proposal_recall(proposals: Sequence[np.ndarray], gt_boxes: Sequence[np.ndarray], threshold: float = 0.5) -> float:
    """Fraction of ground-truth boxes covered by at least one proposal with IoU >= threshold (RPN recall)."""
    found = total = 0
    for boxes, truth in zip(proposals, gt_boxes):
        total += len(truth)
        if len(truth) and len(boxes):
            found += int((box_iou(np.asarray(boxes), np.asarray(truth)).max(axis=0) >= threshold).sum())
    return found / total if total else float("nan")
