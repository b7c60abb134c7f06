"""COCO-style AP on small hand-made cases (minidl.detection.evaluation)."""

import numpy as np
import pytest

from minidl.detection.evaluation import (
    average_precision,
    evaluate_detections,
    mask_iou,
    match_detections,
    proposal_recall,
)

A, B = [0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]


def image(boxes, labels, scores=None, size=32):
    """A prediction (with scores) or ground truth (without) whose masks fill the boxes."""
    boxes = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    masks = np.zeros((len(boxes), size, size), dtype=bool)
    for mask, (x1, y1, x2, y2) in zip(masks, boxes.astype(int)):
        mask[y1:y2, x1:x2] = True
    entry = {"boxes": boxes, "labels": np.array(labels, dtype=np.int64), "masks": masks}
    if scores is not None:
        entry["scores"] = np.array(scores, dtype=np.float64)
    return entry


def test_perfect_detections_give_one():
    truths = [image([A, B], [1, 2]), image([B], [1])]
    predictions = [image([A, B], [1, 2], [0.9, 0.8]), image([B], [1], [0.7])]
    for kind in ("box", "mask"):
        result = evaluate_detections(predictions, truths, num_classes=2, kind=kind)
        assert result["ap50"] == result["ap75"] == result["ap"] == 1.0
        assert result["per_class"][2]["ap"] == 1.0


def test_duplicate_is_a_false_positive():
    """Two objects of class 1; a duplicate of the first ranks between the two true positives.

    precision after each detection: 1, 1/2, 2/3; recall: 1/2, 1/2, 1. The envelope is 1 up to
    recall 0.5 (51 of the 101 levels: 0, 0.01, ..., 0.50) and 2/3 above (50 levels)."""
    truths = [image([A, B], [1, 1])]
    predictions = [image([A, A, B], [1, 1, 1], [0.9, 0.8, 0.7])]
    expected = (51 * 1.0 + 50 * 2 / 3) / 101
    assert evaluate_detections(predictions, truths, 1)["ap50"] == pytest.approx(expected)
    # ranked last, a duplicate costs nothing: all objects are found at precision 1 first
    predictions = [image([A, B, A], [1, 1, 1], [0.9, 0.8, 0.7])]
    assert evaluate_detections(predictions, truths, 1)["ap50"] == 1.0


def test_missed_object_wrong_class_and_absent_class():
    truths = [image([A, B], [1, 1])]
    # one of two objects found: recall tops out at 0.5 -> 51 of 101 levels at precision 1
    assert evaluate_detections([image([A], [1], [0.9])], truths, 2)["ap50"] == pytest.approx(51 / 101)
    # the right box with the wrong class is a miss for class 1 and a false positive for class 2,
    # and class 2 has no ground truth, so it is NaN and left out of the mean
    result = evaluate_detections([image([A, B], [2, 1], [0.9, 0.8])], truths, 2)
    assert result["ap50"] == pytest.approx(51 / 101)
    assert np.isnan(result["per_class"][2]["ap50"])
    assert evaluate_detections([image([], [], [])], truths, 1)["ap"] == 0.0


def test_iou_thresholds():
    """A box shifted by 2 px: IoU 80/120 = 0.667 is a hit at 0.5 and 0.65, a miss from 0.70 on."""
    truths = [image([A], [1])]
    predictions = [image([[2.0, 0.0, 12.0, 10.0]], [1], [0.9])]
    result = evaluate_detections(predictions, truths, 1)
    assert result["ap50"] == 1.0 and result["ap75"] == 0.0
    assert result["ap"] == pytest.approx(4 / 10)  # thresholds 0.50, 0.55, 0.60, 0.65 of 10


def test_mask_kind_uses_pixel_iou():
    """Identical boxes but a mask covering only a quarter of the object: a box hit, a mask miss."""
    truths = [image([A], [1])]
    prediction = image([A], [1], [0.9])
    prediction["masks"][0] = False
    prediction["masks"][0, :5, :5] = True
    assert evaluate_detections([prediction], truths, 1, kind="box")["ap50"] == 1.0
    assert evaluate_detections([prediction], truths, 1, kind="mask")["ap50"] == 0.0


def test_matching_prefers_highest_iou_unmatched_object():
    ious = np.array([[0.6, 0.8], [0.7, 0.9], [0.95, 0.0]])
    np.testing.assert_array_equal(match_detections(ious, 0.5), [True, True, False])
    # detection 0 takes object 1 (0.8), detection 1 takes object 0 (0.7), nothing is left for 2


def test_average_precision_edge_cases():
    assert np.isnan(average_precision(np.zeros(0), np.zeros(0, bool), 0))
    assert average_precision(np.array([0.3, 0.9]), np.array([True, False]), 1) == pytest.approx(0.5)


def test_mask_iou_and_proposal_recall():
    a = np.zeros((1, 4, 4), bool)
    a[0, :2] = True
    b = np.zeros((2, 4, 4), bool)
    b[0, :, :2] = True
    np.testing.assert_allclose(mask_iou(a, b), [[4 / 12, 0.0]])
    proposals = [np.array([A, [21.0, 20.0, 30.0, 30.0]]), np.zeros((0, 4))]
    assert proposal_recall(proposals, [np.array([A, B]), np.array([B])], 0.5) == pytest.approx(2 / 3)
    assert proposal_recall(proposals, [np.array([A, B]), np.array([B])], 0.95) == pytest.approx(1 / 3)
