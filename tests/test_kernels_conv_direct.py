"""The direct convolution for few input channels (``minidl.kernels.conv_fast_direct``): its forward and
weight gradient against the NumPy twins, gradients through the ops, which layers it serves, and the
properties its layout has to keep (bands of any size, a sum that does not depend on the threads,
inf and NaN, inputs left as they were)."""

import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from helpers import check_gradients
from hypothesis import given, settings
from hypothesis import strategies as st
from test_kernels_conv import assert_close, pairs, random

import minidl.functional as F
from minidl import Tensor
from minidl.kernels import conv as kernels
from minidl.kernels import conv_fast_direct as direct
from minidl.kernels.conv import conv_output_size
from minidl.kernels.reference import conv as reference
from models import UNet
from models.classifier import CAMClassifier

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = settings(max_examples=40, deadline=None)
GRADCHECK_SETTINGS = settings(max_examples=15, deadline=None)  # 2 forward passes per input element


@st.composite
def direct_cases(draw, max_channels=4, max_elements=600):
    """(x shape, weight shape, padding, dilation) of a stride-1 conv2d: batch 1-3, C_in 1-max_channels,
    C_out 1-20 (every remainder of the 4-channel blocks), kernels 1-4 (non-square; every remainder of the
    3-tap passes), padding 0-2, dilation 1-2, odd and non-square inputs down to the dilated kernel's span."""
    kernel, padding, dilation = draw(pairs(1, 4)), draw(pairs(0, 2)), draw(pairs(1, 2))
    low = [max(1, d * (k - 1) + 1 - 2 * p) for k, p, d in zip(kernel, padding, dilation)]
    side = [draw(st.integers(lo, lo + 7)) for lo in low]
    batch = draw(st.integers(1, max(1, min(3, max_elements // (side[0] * side[1])))))
    c_in = draw(st.integers(1, max(1, min(max_channels, max_elements // (batch * side[0] * side[1])))))
    return (batch, c_in, *side), (draw(st.integers(1, 20)), c_in, *kernel), padding, dilation


def full_output(x_shape, w_shape, padding, dilation) -> tuple:
    return tuple(conv_output_size(size, k, 1, p, d)
                 for size, k, p, d in zip(x_shape[2:], w_shape[2:], padding, dilation))


def check_against_reference(x_shape, w_shape, padding, dilation, dtype, output_size=None):
    """The direct forward and weight gradient on random data against the NumPy twins."""
    geometry = (1, 1), padding, dilation
    output_size = output_size or full_output(x_shape, w_shape, padding, dilation)
    x, w = random(x_shape, dtype, seed=1), random(w_shape, dtype, seed=2)
    g = random((x_shape[0], w_shape[0], *output_size), dtype, seed=3)
    assert_close(direct.conv2d_forward(x, w, padding, dilation, output_size),
                 reference.conv2d_forward(x, w, *geometry, output_size), dtype)
    assert_close(direct.weight_gradient(g, x, w_shape[2:], padding, dilation),
                 reference.conv2d_backward_weight(g, x, w_shape[2:], *geometry), dtype)


# ---------------------------------------------------------------- against the NumPy twins


@SETTINGS
@given(case=direct_cases(), dtype=st.sampled_from([np.float32, np.float64]))
def test_direct_matches_reference(case, dtype):
    check_against_reference(*case, dtype)


@SETTINGS
@given(case=direct_cases(), band_entries=st.integers(1, 40), min_bands=st.integers(1, 12))
def test_every_cut_into_bands_matches_reference(case, band_entries, min_bands):
    """Bands of one output row (BAND_ENTRIES smaller than a row), of a few rows, with a shorter last band,
    several bands per image; by default the small cases above take one band per image."""
    with mock.patch.object(direct, "BAND_ENTRIES", band_entries), mock.patch.object(direct, "MIN_BANDS", min_bands):
        check_against_reference(*case, np.float64)


def test_takes_only_the_first_output_positions():
    """conv_transpose2d's backward may ask for an output smaller than the full one (its upstream gradient
    has output_padding extra rows and columns), and the weight gradient then reads only that part."""
    check_against_reference((2, 3, 9, 8), (5, 3, 3, 2), (1, 2), (2, 1), np.float64, output_size=(4, 7))


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inf_and_nan_reach_the_same_entries_as_in_the_reference(value, dtype):
    """The wide rows multiply values that no output reads by zeros of g; 0 * inf would turn entries of dL/dw
    that never see the inf into NaN. A band holding inf or NaN is summed row by row instead."""
    x, w = random((2, 3, 9, 11), dtype, seed=1), random((5, 3, 3, 3), dtype, seed=2)
    x[1, 2, 4, 0] = value  # first column: the row before reads it through the entries between rows
    g = np.abs(random((2, 5, 9, 11), dtype, seed=3))  # one sign, so that inf does not meet -inf
    geometry = (1, 1), (1, 1), (1, 1)
    results = [direct.conv2d_forward(x, w, (1, 1), (1, 1), (9, 11)),
               direct.weight_gradient(g, x, (3, 3), (1, 1), (1, 1))]
    expected = [reference.conv2d_forward(x, w, *geometry, (9, 11)),
                reference.conv2d_backward_weight(g, x, (3, 3), *geometry)]
    for actual, wanted in zip(results, expected, strict=True):
        for kind in (np.isnan, np.isposinf, np.isneginf):
            np.testing.assert_array_equal(kind(actual), kind(wanted), err_msg=kind.__name__)
        finite = np.isfinite(wanted)
        assert finite.any() and not finite.all()
        assert_close(actual[finite], wanted[finite], dtype)


SAME_ON_ANY_THREAD_COUNT = """
import numba, numpy as np
from minidl.kernels import conv_fast_direct as direct
rng = np.random.default_rng(0)
x, g = rng.standard_normal((3, 3, 64, 64), np.float32), rng.standard_normal((3, 16, 64, 64), np.float32)
results = []
for threads in (1, 2, 1, 2):
    numba.set_num_threads(threads)
    results.append(direct.weight_gradient(g, x, (3, 3), (1, 1), (1, 1)))
print(all(np.array_equal(result, results[0]) for result in results))
"""


def test_weight_gradient_is_the_same_on_any_number_of_threads():
    """Each band sums into its own slot and the slots are added in order: bit for bit the same result
    on 1 and on 2 threads (a shared sum would depend on which thread adds first). In a fresh process
    that starts 2 Numba threads whatever the cores this one may use."""
    environment = {**os.environ, "NUMBA_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", SAME_ON_ANY_THREAD_COUNT], capture_output=True, text=True,
                          env=environment, cwd=ROOT, check=True)
    assert done.stdout.split() == ["True"]


def test_inputs_are_not_mutated_and_may_be_non_contiguous():
    x = random((2, 9, 7, 3)).transpose(0, 3, 1, 2)  # (2, 3, 9, 7), not C-contiguous
    w = random((6, 3, 3, 4), seed=2)[:, :, :, ::-1]  # (6, 3, 3, 4) reversed along the last axis
    g = random((2, 6, 9, 8), seed=3)[:, :, :, ::-1]
    originals = [a.copy() for a in (x, w, g)]
    geometry = (1, 1), (1, 2), (1, 1)
    np.testing.assert_allclose(direct.conv2d_forward(x, w, (1, 2), (1, 1), (9, 8)),
                               reference.conv2d_forward(x, w, *geometry, (9, 8)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(direct.weight_gradient(g, x, (3, 4), (1, 2), (1, 1)),
                               reference.conv2d_backward_weight(g, x, (3, 4), *geometry), rtol=0, atol=1e-12)
    for before, after in zip(originals, (x, w, g), strict=True):
        np.testing.assert_array_equal(after, before)


# ---------------------------------------------------------------- gradients through the ops


@GRADCHECK_SETTINGS
@given(case=direct_cases(max_channels=3, max_elements=150).filter(lambda case: direct.applies(case[1][2:], (1, 1),
                                                                                               case[0][1])),
       with_bias=st.booleans())
def test_gradients_through_the_direct_path(case, with_bias):
    """conv2d (forward and dL/dw) and stride-1 conv_transpose2d (whose backward computes a conv2d and its
    weight gradient) on cases with at most 27 patch-matrix rows, which take the direct path."""
    x_shape, w_shape, padding, dilation = case
    options = dict(padding=padding, dilation=dilation)
    conv_inputs = [random(x_shape, seed=1), random(w_shape, seed=2)]
    conv_inputs += [random(w_shape[0], seed=3)] if with_bias else []
    with mock.patch.object(direct, "conv2d_forward", wraps=direct.conv2d_forward) as forward, \
            mock.patch.object(direct, "weight_gradient", wraps=direct.weight_gradient) as weight_gradient:
        check_gradients(lambda x, w, *b: F.conv2d(x, w, *b, **options), conv_inputs)
        assert forward.called and weight_gradient.called
    # conv_transpose2d with the conv2d's output as input: its backward is that conv2d, on the direct path
    y_shape = (x_shape[0], w_shape[0], *full_output(x_shape, w_shape, padding, dilation))
    transposed_inputs = [random(y_shape, seed=4), random(w_shape, seed=5)]
    transposed_inputs += [random(w_shape[1], seed=6)] if with_bias else []
    with mock.patch.object(direct, "conv2d_forward", wraps=direct.conv2d_forward) as forward:
        check_gradients(lambda x, w, *b: F.conv_transpose2d(x, w, *b, **options), transposed_inputs)
        assert forward.called


# ---------------------------------------------------------------- which layers take the path


def direct_calls(model, x_shape):
    """Forward and backward of ``model`` on a random float32 batch (the input needs no gradient, as for a
    first layer); returns the x shapes that the direct forward and weight gradient were called with."""
    with mock.patch.object(direct, "conv2d_forward", wraps=direct.conv2d_forward) as forward, \
            mock.patch.object(direct, "weight_gradient", wraps=direct.weight_gradient) as weight_gradient:
        out = model(Tensor(random(x_shape, np.float32)))
        out.backward(random(out.shape, np.float32, seed=1))
    return ([call.args[0].shape for call in forward.call_args_list],
            [(call.args[0].shape, call.args[1].shape) for call in weight_gradient.call_args_list])


def test_the_first_layers_of_the_examples_take_the_direct_path():
    """UNet (3 -> 16 at 64 x 64, batch 16) and the CAM classifier (1 -> 16 at 28 x 28, batch 64): their first
    convolution, forward and dL/dw, and no layer with more input channels (UNet's 1x1 classifier, 16 -> 2,
    has 16 patch-matrix rows and takes it too)."""
    unet_forward, unet_gradients = direct_calls(UNet(in_channels=3, num_classes=2, base_channels=16), (16, 3, 64, 64))
    assert unet_forward == [(16, 3, 64, 64), (16, 16, 64, 64)]
    assert unet_gradients == [((16, 2, 64, 64), (16, 16, 64, 64)), ((16, 16, 64, 64), (16, 3, 64, 64))]
    cam_forward, cam_gradients = direct_calls(CAMClassifier(in_channels=1, num_classes=10), (64, 1, 28, 28))
    assert cam_forward == [(64, 1, 28, 28)] and cam_gradients == [((64, 16, 28, 28), (64, 1, 28, 28))]


@pytest.mark.parametrize("kernel_size, stride, c_in, expected", [
    ((3, 3), (1, 1), 3, True), ((3, 3), (1, 1), 1, True), ((5, 5), (1, 1), 1, True), ((1, 1), (1, 1), 27, True),
    ((3, 3), (1, 1), 4, False), ((3, 3), (1, 1), 16, False), ((3, 3), (2, 2), 3, False), ((3, 3), (1, 2), 1, False),
])
def test_applies_to_stride_1_and_few_patch_rows(kernel_size, stride, c_in, expected):
    assert direct.applies(kernel_size, stride, c_in) == expected


def test_larger_convolutions_keep_their_paths():
    """16 -> 16 channels (Winograd) and a stride-2 first layer (im2col) never call the direct kernels."""
    with mock.patch.object(direct, "conv2d_forward", side_effect=AssertionError("direct path")), \
            mock.patch.object(direct, "weight_gradient", side_effect=AssertionError("direct path")):
        for x_shape, w_shape, stride in (((2, 16, 12, 12), (16, 16, 3, 3), 1), ((2, 3, 12, 12), (16, 3, 3, 3), 2)):
            x, w = random(x_shape), random(w_shape)
            y = kernels.conv2d_forward(x, w, (stride, stride), (1, 1), (1, 1), (12 // stride, 12 // stride))
            kernels.conv2d_backward_weight(random(y.shape), x, (3, 3), (stride, stride), (1, 1), (1, 1))
