"""Metrics: hand-computed cases, a brute-force twin of every definition, and properties."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from minidl import Tensor
from minidl.metrics import (SegmentationMetrics, accuracy, accuracy_per_class, confusion_matrix, dice_per_class,
                            frequency_weighted_iou, iou_per_class, mean_class_accuracy, mean_iou, pixel_accuracy,
                            top_k_accuracy)

IGNORE = -100


@st.composite
def labelled_pixels(draw, ignore=False):
    """(pred, target, num_classes): label maps of one shape; target may hold IGNORE pixels."""
    num_classes = draw(st.integers(1, 5))
    shape = draw(st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6)))
    pred = draw(arrays(np.int64, shape, elements=st.integers(0, num_classes - 1)))
    low = -1 if ignore else 0  # -1 stands for IGNORE below
    target = draw(arrays(np.int64, shape, elements=st.integers(low, num_classes - 1)))
    return pred, np.where(target < 0, IGNORE, target), num_classes


def brute_force(pred, target, num_classes):
    """Every metric straight from its set definition, pixel by pixel, in plain Python."""
    pairs = [(t, p) for t, p in zip(target.ravel().tolist(), pred.ravel().tolist()) if t != IGNORE]
    counts = [[sum(1 for t, p in pairs if t == i and p == j) for j in range(num_classes)] for i in range(num_classes)]
    true = [sum(1 for t, _ in pairs if t == c) for c in range(num_classes)]
    both = [sum(1 for t, p in pairs if t == c and p == c) for c in range(num_classes)]
    union = [sum(1 for t, p in pairs if t == c or p == c) for c in range(num_classes)]
    predicted = [sum(1 for _, p in pairs if p == c) for c in range(num_classes)]
    nan = float("nan")
    iou = [both[c] / union[c] if union[c] else nan for c in range(num_classes)]
    acc = [both[c] / true[c] if true[c] else nan for c in range(num_classes)]
    defined_iou, defined_acc = [v for v in iou if v == v], [v for v in acc if v == v]
    return {
        "confusion": np.array(counts),
        "pixel_accuracy": sum(t == p for t, p in pairs) / len(pairs) if pairs else nan,
        "accuracy_per_class": acc,
        "mean_class_accuracy": sum(defined_acc) / len(defined_acc) if defined_acc else nan,
        "iou_per_class": iou,
        "mean_iou": sum(defined_iou) / len(defined_iou) if defined_iou else nan,
        "frequency_weighted_iou": (sum(true[c] * iou[c] for c in range(num_classes) if true[c]) / len(pairs)
                                   if pairs else nan),
        "dice_per_class": [2 * both[c] / (true[c] + predicted[c]) if union[c] else nan for c in range(num_classes)],
    }


def all_metrics(confusion):
    return {
        "pixel_accuracy": pixel_accuracy(confusion),
        "accuracy_per_class": accuracy_per_class(confusion),
        "mean_class_accuracy": mean_class_accuracy(confusion),
        "iou_per_class": iou_per_class(confusion),
        "mean_iou": mean_iou(confusion),
        "frequency_weighted_iou": frequency_weighted_iou(confusion),
        "dice_per_class": dice_per_class(confusion),
    }


@settings(max_examples=150, deadline=None)
@given(labelled_pixels(ignore=True))
def test_matches_brute_force_definitions(case):
    pred, target, num_classes = case
    expected = brute_force(pred, target, num_classes)
    confusion = confusion_matrix(pred, target, num_classes, ignore_index=IGNORE)
    assert confusion.dtype == np.int64
    np.testing.assert_array_equal(confusion, expected.pop("confusion"))
    for name, value in all_metrics(confusion).items():
        np.testing.assert_allclose(value, expected[name], rtol=1e-12, equal_nan=True, err_msg=name)


@settings(max_examples=100, deadline=None)
@given(labelled_pixels(ignore=True))
def test_ignored_pixels_are_left_out(case):
    pred, target, num_classes = case
    keep = target != IGNORE
    confusion = confusion_matrix(pred, target, num_classes, ignore_index=IGNORE)
    assert confusion.sum() == keep.sum()
    np.testing.assert_array_equal(confusion, confusion_matrix(pred[keep], target[keep], num_classes))
    scrambled = np.where(keep, pred, (pred + 1) % num_classes)  # predictions on ignored pixels do not matter
    np.testing.assert_array_equal(confusion, confusion_matrix(scrambled, target, num_classes, ignore_index=IGNORE))


@settings(max_examples=100, deadline=None)
@given(labelled_pixels())
def test_perfect_prediction_scores_one(case):
    _, target, num_classes = case
    confusion = confusion_matrix(target, target, num_classes)
    present = np.isin(np.arange(num_classes), target)
    for name in ("pixel_accuracy", "mean_class_accuracy", "mean_iou", "frequency_weighted_iou"):
        assert all_metrics(confusion)[name] == 1.0, name
    for per_class in (iou_per_class(confusion), dice_per_class(confusion), accuracy_per_class(confusion)):
        np.testing.assert_array_equal(per_class[present], 1.0)
        assert np.isnan(per_class[~present]).all()  # absent from prediction and target: undefined


@settings(max_examples=100, deadline=None)
@given(labelled_pixels(ignore=True), st.randoms(use_true_random=False))
def test_renaming_classes_permutes_per_class_scores(case, random):
    pred, target, num_classes = case
    order = list(range(num_classes))
    random.shuffle(order)
    rename = np.array(order)  # class c becomes rename[c]
    renamed_target = np.where(target == IGNORE, IGNORE, rename[np.maximum(target, 0)])
    before = confusion_matrix(pred, target, num_classes, IGNORE)
    after = confusion_matrix(rename[pred], renamed_target, num_classes, IGNORE)
    np.testing.assert_array_equal(iou_per_class(after)[rename], iou_per_class(before))
    for metric in (mean_iou, pixel_accuracy, mean_class_accuracy, frequency_weighted_iou):
        np.testing.assert_allclose(metric(after), metric(before), rtol=1e-12, equal_nan=True)


@settings(max_examples=60, deadline=None)
@given(labelled_pixels(), labelled_pixels())
def test_streaming_equals_all_pixels_at_once(first, second):
    num_classes = max(first[2], second[2])
    metrics = SegmentationMetrics(num_classes)
    for pred, target, _ in (first, second):
        metrics.update(pred, target)
    pred = np.concatenate([first[0].ravel(), second[0].ravel()])
    target = np.concatenate([first[1].ravel(), second[1].ravel()])
    expected = all_metrics(confusion_matrix(pred, target, num_classes))
    result = metrics.compute()
    for name, value in result.items():
        np.testing.assert_allclose(value, expected[name], equal_nan=True, err_msg=name)
    metrics.reset()
    assert metrics.confusion.sum() == 0


def test_hand_computed_case():
    # target 0 1 1 1 / pred 0 0 1 1  ->  n = [[1, 0], [1, 2]],  t = (1, 3),  p = (2, 2)
    confusion = confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), num_classes=2)
    np.testing.assert_array_equal(confusion, [[1, 0], [1, 2]])
    assert pixel_accuracy(confusion) == pytest.approx(3 / 4)
    np.testing.assert_allclose(accuracy_per_class(confusion), [1, 2 / 3])
    assert mean_class_accuracy(confusion) == pytest.approx(5 / 6)
    np.testing.assert_allclose(iou_per_class(confusion), [1 / 2, 2 / 3])  # 1/(1+2-1), 2/(3+2-2)
    assert mean_iou(confusion) == pytest.approx(7 / 12)
    assert frequency_weighted_iou(confusion) == pytest.approx((1 * 1 / 2 + 3 * 2 / 3) / 4)
    np.testing.assert_allclose(dice_per_class(confusion), [2 / 3, 4 / 5])


def test_absent_and_spurious_classes():
    # class 2 never occurs and is never predicted (nan, excluded); class 1 is predicted but never true
    confusion = confusion_matrix(np.array([0, 1, 0]), np.array([0, 0, 0]), num_classes=3)
    iou = iou_per_class(confusion)
    assert iou[0] == pytest.approx(2 / 3) and iou[1] == 0 and math.isnan(iou[2])
    assert mean_iou(confusion) == pytest.approx((2 / 3 + 0) / 2)
    accuracy_by_class = accuracy_per_class(confusion)
    assert accuracy_by_class[0] == pytest.approx(2 / 3) and np.isnan(accuracy_by_class[1:]).all()
    assert mean_class_accuracy(confusion) == pytest.approx(2 / 3)
    assert frequency_weighted_iou(confusion) == pytest.approx(2 / 3)


def test_no_pixels_gives_nan_without_warnings():
    confusion = confusion_matrix(np.array([1, 0]), np.array([IGNORE, IGNORE]), 2, ignore_index=IGNORE)
    with np.errstate(all="raise"):
        assert all(math.isnan(v) for v in (pixel_accuracy(confusion), mean_iou(confusion),
                                           mean_class_accuracy(confusion), frequency_weighted_iou(confusion)))


def test_dice_iou_identity():
    rng = np.random.default_rng(0)
    confusion = confusion_matrix(rng.integers(0, 4, 500), rng.integers(0, 4, 500), 4)
    iou = iou_per_class(confusion)
    np.testing.assert_allclose(dice_per_class(confusion), 2 * iou / (1 + iou))


def test_accepts_tensors():
    pred = Tensor(np.array([[0.1, 0.9], [0.8, 0.2]], np.float32)).argmax(dim=1)
    assert pixel_accuracy(confusion_matrix(pred, Tensor(np.array([1, 1])), 2)) == 0.5


@pytest.mark.parametrize("pred, target, message, error", [
    (np.zeros(3, np.int64), np.zeros(4, np.int64), r"pred has shape \(3,\) but target has shape \(4,\)", ValueError),
    (np.zeros(3), np.zeros(3, np.int64), r"pred must hold integer class labels, got dtype float64", TypeError),
    (np.array([0, 2]), np.array([0, 1]), r"pred holds 2, outside 0\.\.1", ValueError),
    (np.array([0, 1]), np.array([0, -1]), r"target holds -1, outside 0\.\.1", ValueError),
])
def test_confusion_matrix_errors(pred, target, message, error):
    with pytest.raises(error, match=message):
        confusion_matrix(pred, target, num_classes=2)


# ------------------------------------------------------------------------ classification accuracy
@settings(max_examples=150, deadline=None)
@given(st.data())
def test_top_k_matches_ranking_by_hand(data):
    n, num_classes = data.draw(st.integers(1, 8)), data.draw(st.integers(1, 6))
    k = data.draw(st.integers(1, num_classes))
    # small integer scores make ties common, to pin down the tie rule
    logits = data.draw(arrays(np.float32, (n, num_classes), elements=st.integers(-2, 2).map(float)))
    target = data.draw(arrays(np.int64, (n,), elements=st.integers(0, num_classes - 1)))
    hits = 0
    for scores, true_class in zip(logits.tolist(), target.tolist()):
        ranking = sorted(range(num_classes), key=lambda c: (-scores[c], c))  # ties: lower index first
        hits += true_class in ranking[:k]
    assert top_k_accuracy(logits, target, k) == pytest.approx(hits / n)
    assert accuracy(logits, target) == pytest.approx(np.mean(np.argmax(logits, axis=1) == target))
    assert top_k_accuracy(logits, target, num_classes) == 1.0


def test_top_k_errors():
    logits, target = np.zeros((2, 3), np.float32), np.array([0, 1])
    with pytest.raises(ValueError, match=r"k must be in 1\.\.3 \(the number of classes\), got 4"):
        top_k_accuracy(logits, target, k=4)
    with pytest.raises(ValueError, match=r"expected logits \(N, C\) and target \(N,\), "
                                         r"got logits \(2, 3\) and target \(3,\)"):
        top_k_accuracy(logits, np.array([0, 1, 2]), k=1)
    with pytest.raises(ValueError, match=r"target must lie in 0\.\.2, got values 0\.\.3"):
        top_k_accuracy(logits, np.array([0, 3]), k=1)
