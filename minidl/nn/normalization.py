"""Batch normalisation layer for (N, C, H, W) feature maps (see ``F.batch_norm`` for the math)."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..tensor import Tensor
from . import init
from .module import Module, Parameter


class BatchNorm2d(Module):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, per channel, as ``torch.nn.BatchNorm2d``.

    Training mode normalises with the batch statistics over (N, H, W) and updates the running
    estimates (``running_mean``, ``running_var`` unbiased) with ``momentum``:
        running = (1 - momentum) * running + momentum * batch_statistic
    ``momentum=None`` uses the cumulative average instead (momentum = 1 / num_batches_tracked).
    Eval mode normalises with the running estimates. Without ``track_running_stats`` the
    batch statistics are used in both modes. With ``affine`` a learnable weight (starting at 1)
    and, unless ``bias=False``, a learnable bias (starting at 0) follow the normalisation.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, *, bias: bool = True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.register_parameter("weight", init.ones_(Parameter(np.empty(num_features, dtype=np.float32)))
                                if affine else None)
        self.register_parameter("bias", init.zeros_(Parameter(np.empty(num_features, dtype=np.float32)))
                                if affine and bias else None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype=np.float32)))
            self.register_buffer("running_var", Tensor(np.ones(num_features, dtype=np.float32)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim != 4 or input.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm2d: input must be (N, {self.num_features}, H, W), got shape {input.shape}")
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:
                momentum = 1.0 / self.num_batches_tracked.item()
        use_batch_stats = self.training or not self.track_running_stats
        return F.batch_norm(input, self.running_mean, self.running_var, self.weight, self.bias,
                            use_batch_stats, momentum, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")
