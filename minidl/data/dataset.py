"""The dataset protocol minidl uses: two aligned in-memory arrays, sample i = (images[i], targets[i]).

Every minidl dataset (``FashionMNIST``, ``OxfordPets``) is an ``ArrayDataset``: it decodes its files
once, keeps the result as NumPy arrays, and hands out samples by indexing. Keeping whole arrays
lets ``DataLoader`` build a batch with one fancy-index (``images[batch_indices]``) instead of a
Python loop over samples.
"""

from __future__ import annotations

import numpy as np


class ArrayDataset:
    """A dataset held as two arrays of equal length: ``images`` and ``targets``.

    ``dataset[i]`` is ``(images[i], targets[i])``; ``len(dataset)`` is the number of samples.
    Any index NumPy accepts works, so ``dataset[10:20]`` or ``dataset[np.array([3, 1])]`` return
    batches. Shapes are the caller's; minidl's datasets use images ``(N, C, H, W)`` float32 and
    targets ``(N,)`` or ``(N, H, W)`` int64.
    """

    def __init__(self, images: np.ndarray, targets: np.ndarray):
        if len(images) != len(targets):
            raise ValueError(
                f"ArrayDataset: images and targets must have the same length, "
                f"got images {images.shape} and targets {targets.shape}"
            )
        self.images = images
        self.targets = targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index):
        return self.images[index], self.targets[index]


def stratified_split(groups, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Hold out about ``fraction`` of every group, evenly spaced: ``(kept indices, held-out indices)``.

    ``groups[i]`` names sample i's group (a breed, a class label). Within each group, in the
    samples' order, the sample at position j (0, 1, 2, ...) is held out when
    ``floor((j + 1) * fraction) > floor(j * fraction)``: for 0.2 that is every 5th (the 5th, 10th, ...).
    Nothing is random, so every run and every seed gets the same split; each group keeps its share,
    so the held-out part has the same mix of groups as the whole. ``fraction=0`` holds out nothing.
    Both index arrays are sorted and together cover 0 .. N-1 once.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"stratified_split: fraction must be in [0, 1), got {fraction!r}")
    groups = np.asarray(groups)
    if groups.ndim != 1:
        raise ValueError(f"stratified_split: groups must be one value per sample (1-d), got shape {groups.shape}")
    held_out = np.zeros(len(groups), dtype=bool)
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        position = np.arange(len(members))
        held_out[members] = np.floor((position + 1) * fraction) > np.floor(position * fraction)
    return np.flatnonzero(~held_out), np.flatnonzero(held_out)
