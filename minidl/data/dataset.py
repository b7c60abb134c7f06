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
