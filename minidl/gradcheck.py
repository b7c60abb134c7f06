"""Numerical gradient checking: compare backward() with central differences.

For a function ``y = f(x_1, ..., x_k)`` and a random upstream gradient ``g`` (same shape as y),
the scalar ``L = <g, f(x)>`` has  dL/dx_i = (what backward sends to x_i when given g).
Central differences estimate each element:

    dL/dx[j] ~= (L(x + eps e_j) - L(x - eps e_j)) / (2 eps)

with error O(eps^2). A random ``g`` (not ``ones``) matters: with ``.sum()`` a backward that, say,
transposes or permutes its gradient can still pass. Everything runs in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tensor import Tensor


@dataclass
class GradcheckReport:
    """The worst element found: which input, where, and the two gradient values."""

    input_index: int
    element: tuple
    analytic: float
    numeric: float
    max_error: float  # max over elements of |analytic - numeric| - rtol * |numeric|

    def __str__(self):
        return (
            f"input {self.input_index}, element {self.element}: analytic {self.analytic:.10g} "
            f"vs numeric {self.numeric:.10g} (excess error {self.max_error:.3g})"
        )


class GradcheckError(AssertionError):
    def __init__(self, report: GradcheckReport):
        super().__init__(f"gradcheck failed at {report}")
        self.report = report


def gradcheck(fn, inputs, eps=1e-6, atol=1e-8, rtol=1e-5, seed=0):
    """Check ``fn``'s backward against central differences, for every float input.

    fn:      a function of Tensors returning one Tensor (e.g. ``lambda x, w: F.conv2d(x, w, stride=2)``).
    inputs:  arrays or Tensors; float ones are cast to float64 and checked, others passed unchanged.
    Passes when ``|analytic - numeric| <= atol + rtol * |numeric|`` for every element.
    Returns True, or raises ``GradcheckError`` naming the worst element.
    """
    report = worst_gradient_error(fn, inputs, eps, rtol, seed)
    if report.max_error > atol:
        raise GradcheckError(report)
    return True


def worst_gradient_error(fn, inputs, eps=1e-6, rtol=1e-5, seed=0) -> GradcheckReport:
    """The element where backward and central differences disagree most (see ``gradcheck``)."""
    arrays = [np.array(x.data if isinstance(x, Tensor) else x) for x in inputs]
    checked = [i for i, a in enumerate(arrays) if np.issubdtype(a.dtype, np.floating)]
    for i in checked:
        arrays[i] = arrays[i].astype(np.float64)

    def make_inputs():
        return [Tensor(a, requires_grad=i in checked) if i in checked else a for i, a in enumerate(arrays)]

    tensors = make_inputs()
    out = fn(*tensors)
    g = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(g)

    def loss():
        return float(np.sum(fn(*make_inputs()).data * g))

    worst = None
    for i in checked:
        analytic = tensors[i].grad if tensors[i].grad is not None else np.zeros_like(arrays[i])
        numeric = np.zeros_like(arrays[i])
        flat = arrays[i].reshape(-1)  # a view: editing it perturbs the input in place
        for j in range(flat.size):
            saved = flat[j]
            flat[j] = saved + eps
            plus = loss()
            flat[j] = saved - eps
            minus = loss()
            flat[j] = saved
            numeric.reshape(-1)[j] = (plus - minus) / (2 * eps)
        excess = np.abs(analytic - numeric) - rtol * np.abs(numeric)
        j = int(np.argmax(excess))
        element = np.unravel_index(j, arrays[i].shape)
        report = GradcheckReport(i, tuple(int(k) for k in element), float(analytic[element]),
                                 float(numeric[element]), float(excess.reshape(-1)[j]))
        if worst is None or report.max_error > worst.max_error:
            worst = report
    if worst is None:
        raise ValueError("gradcheck: no floating-point input to check")
    return worst
