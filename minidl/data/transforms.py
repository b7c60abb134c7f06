"""Batch transforms for ``DataLoader(transform=...)``: ``t(images, targets) -> (images, targets)``.

They work on whole NumPy batches (images ``(N, C, H, W)``, targets ``(N,)`` labels or
``(N, H, W)`` masks), never modify their inputs, and keep the images' dtype. A random transform
owns its ``np.random.Generator`` (``seed=``, kept as ``.generator``), so a run is reproducible
without global state.
Pixel scaling to float32 [0, 1] already happens in the datasets, and the DataLoader makes the
image Tensor, so no ToTensor step is needed.
"""

from __future__ import annotations

import numpy as np


class Compose:
    """Apply transforms one after another: ``Compose([t1, t2])(x, y) = t2(*t1(x, y))``."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, images, targets):
        for transform in self.transforms:
            images, targets = transform(images, targets)
        return images, targets


class RandomHorizontalFlip:
    """Mirror each sample left-right with probability ``p``, its mask with it.

    For each sample i independently, with probability p: images[i] <- images[i, :, :, ::-1] and,
    when targets are masks (N, H, W), targets[i] <- targets[i, :, ::-1] (the same flip, so pixels
    and labels stay aligned). Class labels (N,) are unchanged.
    """

    def __init__(self, p: float = 0.5, seed: int | np.random.Generator | None = None):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = p
        self.generator = np.random.default_rng(seed)

    def __call__(self, images, targets):
        if images.ndim != 4:
            raise ValueError(f"RandomHorizontalFlip: images must be (N, C, H, W), got shape {images.shape}")
        flip = self.generator.random(len(images)) < self.p
        images = np.where(flip[:, None, None, None], images[..., ::-1], images)
        if targets.ndim == 3:
            if targets.shape[1:] != images.shape[2:]:
                raise ValueError(f"RandomHorizontalFlip: masks {targets.shape} do not match images {images.shape}")
            targets = np.where(flip[:, None, None], targets[..., ::-1], targets)
        elif targets.ndim != 1:
            raise ValueError(f"RandomHorizontalFlip: targets must be (N,) labels or (N, H, W) masks, "
                             f"got shape {targets.shape}")
        return images, targets


class Normalize:
    """Standardise each channel: out[:, c] = (images[:, c] - mean[c]) / std[c]  (targets unchanged).

    ``mean`` and ``std`` hold one value per channel (C of them); the result keeps the images' dtype.
    """

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(std, dtype=np.float64).reshape(-1)
        if self.mean.shape != self.std.shape:
            raise ValueError(f"Normalize: mean has {self.mean.size} values but std has {self.std.size}")
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: std must be positive, got {self.std.tolist()}")

    def __call__(self, images, targets):
        if not np.issubdtype(images.dtype, np.floating):
            raise TypeError(f"Normalize: images must be floating point, got dtype {images.dtype}")
        if images.ndim != 4 or images.shape[1] != self.mean.size:
            raise ValueError(f"Normalize: images must be (N, {self.mean.size}, H, W) for "
                             f"{self.mean.size} channel means, got shape {images.shape}")
        shape = (1, -1, 1, 1)
        mean = self.mean.astype(images.dtype).reshape(shape)
        std = self.std.astype(images.dtype).reshape(shape)
        return (images - mean) / std, targets
