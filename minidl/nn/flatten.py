"""Flatten layer: merge dims into one, e.g. (N, C, 1, 1) -> (N, C) before a classifier's Linear."""

from __future__ import annotations

from .. import functional as F
from ..tensor import Tensor
from .module import Module


class Flatten(Module):
    """y = x reshaped with dims start_dim..end_dim merged (defaults keep the batch dim);  dL/dx = g reshaped back."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input: Tensor) -> Tensor:
        return F.flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
