"""Box ops, anchors and target matching on hand-made cases (minidl.detection.boxes / anchors / sampling)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl.detection.anchors import anchor_grid, cell_anchors
from minidl.detection.boxes import (
    batched_nms,
    box_area,
    box_iou,
    clip_boxes,
    decode_boxes,
    encode_boxes,
    nms,
    remove_small_boxes,
)
from minidl.detection.sampling import BACKGROUND, IGNORED, match_to_ground_truth, sample_balanced
from minidl.kernels import nms as kernels
from minidl.kernels.reference import nms as reference


def random_boxes(rng, n, low=0.0, high=50.0):
    corners = rng.uniform(low, high, (n, 2))
    return np.concatenate([corners, corners + rng.uniform(1, 20, (n, 2))], axis=1)


def test_box_iou_hand_cases():
    a = np.array([[0, 0, 2, 2], [0, 0, 1, 1]], dtype=np.float64)
    b = np.array([[1, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6], [2, 0, 4, 2]], dtype=np.float64)
    # [0,0,2,2] vs [1,1,3,3]: intersection 1, union 4 + 4 - 1 = 7; touching edges give 0
    expected = np.array([[1 / 7, 1, 0, 0], [0, 1 / 4, 0, 0]])
    np.testing.assert_allclose(box_iou(a, b), expected)
    np.testing.assert_allclose(box_iou(b, a), expected.T)
    np.testing.assert_array_equal(box_area(b), [4, 4, 1, 4])
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 4)
    assert box_iou(np.array([[1.0, 1, 1, 1]]), np.array([[1.0, 1, 1, 1]]))[0, 0] == 0  # empty boxes: 0, not NaN
    assert box_iou(a.astype(np.float32), b.astype(np.float32)).dtype == np.float32


def test_box_iou_rejects_bad_shapes():
    with pytest.raises(ValueError, match="box_iou: boxes must be an \\(N, 4\\)"):
        box_iou(np.zeros((3, 5)), np.zeros((2, 4)))


def test_encode_hand_case_and_weights():
    reference = np.array([[0.0, 0.0, 10.0, 20.0]])  # centre (5, 10), size (10, 20)
    target = np.array([[2.0, 4.0, 22.0, 24.0]])     # centre (12, 14), size (20, 20)
    deltas = encode_boxes(target, reference)
    np.testing.assert_allclose(deltas, [[0.7, 0.2, np.log(2), 0.0]])
    np.testing.assert_allclose(encode_boxes(target, reference, (10, 10, 5, 5)), [[7.0, 2.0, 5 * np.log(2), 0.0]])


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]))
def test_decode_inverts_encode(seed, weights):
    rng = np.random.default_rng(seed)
    references, targets = random_boxes(rng, 7), random_boxes(rng, 7)
    np.testing.assert_allclose(decode_boxes(encode_boxes(targets, references, weights), references, weights),
                               targets, atol=1e-9)


def test_decode_class_specific_deltas_and_clamp():
    references = np.array([[0.0, 0.0, 4.0, 4.0], [10.0, 10.0, 12.0, 14.0]])
    deltas = np.zeros((2, 3, 4))
    deltas[1, 2] = [0.5, 0.0, 0.0, 0.0]  # shift box 1, class 2, by half its width
    decoded = decode_boxes(deltas, references)
    assert decoded.shape == (2, 3, 4)
    np.testing.assert_allclose(decoded[:, 0], references)
    np.testing.assert_allclose(decoded[1, 2], [11.0, 10.0, 13.0, 14.0])
    huge = decode_boxes(np.array([[0.0, 0.0, 100.0, 100.0]]), references[:1])  # exp clamped, finite
    assert np.isfinite(huge).all() and huge[0, 2] - huge[0, 0] == pytest.approx(4 * 1000 / 16)


def test_clip_and_remove_small():
    boxes = np.array([[-5.0, -1.0, 70.0, 30.0], [10.0, 10.0, 10.5, 20.0], [3.0, 4.0, 5.0, 6.0]])
    clipped = clip_boxes(boxes, (64, 60))  # (H, W)
    np.testing.assert_array_equal(clipped[0], [0, 0, 60, 30])
    np.testing.assert_array_equal(boxes[0], [-5, -1, 70, 30])  # input untouched
    np.testing.assert_array_equal(remove_small_boxes(clipped, 1.0), [0, 2])


def test_nms_hand_case():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9.0]], dtype=np.float64)
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    # box 3 (0.95) suppresses 0 (IoU 0.9) and 1 (IoU 72/118 = 0.61 > 0.5); box 2 is apart
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), [3, 2])
    # at threshold 0.7 box 1 survives box 3 (IoU 0.6 < 0.7), and box 0 is suppressed by box 3 (0.9)
    assert box_iou(boxes[3:4], boxes[1:2])[0, 0] < 0.7
    np.testing.assert_array_equal(nms(boxes, scores, 0.7), [3, 1, 2])
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.1, 0.9))
def test_nms_properties(seed, threshold):
    """Kept boxes overlap each other by at most the threshold, and every dropped box overlaps a
    kept box with a higher score by more than it."""
    rng = np.random.default_rng(seed)
    boxes, scores = random_boxes(rng, 30, high=30), rng.permutation(30) / 30.0
    keep = nms(boxes, scores, threshold)
    assert (np.diff(scores[keep]) < 0).all()
    overlaps = box_iou(boxes[keep], boxes[keep])
    assert (overlaps[~np.eye(len(keep), dtype=bool)] <= threshold).all()
    for dropped in np.setdiff1d(np.arange(30), keep):
        stronger = keep[scores[keep] > scores[dropped]]
        assert (box_iou(boxes[dropped:dropped + 1], boxes[stronger]) > threshold).any()


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(0, 60), st.sampled_from([-np.inf, 0.0, 0.3, 0.5, 0.7, 1.0, np.inf]),
       st.sampled_from([np.float32, np.float64]))
def test_nms_kernel_matches_its_numpy_twin(seed, n, threshold, dtype):
    """Crowded boxes (many overlaps), with repeated and empty boxes among them; the kernel must keep
    exactly the boxes its NumPy twin keeps, in both dtypes and at the extreme thresholds (-inf: only
    the first box stays; inf: all stay)."""
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, n, high=15).astype(dtype)
    boxes[3::7] = boxes[:1]  # copies of the first box: IoU exactly 1
    boxes[2::5, 2] = boxes[2::5, 0]  # zero width: empty boxes, union 0 with one another
    before = boxes.copy()
    keep = kernels.nms_keep(boxes, dtype(threshold))
    np.testing.assert_array_equal(keep, reference.nms_keep(boxes, dtype(threshold)))
    np.testing.assert_array_equal(boxes, before)
    assert n == 0 or keep[0]


def test_nms_compares_integer_boxes_as_floats():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 9], [1, 1, 11, 11], [20, 20, 30, 30]])
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), nms(boxes.astype(np.float64), scores, 0.5))
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), [0, 3])


def test_batched_nms_separates_classes_with_negative_coordinates():
    boxes = np.array([[-50, -50, 5, 5], [-50, -50, 5, 5.0]])
    np.testing.assert_array_equal(batched_nms(boxes, [0.9, 0.8], [0, 1], 0.5), [0, 1])
    np.testing.assert_array_equal(batched_nms(boxes, [0.9, 0.8], [1, 1], 0.5), [0])


def test_batched_nms_keeps_overlapping_boxes_of_other_classes():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10.0]])
    scores, labels = np.array([0.9, 0.8, 0.7]), np.array([1, 2, 1])
    np.testing.assert_array_equal(batched_nms(boxes, scores, labels, 0.5), [0, 1])


def test_anchors_hand_case():
    np.testing.assert_allclose(cell_anchors([4.0], [1.0, 4.0]), [[-2, -2, 2, 2], [-1, -4, 1, 4]])
    anchors = anchor_grid((2, 3), stride=4, sizes=[4.0, 8.0])
    assert anchors.shape == (2 * 3 * 2, 4) and anchors.dtype == np.float32
    # index (y * W + x) * A + a: cell (y=1, x=2) is centred at (10, 6); its second anchor has size 8
    np.testing.assert_allclose(anchors[(1 * 3 + 2) * 2 + 1], [6, 2, 14, 10])
    np.testing.assert_allclose(anchors[0], [0, 0, 4, 4])
    with pytest.raises(ValueError, match="cell_anchors"):
        cell_anchors([-1.0], [1.0])


def test_match_to_ground_truth_thresholds_and_low_quality_rescue():
    gt = np.array([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    references = np.array([[0, 0, 10, 10],      # IoU 1 with gt 0
                           [0, 0, 10, 5],       # IoU 0.5 with gt 0: ignored between 0.3 and 0.7
                           [40, 40, 50, 50],    # nothing: background
                           [20, 20, 30, 23.0]])  # IoU 0.3 with gt 1, its best anchor
    np.testing.assert_array_equal(match_to_ground_truth(references, gt, 0.7, 0.3), [0, IGNORED, BACKGROUND, IGNORED])
    np.testing.assert_array_equal(match_to_ground_truth(references, gt, 0.7, 0.3, allow_low_quality_matches=True),
                                  [0, IGNORED, BACKGROUND, 1])
    np.testing.assert_array_equal(match_to_ground_truth(references, np.zeros((0, 4)), 0.7, 0.3), [BACKGROUND] * 4)


def test_sample_balanced_caps_positives():
    matched = np.array([0, 1, 0, 2, BACKGROUND, BACKGROUND, IGNORED, BACKGROUND, 0, 1])
    positive, negative = sample_balanced(matched, batch_size=6, positive_fraction=0.5,
                                         rng=np.random.default_rng(0))
    assert len(positive) == 3 and len(negative) == 3
    assert (matched[positive] >= 0).all() and (matched[negative] == BACKGROUND).all()
    assert len(set(positive)) == 3
    positive, negative = sample_balanced(matched, batch_size=100, positive_fraction=0.25, rng=np.random.default_rng(0))
    assert len(positive) == 6 and len(negative) == 3  # fewer than asked: all there are
