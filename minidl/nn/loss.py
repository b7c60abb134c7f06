"""Loss modules: hold the settings of a loss function (see ``minidl.ops.loss`` for the formulas).

Class weights are registered as buffers, so they follow ``.double()`` and appear in
``state_dict()`` under the same names as in PyTorch.
"""

from __future__ import annotations

from .. import functional as F
from ..tensor import Tensor
from .module import Module


def _as_buffer(value) -> Tensor | None:
    """None, or a Tensor (lists become float32, arrays keep their dtype)."""
    return value if value is None or isinstance(value, Tensor) else Tensor(value)


class CrossEntropyLoss(Module):
    """``loss(logits, target)`` = ``F.cross_entropy(logits, target, weight, ignore_index=..., reduction=...)``."""

    def __init__(self, weight=None, *, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__()
        self.register_buffer("weight", _as_buffer(weight))
        self.ignore_index, self.reduction = ignore_index, reduction

    def forward(self, input: Tensor, target) -> Tensor:
        return F.cross_entropy(input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class BCEWithLogitsLoss(Module):
    """``loss(logits, target)`` = ``F.binary_cross_entropy_with_logits(logits, target, weight, ...)``."""

    def __init__(self, weight=None, *, reduction: str = "mean", pos_weight=None):
        super().__init__()
        self.register_buffer("weight", _as_buffer(weight))
        self.register_buffer("pos_weight", _as_buffer(pos_weight))
        self.reduction = reduction

    def forward(self, input: Tensor, target) -> Tensor:
        return F.binary_cross_entropy_with_logits(input, target, self.weight, reduction=self.reduction,
                                                  pos_weight=self.pos_weight)


class DiceLoss(Module):
    """``loss(logits, target)`` = ``F.dice_loss(logits, target, smooth=..., ignore_index=...)`` (soft Dice)."""

    def __init__(self, *, smooth: float = 1.0, ignore_index: int = -100):
        super().__init__()
        self.smooth, self.ignore_index = smooth, ignore_index

    def forward(self, input: Tensor, target) -> Tensor:
        return F.dice_loss(input, target, smooth=self.smooth, ignore_index=self.ignore_index)
