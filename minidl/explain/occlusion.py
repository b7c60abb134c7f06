"""Occlusion (Zeiler & Fergus, 2014): how much the target logit drops when a patch is hidden.

Slide a ph x pw patch over the image with stride (sh, sw); at each position p set every channel
of the patch to ``baseline`` and record the drop of the target logit

    d_p = y(x) - y(x with patch p occluded)

Each pixel's score is the mean of d_p over the patches that cover it (0 if none does).
For a linear model y = sum w * x + b and a 1x1 patch with stride 1 this is exactly
sum_c w_c (x_c - baseline) = sum_c grad_c * (x_c - baseline): gradient x (input - baseline).
Needs no gradient, only forward passes (one per patch position, run in batches).
"""

from __future__ import annotations

import numpy as np

from ..ops.arguments import pair
from .gradients import as_array, logits_of, resolve_target


def occlusion(model, x, target=None, patch=8, stride=4, baseline: float = 0.0, batch_size: int = 64) -> np.ndarray:
    """Occlusion map of the target class for each image: ``(N, H, W)``, positive = evidence for it.

    model: callable x (N, C, H, W) -> logits (N, K);  patch, stride: int or (h, w);
    baseline: the value written into the occluded patch;  batch_size: occluded copies per forward.
    """
    x = as_array(x)
    (ph, pw), (sh, sw) = pair("occlusion", "patch", patch, 1), pair("occlusion", "stride", stride, 1)
    height, width = x.shape[-2:]
    if ph > height or pw > width:
        raise ValueError(f"occlusion: patch {(ph, pw)} is larger than the image {(height, width)}")
    logits = logits_of(model, x)
    target = resolve_target(logits, target)
    corners = [(i, j) for i in range(0, height - ph + 1, sh) for j in range(0, width - pw + 1, sw)]
    scores = np.zeros((len(x), height, width), dtype=x.dtype)
    counts = np.zeros((height, width), dtype=x.dtype)
    for i, j in corners:
        counts[i:i + ph, j:j + pw] += 1
    for n, image in enumerate(x):
        for start in range(0, len(corners), batch_size):
            chunk = corners[start:start + batch_size]
            occluded = np.repeat(image[None], len(chunk), axis=0)
            for copy, (i, j) in zip(occluded, chunk):
                copy[:, i:i + ph, j:j + pw] = baseline
            drops = logits[n, target[n]] - logits_of(model, occluded)[:, target[n]]
            for drop, (i, j) in zip(drops, chunk):
                scores[n, i:i + ph, j:j + pw] += drop
    return np.where(counts > 0, scores / np.maximum(counts, 1), 0).astype(x.dtype, copy=False)
