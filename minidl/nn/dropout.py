"""Dropout layers: random zeroing in training mode, the identity in eval mode (see ``F.dropout``)."""

from __future__ import annotations

from .. import functional as F
from ..tensor import Tensor
from .module import Module


class _DropoutBase(Module):
    """Holds p and an optional ``numpy.random.Generator`` (None: the global one, see ``minidl.manual_seed``)."""

    def __init__(self, p: float = 0.5, *, generator=None):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"{type(self).__name__}: p must be in [0, 1], got {p}")
        self.p, self.generator = p, generator

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Dropout(_DropoutBase):
    """Zero each element with probability p in training and scale the rest by 1 / (1 - p)."""

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout(input, self.p, self.training, generator=self.generator)


class Dropout2d(_DropoutBase):
    """Zero whole channels of (N, C, H, W) with probability p in training, scale the rest by 1 / (1 - p)."""

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout2d(input, self.p, self.training, generator=self.generator)
