"""gradcheck itself: it must fail on wrong backwards (even ones a .sum() check misses) and say where."""

import numpy as np
import pytest

import minidl.functional as F
from minidl import Function, Tensor, gradcheck
from minidl.gradcheck import GradcheckError, worst_gradient_error

RNG = np.random.default_rng(0)


class DoubleTransposedBackward(Function):
    """y = 2 x, with a wrong backward 2 g^T (a classic layout bug); fine for x.sum(), wrong otherwise."""

    def forward(self, x):
        return 2 * x

    def backward(self, g):
        return 2 * g.T


def test_catches_a_transposed_backward_that_an_all_ones_upstream_gradient_misses():
    x = RNG.standard_normal((3, 3))
    t = Tensor(x, requires_grad=True)
    DoubleTransposedBackward.apply(t).sum().backward()
    np.testing.assert_array_equal(t.grad, np.full((3, 3), 2.0))  # the weak check would pass ...
    with pytest.raises(GradcheckError):  # ... the random upstream gradient does not
        gradcheck(DoubleTransposedBackward.apply, [x])


class ProductWithOneWrongElement(Function):
    """y = a * b, with dL/db off by 0.5 at element (1, 2) only."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        grad_b = g * self.a
        grad_b[1, 2] += 0.5
        return g * self.b, grad_b


def test_report_names_the_input_the_element_and_both_values():
    a, b = RNG.standard_normal((2, 4)), RNG.standard_normal((2, 4))
    with pytest.raises(GradcheckError, match=r"input 1, element \(1, 2\): analytic .* vs numeric") as caught:
        gradcheck(ProductWithOneWrongElement.apply, [a, b])
    report = caught.value.report
    assert (report.input_index, report.element) == (1, (1, 2))
    g = np.random.default_rng(0).standard_normal((2, 4))  # gradcheck's upstream gradient (seed 0)
    np.testing.assert_allclose(report.numeric, g[1, 2] * a[1, 2], rtol=1e-8)
    np.testing.assert_allclose(report.analytic - report.numeric, 0.5, rtol=1e-6)


class ForgetsSecondInput(Function):
    """y = a * b, with a backward that sends nothing to b."""

    def forward(self, a, b):
        self.b = b
        return a * b

    def backward(self, g):
        return g * self.b, None


def test_a_missing_gradient_fails():
    with pytest.raises(GradcheckError, match="input 1"):
        gradcheck(ForgetsSecondInput.apply, [RNG.standard_normal(3), RNG.standard_normal(3)])


def test_correct_ops_pass_and_unused_inputs_count_as_zero_gradient():
    assert gradcheck(lambda x, unused: (x * x).sum(0), [RNG.standard_normal((2, 3)), RNG.standard_normal(2)])


def test_non_float_inputs_are_passed_unchanged():
    index = np.array([2, 0, 2])
    seen = []

    def pick(x, i, nothing):
        seen.append((i, nothing))
        return x[i]

    assert gradcheck(pick, [RNG.standard_normal(4), index, None])
    assert all(i is index and nothing is None for i, nothing in seen)


def test_caller_inputs_are_not_modified_and_float32_inputs_are_checked_in_float64():
    x, t = RNG.standard_normal((2, 3)).astype(np.float32), Tensor(RNG.standard_normal(3))
    x_before, t_before = x.copy(), t.data.copy()
    dtypes = []

    def fn(a, b):
        dtypes.append((a.dtype, b.dtype))
        return a * b

    gradcheck(fn, [x, t])
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(t.data, t_before)
    assert t.grad is None
    assert set(dtypes) == {(np.dtype(np.float64), np.dtype(np.float64))}


def test_non_contiguous_inputs_and_outputs_that_view_the_input():
    # a transposed (Fortran-ordered) input, and reshape, whose output shares memory with its input
    assert gradcheck(lambda x: x.reshape(-1) * 3, [RNG.standard_normal((3, 4)).T])


def test_report_is_small_for_a_correct_op():
    report = worst_gradient_error(lambda x: F.tanh(x) * x, [RNG.standard_normal((3, 2))])
    assert report.max_error <= 1e-8


def test_fn_must_compute_in_float64():
    with pytest.raises(TypeError, match="float64 Tensor for float64 inputs, got float32"):
        gradcheck(lambda x: x.float(), [RNG.standard_normal(3)])


def test_needs_a_float_input():
    with pytest.raises(ValueError, match="no floating-point input"):
        gradcheck(lambda i: Tensor(i), [np.arange(3)])
