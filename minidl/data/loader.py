"""DataLoader: iterate over a dataset in (optionally shuffled) mini-batches."""

from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from .dataset import ArrayDataset


class DataLoader:
    """Yield ``(images, targets)`` batches: images as a ``minidl.Tensor``, targets as an int ndarray.

    ``DataLoader(dataset, batch_size=1, shuffle=False, drop_last=False, transform=None, seed=None)``

    One pass (``for images, targets in loader``) is one epoch: every sample appears exactly once,
    in order, or in a fresh random order per epoch when ``shuffle=True``. The last batch is smaller
    when ``batch_size`` does not divide ``len(dataset)``, or left out when ``drop_last=True``.

    seed: an int or a ``np.random.Generator`` for the shuffling, kept as ``loader.generator``; the
      same seed gives the same sequence of epoch orders. Random transforms carry their own seed.
    transform: called on each batch as ``transform(images, targets) -> (images, targets)`` with
      NumPy arrays, before images become a Tensor (e.g. ``RandomHorizontalFlip``, ``Normalize``).

    Targets stay NumPy arrays because they are labels, not something to differentiate:
    ``F.cross_entropy`` and ``minidl.metrics`` take them as they are.
    An ``ArrayDataset`` is batched with one fancy-index per array; any other dataset
    (``len(d)`` and ``d[i] -> (image, target)``) is batched by stacking its samples.
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 transform=None, seed: int | np.random.Generator | None = None):
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.transform = transform
        self.generator = np.random.default_rng(seed)

    def __len__(self) -> int:
        """Number of batches per epoch."""
        full, rest = divmod(len(self.dataset), self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def __iter__(self):
        n = len(self.dataset)
        order = self.generator.permutation(n) if self.shuffle else np.arange(n)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            images, targets = self._batch(order[start:start + self.batch_size])
            if self.transform is not None:
                images, targets = self.transform(images, targets)
            yield Tensor(images), targets

    def _batch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(self.dataset, ArrayDataset):
            return self.dataset.images[indices], self.dataset.targets[indices]
        samples = [self.dataset[int(i)] for i in indices]
        return np.stack([image for image, _ in samples]), np.stack([target for _, target in samples])
