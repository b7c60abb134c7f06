"""Evaluation metrics for classification and semantic segmentation, on arrays of integer labels.

Segmentation metrics are all read off one confusion matrix n of shape (K, K), K = num_classes:

    n[i, j] = number of pixels whose true class is i and predicted class is j
    t_i = sum_j n[i, j]   (pixels of true class i)     p_j = sum_i n[i, j]   (pixels predicted as j)

with the definitions of Long, Shelhamer and Darrell, "Fully Convolutional Networks for Semantic
Segmentation" (CVPR 2015), section 5, plus Dice:

    pixel accuracy           sum_i n_ii / sum_i t_i
    class accuracy           acc_i = n_ii / t_i;            mean class accuracy = mean_i acc_i
    intersection over union  IoU_i = n_ii / (t_i + p_i - n_ii);   mean IoU = mean_i IoU_i
    frequency-weighted IoU   (sum_k t_k)^-1 * sum_i t_i * IoU_i
    Dice (F1)                Dice_i = 2 n_ii / (t_i + p_i)

Absent classes, explicitly: a ratio whose denominator is 0 is undefined and reported as nan.
acc_i is nan for a class with no true pixels (t_i = 0); IoU_i and Dice_i are nan for a class that
is neither present nor predicted (t_i = p_i = 0). The means average only the defined values
(FCN's n_cl is the number of such classes), so a class that does not occur in the evaluated
pixels neither helps nor hurts; a class that is predicted but never true has IoU 0 and does count.
A mean over no defined value is nan. Pixels whose target equals ``ignore_index`` are left out of
the confusion matrix altogether.

Inputs are NumPy arrays (or minidl Tensors, whose ``.data`` is used).
"""

from __future__ import annotations

import numpy as np

from .tensor import Tensor


def confusion_matrix(pred, target, num_classes: int, ignore_index: int | None = None) -> np.ndarray:
    """Count matrix n[i, j] = #{pixels with target == i and pred == j}, shape (K, K) int64.

    pred and target: integer arrays of the same shape, e.g. (N, H, W) label maps or (N,) labels.
    Pixels with target == ignore_index are skipped, so n.sum() is the number of the other pixels.
    """
    pred, target = _integer_array(pred, "pred"), _integer_array(target, "target")
    if pred.shape != target.shape:
        raise ValueError(f"confusion_matrix: pred has shape {pred.shape} but target has shape {target.shape}")
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"confusion_matrix: num_classes must be a positive int, got {num_classes!r}")
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    for name, labels in (("pred", pred), ("target", target)):
        outside = (labels < 0) | (labels >= num_classes)
        if outside.any():
            raise ValueError(f"confusion_matrix: {name} holds {labels[outside][0]}, outside 0..{num_classes - 1} "
                             f"(num_classes={num_classes}, ignore_index={ignore_index})")
    flat = target.ravel().astype(np.int64) * num_classes + pred.ravel().astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def pixel_accuracy(confusion: np.ndarray) -> float:
    """Fraction of correctly labelled pixels: sum_i n_ii / sum_i t_i (nan if there are no pixels)."""
    confusion = _square(confusion)
    return float(_ratio(np.trace(confusion), confusion.sum()))


def accuracy_per_class(confusion: np.ndarray) -> np.ndarray:
    """acc_i = n_ii / t_i, shape (K,) float64; nan for classes with no true pixels."""
    confusion = _square(confusion)
    return _ratio(np.diag(confusion), confusion.sum(axis=1))


def mean_class_accuracy(confusion: np.ndarray) -> float:
    """(1/n_cl) * sum_i n_ii / t_i over the classes with t_i > 0."""
    return _mean_of_defined(accuracy_per_class(confusion))


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    """IoU_i = n_ii / (t_i + p_i - n_ii) = |pred_i AND true_i| / |pred_i OR true_i|, shape (K,) float64.

    nan for a class neither present nor predicted.
    """
    confusion = _square(confusion)
    hits = np.diag(confusion)
    return _ratio(hits, confusion.sum(axis=1) + confusion.sum(axis=0) - hits)


def mean_iou(confusion: np.ndarray) -> float:
    """(1/n_cl) * sum_i IoU_i over the classes present or predicted."""
    return _mean_of_defined(iou_per_class(confusion))


def frequency_weighted_iou(confusion: np.ndarray) -> float:
    """(sum_k t_k)^-1 * sum_i t_i * IoU_i: IoU weighted by each class's share of true pixels."""
    confusion = _square(confusion)
    true_pixels = confusion.sum(axis=1)
    present = true_pixels > 0  # the only classes with non-zero weight; their IoU is always defined
    return float(_ratio(np.sum(true_pixels[present] * iou_per_class(confusion)[present]), true_pixels.sum()))


def dice_per_class(confusion: np.ndarray) -> np.ndarray:
    """Dice_i = 2 n_ii / (t_i + p_i) = 2 IoU_i / (1 + IoU_i), shape (K,) float64.

    nan for a class neither present nor predicted.
    """
    confusion = _square(confusion)
    return _ratio(2 * np.diag(confusion), confusion.sum(axis=1) + confusion.sum(axis=0))


def top_k_accuracy(logits, target, k: int) -> float:
    """Fraction of samples whose true class is among the k highest scores.

    logits: (N, C) scores (any monotone transform, e.g. probabilities, gives the same result);
    target: (N,) integer classes in 0..C-1. Equal scores rank the lower class index first, as
    ``argmax`` does, so ``top_k_accuracy(logits, target, 1) == mean(argmax(logits, 1) == target)``.
    """
    logits = logits.data if isinstance(logits, Tensor) else np.asarray(logits)
    target = _integer_array(target, "target")
    if logits.ndim != 2 or target.shape != logits.shape[:1]:
        raise ValueError(f"top_k_accuracy: expected logits (N, C) and target (N,), "
                         f"got logits {logits.shape} and target {target.shape}")
    if not 1 <= k <= logits.shape[1]:
        raise ValueError(f"top_k_accuracy: k must be in 1..{logits.shape[1]} (the number of classes), got {k}")
    if len(target) and (target.min() < 0 or target.max() >= logits.shape[1]):
        raise ValueError(f"top_k_accuracy: target must lie in 0..{logits.shape[1] - 1}, "
                         f"got values {target.min()}..{target.max()}")
    top_k = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return float(_ratio(np.sum(top_k == target[:, None]), len(target)))


def accuracy(logits, target) -> float:
    """Classification accuracy: mean(argmax(logits, axis=1) == target); logits (N, C), target (N,)."""
    return top_k_accuracy(logits, target, k=1)


class SegmentationMetrics:
    """Accumulate the confusion matrix over batches, then compute every segmentation metric at once.

        metrics = SegmentationMetrics(num_classes=2, ignore_index=IGNORE_INDEX)
        for images, masks in loader:
            metrics.update(model(images).argmax(dim=1), masks)   # label maps (N, H, W)
        metrics.compute()   # {"pixel_accuracy": ..., "mean_iou": ..., "iou_per_class": [...], ...}

    Summing confusion matrices is exact, so the result equals the metrics of all pixels at once
    (unlike averaging per-batch mIoU).
    """

    def __init__(self, num_classes: int, ignore_index: int | None = None):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.confusion = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, pred, target) -> None:
        self.confusion += confusion_matrix(pred, target, self.num_classes, self.ignore_index)

    def reset(self) -> None:
        self.confusion[...] = 0

    def compute(self) -> dict:
        """All metrics as Python floats and lists (ready for ``json.dump``; undefined values are nan)."""
        return {
            "pixel_accuracy": pixel_accuracy(self.confusion),
            "mean_class_accuracy": mean_class_accuracy(self.confusion),
            "mean_iou": mean_iou(self.confusion),
            "frequency_weighted_iou": frequency_weighted_iou(self.confusion),
            "iou_per_class": iou_per_class(self.confusion).tolist(),
            "dice_per_class": dice_per_class(self.confusion).tolist(),
        }


def _integer_array(labels, name: str) -> np.ndarray:
    labels = labels.data if isinstance(labels, Tensor) else np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"metrics: {name} must hold integer class labels, got dtype {labels.dtype}")
    return labels


def _square(confusion) -> np.ndarray:
    confusion = np.asarray(confusion)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"metrics: expected a (K, K) confusion matrix, got shape {confusion.shape}")
    return confusion


def _ratio(numerator, denominator) -> np.ndarray:
    """numerator / denominator elementwise as float64, nan where the denominator is 0 (no warning)."""
    numerator, denominator = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    return np.divide(numerator, denominator, out=np.full(np.broadcast(numerator, denominator).shape, np.nan),
                     where=denominator != 0)


def _mean_of_defined(values: np.ndarray) -> float:
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")
