"""Mask R-CNN end to end on tiny cases: overfitting, inference output, border objects, proposals."""

import numpy as np
import pytest

import minidl
from minidl.detection.evaluation import mask_iou
from minidl.detection.shapes import ShapesDataset, ShapesSample, masks_to_boxes, shape_mask
from models.mask_rcnn import MaskRCNN, MaskRCNNConfig

SMALL = MaskRCNNConfig(channels=(8, 16, 32), box_hidden=64, mask_channels=16)


def small_model(seed=0):
    minidl.manual_seed(seed)
    return MaskRCNN(SMALL, generator=np.random.default_rng(seed))


def losses_on(model, images, targets, proposals):
    """All five loss terms of ``model`` on fixed inputs: the given proposals and a fixed sampling seed."""
    model.generator = np.random.default_rng(123)
    with minidl.no_grad():
        features = model.features(images)
        objectness, deltas, anchors, _ = model.propose(features)
        losses = model.rpn_losses(objectness, deltas, anchors, targets)
        losses.update(model.roi_losses(features, proposals, targets))
    return {name: value.item() for name, value in losses.items()}


def test_overfitting_one_image_drives_every_loss_down_and_recovers_masks():
    images, samples = ShapesDataset(1, seed=5).batch([0])
    targets = [s.target() for s in samples]
    model = small_model()
    initial = {name: value.copy() for name, value in model.state_dict().items()}
    optimizer = minidl.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(150):
        optimizer.zero_grad()
        losses = model(images, targets)
        sum(losses.values()).backward()
        optimizer.step()

    # before vs after on the same inputs: the trained RPN's proposals and the same samples
    with minidl.no_grad():
        proposals = model.propose(model.features(images))[3]
    after = losses_on(model, images, targets, proposals)
    trained = model.state_dict()
    model.load_state_dict(initial)
    before = losses_on(model, images, targets, proposals)
    for name in before:
        assert after[name] < before[name] / 10, f"{name}: {before[name]:.4g} -> {after[name]:.4g}"

    model.load_state_dict(trained)
    model.eval()
    with minidl.no_grad():
        detection = model(images)[0]
    truth = samples[0]
    confident = detection["scores"] >= 0.5
    assert confident.sum() == len(truth.labels)
    ious = mask_iou(detection["masks"][confident], truth.masks)
    best = ious.argmax(axis=0)
    assert (ious.max(axis=0) > 0.8).all(), ious
    np.testing.assert_array_equal(detection["labels"][confident][best], truth.labels)


def test_inference_output_format_and_proposals_are_clipped():
    model = small_model(1)
    images, _ = ShapesDataset(2, seed=9).batch([0, 1])
    model.eval()
    with minidl.no_grad():
        features = model.features(images)
        objectness, deltas, anchors, proposals = model.propose(features)
        detections = model.detect(features, proposals)
    assert objectness.shape == (2, 16 * 16 * 3) and deltas.shape == (2, 16 * 16 * 3, 4)
    for boxes in proposals:
        assert 0 < len(boxes) <= SMALL.rpn_post_nms_top_n
        assert np.isfinite(boxes).all() and boxes.min() >= 0 and boxes[:, [0, 2]].max() <= 64
        assert boxes[:, [1, 3]].max() <= 64
    for detection in detections:
        count = len(detection["scores"])
        assert count <= SMALL.detections_per_image
        assert detection["boxes"].shape == (count, 4) and detection["masks"].shape == (count, 64, 64)
        assert detection["masks"].dtype == bool and set(detection["labels"]) <= {1, 2, 3}
        assert (detection["scores"] > SMALL.score_threshold).all() and (detection["scores"] <= 1).all()
        assert (np.diff(detection["scores"]) <= 0).all()  # best first


def test_proposals_stay_finite_for_extreme_deltas():
    model = small_model(2)
    anchors = model.anchors((16, 16))
    objectness = np.random.default_rng(0).standard_normal((1, len(anchors))).astype(np.float32)
    deltas = np.full((1, len(anchors), 4), 50.0, dtype=np.float32)  # exp would overflow without the clamp
    deltas[0, ::2] = -50.0
    (boxes,) = model.proposals(objectness, deltas, anchors, (64, 64))
    assert np.isfinite(boxes).all() and boxes.min() >= 0 and boxes.max() <= 64


def test_object_at_the_border_trains_and_predicts():
    """A square cut by the image's right and bottom edges: losses stay finite, masks stay in the image."""
    image = np.full((3, 64, 64), 0.2, dtype=np.float32)
    mask = shape_mask(1, top=50, left=52, side=20, image_size=64)  # only 14 x 12 pixels are inside
    image[:, mask] = 0.9
    sample = ShapesSample(image, masks_to_boxes(mask[None]), np.array([1]), mask[None])
    np.testing.assert_array_equal(sample.boxes, [[52, 50, 64, 64]])
    model = small_model(3)
    optimizer = minidl.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(3):
        optimizer.zero_grad()
        losses = model(image[None], [sample.target()])
        assert all(np.isfinite(value.item()) for value in losses.values()), losses
        sum(losses.values()).backward()
        optimizer.step()
    model.eval()
    with minidl.no_grad():
        detection = model(image[None])[0]
    assert detection["boxes"].min(initial=0) >= 0 and detection["boxes"].max(initial=64) <= 64
    assert detection["masks"].shape[1:] == (64, 64)


def test_training_needs_targets():
    model = small_model()
    with pytest.raises(ValueError, match="one target dict"):
        model(np.zeros((1, 3, 64, 64), dtype=np.float32))
    with pytest.raises(ValueError, match="multiples of 4"):
        model(np.zeros((1, 3, 62, 64), dtype=np.float32), [{}])
