"""Shape ops: reshape/view, permute/transpose, flatten, getitem, pad, cat, stack — values and gradients."""

import numpy as np
import pytest
from helpers import arrays, check_gradients, shapes
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl.functional as F
from minidl import Tensor

SETTINGS = settings(max_examples=25, deadline=None)


def check_values_and_gradients(op, x, expected):
    np.testing.assert_array_equal(op(Tensor(x)).data, expected)
    check_gradients(op, [x])


@SETTINGS
@given(shape=shapes(), data=st.data())
def test_reshape_and_view(shape, data):
    x = data.draw(arrays(shape))
    target = list(data.draw(st.permutations(shape))) + [1] * data.draw(st.integers(0, 2))
    if target and data.draw(st.booleans()):
        target[data.draw(st.integers(0, len(target) - 1))] = -1
    check_values_and_gradients(lambda t: t.view(*target), x, x.reshape(target))
    check_values_and_gradients(lambda t: F.reshape(t, tuple(target)), x, x.reshape(target))


@SETTINGS
@given(shape=shapes(min_dims=1), data=st.data())
def test_permute_transpose_and_T(shape, data):
    x = data.draw(arrays(shape))
    order = data.draw(st.permutations(range(x.ndim)))
    dim0, dim1 = data.draw(st.integers(-x.ndim, x.ndim - 1)), data.draw(st.integers(-x.ndim, x.ndim - 1))
    check_values_and_gradients(lambda t: t.permute(*order), x, x.transpose(order))
    check_values_and_gradients(lambda t: F.transpose(t, dim0, dim1), x, np.swapaxes(x, dim0, dim1))
    check_values_and_gradients(lambda t: t.T, x, x.T)


@SETTINGS
@given(shape=shapes(max_dims=4, max_side=3), data=st.data())
def test_flatten(shape, data):
    x = data.draw(arrays(shape))
    ndim = max(x.ndim, 1)
    start = data.draw(st.integers(-ndim, ndim - 1))
    end = data.draw(st.integers(start % ndim, ndim - 1))
    expected = x.reshape(-1) if x.ndim == 0 else x.reshape(*x.shape[:start % ndim], -1, *x.shape[end + 1:])
    check_values_and_gradients(lambda t: t.flatten(start, end), x, expected)


@st.composite
def basic_index(draw, shape):
    """A tuple of ints, slices (any step, negative too), None and at most one Ellipsis."""
    parts = []
    for n in shape:
        parts.append(draw(st.integers(-n, n - 1) | st.slices(n) | st.just(slice(None))))
        if draw(st.integers(0, 5)) == 0:
            parts.append(None)
    if parts and draw(st.booleans()):
        start = draw(st.integers(0, len(parts) - 1))
        parts[start:draw(st.integers(start, len(parts)))] = [Ellipsis]
    return tuple(parts)


@SETTINGS
@given(shape=shapes(min_dims=1), data=st.data())
def test_getitem_basic_indexing(shape, data):
    x = data.draw(arrays(shape))
    index = data.draw(basic_index(shape))
    check_values_and_gradients(lambda t: t[index], x, x[index])


@SETTINGS
@given(shape=shapes(min_dims=1), data=st.data())
def test_getitem_integer_array_indexing_accumulates_repeated_indices(shape, data):
    x = data.draw(arrays(shape))
    dim = data.draw(st.integers(0, x.ndim - 1))
    positions = np.array(data.draw(st.lists(st.integers(-shape[dim], shape[dim] - 1), min_size=1, max_size=6)))
    index = (slice(None),) * dim + (positions,)
    check_values_and_gradients(lambda t: t[index], x, x[index])


def test_getitem_repeated_indices_closed_form():
    x = Tensor(np.arange(4.0), requires_grad=True)
    x[np.array([0, 2, 0, 0])].backward(np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(x.grad, [8.0, 0.0, 2.0, 0.0])


def test_getitem_boolean_mask_and_tensor_index():
    x = np.arange(6.0).reshape(2, 3) - 2.5
    mask = x > 0
    check_values_and_gradients(lambda t: t[Tensor(mask)], x, x[mask])
    check_values_and_gradients(lambda t: t[Tensor(np.array([1, 1])), 0], x, x[[1, 1], 0])


def test_getitem_output_is_a_copy():
    x = Tensor(np.zeros(3))
    y = x[:2]
    x.data[0] = 1.0
    assert y.data[0] == 0.0


@SETTINGS
@given(shape=shapes(min_dims=1), data=st.data())
def test_pad(shape, data):
    x = data.draw(arrays(shape))
    widths = data.draw(st.lists(st.integers(0, 2), min_size=0, max_size=2 * x.ndim).filter(lambda w: len(w) % 2 == 0))
    value = data.draw(st.sampled_from([0.0, -1.5]))
    numpy_widths = [(0, 0)] * x.ndim
    for k in range(len(widths) // 2):  # PyTorch order: last dim first
        numpy_widths[x.ndim - 1 - k] = (widths[2 * k], widths[2 * k + 1])
    check_values_and_gradients(lambda t: F.pad(t, tuple(widths), value), x,
                               np.pad(x, numpy_widths, constant_values=value))


@SETTINGS
@given(shape=shapes(min_dims=1), sizes=st.lists(st.integers(1, 3), min_size=1, max_size=3), data=st.data())
def test_cat(shape, sizes, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    xs = [data.draw(arrays(shape[:dim % len(shape)] + (n,) + shape[dim % len(shape) + 1:])) for n in sizes]
    expected = np.concatenate(xs, axis=dim)
    np.testing.assert_array_equal(F.cat([Tensor(x) for x in xs], dim).data, expected)
    check_gradients(lambda *ts: F.cat(ts, dim=dim), xs)


@SETTINGS
@given(shape=shapes(), count=st.integers(1, 3), data=st.data())
def test_stack(shape, count, data):
    dim = data.draw(st.integers(-len(shape) - 1, len(shape)))
    xs = [data.draw(arrays(shape)) for _ in range(count)]
    np.testing.assert_array_equal(F.stack([Tensor(x) for x in xs], dim).data, np.stack(xs, axis=dim))
    check_gradients(lambda *ts: F.stack(ts, dim=dim), xs)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("call, message", [
    (lambda x: x.reshape(4, 2), r"reshape: cannot view a tensor of shape \(2, 3\) \(6 elements\) as shape \(4, 2\)"),
    (lambda x: x.permute(0, 0), r"permute: dims \(0, 0\) are not a permutation of the 2 dims of shape \(2, 3\)"),
    (lambda x: x.permute(0, 1, 2), r"permute: dim 2 is out of range for a tensor with 2 dims"),
    (lambda x: x.transpose(0, 2), r"transpose: dim 2 is out of range"),
    (lambda x: x.flatten(1, 0), r"flatten: start_dim 1 comes after end_dim 0 for shape \(2, 3\)"),
    (lambda x: x.flatten(0, 5), r"flatten: dim 5 is out of range"),
    (lambda x: F.pad(x, (1,)), r"pad: expected an even number of widths"),
    (lambda x: F.pad(x, (1, -1)), r"pad: negative widths"),
    (lambda x: F.cat([x, Tensor(np.ones((3, 3)))], dim=1),
     r"cat: shapes must match in all dims except dim 1.*\(3, 3\)"),
    (lambda x: F.cat([x, x], dim=2), r"cat: dim 2 is out of range"),
    (lambda x: F.cat([x, Tensor(np.ones((2, 3), np.float32))]), r"cat: tensor 1 has dtype float32"),
    (lambda x: F.cat([]), r"cat: expected a non-empty list"),
    (lambda x: F.stack([x, Tensor(np.ones((2, 4)))]), r"stack: shapes must match in all dims.*\(2, 4\)"),
])
def test_errors_name_the_op_and_shapes(call, message):
    with pytest.raises(ValueError, match=message):
        call(Tensor(np.ones((2, 3))))


def test_getitem_out_of_range_names_the_shape():
    with pytest.raises(IndexError, match=r"getitem: index .* is invalid for shape \(2, 3\)"):
        Tensor(np.ones((2, 3)))[5]
