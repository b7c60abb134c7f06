"""Does an explanation mean anything? Pointing game, perturbation curves, model-randomisation check.

Pointing game against a ground-truth mask (here: the pet in an Oxford-IIIT Pet photo). With a map
M (H, W), its positive part M+ = max(M, 0) and a binary mask G of the object:

    energy   E = sum(M+ * G) / sum(M+)          share of the map's positive mass on the object
                                                (Wang et al., Score-CAM, 2020: "energy-based pointing game")
    hit      h = mean of G over argmax M        is the map's maximum on the object (Zhang et al.,
                                                "Top-down neural attention by excitation backprop", 2016);
                                                tied maxima share the hit, so it is the chance a random
                                                tie-break lands on the object
    uniform  a = mean(G)                        the area share: E and h of a constant map, the baseline
                                                a map has to beat to show it knows where the object is

Deletion and insertion (Petsiuk et al., RISE, 2018). Rank the pixels by the map, most important
first, and move them k at a time from a *source* image to a *destination* image, recording the
softmax probability p of the target class after each move:

    deletion:   source = x,            destination = baseline (0)   a good map makes p fall fast: low AUC
    insertion:  source = blurred x,    destination = x              a good map makes p rise fast: high AUC

AUC = integral_0^1 p(fraction of pixels moved) d fraction (trapezoid rule). A map is only as good
as its curves beat those of a random map on the same images.

Model randomisation (Adebayo et al., "Sanity checks for saliency maps", 2018). Re-initialise
the layers cumulatively from the top (logits) down and after each step compare the new maps with
the trained model's maps by Spearman rank correlation: a method that explains the *model* gives
low correlation once the weights are random; one that stays correlated is mostly showing the
input (an edge detector), whatever the model learned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .. import functional as F
from ..nn import init
from ..tensor import Tensor
from .gradients import as_array, logits_of, resolve_target


# ----------------------------------------------------------------------------- pointing game
@dataclass
class PointingGame:
    """Per image (N,): ``energy`` (NaN for a map without positive mass), ``hit`` and ``uniform`` (area share)."""

    energy: np.ndarray
    hit: np.ndarray
    uniform: np.ndarray

    def summary(self) -> dict:
        """Means over the images; "energy" over the maps that have positive mass ("undefined" counts the others)."""
        defined = ~np.isnan(self.energy)
        return {"energy": float(self.energy[defined].mean()) if defined.any() else float("nan"),
                "hit_rate": float(self.hit.mean()), "uniform": float(self.uniform.mean()),
                "undefined": int((~defined).sum()), "images": len(self.hit)}


def pointing_game(maps, masks) -> PointingGame:
    """Energy-based pointing game and hit of explanation ``maps`` against object ``masks``.

    maps: (N, H, W) finite, any sign (only the positive part counts as evidence for the class);
    masks: (N, H, W) bool, or numbers that are all 0 or 1 (1 = object).
    An all-zero (or all-negative) map points nowhere: its energy is NaN, and its hit is the area share
    (every pixel ties for the maximum). An empty mask gives energy 0, hit 0 and uniform 0.
    """
    maps, masks = as_array(maps), np.asarray(masks)
    if maps.ndim != 3 or masks.shape != maps.shape:
        raise ValueError(f"pointing_game: maps and masks must both be (N, H, W), got {maps.shape} and {masks.shape}")
    if masks.dtype != bool:
        if not np.isin(masks, (0, 1)).all():
            raise ValueError(f"pointing_game: masks must be bool or 0/1, got values {np.unique(masks)[:10]}")
        masks = masks.astype(bool)
    if not np.isfinite(maps).all():
        raise ValueError("pointing_game: maps contain NaN or infinity")
    n = len(maps)
    maps, masks = maps.reshape(n, -1).astype(np.float64), masks.reshape(n, -1)
    positive = np.maximum(maps, 0)
    mass = positive.sum(axis=1)
    inside = (positive * masks).sum(axis=1)
    energy = np.where(mass > 0, inside / np.where(mass > 0, mass, 1), np.nan)
    at_max = maps == maps.max(axis=1, keepdims=True)
    hit = (at_max & masks).sum(axis=1) / at_max.sum(axis=1)
    return PointingGame(energy, hit, masks.mean(axis=1))


# ----------------------------------------------------------------------------- perturbation curves
@dataclass
class PerturbationCurve:
    """fractions: (steps + 1,) share of pixels moved;  probabilities: (N, steps + 1);  auc: (N,)."""

    fractions: np.ndarray
    probabilities: np.ndarray
    auc: np.ndarray


def perturbation_curve(model, source, destination, maps, target, steps: int = 32) -> PerturbationCurve:
    """Move pixels from ``source`` to ``destination`` in decreasing order of ``maps``; track p(target).

    source, destination: (N, C, H, W);  maps: (N, H, W) (all channels of a pixel move together);
    target: (N,) class indices;  steps: number of moves (after move s, round(s HW / steps) pixels
    come from the destination). Ties in the map keep pixel order (a stable sort).
    """
    source, destination, maps = as_array(source), as_array(destination), as_array(maps)
    n, _, height, width = source.shape
    if maps.shape != (n, height, width):
        raise ValueError(f"perturbation_curve: maps must be (N, H, W) = {(n, height, width)}, got {maps.shape}")
    if steps < 1:
        raise ValueError(f"perturbation_curve: steps must be >= 1, got {steps}")
    pixels = height * width
    counts = np.round(np.linspace(0, pixels, steps + 1)).astype(int)
    probabilities = np.empty((n, steps + 1))
    for i in range(n):
        order = np.argsort(-maps[i].reshape(-1), kind="stable")
        position = np.empty(pixels, dtype=int)
        position[order] = np.arange(pixels)  # position[p]: where pixel p comes in the ordering
        moved = position[None, :] < counts[:, None]  # (steps + 1, HW): which pixels come from destination
        mask = moved.reshape(steps + 1, 1, height, width)
        images = np.where(mask, destination[i], source[i])
        probabilities[i] = F.softmax(Tensor(logits_of(model, images)), dim=1).data[:, target[i]]
    fractions = counts / pixels
    return PerturbationCurve(fractions, probabilities, np.trapezoid(probabilities, fractions, axis=1))


def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of (N, C, H, W) images over H and W, reflect-padded at the borders.

    kernel k[t] proportional to exp(-t^2 / (2 sigma^2)), t = -r..r with r = ceil(3 sigma), summing to 1.
    """
    if sigma <= 0:
        return x.copy()
    radius = int(np.ceil(3 * sigma))
    taps = np.arange(-radius, radius + 1)
    kernel = np.exp(-taps ** 2 / (2 * sigma ** 2))
    kernel = (kernel / kernel.sum()).astype(x.dtype)
    for axis in (2, 3):
        widths = [(0, 0)] * 4
        widths[axis] = (radius, radius)
        padded = np.pad(x, widths, mode="reflect")
        length = x.shape[axis]
        x = sum(w * np.take(padded, np.arange(t, t + length), axis=axis) for t, w in enumerate(kernel))
    return x


def deletion_curve(model, x, maps, target=None, steps: int = 32, baseline: float = 0.0) -> PerturbationCurve:
    """Deletion: pixels replaced by ``baseline`` in order of importance; lower AUC = better map."""
    x = as_array(x)
    target = resolve_target(logits_of(model, x), target)
    return perturbation_curve(model, x, np.full_like(x, baseline), maps, target, steps)


def insertion_curve(model, x, maps, target=None, steps: int = 32, blur_sigma: float = 4.0) -> PerturbationCurve:
    """Insertion: pixels of x pasted onto a blurred copy in order of importance; higher AUC = better map."""
    x = as_array(x)
    target = resolve_target(logits_of(model, x), target)
    return perturbation_curve(model, gaussian_blur(x, blur_sigma), x, maps, target, steps)


# ----------------------------------------------------------------------------- rank correlation
def rank(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of a 1-d array, ties sharing the mean of their ranks (as scipy.stats.rankdata)."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]  # group g holds sorted positions starts[g] .. ends[g] - 1
    group_rank = (starts + ends + 1) / 2  # the mean of ranks starts+1 .. ends
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(group_rank, ends - starts)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation: the Pearson correlation of the ranks of a and b (flattened).

    Without ties it equals 1 - 6 sum d_i^2 / (n (n^2 - 1)), d_i the rank differences. A constant
    input has no ranking to compare; the result is then 0.
    """
    ra, rb = rank(np.ravel(a)), rank(np.ravel(b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    norm = np.sqrt((ra ** 2).sum() * (rb ** 2).sum())
    return float((ra * rb).sum() / norm) if norm > 0 else 0.0


# ----------------------------------------------------------------------------- model randomisation
@dataclass
class RandomizationResult:
    """After randomising ``layers[:k+1]`` (top first): maps[k + 1] and correlations[k + 1].

    layers: names of the layers in randomisation order ("original" is row 0);
    correlations: (len(layers), N) Spearman correlation of each image's map with the trained model's;
    maps: (len(layers), N, H, W).
    """

    layers: list[str]
    correlations: np.ndarray
    maps: np.ndarray


def weight_layers(model) -> list[tuple[str, object]]:
    """(name, module) of every layer with a weight matrix or kernel (Linear, Conv2d, ...), input side first.

    These are the layers a model learns its pattern in; BatchNorm's per-channel scale and shift are
    left as trained (each stays attached to the conv it normalises).
    """
    return [(name, module) for name, module in model.named_modules()
            if isinstance(getattr(module, "weight", None), Tensor) and module.weight.ndim >= 2]


def model_randomization(model, explain: Callable, x, target=None, absolute: bool = True,
                        seed: int = 0) -> RandomizationResult:
    """Cascading randomisation: re-initialise layers from the top down, compare maps by Spearman rank.

    explain(model, x, target) -> maps (N, H, W), e.g. ``lambda m, x, t: saliency(m, x, t)``.
    target: None fixes the class predicted by the trained model, so every row explains the same class.
    Each layer of ``weight_layers`` is re-drawn with PyTorch's default initialisation (the one it had
    before training, ``nn.init.default_layer_init_``), from ``np.random.default_rng(seed)``.
    absolute=True ranks |map| (Adebayo et al. report both; signs flip freely under re-initialisation).
    The model's trained parameters are restored before returning.
    """
    x = as_array(x)
    target = resolve_target(logits_of(model, x), target)
    trained = model.state_dict()
    layers = weight_layers(model)[::-1]
    rng = np.random.default_rng(seed)

    def explanation():
        maps = explain(model, x, target)
        return np.abs(maps) if absolute else maps

    rows = [explanation()]
    try:
        for _, layer in layers:
            init.default_layer_init_(layer.weight, getattr(layer, "bias", None), generator=rng)
            rows.append(explanation())
    finally:
        model.load_state_dict(trained)
    correlations = [[spearman(m, first) for m, first in zip(maps, rows[0])] for maps in rows]
    return RandomizationResult(["original"] + [name for name, _ in layers], np.array(correlations), np.stack(rows))
