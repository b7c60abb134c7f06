"""Upsampling layer: ``F.interpolate`` with fixed settings."""

from __future__ import annotations

from .. import functional as F
from ..tensor import Tensor
from .module import Module


class Upsample(Module):
    """Resize (N, C, H, W) to ``size`` or by ``scale_factor`` with ``mode`` "nearest" or "bilinear".

    ``align_corners`` (bilinear only; None means False, as PyTorch) decides whether the corner
    pixels of input and output are aligned (True) or their pixel areas are (False).
    """

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest", align_corners: bool | None = None):
        super().__init__()
        self.size, self.scale_factor, self.mode, self.align_corners = size, scale_factor, mode, align_corners

    def forward(self, input: Tensor) -> Tensor:
        return F.interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners)

    def extra_repr(self) -> str:
        shape = f"size={self.size}" if self.size is not None else f"scale_factor={self.scale_factor}"
        return f"{shape}, mode={self.mode!r}"
