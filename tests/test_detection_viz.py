"""Detection figures are written and reject mismatched inputs (minidl.viz.detection)."""

import numpy as np
import pytest
from helpers import assert_figure

from minidl.detection.shapes import CLASS_NAMES, ShapesDataset
from minidl.viz.detection import overlay_instances, plot_detections, plot_loss_terms


def test_plot_detections_and_loss_terms(tmp_path):
    data = ShapesDataset(2, seed=3)
    truths = [s.target() for s in data.samples]
    predictions = [{**t, "scores": np.full(len(t["labels"]), 0.9)} for t in truths]
    images = np.stack([s.image for s in data.samples])
    path = plot_detections(images, predictions, truths, tmp_path / "detections.png", class_names=CLASS_NAMES)
    assert_figure(path)
    with pytest.raises(ValueError, match="plot_detections"):
        plot_detections(images[:1], predictions, truths, tmp_path / "bad.png")
    curves = plot_loss_terms({"a": [1.0, 0.5, 0.25], "b": [0.1, 0.1, 0.05]}, tmp_path / "losses.png", smoothing=2)
    assert_figure(curves)


def test_overlay_blends_only_mask_pixels():
    image = np.zeros((4, 4, 3))
    mask = np.zeros((1, 4, 4), bool)
    mask[0, 1, 2] = True
    out = overlay_instances(image, mask, [1], alpha=0.5)
    assert out[1, 2].any() and not np.delete(out.reshape(16, 3), 6, axis=0).any()
