"""max_pool2d and max_unpool2d: kernels against their NumPy twins, gradients, exact identities, PyTorch parity.

Pooling data are distinct values 0.1 apart (a shuffled grid), so the eps = 1e-6 of the central
differences can never change which element wins a window.
"""

import numpy as np
import pytest
from helpers import check_gradients, check_op
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

import minidl.functional as F
from minidl import Tensor
from minidl.kernels import pooling as kernels
from minidl.kernels.reference import pooling as reference
from minidl.ops.pooling import pool_output_size

TORCH_REASON = "optional torch extra not installed: parity tests need `pip install -e .[torch]`"
SETTINGS = settings(max_examples=30, deadline=None)
GRADCHECK_SETTINGS = settings(max_examples=15, deadline=None)  # 2 forward passes per input element


@st.composite
def pool_cases(draw, max_dilation=2):
    """(input shape, kwargs of max_pool2d): batch 1-3, channels 1-5, non-square, kernel 1-4,
    stride 1-3, padding 0..kernel//2, dilation, ceil_mode. The input is at least as large as the
    dilated window minus the padding, and at least the dilation (so no window misses the input)."""
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    dilation = tuple(draw(st.integers(1, max_dilation)) for _ in kernel)
    side = [draw(st.integers(max(d, d * (k - 1) + 1 - 2 * p), d * (k - 1) + 4))
            for k, p, d in zip(kernel, padding, dilation)]
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 5)), *side)
    options = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation,
                   ceil_mode=draw(st.booleans()))
    return shape, options


def shuffled_grid(shape, seed, dtype=np.float64):
    """Every value distinct, 0.1 apart, in a random order set by ``seed``."""
    size = int(np.prod(shape))
    return ((np.random.default_rng(seed).permutation(size) - size / 2) * 0.1).reshape(shape).astype(dtype)


@st.composite
def distinct_values(draw, shape, dtype=np.float64):
    """Every value distinct, 0.1 apart, in random order."""
    return shuffled_grid(shape, draw(st.integers(0, 2**32 - 1)), dtype)


def kernel_geometry(shape, options):
    """The arguments the kernels take, as max_pool2d works them out."""
    kernel, padding, dilation = options["kernel_size"], options["padding"], options["dilation"]
    stride = options["stride"] or kernel
    out = tuple(pool_output_size(n, k, s, p, d, options["ceil_mode"])
                for n, k, s, p, d in zip(shape[2:], kernel, stride, padding, dilation))
    return kernel, stride, padding, dilation, out


def brute_force_max_pool(x, options):
    """y[n, c, oy, ox] by looping over every window tap (padding taps skipped, i.e. -inf)."""
    kernel, stride, padding, dilation, out = kernel_geometry(x.shape, options)
    y = np.full(x.shape[:2] + out, -np.inf)
    for oy, ox in np.ndindex(*out):
        for i, j in np.ndindex(*kernel):
            h, w = oy * stride[0] - padding[0] + i * dilation[0], ox * stride[1] - padding[1] + j * dilation[1]
            if 0 <= h < x.shape[2] and 0 <= w < x.shape[3]:
                y[:, :, oy, ox] = np.maximum(y[:, :, oy, ox], x[:, :, h, w])
    return y


# ------------------------------------------------------------------ kernels against their NumPy twins

@SETTINGS
@given(st.data(), pool_cases(max_dilation=3), st.sampled_from([np.float32, np.float64]))
def test_kernels_match_reference(data, case, dtype):
    shape, options = case
    x = data.draw(distinct_values(shape, dtype)).reshape(-1, *shape[2:])
    geometry = kernel_geometry(shape, options)
    indices = kernels.max_pool2d_indices(x, *geometry)
    np.testing.assert_array_equal(indices, reference.max_pool2d_indices(x, *geometry))
    assert indices.dtype == np.int64

    g = np.random.default_rng(0).standard_normal(indices.shape).astype(dtype)
    plane_size = shape[2] * shape[3]
    tolerance = dict(rtol=1e-5) if dtype == np.float32 else dict(rtol=1e-12)
    for accumulate in (True, False):  # overlapping windows repeat indices: both rules matter
        scattered = kernels.scatter_at_indices(g, indices, plane_size, accumulate)
        assert scattered.dtype == dtype
        np.testing.assert_allclose(scattered, reference.scatter_at_indices(g, indices, plane_size, accumulate),
                                   **tolerance)
    flat = x.reshape(x.shape[0], -1)
    np.testing.assert_array_equal(kernels.gather_at_indices(flat, indices), reference.gather_at_indices(flat, indices))


@pytest.mark.parametrize("accumulate", [True, False])
def test_scatter_writes_every_entry_of_its_uninitialised_output(accumulate, monkeypatch):
    """The scatter takes np.empty and zeroes each plane itself: old memory (NaN here) must not show through,
    whichever thread handles a plane (64 planes: more than one thread's share)."""
    rng = np.random.default_rng(0)
    indices = np.stack([rng.permutation(36)[:9].reshape(3, 3) for _ in range(64)])
    g = rng.standard_normal((64, 3, 3))
    monkeypatch.setattr(np, "empty", lambda shape, dtype=float: np.full(shape, np.nan, dtype=dtype))
    scattered = kernels.scatter_at_indices(g, indices, 36, accumulate)
    monkeypatch.undo()
    np.testing.assert_array_equal(scattered, reference.scatter_at_indices(g, indices, 36, accumulate))


@SETTINGS
@given(st.data(), st.integers(1, 6), st.integers(2, 9), st.integers(2, 9), st.sampled_from([np.float32, np.float64]))
def test_2x2_kernel_matches_reference_and_the_general_kernel(data, planes, height, width, dtype):
    """The fast path for 2x2 windows with stride 2 (odd sizes leave a row or column out) finds the indices
    of the general kernel and gathers the values it points at."""
    x = data.draw(distinct_values((planes, height, width), dtype))
    values, indices = kernels.max_pool2d_2x2(x)
    expected_values, expected_indices = reference.max_pool2d_2x2(x)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_array_equal(values, expected_values)
    assert values.dtype == dtype and indices.dtype == np.int64
    general = kernels.max_pool2d_indices(x, (2, 2), (2, 2), (0, 0), (1, 1), (height // 2, width // 2))
    np.testing.assert_array_equal(indices, general)


@pytest.mark.parametrize("kernel", ["general", "2x2"])
def test_max_pool_kernel_follows_pytorch_on_ties_and_nan(kernel):
    """First maximum in row-major window order wins ties; NaN wins over numbers (PyTorch's CPU rule)."""
    x = np.array([[[1.0, 3.0, 3.0, 0.0], [3.0, 2.0, np.nan, 5.0]]])
    if kernel == "general":
        indices = kernels.max_pool2d_indices(x, (2, 2), (2, 2), (0, 0), (1, 1), (1, 2))
    else:
        values, indices = kernels.max_pool2d_2x2(x)
        np.testing.assert_array_equal(values, [[[3.0, np.nan]]])
    np.testing.assert_array_equal(indices, [[[1, 6]]])


# ------------------------------------------------------------------ gradients and identities

@GRADCHECK_SETTINGS
@given(st.data(), pool_cases())
def test_max_pool2d_gradcheck(data, case):
    shape, options = case
    x = data.draw(distinct_values(shape))
    check_gradients(lambda t: F.max_pool2d(t, **options), [x])


@GRADCHECK_SETTINGS
@given(st.data(), st.integers(1, 3), st.integers(1, 3), st.integers(2, 7), st.integers(2, 7))
def test_max_pool2d_2x2_fast_path_gradcheck(data, batch, channels, height, width):
    """max_pool2d(x, 2), the fast path (TakeFoundMaxima), on odd and even sizes: window maxima, indices that
    point at them, and gradients by central differences (random upstream gradient, input not modified)."""
    from minidl.ops.pooling import TakeFoundMaxima

    shape = (batch, channels, height, width)
    x = data.draw(distinct_values(shape))
    y, indices = F.max_pool2d(Tensor(x, requires_grad=True), 2, return_indices=True)
    assert isinstance(y._ctx, TakeFoundMaxima)
    np.testing.assert_array_equal(y.data, brute_force_max_pool(x, dict(kernel_size=(2, 2), stride=None, padding=(0, 0),
                                                                       dilation=(1, 1), ceil_mode=False)))
    np.testing.assert_array_equal(np.take_along_axis(x.reshape(batch, channels, -1),
                                                     indices.data.reshape(batch, channels, -1), axis=2),
                                  y.data.reshape(batch, channels, -1))
    check_gradients(lambda t: F.max_pool2d(t, 2), [x])


@SETTINGS
@given(pool_cases(max_dilation=2), st.integers(0, 2**32 - 1))
@example(case=((1, 2, 7, 6), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(2, 2),
                                  ceil_mode=False)), seed=0)
def test_max_pool2d_is_the_window_maximum(case, seed):
    """pool = brute-force window max over the dilated taps, and the indices point at those values."""
    shape, options = case
    x = shuffled_grid(shape, seed)
    y, indices = F.max_pool2d(Tensor(x), **options, return_indices=True)
    np.testing.assert_array_equal(y.data, brute_force_max_pool(x, options))
    assert indices.dtype == np.int64 and indices.shape == y.shape
    np.testing.assert_array_equal(np.take_along_axis(x.reshape(*shape[:2], -1), indices.data.reshape(*shape[:2], -1),
                                                     axis=2).reshape(y.shape), y.data)


@SETTINGS
@given(st.data(), pool_cases(max_dilation=1))  # max_unpool2d's output size rule assumes no dilation
def test_max_unpool2d_puts_the_window_maxima_back(data, case):
    """unpool(pool(x)) holds exactly the winning values, zeros elsewhere."""
    shape, options = case
    x = data.draw(distinct_values(shape))
    y, indices = F.max_pool2d(Tensor(x), **options, return_indices=True)

    restored = F.max_unpool2d(y, indices, options["kernel_size"], options["stride"], options["padding"],
                              output_size=shape[2:]).data
    won = np.zeros(shape, dtype=bool).reshape(*shape[:2], -1)
    np.put_along_axis(won, indices.data.reshape(*shape[:2], -1), True, axis=2)
    won = won.reshape(shape)
    np.testing.assert_array_equal(restored[won], x[won])
    assert np.all(restored[~won] == 0)


@st.composite
def unpool_cases(draw):
    """(x, distinct indices per plane, kwargs) for max_unpool2d, with any output_size it accepts."""
    kernel, stride = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    padding = draw(st.integers(0, kernel // 2))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    out = tuple((n - 1) * stride - 2 * padding + kernel + draw(st.integers(1 - stride, stride - 1))
                for n in shape[2:])
    assume(min(out) >= 1 and out[0] * out[1] >= shape[2] * shape[3])  # room for distinct indices
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    indices = np.stack([rng.choice(out[0] * out[1], shape[2] * shape[3], replace=False)
                        for _ in range(shape[0] * shape[1])]).reshape(shape)
    return rng.standard_normal(shape), indices, dict(kernel_size=kernel, stride=stride, padding=padding,
                                                     output_size=out)


@SETTINGS
@given(unpool_cases())
def test_max_unpool2d_gradcheck_and_adjoint(case):
    """<unpool(x, idx), z> == <x, take(z, idx)>, and the gradient passes gradcheck."""
    x, indices, options = case
    unpooled = F.max_unpool2d(Tensor(x), indices, **options).data
    assert unpooled.shape == x.shape[:2] + options["output_size"]
    z = np.random.default_rng(1).standard_normal(unpooled.shape)
    taken = np.take_along_axis(z.reshape(*z.shape[:2], -1), indices.reshape(*x.shape[:2], -1), axis=2)
    # relative to the size of the terms, not of the sum: a sum that cancels to ~0 keeps absolute rounding
    assert abs(np.sum(unpooled * z) - np.sum(x * taken.reshape(x.shape))) <= 1e-12 * np.sum(np.abs(unpooled * z))
    check_gradients(lambda t: F.max_unpool2d(t, indices, **options), [x])


def test_float32_stays_float32():
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 6, 5)).astype(np.float32), requires_grad=True)
    y, indices = F.max_pool2d(x, 2, return_indices=True)
    u = F.max_unpool2d(y, indices, 2, output_size=x.shape)
    u.backward(np.ones(u.shape, dtype=np.float32))
    assert y.dtype == u.dtype == x.grad.dtype == np.float32


def test_max_pool2d_on_a_non_contiguous_input():
    x = np.random.default_rng(0).standard_normal((5, 4, 3, 2)).transpose(3, 2, 1, 0)  # (2, 3, 4, 5), F-order
    np.testing.assert_array_equal(F.max_pool2d(Tensor(x), 2).data, brute_force_max_pool(x, dict(
        kernel_size=(2, 2), stride=None, padding=(0, 0), dilation=(1, 1), ceil_mode=False)))


# ------------------------------------------------------------------ against PyTorch

@SETTINGS
@given(st.data(), pool_cases(max_dilation=3), st.sampled_from([np.float32, np.float64]))
def test_max_pool2d_matches_torch(data, case, dtype):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    shape, options = case
    x = data.draw(distinct_values(shape, dtype))
    check_op(lambda t: F.max_pool2d(t, **options),
             lambda t: torch.nn.functional.max_pool2d(t, **options), [x])
    _, indices = F.max_pool2d(Tensor(x), **options, return_indices=True)
    _, expected = torch.nn.functional.max_pool2d(torch.tensor(x), **options, return_indices=True)
    np.testing.assert_array_equal(indices.data, expected.numpy())


@SETTINGS
@given(st.data(), pool_cases(max_dilation=1), st.sampled_from([np.float32, np.float64]))
def test_max_unpool2d_matches_torch(data, case, dtype):
    """Unpool torch's own pooling result (overlapping windows included: repeated indices)."""
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    shape, options = case
    x = data.draw(distinct_values(shape, dtype))
    y, indices = torch.nn.functional.max_pool2d(torch.tensor(x), **options, return_indices=True)
    unpool = dict(kernel_size=options["kernel_size"], stride=options["stride"], padding=options["padding"],
                  output_size=shape[2:])
    check_op(lambda t, i: F.max_unpool2d(t, i, **unpool),
             lambda t, i: torch.nn.functional.max_unpool2d(t, i, **unpool), [y.numpy(), indices.numpy()])


# ------------------------------------------------------------------ errors and edge cases

X = Tensor(np.zeros((1, 2, 5, 5)))


@pytest.mark.parametrize("call, error, message", [
    (lambda: F.max_pool2d(Tensor(np.zeros((2, 5, 5))), 2), ValueError, "4-D"),
    (lambda: F.max_pool2d(X, 6), ValueError, "larger than the padded input"),
    (lambda: F.max_pool2d(X, 3, padding=2), ValueError, "half of kernel_size"),
    (lambda: F.max_pool2d(X, 2, padding=-1), ValueError, "padding must be >= 0"),
    (lambda: F.max_pool2d(X, 0), ValueError, "kernel_size must be >= 1"),
    (lambda: F.max_pool2d(X, 2, stride=0), ValueError, "stride must be >= 1"),
    (lambda: F.max_pool2d(X, (2, 2, 2)), TypeError, "kernel_size must be an int or a pair"),
    (lambda: F.max_pool2d(X, 2.5), TypeError, "kernel_size"),
    (lambda: F.max_pool2d(Tensor(np.zeros((1, 1, 2, 2))), 2, padding=1, dilation=3), ValueError,
     "entirely in the padding"),
    (lambda: F.max_pool2d(Tensor(np.zeros((1, 1, 4, 4), dtype=np.int64)), 2), ValueError, "float32 or float64"),
    (lambda: F.max_unpool2d(X, np.zeros((1, 2, 5, 4), np.int64), 2), ValueError, "indices must have the input's shape"),
    (lambda: F.max_unpool2d(X, np.zeros((1, 2, 5, 5)), 2), TypeError, "integer"),
    (lambda: F.max_unpool2d(X, np.full((1, 2, 5, 5), 100), 2), ValueError, r"found 100 at \(0, 0, 0, 0\)"),
    (lambda: F.max_unpool2d(X, np.full((1, 2, 5, 5), -1), 2), ValueError, r"\[0, 100\)"),
    (lambda: F.max_unpool2d(X, np.zeros((1, 2, 5, 5), np.int64), 2, output_size=(12, 10)), ValueError,
     "strictly between 8 and 12"),
    (lambda: F.max_unpool2d(X, np.zeros((1, 2, 5, 5), np.int64), 2, output_size=(10,)), ValueError, "output_size"),
    (lambda: F.max_unpool2d(Tensor(np.zeros((1, 1, 1, 1))), np.zeros((1, 1, 1, 1), np.int64), 1, padding=1),
     ValueError, "not positive"),
])
def test_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_unpool_output_size_default_and_full_shape():
    """A 5×5 input pools (2×2) to 2×2, which unpools by default to 4×4: too small for the indices
    of the 5-wide input (PyTorch fails here too); output_size (N, C, H, W) restores 5×5."""
    x, indices = F.max_pool2d(Tensor(np.arange(50.0).reshape(1, 2, 5, 5)), 2, return_indices=True)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 16\)"):
        F.max_unpool2d(x, indices, 2)
    assert F.max_unpool2d(x, indices, 2, output_size=(1, 2, 5, 5)).shape == (1, 2, 5, 5)
    x, indices = F.max_pool2d(Tensor(np.arange(32.0).reshape(1, 2, 4, 4)), 2, return_indices=True)
    assert F.max_unpool2d(x, indices, 2).shape == (1, 2, 4, 4)
