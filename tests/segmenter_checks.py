"""Helpers shared by the segmentation-model tests: random inputs and a few training steps on one real photo."""

import numpy as np

from minidl import Tensor, optim
from minidl import functional as F
from minidl.data import OxfordPets


def rand(*shape, seed=0):
    """A float32 Tensor of standard-normal values."""
    return Tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def pet_photo(index: int, step: int):
    """Bundled trainval photo ``index`` and its pet/background mask, subsampled by ``step`` (64 / step pixels)."""
    pets = OxfordPets(split="trainval")
    return Tensor(pets.images[index:index + 1, :, ::step, ::step].copy()), pets.targets[index:index + 1, ::step, ::step]


def train_on_one_image(model, x, mask, steps: int, lr: float = 1e-2) -> list:
    """Adam steps on the cross-entropy of one image; returns the loss before each step."""
    optimizer = optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), mask)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
