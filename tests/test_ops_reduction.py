"""Reductions: sum, mean, max, var over drawn dims (None, int, negative, tuple), with and without keepdim."""

import numpy as np
import pytest
from helpers import arrays, check_gradients, shapes
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl.functional as F
from minidl import Tensor

SETTINGS = settings(max_examples=25, deadline=None)


@st.composite
def shape_and_dims(draw):
    """A shape and a ``dim`` argument for it: None, one (possibly negative) dim, or a tuple of dims."""
    shape = draw(shapes())
    ndim = len(shape)
    one = st.integers(-ndim, ndim - 1) if ndim else st.sampled_from([0, -1])
    several = st.lists(st.integers(0, max(ndim - 1, 0)), min_size=1, max_size=ndim, unique=True).map(tuple)
    return shape, draw(st.none() | one | (several if ndim else st.nothing()))


def reduced_count(shape, dim):
    dims = range(len(shape)) if dim is None else [dim] if isinstance(dim, int) else dim
    return int(np.prod([shape[d] for d in dims])) if shape else 1


REDUCTIONS = {
    "sum": (F.sum, np.sum, {}),
    "mean": (F.mean, np.mean, {}),
    "amax": (F.amax, np.max, {"distinct": True}),  # no ties: the maximum is one element
}


@pytest.mark.parametrize("name", REDUCTIONS)
@SETTINGS
@given(case=shape_and_dims(), keepdim=st.booleans(), data=st.data())
def test_reduction_values_and_gradients(name, case, keepdim, data):
    op, reference, domain = REDUCTIONS[name]
    shape, dim = case
    x = data.draw(arrays(shape, **domain))
    y = op(Tensor(x), dim, keepdim)
    axis = None if dim is None or not shape else dim
    np.testing.assert_allclose(y.data, reference(x, axis=axis, keepdims=keepdim), rtol=1e-12)
    check_gradients(lambda t: op(t, dim, keepdim), [x])


@SETTINGS
@given(case=shape_and_dims(), keepdim=st.booleans(), unbiased=st.booleans(), data=st.data())
def test_var_values_and_gradients(case, keepdim, unbiased, data):
    shape, dim = case
    if unbiased and reduced_count(shape, dim) == 1:
        unbiased = False  # n - 1 = 0: the unbiased variance of one element is undefined
    x = data.draw(arrays(shape))
    y = F.var(Tensor(x), dim, unbiased, keepdim)
    axis = None if dim is None or not shape else dim
    np.testing.assert_allclose(y.data, np.var(x, axis=axis, ddof=int(unbiased), keepdims=keepdim), atol=1e-12)
    check_gradients(lambda t: t.var(dim, unbiased=unbiased, keepdim=keepdim), [x])


def test_max_splits_the_gradient_equally_among_ties():
    x = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, -1.0]]), requires_grad=True)
    F.amax(x, dim=1).backward(np.array([6.0, 5.0]))
    np.testing.assert_array_equal(x.grad, [[0.0, 3.0, 3.0], [5.0, 0.0, 0.0]])


def test_mean_gradient_is_one_over_n_and_var_of_a_constant_has_zero_gradient():
    x = Tensor(np.full((4, 5), 2.5), requires_grad=True)
    x.mean().backward()
    np.testing.assert_array_equal(x.grad, np.full((4, 5), 1 / 20))
    x.grad = None
    x.var(dim=0).sum().backward()
    np.testing.assert_array_equal(x.grad, np.zeros((4, 5)))


def test_keepdim_shapes():
    x = Tensor(np.ones((2, 3, 4)))
    assert F.sum(x, (0, 2), keepdim=True).shape == (1, 3, 1)
    assert F.mean(x, -1).shape == (2, 3)
    assert F.max(x).shape == () and x.var(1, keepdim=True).shape == (2, 1, 4)


@pytest.mark.parametrize("op", [F.sum, F.mean, F.amax, F.var])
def test_out_of_range_dim_names_the_op(op):
    with pytest.raises(ValueError, match=rf"{op.__name__}: dim 3 is out of range for a tensor with 2 dims"):
        op(Tensor(np.ones((2, 3))), 3)


def test_max_along_a_dim_returns_values_and_indices_like_torch():
    x = Tensor(np.array([[1.0, 4.0, 3.0], [2.0, 0.0, -1.0]]), requires_grad=True)
    values, indices = F.max(x, 1)
    np.testing.assert_array_equal(values.data, [4.0, 2.0])
    np.testing.assert_array_equal(indices.data, [1, 0])
    assert indices.dtype == np.int64 and not indices.requires_grad
    values.backward(np.array([2.0, 3.0]))
    np.testing.assert_array_equal(x.grad, [[0.0, 2.0, 0.0], [3.0, 0.0, 0.0]])
    assert x.max(0, keepdim=True).indices.shape == (1, 3)
    with pytest.raises(TypeError, match="max: dim must be one int"):
        F.max(x, (0, 1))
