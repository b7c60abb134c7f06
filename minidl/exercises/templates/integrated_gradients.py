"""Exercise 13: Integrated Gradients (Sundararajan, Taly & Yan, 2017).

Attribute a logit to the input's pixels by integrating its gradient along the straight path from a
baseline x' to the input x:

    IG(x) = (x - x') * integral_0^1 dy/dx (x' + a (x - x')) da

Completeness (the fundamental theorem of calculus along the path): sum IG = y(x) - y(x').
Approximate the integral with the trapezoid rule on steps + 1 points a_s = s / steps, s = 0..steps,
weights 1/steps (1/(2 steps) at both ends).

Gradients with minidl's autograd, for all N images at once (one target class each):
    from minidl import Tensor
    point = Tensor(baseline + a * (x - baseline), requires_grad=True)
    logits = model(point)                                   # (N, num_classes)
    (logits * one_hot).sum().backward()                     # one_hot[n, target[n]] = 1
    point.grad                                              # dy_target[n] / dx for each image
Library: ``minidl/explain/integrated_gradients.py``.  Check:  python -m minidl.exercises check integrated_gradients
"""

import numpy as np

from minidl import Tensor


def integrated_gradients(model, x, target, baseline, steps):
    """model: callable Tensor (N, C, H, W) -> logits Tensor (N, num_classes); x, baseline: (N, C, H, W) float64;
    target: (N,) ints; steps: int >= 1  ->  attributions (N, C, H, W)."""
    raise NotImplementedError
