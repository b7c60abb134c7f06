"""Mask R-CNN end to end on tiny cases: overfitting, inference output, border objects, proposals."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_figure

import minidl
from minidl.detection.evaluation import mask_iou
from minidl.detection.shapes import ShapesDataset, ShapesSample, masks_to_boxes, shape_mask
from models.mask_rcnn import MaskRCNN, MaskRCNNConfig

SMALL = MaskRCNNConfig(channels=(8, 16, 32))


def small_model(seed=0):
    minidl.manual_seed(seed)
    return MaskRCNN(SMALL, generator=np.random.default_rng(seed))


def losses_with_proposals(model, images, targets, proposals, add_rpn_proposals):
    """All five loss terms, the box and mask heads seeing the given proposals (and, if
    ``add_rpn_proposals``, the RPN's own as well)."""
    features = model.features(images)
    objectness, deltas, anchors, rpn_proposals = model.propose(features)
    losses = model.rpn_losses(objectness, deltas, anchors, targets)
    if add_rpn_proposals:
        proposals = [np.concatenate([mine, theirs]) for mine, theirs in zip(proposals, rpn_proposals)]
    losses.update(model.roi_losses(features, proposals, targets))
    return losses


def fixed_losses(model, images, targets, proposals):
    """The loss terms on fixed inputs: only the given proposals, a fixed sampling seed, no graph."""
    model.generator = np.random.default_rng(123)
    with minidl.no_grad():
        losses = losses_with_proposals(model, images, targets, proposals, add_rpn_proposals=False)
    return {name: value.item() for name, value in losses.items()}


def test_overfitting_one_image_drives_every_loss_down_and_recovers_masks():
    """Train on one image; compare every loss term before and after on the same inputs: a fixed set
    of proposals (each object's box jittered by up to 3 px, plus random boxes; the RPN's own
    proposals move as it learns) and a fixed sampling seed. Then run the full inference pipeline."""
    images, samples = ShapesDataset(1, seed=5).batch([0])
    targets = [s.target() for s in samples]
    rng = np.random.default_rng(0)
    jittered = np.repeat(samples[0].boxes, 4, axis=0) + rng.uniform(-5, 5, (4 * len(samples[0].boxes), 4))
    corners = rng.uniform(0, 48, (20, 2))
    proposals = [np.concatenate([jittered, np.concatenate([corners, corners + rng.uniform(6, 16, (20, 2))], 1)])]
    model = small_model()
    before = fixed_losses(model, images, targets, proposals)
    optimizer = minidl.optim.Adam(model.parameters(), lr=5e-3)
    steps = 240
    for step in range(steps):
        optimizer.param_groups[0]["lr"] = 5e-3 * 0.5 * (1 + np.cos(np.pi * step / steps))
        optimizer.zero_grad()
        sum(losses_with_proposals(model, images, targets, proposals, add_rpn_proposals=True).values()).backward()
        optimizer.step()
    after = fixed_losses(model, images, targets, proposals)
    for name in before:
        assert after[name] < before[name] / 10, f"{name}: {before[name]:.4g} -> {after[name]:.4g}"

    model.eval()
    with minidl.no_grad():
        detection = model(images)[0]
    truth = samples[0]
    confident = detection["scores"] >= 0.5
    assert confident.sum() == len(truth.labels)
    ious = mask_iou(detection["masks"][confident], truth.masks)
    assert (ious.max(axis=0) > 0.8).all(), ious
    np.testing.assert_array_equal(detection["labels"][confident][ious.argmax(axis=0)], truth.labels)


def test_inference_output_format_and_proposals_are_clipped():
    model = small_model(1)
    images, _ = ShapesDataset(2, seed=9).batch([0, 1])
    model.eval()
    with minidl.no_grad():
        features = model.features(images)
        objectness, deltas, _, proposals = model.propose(features)
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
    rng = np.random.default_rng(0)
    objectness = rng.standard_normal((1, len(anchors))).astype(np.float32)
    deltas = rng.normal(0, 0.5, (1, len(anchors), 4)).astype(np.float32)
    deltas[0, :, 2:] = 50.0  # exp(50) overflows float32 without the clamp
    deltas[0, ::2, 2:] = -50.0  # and these shrink to nothing: removed as too small
    (boxes,) = model.proposals(objectness, deltas, anchors, (64, 64))
    assert len(boxes) > 0 and np.isfinite(boxes).all() and boxes.min() >= 0 and boxes.max() <= 64
    assert (boxes[:, 2:] - boxes[:, :2] >= SMALL.min_box_size).all()


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


def test_example_writes_its_run_folder(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    import mask_rcnn_shapes

    metrics = mask_rcnn_shapes.main(["--steps", "2", "--batch-size", "2", "--val-images", "6", "--no-progress",
                                     "--out", str(tmp_path)])
    for name in ("metrics.json", "checkpoint.npz"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert_figure(tmp_path / "losses.png")
    assert_figure(tmp_path / "predictions.png")
    saved = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("box_ap50", "mask_ap50", "mask_ap75", "mask_ap", "train_seconds", "rpn_recall50",
                "mask_iou_on_gt_boxes"):
        assert key in saved and saved[key] == metrics[key], key
    assert saved["steps"] == 2 and len(saved["losses"]["mask"]) == 2 and saved["val_images"] == 6
