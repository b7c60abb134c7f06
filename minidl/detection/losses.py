"""The box-regression loss of Fast/Faster/Mask R-CNN, built from differentiable minidl ops."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..tensor import Tensor


def smooth_l1_loss(input: Tensor, target, beta: float = 1.0, reduction: str = "sum") -> Tensor:
    """Huber-like loss, as ``torch.nn.functional.smooth_l1_loss`` (default reduction here: "sum").

    With d = input - target:  l = 0.5 d^2 / beta if |d| < beta, else |d| - 0.5 beta;
    dl/dd = d / beta inside, sign(d) outside (quadratic near 0, so small errors are not over-pushed;
    linear far away, so outliers do not dominate). reduction: "sum", "mean" or "none".
    """
    if reduction not in ("sum", "mean", "none"):
        raise ValueError(f"smooth_l1_loss: reduction must be 'sum', 'mean' or 'none', got {reduction!r}")
    target = target if isinstance(target, Tensor) else Tensor(np.asarray(target, dtype=input.dtype))
    if target.shape != input.shape:
        raise ValueError(f"smooth_l1_loss: target must have the input's shape {input.shape}, got {target.shape}")
    difference = input - target
    size = F.abs(difference)
    losses = F.where(size.data < beta, difference * difference * (0.5 / beta), size - 0.5 * beta)
    return losses if reduction == "none" else losses.sum() if reduction == "sum" else losses.mean()
