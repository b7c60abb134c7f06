"""Axis-aligned boxes on NumPy arrays: area, IoU, the delta encoding, clipping and non-maximum suppression.

A box is ``(x1, y1, x2, y2)`` in continuous pixel coordinates: pixel (row i, column j) covers the
square [j, j + 1] x [i, i + 1], so the tight box of a single pixel is (j, i, j + 1, i + 1) and
``area = (x2 - x1) * (y2 - y1)`` (torchvision's convention, no "+1"). Boxes come as (N, 4) arrays.

Nothing here is differentiated: detectors compute targets, proposals and detections from detached
numbers, and only the network's raw outputs (objectness logits, deltas) carry gradients.
"""

from __future__ import annotations

import math

import numpy as np

from ..kernels import nms as nms_kernels

# A predicted log-scale change is clamped here before exp(), so a wild delta early in training
# cannot overflow: boxes may grow at most 1000/16 ~ 62x per side (torchvision's bound).
MAX_LOG_SCALE = math.log(1000.0 / 16)


def _check_boxes(name: str, boxes) -> np.ndarray:
    boxes = np.asarray(boxes)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name}: boxes must be an (N, 4) array of (x1, y1, x2, y2), got shape {boxes.shape}")
    return boxes


def box_area(boxes) -> np.ndarray:
    """(x2 - x1) * (y2 - y1) for each box:  (N, 4) -> (N,)."""
    boxes = _check_boxes("box_area", boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes1, boxes2) -> np.ndarray:
    """Intersection over union of every pair:  (N, 4), (M, 4) -> (N, M).

    IoU(a, b) = |a ∩ b| / (|a| + |b| - |a ∩ b|), with |a ∩ b| = max(0, min(x2) - max(x1)) *
    max(0, min(y2) - max(y1)). Pairs of empty boxes (zero union) get IoU 0.
    """
    a, b = _check_boxes("box_iou", boxes1), _check_boxes("box_iou", boxes2)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    union = box_area(a)[:, None] + box_area(b)[None, :] - intersection
    return np.where(union > 0, intersection / np.where(union > 0, union, 1), 0).astype(np.result_type(a, b))


def _centres_and_sizes(boxes: np.ndarray) -> tuple:
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return boxes[:, 0] + 0.5 * width, boxes[:, 1] + 0.5 * height, width, height


def encode_boxes(targets, references, weights=(1.0, 1.0, 1.0, 1.0)) -> np.ndarray:
    """The deltas that move each reference box (anchor or proposal) onto its target box.

    With centres (x, y), sizes (w, h), reference r, target t and weights (wx, wy, ww, wh):
        dx = wx (x_t - x_r) / w_r      dy = wy (y_t - y_r) / h_r
        dw = ww log(w_t / w_r)         dh = wh log(h_t / h_r)
    Shifts are measured in units of the reference size, so one regressor serves boxes of every
    scale; the weights rescale the four deltas to similar spreads (Faster R-CNN uses (10, 10, 5, 5)
    for the second stage). targets, references: (N, 4) with positive sizes -> deltas (N, 4).
    """
    targets, references = _check_boxes("encode_boxes", targets), _check_boxes("encode_boxes", references)
    if targets.shape != references.shape:
        raise ValueError(f"encode_boxes: targets {targets.shape} and references {references.shape} must pair up")
    wx, wy, ww, wh = weights
    tx, ty, tw, th = _centres_and_sizes(targets)
    rx, ry, rw, rh = _centres_and_sizes(references)
    deltas = np.stack([wx * (tx - rx) / rw, wy * (ty - ry) / rh, ww * np.log(tw / rw), wh * np.log(th / rh)], axis=1)
    return deltas.astype(references.dtype, copy=False)


def decode_boxes(deltas, references, weights=(1.0, 1.0, 1.0, 1.0)) -> np.ndarray:
    """Inverse of ``encode_boxes``: apply deltas to reference boxes.

        x = x_r + (dx / wx) w_r        w = w_r exp(min(dw / ww, MAX_LOG_SCALE))   (likewise y, h)
    and the box is (x - w/2, y - h/2, x + w/2, y + h/2).
    deltas: (N, 4) or (N, K, 4) (K class-specific deltas per reference), references: (N, 4)
    -> boxes of the deltas' shape.
    """
    deltas, references = np.asarray(deltas), _check_boxes("decode_boxes", references)
    if deltas.shape[0] != references.shape[0] or deltas.shape[-1] != 4 or deltas.ndim not in (2, 3):
        raise ValueError(f"decode_boxes: deltas must be (N, 4) or (N, K, 4) for N = {references.shape[0]} "
                         f"references, got {deltas.shape}")
    wx, wy, ww, wh = weights
    rx, ry, rw, rh = (v.reshape((-1,) + (1,) * (deltas.ndim - 2)) for v in _centres_and_sizes(references))
    x = rx + deltas[..., 0] / wx * rw
    y = ry + deltas[..., 1] / wy * rh
    w = rw * np.exp(np.minimum(deltas[..., 2] / ww, MAX_LOG_SCALE))
    h = rh * np.exp(np.minimum(deltas[..., 3] / wh, MAX_LOG_SCALE))
    return np.stack([x - 0.5 * w, y - 0.5 * h, x + 0.5 * w, y + 0.5 * h], axis=-1).astype(deltas.dtype, copy=False)


def clip_boxes(boxes, image_size) -> np.ndarray:
    """Clamp x to [0, W] and y to [0, H] for ``image_size = (H, W)``:  (..., 4) -> (..., 4) (a new array)."""
    boxes = np.asarray(boxes)
    if boxes.shape[-1] != 4:
        raise ValueError(f"clip_boxes: boxes must end in a dim of 4, got shape {boxes.shape}")
    height, width = image_size
    upper = np.array([width, height, width, height], dtype=boxes.dtype)
    return np.clip(boxes, 0, upper)


def remove_small_boxes(boxes, min_size: float) -> np.ndarray:
    """Indices of the boxes whose width and height are both >= min_size:  (N, 4) -> (K,) int64."""
    boxes = _check_boxes("remove_small_boxes", boxes)
    keep = (boxes[:, 2] - boxes[:, 0] >= min_size) & (boxes[:, 3] - boxes[:, 1] >= min_size)
    return np.flatnonzero(keep)


def nms(boxes, scores, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression, as ``torchvision.ops.nms``.

    Repeatedly keep the highest-scoring remaining box and drop every remaining box whose IoU with
    it is > iou_threshold. boxes (N, 4), scores (N,) -> indices of the kept boxes (int64), by
    decreasing score (equal scores keep their input order). Boxes are compared in their float dtype
    (float16 as float32; integer boxes as float64).
    The walk down the sorted boxes is ``minidl.kernels.nms.nms_keep`` (Numba).
    """
    boxes, scores = _check_boxes("nms", boxes), np.asarray(scores)
    if not np.isfinite(iou_threshold):  # "IoU > NaN" is never true: NaN would silently keep every box
        raise ValueError(f"nms: iou_threshold must be a finite number, got {iou_threshold}")
    if scores.shape != (len(boxes),):
        raise ValueError(f"nms: scores must have shape ({len(boxes)},) for {len(boxes)} boxes, got {scores.shape}")
    dtype = np.result_type(boxes.dtype, np.float32) if np.issubdtype(boxes.dtype, np.floating) else np.float64
    boxes = boxes.astype(dtype, copy=False)
    order = np.argsort(-scores, kind="stable")
    keep = nms_kernels.nms_keep(np.ascontiguousarray(boxes[order]), boxes.dtype.type(iou_threshold))
    return order[keep].astype(np.int64)


def batched_nms(boxes, scores, labels, iou_threshold: float) -> np.ndarray:
    """NMS inside each label separately (a box never suppresses one of another class).

    Shifts each label's boxes by label * (coordinate range + 1), so boxes of different labels
    never overlap (negative coordinates included), then runs one ``nms``. Returns kept indices by
    decreasing score.
    """
    boxes = _check_boxes("batched_nms", boxes)
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.asarray(labels, dtype=boxes.dtype)[:, None] * (boxes.max() - boxes.min() + 1)
    return nms(boxes + offsets, scores, iou_threshold)
