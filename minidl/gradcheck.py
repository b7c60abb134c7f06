"""Numerical gradient checking: compare backward() with central differences.

For a function ``y = f(x_1, ..., x_k)`` and a random upstream gradient ``g`` (same shape as y),
the scalar ``L = <g, f(x)>`` has  dL/dx_i = (what backward sends to x_i when given g).
Central differences estimate each element:

    dL/dx[j] ~= <g, f(x + eps e_j) - f(x - eps e_j)> / (2 eps)

with error O(eps^2). A random ``g`` (not ``ones``) matters: with ``.sum()`` a backward that, say,
transposes or permutes its gradient can still pass. Everything runs in float64, and the two
outputs are subtracted before the dot product with ``g`` so that rounding stays near 1e-16 / eps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tensor import Tensor, no_grad


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

    fn:      a function of the inputs returning one Tensor (e.g. ``lambda x, w: F.conv2d(x, w, stride=2)``).
    inputs:  arrays, Tensors or numbers; float ones are copied to float64 leaves and checked,
             the others (integer labels or indices, None) are passed to ``fn`` unchanged.
    Passes when ``|analytic - numeric| <= atol + rtol * |numeric|`` for every element.
    Returns True, or raises ``GradcheckError`` naming the worst element.
    """
    report = worst_gradient_error(fn, inputs, eps, rtol, seed)
    if report.max_error > atol:
        raise GradcheckError(report)
    return True


def worst_gradient_error(fn, inputs, eps=1e-6, rtol=1e-5, seed=0) -> GradcheckReport:
    """The element where backward and central differences disagree most (see ``gradcheck``)."""
    arrays = list(inputs)
    checked = [i for i, x in enumerate(inputs) if _is_float(x)]
    if not checked:
        raise ValueError("gradcheck: no floating-point input to check")
    for i in checked:  # private float64 copies, perturbed in place below
        arrays[i] = np.array(inputs[i].data if isinstance(inputs[i], Tensor) else inputs[i], dtype=np.float64)

    def run():
        leaves = [Tensor(a, requires_grad=True) if i in checked else a for i, a in enumerate(arrays)]
        out = fn(*leaves)
        if not isinstance(out, Tensor) or out.dtype != np.float64:
            raise TypeError(f"gradcheck: fn must return a float64 Tensor for float64 inputs, got "
                            f"{getattr(out, 'dtype', type(out).__name__)}")
        return leaves, out

    def output() -> np.ndarray:
        with no_grad():
            return run()[1].data.copy()  # a copy: the output may be a view of the perturbed input

    leaves, out = run()
    g = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(g)

    worst = None
    for i in checked:
        a = arrays[i]
        analytic = leaves[i].grad if leaves[i].grad is not None else np.zeros_like(a)
        numeric = np.zeros_like(a)
        for element in np.ndindex(a.shape):
            saved = a[element]
            a[element] = saved + eps
            plus = output()
            a[element] = saved - eps
            minus = output()
            a[element] = saved
            numeric[element] = np.sum(g * (plus - minus)) / (2 * eps)
        excess = np.abs(analytic - numeric) - rtol * np.abs(numeric)
        element = np.unravel_index(int(np.argmax(excess)), a.shape)
        report = GradcheckReport(i, tuple(int(k) for k in element), float(analytic[element]),
                                 float(numeric[element]), float(excess[element]))
        if worst is None or report.max_error > worst.max_error:
            worst = report
    return worst


def _is_float(x) -> bool:
    return np.issubdtype(np.asarray(x.data if isinstance(x, Tensor) else x).dtype, np.floating)
