"""matmul (1-d, 2-d, batched with broadcasting) and softmax / log_softmax (stability, identities)."""

import numpy as np
import pytest
from helpers import arrays, check_gradients, shapes
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minidl.functional as F
from minidl import Tensor

SETTINGS = settings(max_examples=30, deadline=None)


# matmul's gufunc signature: vector or matrix on each side ("?" = may be absent), broadcast batch dims
MATMUL_SHAPES = hnp.mutually_broadcastable_shapes(signature=np.matmul.signature, max_dims=2, max_side=4)


@SETTINGS
@given(pair=MATMUL_SHAPES, data=st.data())
def test_matmul_values_and_gradients(pair, data):
    a, b = (data.draw(arrays(shape)) for shape in pair.input_shapes)
    np.testing.assert_allclose(F.matmul(Tensor(a), Tensor(b)).data, a @ b, rtol=1e-12)
    check_gradients(F.matmul, [a, b])


def test_matmul_gradient_closed_form():
    a, b = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4) - 5
    g = np.random.default_rng(0).standard_normal((2, 4))
    ta, tb = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    (ta @ tb).backward(g)
    np.testing.assert_allclose(ta.grad, g @ b.T, rtol=1e-12)
    np.testing.assert_allclose(tb.grad, a.T @ g, rtol=1e-12)


@pytest.mark.parametrize("a_shape, b_shape, message", [
    ((2, 3), (4, 5), r"matmul: shapes \(2, 3\) and \(4, 5\) do not match \(inner dims 3 and 4\)"),
    ((2, 2, 3), (3, 3, 1), r"matmul: batch dims of \(2, 2, 3\) and \(3, 3, 1\) cannot be broadcast"),
    ((), (3,), r"matmul: both operands need at least 1 dim"),
])
def test_matmul_shape_errors(a_shape, b_shape, message):
    with pytest.raises(ValueError, match=message):
        F.matmul(Tensor(np.ones(a_shape)), Tensor(np.ones(b_shape)))


def test_matmul_dtype_error_names_dtypes_and_shapes():
    with pytest.raises(ValueError, match=r"matmul: .*float64 and float32 \(shapes \(2, 3\) and \(3,\)\)"):
        F.matmul(Tensor(np.ones((2, 3))), Tensor(np.ones(3, np.float32)))


# ----------------------------------------------------------------------------- softmax
@pytest.mark.parametrize("op", [F.softmax, F.log_softmax])
@SETTINGS
@given(shape=shapes(min_dims=1), data=st.data())
def test_softmax_gradients(op, shape, data):
    x = data.draw(arrays(shape, low=-5.0, high=5.0))
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    check_gradients(lambda t: op(t, dim), [x])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_is_stable_and_normalized_for_huge_logits(dtype):
    x = np.array([[1000.0, 1001.0, -1000.0], [-50.0, -50.0, -50.0]], dtype)
    with np.errstate(over="raise", invalid="raise"):
        p, logp = F.softmax(Tensor(x), 1).data, F.log_softmax(Tensor(x), dim=-1).data
    assert p.dtype == logp.dtype == dtype
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    log_normalizer = 1001 + np.log1p(np.exp(-1.0))  # log(e^1000 + e^1001 + e^-1000), computed stably
    np.testing.assert_allclose(logp[0], x[0].astype(np.float64) - log_normalizer, rtol=1e-6)
    np.testing.assert_allclose(logp[1], -np.log(3.0), rtol=1e-6)


def test_softmax_gradient_is_orthogonal_to_constant_shifts():
    # softmax(x + c) = softmax(x), so every row of dL/dx sums to zero, whatever the upstream gradient
    x = Tensor(np.random.default_rng(0).standard_normal((3, 5)), requires_grad=True)
    F.log_softmax(x, 1).backward(np.random.default_rng(1).standard_normal((3, 5)))
    np.testing.assert_allclose(x.grad.sum(axis=1), 0.0, atol=1e-12)


def test_softmax_dim_error():
    with pytest.raises(ValueError, match=r"softmax: dim 2 is out of range for a tensor with 2 dims"):
        F.softmax(Tensor(np.ones((2, 3))), 2)
