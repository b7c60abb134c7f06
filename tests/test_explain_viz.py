"""The explanation figures are written as PNG files from the containers minidl.explain returns."""

from __future__ import annotations

import numpy as np

from minidl.explain import PerturbationCurve, RandomizationResult
from minidl.viz.explanations import (plot_attribution_table, plot_cam_grid, plot_perturbation_curves,
                                     plot_randomization)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_png(path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_SIGNATURE


def test_every_explanation_figure_is_written(tmp_path):
    rng = np.random.default_rng(0)
    gray, color, maps = rng.random((5, 1, 12, 12)), rng.random((3, 3, 12, 12)), rng.random((5, 12, 12))
    confidences = [0.95, 0.5, 0.9, 0.89, 1.0]
    assert is_png(plot_cam_grid(gray, maps, list("abcde"), confidences, tmp_path / "grid.png", columns=3))
    assert is_png(plot_attribution_table(color, {"saliency": maps[:3], "Grad-CAM": maps[:3]}, ["cat", "dog", "cat"],
                                         confidences[:3], tmp_path / "table.png", overlaid={"Grad-CAM"}))
    fractions = np.linspace(0, 1, 5)
    curve = PerturbationCurve(fractions, rng.random((3, 5)), rng.random(3))
    assert is_png(plot_perturbation_curves({"deletion": {"a": curve}, "insertion": {"a": curve}},
                                           tmp_path / "curves.png"))
    result = RandomizationResult(["original", "linear", "conv"], rng.random((3, 3)), rng.random((3, 3, 12, 12)))
    assert is_png(plot_randomization(result, color[0], tmp_path / "sanity.png"))
