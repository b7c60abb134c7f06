"""Integrated Gradients (Sundararajan et al., 2017): path integral of the gradient from a baseline.

For a baseline x' (default: zeros) and the straight path x(a) = x' + a (x - x'), a in [0, 1]:

    IG_i(x) = (x_i - x'_i) * integral_0^1 d y / d x_i (x(a)) da

Completeness (the fundamental theorem of calculus along the path):

    sum_i IG_i(x) = y(x) - y(x')

The integral is a quadrature sum_s w_s grad(x(a_s)) with m = ``steps`` gradient evaluations:
    "riemann_left"    a_s = s/m,          s = 0..m-1,  w_s = 1/m
    "riemann_right"   a_s = s/m,          s = 1..m,    w_s = 1/m
    "midpoint"        a_s = (s + 1/2)/m,  s = 0..m-1,  w_s = 1/m
    "trapezoid"       a_s = s/m,          s = 0..m,    w_s = 1/m (1/(2m) at both ends)
so completeness holds only up to the quadrature error, which is reported per image.

A special case is exact for any rule that avoids a = 0: a ReLU network without biases
(conv, linear, ReLU, max-pool, average-pool) is positively homogeneous, y(a x) = a y(x) for a > 0,
so its gradient is constant along the ray from 0 and with baseline 0
    IG(x) = x * grad y(x)   and   sum_i IG_i = x . grad y(x) = y(x) = y(x) - y(0)   (Euler's theorem).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .gradients import as_array, logit_gradient, logits_of, resolve_target


def quadrature(steps: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Points a_s in [0, 1] and weights w_s (summing to 1) of the chosen rule."""
    if steps < 1:
        raise ValueError(f"integrated_gradients: steps must be >= 1, got {steps}")
    s = np.arange(steps, dtype=np.float64)
    uniform = np.full(steps, 1 / steps)
    if method == "riemann_left":
        return s / steps, uniform
    if method == "riemann_right":
        return (s + 1) / steps, uniform
    if method == "midpoint":
        return (s + 0.5) / steps, uniform
    if method == "trapezoid":
        weights = np.full(steps + 1, 1 / steps)
        weights[[0, -1]] /= 2
        return np.arange(steps + 1) / steps, weights
    raise ValueError(f"integrated_gradients: method must be riemann_left, riemann_right, midpoint or "
                     f"trapezoid, got {method!r}")


class IntegratedGradients(NamedTuple):
    """attributions: (N, C, H, W);  completeness_error: (N,) = sum_i IG_i - (y(x) - y(x'))."""

    attributions: np.ndarray
    completeness_error: np.ndarray


def integrated_gradients(model, x, target=None, baseline=None, steps: int = 50,
                         method: str = "trapezoid") -> IntegratedGradients:
    """Integrated Gradients of the target logit for each image, with its completeness error.

    model: callable x (N, C, H, W) -> logits (N, K);  baseline: None (zeros), a number, or an
    array broadcastable to x;  target: None (class predicted on x), an int, or N ints.
    """
    x = as_array(x)
    baseline = np.zeros_like(x) if baseline is None else np.broadcast_to(np.asarray(baseline, x.dtype), x.shape)
    points, weights = (v.astype(x.dtype) for v in quadrature(steps, method))
    logits = logits_of(model, x)
    target = resolve_target(logits, target)
    path_gradient = np.zeros_like(x)
    for a, w in zip(points, weights):
        path_gradient += w * logit_gradient(model, baseline + a * (x - baseline), target)[2]
    attributions = (x - baseline) * path_gradient
    rows = np.arange(len(target))
    change = logits[rows, target] - logits_of(model, baseline)[rows, target]
    return IntegratedGradients(attributions, attributions.reshape(len(x), -1).sum(axis=1) - change)
