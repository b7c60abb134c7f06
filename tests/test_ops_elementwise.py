"""Elementwise ops: gradients on drawn shapes and broadcast pairs, kinks avoided by construction, errors."""

from unittest import mock

import numpy as np
import pytest
from helpers import arrays, broadcastable_shapes, check_fast_path_matches, check_gradients, shapes
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl.functional as F
from minidl.gradcheck import gradcheck
from minidl import Tensor

SETTINGS = settings(max_examples=25, deadline=None)

BINARY = {  # op, domain of a, domain of b
    "add": (F.add, {}, {}),
    "sub": (F.sub, {}, {}),
    "mul": (F.mul, {}, {}),
    "div": (F.div, {}, {"low": 0.5}),  # away from b = 0
    "pow": (F.pow, {"low": 0.2}, {}),  # a positive base, so log(a) in dL/db exists
}


@pytest.mark.parametrize("name", BINARY)
@SETTINGS
@given(pair=broadcastable_shapes(), data=st.data())
def test_binary_op_gradients_with_broadcasting(name, pair, data):
    op, a_domain, b_domain = BINARY[name]
    a_shape, b_shape = pair.input_shapes
    check_gradients(op, [data.draw(arrays(a_shape, **a_domain)), data.draw(arrays(b_shape, **b_domain))])


UNARY = {
    "neg": (F.neg, {}),
    "exp": (F.exp, {}),
    "log": (F.log, {"low": 0.2}),
    "sqrt": (F.sqrt, {"low": 0.2}),
    "abs": (F.abs, {"nonzero": True}),
    "relu": (F.relu, {"nonzero": True}),
    "sigmoid": (F.sigmoid, {"low": -6.0, "high": 6.0}),
    "tanh": (F.tanh, {}),
    "clamp(min)": (lambda x: F.clamp(x, min=-0.305), {}),  # bounds off the 0.01 grid: no ties
    "clamp(max)": (lambda x: x.clamp(max=0.505), {}),
    "clamp(min, max)": (lambda x: F.clamp(x, -1.005, 0.995), {}),
}


@pytest.mark.parametrize("name", UNARY)
@SETTINGS
@given(shape=shapes(), data=st.data())
def test_unary_op_gradients(name, shape, data):
    op, domain = UNARY[name]
    check_gradients(op, [data.draw(arrays(shape, **domain))])


@SETTINGS
@given(pair=broadcastable_shapes(), data=st.data())
def test_maximum_gradients(pair, data):
    a = data.draw(arrays(pair.input_shapes[0]))
    b = data.draw(arrays(pair.input_shapes[1], offset=0.005))  # never equal to a: no ties
    check_gradients(F.maximum, [a, b])


@SETTINGS
@given(shapes_=broadcastable_shapes(num_shapes=3), data=st.data())
def test_where_gradients(shapes_, data):
    condition_shape, a_shape, b_shape = shapes_.input_shapes
    condition = data.draw(arrays(condition_shape)) > 0
    a, b = data.draw(arrays(a_shape)), data.draw(arrays(b_shape))
    check_gradients(lambda a, b: F.where(condition, a, b), [a, b])


# ----------------------------------------------------------------------------- exact values
def test_unbroadcast_sums_over_broadcast_axes():
    a = Tensor(np.ones((3, 1)), requires_grad=True)
    b = Tensor(np.ones((2, 1, 4)), requires_grad=True)
    (a + b).backward(np.ones((2, 3, 4)))
    np.testing.assert_array_equal(a.grad, np.full((3, 1), 8.0))  # summed over the 2 and the 4
    np.testing.assert_array_equal(b.grad, np.full((2, 1, 4), 3.0))


def test_abs_has_zero_gradient_at_zero_and_relu_too():
    x = Tensor(np.array([-1.0, 0.0, 2.0]), requires_grad=True)
    (F.abs(x) + F.relu(x)).sum().backward()
    np.testing.assert_array_equal(x.grad, [-1.0, 0.0, 2.0])


@pytest.mark.parametrize("parallel_size", [0, None], ids=["numba loops", "numpy below the threshold"])
@SETTINGS
@given(shape=shapes(max_dims=4), transposed=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]),
       data=st.data())
def test_fused_relu_matches_the_plain_numpy_op(parallel_size, shape, transposed, dtype, data):
    """The fast path (FusedReLU, what F.relu runs for float tensors, so the gradient checks above test
    it) against the lesson (ReLU): the same output and gradient for a random upstream gradient, zeros
    included, also for a transposed (non-contiguous) input; neither input nor upstream gradient is
    modified. Both branches of the fast path: the Numba loops (threshold 0) and NumPy for small arrays."""
    from minidl.kernels import activation
    from minidl.ops.activation import FusedReLU, ReLU

    x = data.draw(arrays(shape, dtype=dtype))
    x = x.T if transposed else x
    upstream = np.random.default_rng(0).standard_normal(x.shape).astype(dtype).T.copy().T
    assert isinstance(F.relu(Tensor(x, requires_grad=True))._ctx, FusedReLU)
    threshold = activation.PARALLEL_SIZE if parallel_size is None else parallel_size
    with mock.patch.object(activation, "PARALLEL_SIZE", threshold):
        check_fast_path_matches(ReLU.apply, FusedReLU.apply, x, upstream)


def test_clamp_passes_gradient_on_the_closed_interval():
    x = Tensor(np.array([-2.0, -1.0, 0.0, 1.0, 2.0]), requires_grad=True)
    F.clamp(x, -1.0, 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 1.0, 1.0, 0.0])  # as torch.clamp


def test_sigmoid_is_stable_for_large_inputs():
    x = Tensor(np.array([-800.0, 0.0, 800.0]), requires_grad=True)
    with np.errstate(over="raise", invalid="raise"):  # underflow to 0 is fine
        y = F.sigmoid(x)
        y.sum().backward()
    np.testing.assert_array_equal(y.data, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(x.grad, [0.0, 0.25, 0.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_python_and_numpy_scalars_take_the_tensor_dtype(dtype):
    x = Tensor(np.ones(3, dtype), requires_grad=True)
    for y in [x + 0.1, 0.1 * x, x / np.float64(3), x ** 2, 2 ** x, F.clamp(x, min=np.float64(0.5)),
              F.maximum(x, 0.5)]:
        assert y.dtype == dtype
        y.backward(np.ones(3, dtype))
    assert x.grad.dtype == dtype


# ----------------------------------------------------------------------------- errors
def test_shape_mismatch_names_the_op_and_both_shapes():
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4,\) cannot be broadcast"):
        Tensor(np.ones((2, 3))) + Tensor(np.ones(4))


def test_non_integer_number_with_integer_tensor_is_refused_not_truncated():
    labels = Tensor(np.arange(3))
    assert (labels + 1).dtype == np.int64
    with pytest.raises(ValueError, match=r"mul: the number 0.5 does not fit the int64 tensor"):
        labels * 0.5


def test_where_shape_mismatch_names_all_three_shapes():
    with pytest.raises(ValueError, match=r"where: condition \(3,\), a \(2, 2\) and b \(2,\)"):
        F.where(np.ones(3, bool), Tensor(np.ones((2, 2))), Tensor(np.ones(2)))


def test_clamp_needs_a_bound():
    with pytest.raises(ValueError, match="clamp: at least one"):
        F.clamp(Tensor(np.ones(2)))


@SETTINGS
@given(shape=shapes(), data=st.data())
def test_cast_gradients(shape, data):
    """Through a float32 stage: values and central-difference steps are multiples of 2^-10, which float32
    holds exactly, so the differences are exact and the check keeps float64's tolerances."""
    x = np.round(data.draw(arrays(shape)) * 1024) / 1024
    gradcheck(lambda t: F.cast(F.cast(t, np.float32), np.float64), [x], eps=2**-10)


@pytest.mark.parametrize("source, target", [(np.float32, np.float64), (np.float64, np.float32)])
def test_cast_sends_the_gradient_back_in_the_input_dtype(source, target):
    """y = cast(x): dL/dx = g converted to x's dtype, values unchanged (g is exact in both dtypes here)."""
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((3, 4)).astype(source), requires_grad=True)
    y = F.cast(x, target)
    assert y.dtype == target
    np.testing.assert_array_equal(y.data, x.data.astype(target))
    g = (rng.integers(-1000, 1000, (3, 4)) / 64).astype(target)
    y.backward(g)
    assert x.grad.dtype == source
    np.testing.assert_array_equal(x.grad, g.astype(source))
