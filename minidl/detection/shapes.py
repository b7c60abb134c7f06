"""Synthetic instance-segmentation data: coloured squares, circles and triangles on a plain background.

Each image is ``size`` x ``size`` RGB in [0, 1] with 1 to 4 objects. An object gets a class
(1 square, 2 circle, 3 triangle; 0 is the background), a side length, a position and a colour
that differs clearly from the background. Objects are painted one after the other; a placement
whose box overlaps an earlier one by IoU > ``max_overlap`` is redrawn, so objects rarely touch
("non-overlapping-ish"). An object's mask is the set of its pixels still visible at the end, and
its box is the tight box of that mask, ``(x1, y1, x2, y2)`` with pixel edges as coordinates
(see ``minidl.detection.boxes``). A pixel belongs to a shape when the shape contains its centre.

Everything is drawn from one ``numpy.random.Generator``, so a seed fixes the data:
``validation_set()`` is always the same 200 images, ``ShapesDataset(seed)`` the same training stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .boxes import box_iou

CLASS_NAMES = ("background", "square", "circle", "triangle")
VALIDATION_SEED = 2026
VALIDATION_SIZE = 200


@dataclass
class ShapesSample:
    """One image and its instances: image (3, H, W) float32 in [0, 1]; boxes (n, 4) float32;
    labels (n,) int64 in 1..3; masks (n, H, W) bool."""

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    masks: np.ndarray

    def target(self) -> dict:
        """The instances as a detector's target dict: {"boxes", "labels", "masks"} (torchvision's keys)."""
        return {"boxes": self.boxes, "labels": self.labels, "masks": self.masks}


def shape_mask(label: int, top: int, left: int, side: int, image_size: int) -> np.ndarray:
    """The pixels of one shape as an (image_size, image_size) bool mask.

    square: the side x side block at (top, left); circle: the disc inscribed in that block;
    triangle: the upright isosceles triangle with the block's bottom edge as base and the middle
    of its top edge as apex. Tested at pixel centres (x + 0.5, y + 0.5).
    """
    centres = np.arange(image_size) + 0.5
    y, x = centres[:, None], centres[None, :]
    u, v = (x - left) / side, (y - top) / side  # position inside the block, in [0, 1] when inside
    inside = (u >= 0) & (u <= 1) & (v >= 0) & (v <= 1)
    if label == 1:
        return inside
    if label == 2:
        return (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25
    if label == 3:
        return inside & (np.abs(u - 0.5) <= 0.5 * v)
    raise ValueError(f"shape_mask: label must be 1 (square), 2 (circle) or 3 (triangle), got {label}")


def _distinct_colour(rng: np.random.Generator, background: np.ndarray, min_distance: float) -> np.ndarray:
    """A random RGB colour at least ``min_distance`` (Euclidean) away from the background."""
    while True:
        colour = rng.uniform(0, 1, 3)
        if np.linalg.norm(colour - background) >= min_distance:
            return colour


def make_sample(rng: np.random.Generator, image_size: int = 64, max_objects: int = 4, min_side: int = 10,
                max_side: int = 26, max_overlap: float = 0.1, noise: float = 0.02) -> ShapesSample:
    """Draw one image with 1..max_objects shapes of side in [min_side, max_side] (see module docstring).

    ``noise``: standard deviation of Gaussian pixel noise added at the end (then clipped to [0, 1]).
    """
    background = rng.uniform(0, 1, 3)
    image = np.broadcast_to(background[:, None, None], (3, image_size, image_size)).copy()
    wanted = int(rng.integers(1, max_objects + 1))
    placed_boxes, labels, masks = [], [], []
    for _ in range(50 * wanted):  # redraw overlapping placements; give up after enough tries
        if len(labels) == wanted:
            break
        side = int(rng.integers(min_side, max_side + 1))
        top, left = (int(v) for v in rng.integers(0, image_size - side + 1, 2))
        box = np.array([[left, top, left + side, top + side]], dtype=np.float64)
        if placed_boxes and box_iou(box, np.concatenate(placed_boxes)).max() > max_overlap:
            continue
        label = int(rng.integers(1, len(CLASS_NAMES)))
        mask = shape_mask(label, top, left, side, image_size)
        for earlier in masks:  # the new shape is painted on top of the earlier ones
            earlier &= ~mask
        image[:, mask] = _distinct_colour(rng, background, 0.4)[:, None]
        placed_boxes.append(box)
        labels.append(label)
        masks.append(mask)
    image = np.clip(image + rng.normal(0, noise, image.shape), 0, 1).astype(np.float32)
    visible = [k for k, m in enumerate(masks) if m.sum() >= 4]  # drop objects an overlap nearly hid
    masks = np.array([masks[k] for k in visible], dtype=bool).reshape(-1, image_size, image_size)
    return ShapesSample(image, masks_to_boxes(masks), np.array([labels[k] for k in visible], dtype=np.int64), masks)


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight box of each mask, pixel edges as coordinates:  (n, H, W) bool -> (n, 4) float32.

    x1 = first column with a pixel, x2 = last such column + 1 (likewise y); an empty mask gives zeros.
    """
    masks = np.asarray(masks, dtype=bool)
    boxes = np.zeros((len(masks), 4), dtype=np.float32)
    for k, mask in enumerate(masks):
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if rows.size:
            boxes[k] = cols[0], rows[0], cols[-1] + 1, rows[-1] + 1
    return boxes


class ShapesDataset:
    """``n`` samples drawn from ``seed``: ``dataset[i]`` is a ``ShapesSample``; samples are made once, on
    first use. ``batch(indices)`` stacks the images to (B, 3, H, W) and lists the targets."""

    def __init__(self, n: int, seed: int, **sample_options):
        if n < 1:
            raise ValueError(f"ShapesDataset: n must be >= 1, got {n}")
        self.n, self.seed, self.sample_options = n, seed, sample_options
        self._samples = None

    @property
    def samples(self) -> list:
        if self._samples is None:
            rng = np.random.default_rng(self.seed)
            self._samples = [make_sample(rng, **self.sample_options) for _ in range(self.n)]
        return self._samples

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> ShapesSample:
        return self.samples[index]

    def batch(self, indices) -> tuple:
        """(images (B, 3, H, W) float32, [ShapesSample, ...]) for the given indices."""
        samples = [self.samples[i] for i in indices]
        return np.stack([s.image for s in samples]), samples


def validation_set(n: int = VALIDATION_SIZE) -> ShapesDataset:
    """The fixed validation set: 200 images from seed 2026 (default sample options); ``n`` < 200
    gives its first n images (they are drawn one after the other from the same generator)."""
    if not 1 <= n <= VALIDATION_SIZE:
        raise ValueError(f"validation_set: n must be in [1, {VALIDATION_SIZE}], got {n}")
    return ShapesDataset(n, VALIDATION_SEED)
