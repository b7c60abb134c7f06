"""Post-processing of explanation maps: channel reduction, upsampling to the image, normalisation.

These are presentation steps, kept apart from the methods so a method's raw numbers stay
available (the identities in the tests hold for raw maps, not for normalised ones).
"""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..tensor import Tensor, no_grad

CHANNEL_REDUCTIONS = {
    "max_abs": lambda a: np.abs(a).max(axis=1),  # Simonyan et al. (2014): max_c |grad_c|
    "sum_abs": lambda a: np.abs(a).sum(axis=1),
    "sum": lambda a: a.sum(axis=1),  # signed: keeps completeness (sum over pixels = sum over inputs)
}


def reduce_channels(attributions: np.ndarray, reduction: str | None = "max_abs") -> np.ndarray:
    """One value per pixel: ``(N, C, H, W) -> (N, H, W)``; ``reduction=None`` returns the input unchanged.

    "max_abs": max_c |a_c| (Simonyan);  "sum_abs": sum_c |a_c|;  "sum": sum_c a_c (signed).
    """
    if reduction is None:
        return attributions
    if reduction not in CHANNEL_REDUCTIONS:
        raise ValueError(f"reduce_channels: reduction must be one of {sorted(CHANNEL_REDUCTIONS)} or None, "
                         f"got {reduction!r}")
    if attributions.ndim != 4:
        raise ValueError(f"reduce_channels: expected attributions (N, C, H, W), got shape {attributions.shape}")
    return CHANNEL_REDUCTIONS[reduction](attributions)


def upsample(maps: np.ndarray, size: tuple) -> np.ndarray:
    """Bilinear resize of ``(N, h, w)`` maps to ``size = (H, W)`` (``align_corners=False``, as PyTorch)."""
    if maps.ndim != 3:
        raise ValueError(f"upsample: expected maps (N, h, w), got shape {maps.shape}")
    if tuple(maps.shape[1:]) == tuple(size):
        return maps
    with no_grad():
        resized = F.interpolate(Tensor(maps[:, None]), size=tuple(size), mode="bilinear", align_corners=False)
    return resized.data[:, 0]


def normalize(maps: np.ndarray) -> np.ndarray:
    """Each map rescaled to [0, 1]: ``(m - min) / (max - min)``; a constant map becomes all zeros."""
    axes = tuple(range(1, maps.ndim))
    low = maps.min(axis=axes, keepdims=True)
    span = maps.max(axis=axes, keepdims=True) - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0).astype(maps.dtype, copy=False)
