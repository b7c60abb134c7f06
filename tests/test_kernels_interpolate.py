"""interpolate (nearest, bilinear) and the crop helpers: kernels against their NumPy twins,
gradients, adjoint identities, closed forms, PyTorch parity and errors."""

import numpy as np
import pytest
from helpers import check_gradients, check_op
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl.functional as F
from minidl import Tensor
from minidl.kernels import interpolate as kernels
from minidl.kernels.reference import interpolate as reference
from minidl.ops.resize import linear_source_taps, nearest_source_index

TORCH_REASON = "optional torch extra not installed: parity tests need `pip install -e .[torch]`"
SETTINGS = settings(max_examples=40, deadline=None)
MODES = [dict(mode="nearest"), dict(mode="bilinear", align_corners=False), dict(mode="bilinear", align_corners=True)]


@st.composite
def resize_cases(draw, max_side=6):
    """(input shape, interpolate kwargs): batch 1-3, channels 1-4, non-square, up- and downsampling,
    by size or by scale_factor (float or pair, with or without recompute_scale_factor)."""
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4)),
             draw(st.integers(1, max_side)), draw(st.integers(1, max_side)))
    options = dict(draw(st.sampled_from(MODES)))
    if draw(st.booleans()):
        options["size"] = draw(st.tuples(st.integers(1, 2 * max_side), st.integers(1, 2 * max_side)))
    else:
        factor = st.floats(0.3, 3.0).map(lambda f: round(f, 2))
        scale = draw(st.one_of(factor, st.tuples(factor, factor), st.sampled_from([2, 3, 0.5, 1.5])))
        scales = scale if isinstance(scale, tuple) else (scale, scale)
        if any(np.floor(n * s) < 1 for n, s in zip(shape[2:], scales)):
            scale, scales = 2, (2, 2)  # the drawn factor would shrink a side to nothing
        options["scale_factor"] = scale
        if draw(st.booleans()):
            options["recompute_scale_factor"] = True
    return shape, options


def random(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ------------------------------------------------------------------ kernels against their NumPy twins

@SETTINGS
@given(st.integers(1, 7), st.integers(1, 7), st.integers(1, 12), st.integers(1, 12), st.booleans(),
       st.sampled_from([np.float32, np.float64]))
def test_kernels_match_reference(height, width, out_h, out_w, align_corners, dtype):
    x, g = random((5, height, width), dtype), random((5, out_h, out_w), dtype, seed=1)
    tolerance = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    rows, cols = nearest_source_index(height, out_h), nearest_source_index(width, out_w)
    np.testing.assert_array_equal(kernels.resize_nearest(x, rows, cols), reference.resize_nearest(x, rows, cols))
    np.testing.assert_allclose(kernels.resize_nearest_backward(g, rows, cols, height, width),
                               reference.resize_nearest_backward(g, rows, cols, height, width), **tolerance)
    rows = linear_source_taps(height, out_h, None, align_corners, dtype)
    cols = linear_source_taps(width, out_w, None, align_corners, dtype)
    for result, expected in [(kernels.resize_bilinear(x, rows, cols), reference.resize_bilinear(x, rows, cols)),
                             (kernels.resize_bilinear_backward(g, rows, cols, height, width),
                              reference.resize_bilinear_backward(g, rows, cols, height, width))]:
        assert result.dtype == dtype
        np.testing.assert_allclose(result, expected, **tolerance)


# ------------------------------------------------------------------ gradients and identities

@settings(max_examples=25, deadline=None)
@given(resize_cases())
def test_interpolate_gradcheck(case):
    shape, options = case
    check_gradients(lambda t: F.interpolate(t, **options), [random(shape)])


@SETTINGS
@given(resize_cases(max_side=9))
def test_backward_is_the_adjoint_of_forward(case):
    """<interp(x), z> == <x, interp^T(z)>, where interp^T(z) is what backward sends to x for upstream z."""
    shape, options = case
    x = Tensor(random(shape), requires_grad=True)
    y = F.interpolate(x, **options)
    z = random(y.shape, seed=1)
    y.backward(z)
    # relative to the size of the terms, not of the sum: a sum that cancels to ~0 keeps absolute rounding
    assert abs(np.sum(y.data * z) - np.sum(x.data * x.grad)) <= 1e-12 * np.sum(np.abs(y.data * z))


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 5), st.integers(1, 5), st.booleans())
def test_nearest_upsampling_by_an_integer_factor_repeats_pixels(factor_h, factor_w, height, width, by_size):
    x = random((2, 3, height, width), np.float32)
    options = dict(size=(height * factor_h, width * factor_w)) if by_size else dict(scale_factor=(factor_h, factor_w))
    y = F.interpolate(Tensor(x), mode="nearest", **options)
    np.testing.assert_array_equal(y.data, np.repeat(np.repeat(x, factor_h, axis=2), factor_w, axis=3))
    assert y.dtype == np.float32


def test_bilinear_closed_forms():
    """align_corners=True maps corners to corners (a ramp stays a ramp); downsampling by 2 with
    align_corners=False averages each 2×2 block (the sample point is the block's centre)."""
    ramp = np.arange(4.0).reshape(1, 1, 1, 4)
    np.testing.assert_allclose(F.interpolate(Tensor(ramp), size=(1, 7), mode="bilinear", align_corners=True).data,
                               np.arange(0, 3.5, 0.5).reshape(1, 1, 1, 7), rtol=1e-15)
    x = random((2, 3, 6, 8))
    blocks = x.reshape(2, 3, 3, 2, 4, 2).mean(axis=(3, 5))
    np.testing.assert_allclose(F.interpolate(Tensor(x), scale_factor=0.5, mode="bilinear").data, blocks, rtol=1e-12)


def test_non_contiguous_input():
    x = random((5, 4, 3, 2)).transpose(3, 2, 1, 0)  # (2, 3, 4, 5), Fortran order
    for options in MODES:
        np.testing.assert_array_equal(F.interpolate(Tensor(x), size=(7, 3), **options).data,
                                      F.interpolate(Tensor(x.copy()), size=(7, 3), **options).data)


def test_float32_stays_float32():
    for options in MODES:
        x = Tensor(random((2, 3, 5, 4), np.float32), requires_grad=True)
        y = F.interpolate(x, scale_factor=1.7, **options)
        y.backward(np.ones(y.shape, dtype=np.float32))
        assert y.dtype == x.grad.dtype == np.float32


# ------------------------------------------------------------------ against PyTorch

@settings(max_examples=60, deadline=None)
@given(resize_cases(max_side=9), st.sampled_from([np.float32, np.float64]))
def test_interpolate_matches_torch(case, dtype):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    shape, options = case
    check_op(lambda t: F.interpolate(t, **options), lambda t: torch.nn.functional.interpolate(t, **options),
             [random(shape, dtype)])


@pytest.mark.parametrize("options", MODES)
@pytest.mark.parametrize("scale_factor", [2.1, 1.05, 0.75])
def test_interpolate_matches_torch_where_pytorch_special_cases_the_size(options, scale_factor):
    """A scale factor whose output is 2× the input (nearest) or exactly the input (both modes)
    takes PyTorch's shortcuts, which do not use 1/scale_factor: 5 * 2.1 -> 10, 5 * 1.05 -> 5."""
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    check_op(lambda t: F.interpolate(t, scale_factor=scale_factor, **options),
             lambda t: torch.nn.functional.interpolate(t, scale_factor=scale_factor, **options),
             [random((2, 3, 5, 5), np.float32)])


# ------------------------------------------------------------------ crops

@st.composite
def crop_cases(draw):
    """(input shape (..., H, W) with 0-2 leading dims, window (top, left, height, width) inside it)."""
    leading = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    in_h, in_w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    height, width = draw(st.integers(1, in_h)), draw(st.integers(1, in_w))
    top, left = draw(st.integers(0, in_h - height)), draw(st.integers(0, in_w - width))
    return (*leading, in_h, in_w), (top, left, height, width)


@SETTINGS
@given(case=crop_cases())
def test_crop_is_a_slice_with_a_sliced_gradient(case):
    shape, (top, left, height, width) = case
    x = random(shape)
    np.testing.assert_array_equal(F.crop(Tensor(x), top, left, height, width).data,
                                  x[..., top:top + height, left:left + width])
    check_gradients(lambda t: F.crop(t, top, left, height, width), [x])


def centred_start(spare: int) -> int:
    """Where a centred window starts when ``spare`` pixels are left over: spare / 2, or for odd spare the
    even one of the two nearest starts (spare 3 -> 2, spare 5 -> 2)."""
    low = spare // 2
    return low + 1 if spare % 2 and low % 2 else low


@SETTINGS
@given(case=crop_cases())
def test_center_crop_takes_the_centred_window(case):
    """The margins above and below (left and right) differ by at most one; when they must differ, the
    top (left) one is the even of the two, as torchvision's round((H - h) / 2): round(1.5) = round(2.5) = 2."""
    shape, (_, _, height, width) = case
    x = random(shape)
    top, left = (centred_start(size - kept) for size, kept in zip(shape[-2:], (height, width)))
    np.testing.assert_array_equal(F.center_crop(Tensor(x), (height, width)).data,
                                  x[..., top:top + height, left:left + width])
    check_gradients(lambda t: F.center_crop(t, (height, width)), [x])


def test_crop_and_center_crop_closed_forms():
    x = random((2, 3, 7, 6))
    np.testing.assert_array_equal(F.crop(Tensor(x), 1, 2, 4, 3).data, x[..., 1:5, 2:5])
    # torchvision's rounding: top = round((7 - 4) / 2) = round(1.5) = 2, left = round((6 - 5) / 2) = round(0.5) = 0
    np.testing.assert_array_equal(F.center_crop(Tensor(x), (4, 5)).data, x[..., 2:6, 0:5])
    np.testing.assert_array_equal(F.center_crop(Tensor(x), 5).data, x[..., 1:6, 0:5])


def test_center_pad_or_crop():
    x = random((1, 2, 5, 6))
    y = F.center_pad_or_crop(Tensor(x), (8, 4))  # rows padded 1 above and 2 below, columns cropped 1 and 1
    expected = np.zeros((1, 2, 8, 4))
    expected[:, :, 1:6] = x[..., 1:5]
    np.testing.assert_array_equal(y.data, expected)
    assert F.center_pad_or_crop(Tensor(x), (5, 6)).shape == (1, 2, 5, 6)
    check_gradients(lambda t: F.center_pad_or_crop(t, (8, 4)), [x])


# ------------------------------------------------------------------ errors

X = Tensor(np.zeros((1, 2, 4, 5)))


@pytest.mark.parametrize("call, error, message", [
    (lambda: F.interpolate(Tensor(np.zeros((2, 4, 5))), size=3), ValueError, "4-D"),
    (lambda: F.interpolate(X), ValueError, "exactly one of size and scale_factor"),
    (lambda: F.interpolate(X, size=3, scale_factor=2), ValueError, "exactly one of size and scale_factor"),
    (lambda: F.interpolate(X, size=3, mode="bicubic"), ValueError, "mode must be 'nearest' or 'bilinear'"),
    (lambda: F.interpolate(X, size=3, align_corners=True), ValueError, "align_corners can only be set"),
    (lambda: F.interpolate(X, size=(3, 0)), ValueError, "sizes must be positive"),
    (lambda: F.interpolate(X, size=(3, -2)), ValueError, "sizes must be positive"),
    (lambda: F.interpolate(X, scale_factor=0.1), ValueError, "sizes must be positive"),
    (lambda: F.interpolate(X, scale_factor=-2.0), ValueError, "scale_factor must be positive"),
    (lambda: F.interpolate(X, size=(2, 3, 4)), TypeError, "size must be a number or a pair"),
    (lambda: F.interpolate(X, size=2.5), TypeError, "size"),
    (lambda: F.interpolate(X, size=3, recompute_scale_factor=True), ValueError, "recompute_scale_factor"),
    (lambda: F.interpolate(Tensor(np.zeros((1, 1, 2, 2), np.int64)), size=3), ValueError, "float32 or float64"),
    (lambda: F.crop(X, 1, 1, 4, 2), ValueError, "does not lie inside"),
    (lambda: F.crop(X, -1, 0, 2, 2), ValueError, "does not lie inside"),
    (lambda: F.crop(X, 0, 0.5, 2, 2), TypeError, "left must be an int"),
    (lambda: F.crop(Tensor(np.zeros(5)), 0, 0, 1, 1), ValueError, r"\(\.\.\., H, W\)"),
    (lambda: F.center_crop(X, (5, 5)), ValueError, "larger than the input"),
    (lambda: F.center_crop(X, 0), ValueError, "output_size must be positive"),
    (lambda: F.center_pad_or_crop(X, (2, 3, 4)), TypeError, "output_size"),
])
def test_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()
