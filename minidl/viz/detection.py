"""Instance-segmentation figures: boxes, class labels and masks drawn over images, and loss curves per term.

Each instance gets one colour (by class), used for its mask (blended onto the image) and its box
outline; the label above the box names the class, with the score for predictions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..io import atomic_write

INSTANCE_COLORS = np.array([[0.95, 0.3, 0.2], [0.2, 0.75, 0.3], [0.25, 0.45, 1.0], [1.0, 0.8, 0.1],
                            [0.8, 0.3, 0.9], [0.1, 0.85, 0.85]])


def overlay_instances(image: np.ndarray, masks, labels, alpha: float = 0.55) -> np.ndarray:
    """(H, W, 3) image in [0, 1] with each mask blended in its class colour:
    out = (1 - alpha) * image + alpha * colour on the mask's pixels (later masks on top)."""
    out = np.array(image, dtype=np.float64)
    for mask, label in zip(np.asarray(masks, dtype=bool), labels):
        colour = INSTANCE_COLORS[int(label) % len(INSTANCE_COLORS)]
        out[mask] = (1 - alpha) * out[mask] + alpha * colour
    return out


def draw_instances(axes, image: np.ndarray, boxes, labels, masks=None, scores=None,
                   class_names: Sequence[str] = ()) -> None:
    """Draw one image (3, H, W) in [0, 1] with its instances on matplotlib ``axes``.

    boxes (D, 4) as (x1, y1, x2, y2) pixel edges; labels (D,); masks (D, H, W) bool or None;
    scores (D,) or None (ground truth). Pixel (i, j) is drawn on [j, j+1] x [i, i+1], so a box
    edge at x = j sits exactly on the pixel border.
    """
    picture = np.clip(np.asarray(image).transpose(1, 2, 0), 0, 1)
    if masks is not None and len(labels):
        picture = overlay_instances(picture, masks, labels)
    height, width = picture.shape[:2]
    axes.imshow(picture, extent=(0, width, height, 0), interpolation="nearest")
    for k, ((x1, y1, x2, y2), label) in enumerate(zip(np.asarray(boxes).reshape(-1, 4), labels)):
        colour = INSTANCE_COLORS[int(label) % len(INSTANCE_COLORS)]
        outline = Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=1.5)
        outline.set_path_effects([patheffects.withStroke(linewidth=2.6, foreground="black")])  # visible on any colour
        axes.add_patch(outline)
        name = class_names[int(label)] if int(label) < len(class_names) else str(int(label))
        text = name if scores is None else f"{name} {scores[k]:.2f}"
        axes.text(x1, y1 - 0.5, text, color="white", fontsize=6, va="bottom",
                  bbox={"facecolor": colour, "edgecolor": "none", "pad": 0.8, "alpha": 0.85})
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)
    axes.set_xticks([])
    axes.set_yticks([])


def plot_detections(images, predictions: Sequence[Mapping], ground_truths: Sequence[Mapping], path, *,
                    class_names: Sequence[str] = (), min_score: float = 0.5, title: str | None = None) -> Path:
    """Save a PNG grid: one column per image, ground truth on top, predictions with score >=
    ``min_score`` below.

    images: (N, 3, H, W) in [0, 1]; predictions: per image "boxes", "labels", "scores", "masks";
    ground_truths: per image "boxes", "labels", "masks". Returns the path.
    """
    images = np.asarray(images)
    if images.ndim != 4 or len(images) != len(predictions) or len(images) != len(ground_truths):
        raise ValueError(f"plot_detections: need (N, 3, H, W) images with one prediction and one ground truth "
                         f"each, got images {images.shape}, {len(predictions)} predictions, "
                         f"{len(ground_truths)} ground truths")
    figure = Figure(figsize=(2.3 * len(images) + 0.4, 5.2), layout="constrained")
    grid = figure.subplots(2, len(images), squeeze=False)
    for column, (image, prediction, truth) in enumerate(zip(images, predictions, ground_truths)):
        draw_instances(grid[0, column], image, truth["boxes"], truth["labels"], truth["masks"], class_names=class_names)
        shown = np.asarray(prediction["scores"]) >= min_score
        draw_instances(grid[1, column], image, np.asarray(prediction["boxes"])[shown],
                       np.asarray(prediction["labels"])[shown], np.asarray(prediction["masks"])[shown],
                       np.asarray(prediction["scores"])[shown], class_names)
    grid[0, 0].set_ylabel("ground truth", fontsize=10)
    grid[1, 0].set_ylabel(f"prediction\n(score >= {min_score})", fontsize=10)
    if title:
        figure.suptitle(title)
    return atomic_write(path, lambda file: figure.savefig(file, format="png", dpi=110))


def plot_loss_terms(losses: Mapping[str, Sequence[float]], path, smoothing: int = 20,
                    title: str | None = None) -> Path:
    """Save a PNG of per-step loss terms (one line each, log scale) to ``path``.

    losses: name -> values per training step. Each line is the running mean over ``smoothing``
    steps (the raw values are drawn faintly behind it).
    """
    if not losses:
        raise ValueError("plot_loss_terms: no loss terms to plot")
    figure = Figure(figsize=(7, 4.2), layout="constrained")
    axes = figure.subplots()
    for index, (name, values) in enumerate(losses.items()):
        values = np.asarray(values, dtype=np.float64)
        steps = np.arange(1, len(values) + 1)
        colour = f"C{index}"
        axes.plot(steps, values, color=colour, alpha=0.2, linewidth=0.7)
        window = max(1, min(smoothing, len(values)))
        smooth = np.convolve(values, np.ones(window) / window, mode="valid")
        axes.plot(steps[window - 1:], smooth, color=colour, label=name, linewidth=1.6)
    axes.set_yscale("log")
    axes.set_xlabel("training step")
    axes.set_ylabel("loss")
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize=8)
    axes.set_title(title or f"loss terms per step (running mean over {smoothing} steps)")
    return atomic_write(path, lambda file: figure.savefig(file, format="png", dpi=120))
