"""Figures for explanations: heat-map overlays, CAM grids with confidence-coloured titles, attribution
tables, deletion/insertion curves and the model-randomisation sanity check.

Every function draws on a standalone matplotlib ``Figure`` (Agg, no pyplot state), saves a PNG
atomically to ``path`` and returns the path. Images are (C, H, W) arrays in [0, 1] (C = 1 or 3);
maps are (H, W) arrays of any range, stretched to the full colour scale for display (imshow's own
min-max scaling). Curves and sanity-check results are the plain containers of
``minidl.explain.evaluation``, read by attribute (viz sits below explain and does not import it).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from ..io import atomic_write

CONFIDENT, UNSURE = "tab:green", "tab:red"
HEATMAP = "jet"
# the DeepLearning.AI course's styles: CAM in Greens (confident) / Reds over the image, saliency in HOT
SEED_CAM_COLORMAPS = {True: "Greens", False: "Reds"}
COURSE_SALIENCY_COLORMAP = "hot"
CAM_STYLES = ("jet", "seed")


def _save(figure: Figure, path) -> Path:
    return atomic_write(path, lambda file: figure.savefig(file, format="png", dpi=120))


def _show_image(axes, image: np.ndarray, dim: float = 1.0) -> None:
    """Draw a (C, H, W) image in [0, 1] (grey for C = 1), optionally dimmed towards black."""
    pixels = np.clip(image.transpose(1, 2, 0), 0, 1) * dim
    if pixels.shape[2] == 1:
        axes.imshow(pixels[:, :, 0], cmap="gray", vmin=0, vmax=1)
    else:
        axes.imshow(pixels)
    axes.set_axis_off()


def overlay(axes, image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5) -> None:
    """The image with the normalised heat map blended on top (red = high, blue = low)."""
    _show_image(axes, image)
    axes.imshow(heatmap, cmap=HEATMAP, alpha=alpha)


def course_blend(image: np.ndarray, map_uint8: np.ndarray, colormap: str = COURSE_SALIENCY_COLORMAP,
                 weight: float = 0.5) -> np.ndarray:
    """The course's overlay ``(1 - weight) * image + weight * colormap(map / 255)``: (H, W, 3) in [0, 1].

    image: (C, H, W) in [0, 1];  map_uint8: (H, W) uint8 (the course's min-max scaled 0..255 map);
    weight 0.5 and "hot" are the course's cv2.addWeighted(img, 0.5, applyColorMap(map, HOT), 0.5, 0)
    (matplotlib's "hot" starts at a 4 % red where OpenCV's starts at black; the ramps are alike).
    """
    if map_uint8.dtype != np.uint8 or map_uint8.shape != image.shape[1:]:
        raise ValueError(f"course_blend: map must be uint8 of the image's size {image.shape[1:]}, "
                         f"got {map_uint8.dtype} {map_uint8.shape}")
    pixels = np.clip(image.transpose(1, 2, 0), 0, 1)
    pixels = np.repeat(pixels, 3 // pixels.shape[2], axis=2)
    colours = colormaps[colormap](map_uint8.astype(np.float64) / 255)[..., :3]
    return (1 - weight) * pixels + weight * colours


def seed_cam_overlay(axes, image: np.ndarray, cam: np.ndarray, confident: bool, alpha: float = 0.5) -> None:
    """The course's CAM figure: the CAM itself in Greens (confident) or Reds at ``alpha`` over the image;
    the darker the colour, the larger the CAM."""
    _show_image(axes, image)
    axes.imshow(cam, cmap=SEED_CAM_COLORMAPS[bool(confident)], alpha=alpha)


def confidence_title(axes, label: str, confidence: float, threshold: float = 0.9) -> None:
    """Title "label 97.3%", green when confidence >= threshold, red otherwise."""
    axes.set_title(f"{label} {100 * confidence:.1f}%", fontsize=9,
                   color=CONFIDENT if confidence >= threshold else UNSURE)


def plot_cam_grid(images, maps, labels: Sequence[str], confidences, path, threshold: float = 0.9,
                  columns: int = 6, title: str | None = None, style: str = "jet") -> Path:
    """A grid of images with their CAM overlaid; each title is the predicted label and confidence,
    green at or above ``threshold``, red below.  images: (N, C, H, W);  maps: (N, H, W).

    style "jet": the CAM in jet over the image (red = high);  "seed": the DeepLearning.AI course's
    figure, the CAM in green (confident) or red shades over the image, darker = higher.
    """
    if style not in CAM_STYLES:
        raise ValueError(f"plot_cam_grid: style must be one of {CAM_STYLES}, got {style!r}")
    rows = -(-len(images) // columns)
    figure = Figure(figsize=(2.0 * columns, 2.2 * rows + 0.4), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    for k, axes in enumerate(grid.flat):
        axes.set_axis_off()
        if k < len(images):
            if style == "seed":
                seed_cam_overlay(axes, images[k], maps[k], confidences[k] >= threshold)
            else:
                overlay(axes, images[k], maps[k])
            confidence_title(axes, labels[k], confidences[k], threshold)
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def plot_attribution_table(images, columns: Mapping[str, np.ndarray], labels: Sequence[str], confidences, path,
                           overlaid: Collection[str] = (), threshold: float = 0.9, title: str | None = None,
                           course_blended: Collection[str] = ()) -> Path:
    """One row per image: the image (titled with prediction and confidence), then one map per column.

    columns: name -> maps (N, H, W); names in ``overlaid`` are drawn in jet over the image, names in
    ``course_blended`` (uint8 maps) as the course's 50/50 HOT blend (``course_blend``), the others
    drawn alone (bright = important), as saliency maps usually are.
    """
    figure = Figure(figsize=(2.2 * (len(columns) + 1), 2.3 * len(images) + 0.4), layout="constrained")
    grid = figure.subplots(len(images), len(columns) + 1, squeeze=False)
    for n, row in enumerate(grid):
        _show_image(row[0], images[n])
        confidence_title(row[0], labels[n], confidences[n], threshold)
        for axes, (name, maps) in zip(row[1:], columns.items()):
            if name in overlaid:
                overlay(axes, images[n], maps[n])
            elif name in course_blended:
                axes.imshow(course_blend(images[n], maps[n]))
                axes.set_axis_off()
            else:
                axes.imshow(maps[n], cmap="inferno")
                axes.set_axis_off()
            if n == 0:
                axes.set_title(name, fontsize=10, fontweight="bold")
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def plot_perturbation_curves(curves: Mapping[str, Mapping], path,
                             title: str | None = None) -> Path:
    """One panel per kind ("deletion", "insertion"), one line per method: mean p(target) over images
    against the fraction of pixels moved, with the mean AUC in the legend.

    curves: kind -> method -> curve with ``fractions`` (S,), ``probabilities`` (N, S), ``auc`` (N,).
    """
    figure = Figure(figsize=(5.5 * len(curves), 5), layout="constrained")
    for axes, (kind, methods) in zip(figure.subplots(1, len(curves), squeeze=False)[0], curves.items()):
        for method, curve in methods.items():
            axes.plot(curve.fractions, curve.probabilities.mean(axis=0), label=f"{method} (AUC {curve.auc.mean():.3f})")
        axes.set_title(kind)
        axes.set_xlabel("fraction of pixels moved")
        axes.set_ylabel("p(target class)")
        axes.set_ylim(0, 1)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2)  # below: no curve hidden
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def plot_randomization(result, image: np.ndarray, path, image_index: int = 0,
                       title: str | None = None) -> Path:
    """Top: mean (and per-image spread) Spearman correlation with the trained model's maps as layers
    are randomised from the top down. Bottom: one image's map after each step.

    result: ``layers`` (L names), ``correlations`` (L, N), ``maps`` (L, N, H, W);  image: (C, H, W).
    """
    steps = len(result.layers)
    width = max(8.0, 1.6 * (steps + 1))
    row_height = width / (steps + 1) + 0.4  # square map panels plus their titles
    figure = Figure(figsize=(width, 3.6 + row_height), layout="constrained")
    top, bottom = figure.subfigures(2, 1, height_ratios=[3.6, row_height])
    axes = top.subplots()
    positions = np.arange(steps)
    axes.plot(positions, result.correlations.mean(axis=1), marker="o", label="mean over images")
    axes.fill_between(positions, result.correlations.min(axis=1), result.correlations.max(axis=1),
                      alpha=0.2, label="min..max")
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set_xticks(positions, result.layers, rotation=30, ha="right", fontsize=8)
    axes.set_ylabel("Spearman rank correlation")
    axes.set_xlabel("randomised down to layer (cumulative, top first)")
    axes.set_ylim(min(-0.2, result.correlations.min() - 0.05), 1.05)
    axes.grid(alpha=0.3)
    axes.legend()
    cells = bottom.subplots(1, steps + 1)
    _show_image(cells[0], image)
    cells[0].set_title("image", fontsize=8)
    for cell, layer, maps in zip(cells[1:], result.layers, result.maps):
        cell.imshow(maps[image_index], cmap="inferno")
        cell.set_title(layer, fontsize=8)
        cell.set_axis_off()
    if title:
        figure.suptitle(title)
    return _save(figure, path)
