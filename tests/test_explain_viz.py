"""The explanation figures are written as PNG files from the containers minidl.explain returns."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_figure
from matplotlib import colormaps

from minidl.explain import PerturbationCurve, RandomizationResult
from minidl.viz.explanations import (course_blend, plot_attribution_table, plot_cam_grid, plot_perturbation_curves,
                                     plot_randomization)


def test_every_explanation_figure_is_written(tmp_path):
    """Each figure is a drawn PNG whose shape follows its panels (rows of images, side-by-side curves)."""
    rng = np.random.default_rng(0)
    gray, color, maps = rng.random((5, 1, 12, 12)), rng.random((3, 3, 12, 12)), rng.random((5, 12, 12))
    confidences = [0.95, 0.5, 0.9, 0.89, 1.0]
    wide = assert_figure(plot_cam_grid(gray, maps, list("abcde"), confidences, tmp_path / "wide.png", columns=5))
    grid = assert_figure(plot_cam_grid(gray, maps, list("abcde"), confidences, tmp_path / "grid.png", columns=3))
    assert grid[0] < wide[0] and grid[1] > wide[1]  # 2 rows of 3 against 1 row of 5
    assert_figure(plot_cam_grid(gray, maps, list("abcde"), confidences, tmp_path / "seed.png", style="seed"))
    with pytest.raises(ValueError, match="style must be one of"):
        plot_cam_grid(gray, maps, list("abcde"), confidences, tmp_path / "no.png", style="viridis")
    course = (255 * maps[:3]).astype(np.uint8)
    table = assert_figure(plot_attribution_table(color, {"saliency": maps[:3], "Grad-CAM": maps[:3], "course": course},
                                                 ["cat", "dog", "cat"], confidences[:3], tmp_path / "table.png",
                                                 overlaid={"Grad-CAM"}, course_blended={"course"}))
    row = assert_figure(plot_attribution_table(color[:1], {"saliency": maps[:1]}, ["cat"], confidences[:1],
                                               tmp_path / "row.png"))
    assert table[0] > row[0] and table[1] > row[1]  # 3 images down and 3 methods across against 1 and 1
    fractions = np.linspace(0, 1, 5)
    curve = PerturbationCurve(fractions, rng.random((3, 5)), rng.random(3))
    curves = assert_figure(plot_perturbation_curves({"deletion": {"a": curve}, "insertion": {"a": curve}},
                                                    tmp_path / "curves.png"))
    assert curves[0] > 2 * curves[1]  # two panels side by side
    result = RandomizationResult(["original", "linear", "conv"], rng.random((3, 3)), rng.random((3, 3, 12, 12)))
    assert_figure(plot_randomization(result, color[0], tmp_path / "sanity.png"))


def test_course_blend_is_half_image_half_hot_colour():
    image = np.random.default_rng(1).random((3, 4, 5))
    pixels = image.transpose(1, 2, 0)
    darkest, white = colormaps["hot"](0.0)[:3], colormaps["hot"](1.0)[:3]  # near-black red, white
    low, high = np.zeros((4, 5), np.uint8), np.full((4, 5), 255, np.uint8)
    np.testing.assert_allclose(course_blend(image, low), 0.5 * pixels + 0.5 * np.array(darkest))
    np.testing.assert_allclose(course_blend(image, high), 0.5 * pixels + 0.5 * np.array(white))
    gray = image[:1]
    np.testing.assert_allclose(course_blend(gray, np.full((4, 5), 255, np.uint8)),
                               0.5 * np.repeat(gray, 3, 0).transpose(1, 2, 0) + 0.5)
    with pytest.raises(ValueError, match="uint8"):
        course_blend(image, np.zeros((4, 5)))
