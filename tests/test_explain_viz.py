"""The explanation figures are written as PNG files from the containers minidl.explain returns."""

from __future__ import annotations

import numpy as np
from helpers import assert_figure

from minidl.explain import PerturbationCurve, RandomizationResult
from minidl.viz.explanations import (plot_attribution_table, plot_cam_grid, plot_perturbation_curves,
                                     plot_randomization)



def test_every_explanation_figure_is_written(tmp_path):
    """Each figure is a drawn PNG whose shape follows its panels (rows of images, side-by-side curves)."""
    rng = np.random.default_rng(0)
    gray, color, maps = rng.random((5, 1, 12, 12)), rng.random((3, 3, 12, 12)), rng.random((5, 12, 12))
    confidences = [0.95, 0.5, 0.9, 0.89, 1.0]
    wide = assert_figure(plot_cam_grid(gray, maps, list("abcde"), confidences, tmp_path / "wide.png", columns=5))
    grid = assert_figure(plot_cam_grid(gray, maps, list("abcde"), confidences, tmp_path / "grid.png", columns=3))
    assert grid[0] < wide[0] and grid[1] > wide[1]  # 2 rows of 3 against 1 row of 5
    table = assert_figure(plot_attribution_table(color, {"saliency": maps[:3], "Grad-CAM": maps[:3]},
                                                 ["cat", "dog", "cat"], confidences[:3], tmp_path / "table.png",
                                                 overlaid={"Grad-CAM"}))
    assert table[1] > table[0]  # 3 images down, image + 2 methods across
    fractions = np.linspace(0, 1, 5)
    curve = PerturbationCurve(fractions, rng.random((3, 5)), rng.random(3))
    curves = assert_figure(plot_perturbation_curves({"deletion": {"a": curve}, "insertion": {"a": curve}},
                                                    tmp_path / "curves.png"))
    assert curves[0] > 2 * curves[1]  # two panels side by side
    result = RandomizationResult(["original", "linear", "conv"], rng.random((3, 3)), rng.random((3, 3, 12, 12)))
    assert_figure(plot_randomization(result, color[0], tmp_path / "sanity.png"))
