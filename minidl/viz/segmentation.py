"""Segmentation figures: a grid with one row per image and one column per mask (truth, predictions).

Masks are integer class maps (H, W) drawn with a fixed palette, the same colour for the same class
in every panel: class 0 (background) dark, class 1 (pet) orange, class 2 (border) blue, and pixels
equal to ``ignore_index`` grey. The optional overlay column blends one mask's non-background
pixels onto the photo, to show whether the predicted outline sits on the animal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..io import atomic_write

CLASS_COLORS = np.array([[0.12, 0.12, 0.16], [1.0, 0.55, 0.1], [0.25, 0.55, 1.0], [0.3, 0.8, 0.3],
                         [0.85, 0.25, 0.6], [0.95, 0.9, 0.2]])
IGNORED_COLOR = np.array([0.6, 0.6, 0.6])


def colorize_mask(mask: np.ndarray, ignore_index: int = -100) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) RGB floats in [0, 1], ``CLASS_COLORS[class]``; ignored pixels grey."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or not np.issubdtype(mask.dtype, np.integer):
        raise ValueError(f"colorize_mask: mask must be an (H, W) integer array, got {mask.dtype} {mask.shape}")
    ignored = mask == ignore_index
    classes = np.where(ignored, 0, mask)
    if classes.min() < 0 or classes.max() >= len(CLASS_COLORS):
        raise ValueError(f"colorize_mask: classes must lie in 0..{len(CLASS_COLORS) - 1} (or be ignore_index="
                         f"{ignore_index}), got values {np.unique(mask)[:10]}")
    rgb = CLASS_COLORS[classes]
    rgb[ignored] = IGNORED_COLOR
    return rgb


def overlay_mask(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the class colours onto an (H, W, 3) image in [0, 1] where mask > 0 (not background):
    out = (1 - alpha) * image + alpha * colour there, the image elsewhere."""
    foreground = (np.asarray(mask) > 0)[..., None]
    return np.where(foreground, (1 - alpha) * image + alpha * colorize_mask(mask), image)


def plot_segmentations(images, masks: Mapping[str, np.ndarray], path, *, overlay: str | None = None,
                       class_names: Sequence[str] = ("background", "pet"), captions: Mapping[str, Sequence[str]]
                       | None = None, ignore_index: int = -100, title: str | None = None) -> Path:
    """Save a PNG grid to ``path``: per image, the photo, each mask of ``masks``, and optionally an overlay.

    images: (N, 3, H, W) floats in [0, 1] (or (N, 1, H, W) grey).
    masks:  column title -> (N, H, W) integer class maps, e.g. {"true mask": y, "predicted mask": p}
            or one entry per model; drawn in this order.
    overlay: the name of a mask in ``masks`` to blend onto the photo in a last column.
    captions: column title -> N short strings shown under that column's panels (e.g. per-image IoU).
    Returns the path.
    """
    images = np.asarray(images.data if hasattr(images, "data") else images)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"plot_segmentations: images must be (N, 3, H, W) or (N, 1, H, W), got {images.shape}")
    photos = np.clip(np.repeat(images, 3 // images.shape[1], axis=1).transpose(0, 2, 3, 1), 0, 1)
    for name, mask in masks.items():
        if np.shape(mask) != photos.shape[:3]:
            raise ValueError(f"plot_segmentations: mask {name!r} has shape {np.shape(mask)}, "
                             f"expected {photos.shape[:3]} to match the images")
    if overlay is not None and overlay not in masks:
        raise ValueError(f"plot_segmentations: overlay={overlay!r} is not one of the masks {list(masks)}")
    captions = captions or {}

    panels = {"image": photos, **{name: np.asarray(mask) for name, mask in masks.items()}}
    if overlay is not None:
        panels[f"{overlay} on image"] = np.stack([overlay_mask(p, m) for p, m in zip(photos, panels[overlay])])
    rows, columns = len(photos), len(panels)
    figure = Figure(figsize=(2.1 * columns, 2.1 * rows + 0.6), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    for column, (name, values) in enumerate(panels.items()):
        for row in range(rows):
            axes = grid[row, column]
            panel = values[row]
            axes.imshow(colorize_mask(panel, ignore_index) if panel.ndim == 2 else panel, interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
            if row == 0:
                axes.set_title(name, fontsize=10)
            if name in captions:
                axes.set_xlabel(captions[name][row], fontsize=8)
    legend = [Patch(color=CLASS_COLORS[i], label=label) for i, label in enumerate(class_names)]
    if any((np.asarray(m) == ignore_index).any() for m in masks.values()):
        legend.append(Patch(color=IGNORED_COLOR, label="ignored"))
    figure.legend(handles=legend, loc="outside lower center", ncols=len(legend), fontsize=9, frameon=False)
    if title:
        figure.suptitle(title)
    return atomic_write(path, lambda file: figure.savefig(file, format="png", dpi=100))
