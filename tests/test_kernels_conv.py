"""conv2d and conv_transpose2d: kernels against their NumPy twins, gradients, exact identities, errors,
PyTorch parity.

Convolution is bilinear in (x, w), so central differences are exact up to rounding and every
gradient check runs at the default tight tolerances; sizes are kept tiny because the check costs
two forward passes per input element.
"""

import contextlib
from unittest import mock

import numpy as np
import pytest
from helpers import check_directional_derivatives, check_gradients, check_op
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl.functional as F
from minidl import Tensor
from minidl.kernels import conv as kernels
from minidl.kernels import conv_fast, conv_fast_direct, conv_fast_winograd
from minidl.kernels import im2col as im2col_kernels
from minidl.kernels import workers
from minidl.kernels.conv import conv_output_size
from minidl.kernels.reference import conv as reference

TORCH_REASON = "optional torch extra not installed: parity tests need `pip install -e .[torch]`"
SETTINGS = settings(max_examples=30, deadline=None)
GRADCHECK_SETTINGS = settings(max_examples=15, deadline=None)  # 2 forward passes per input element


def pairs(low, high):
    return st.tuples(st.integers(low, high), st.integers(low, high))


@st.composite
def conv_cases(draw, transposed=False, max_elements=400):
    """(x shape, weight shape, options): batch 1-3, channels 1-5, kernel 1-5 (non-square), stride 1-3,
    padding 0-2, dilation 1-2, non-square inputs; output_padding in [0, max(stride, dilation)) for the
    transposed op. N * C_in * H * W stays <= max_elements so a gradient check stays quick."""
    kernel, stride, padding, dilation = draw(pairs(1, 5)), draw(pairs(1, 3)), draw(pairs(0, 2)), draw(pairs(1, 2))
    options = dict(stride=stride, padding=padding, dilation=dilation)
    if transposed:
        options["output_padding"] = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
        # smallest input whose output (H - 1) s - 2p + d (k - 1) + op + 1 is positive
        low = [max(1, 1 + -(-(2 * p - d * (k - 1) - op) // s)) for k, s, p, d, op in
               zip(kernel, stride, padding, dilation, options["output_padding"])]
    else:
        low = [max(1, d * (k - 1) + 1 - 2 * p) for k, p, d in zip(kernel, padding, dilation)]  # padded input >= span
    side = [draw(st.integers(lo, lo + 4)) for lo in low]
    batch = draw(st.integers(1, max(1, min(3, max_elements // (side[0] * side[1])))))
    c_in = draw(st.integers(1, max(1, min(5, max_elements // (batch * side[0] * side[1])))))
    c_out = draw(st.integers(1, 5))
    weight_shape = (c_in, c_out, *kernel) if transposed else (c_out, c_in, *kernel)
    return (batch, c_in, *side), weight_shape, options


def random(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def transposed_output_size(size, kernel, stride, padding, output_padding, dilation):
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


# ---------------------------------------------------------------- gradients


@GRADCHECK_SETTINGS
@given(case=conv_cases(), with_bias=st.booleans())
def test_conv2d_gradients(case, with_bias):
    x_shape, w_shape, options = case
    inputs = [random(x_shape, seed=1), random(w_shape, seed=2)] + ([random(w_shape[0], seed=3)] if with_bias else [])
    check_gradients(lambda x, w, *b: F.conv2d(x, w, *b, **options), inputs)


@GRADCHECK_SETTINGS
@given(case=conv_cases(transposed=True), with_bias=st.booleans())
def test_conv_transpose2d_gradients(case, with_bias):
    x_shape, w_shape, options = case
    inputs = [random(x_shape, seed=1), random(w_shape, seed=2)] + ([random(w_shape[1], seed=3)] if with_bias else [])
    check_gradients(lambda x, w, *b: F.conv_transpose2d(x, w, *b, **options), inputs)


@pytest.mark.parametrize("op, w_shape", [("conv2d", (5, 4, 3, 3)), ("conv_transpose2d", (4, 5, 3, 3))])
def test_gradients_of_inputs_whose_patch_matrix_spans_several_tiles(op, w_shape):
    """The fast path cuts the patch matrix into tiles of ~2^18 entries (conv_fast.CHUNK_ELEMENTS) and sums
    dL/dw over them; the cases above take one tile. Here the patch matrix that dL/dw reads (of x for
    conv2d: 36 rows x 31,683 columns per image; of the upstream gradient for conv_transpose2d: 45 x 16,256)
    spans at least two tiles per worker thread for up to 4 threads. Too large for one central difference
    per element: checked along random directions instead."""
    x_shape = (2, 4, 181, 179) if op == "conv2d" else (2, 4, 128, 127)
    options = dict(stride=(1, 1), padding=(1, 2), dilation=(2, 1)) if op == "conv2d" else dict(stride=2, padding=1)
    inputs = [random(x_shape, seed=1), random(w_shape, seed=2), random(w_shape[0] if op == "conv2d" else w_shape[1])]
    check_directional_derivatives(lambda x, w, b: getattr(F, op)(x, w, b, **options), inputs)


def test_backward_skips_gradients_nobody_needs():
    x, w = Tensor(random((2, 3, 6, 5))), Tensor(random((4, 3, 3, 3)), requires_grad=True)
    F.conv2d(x, w).backward(random((2, 4, 4, 3)))
    assert x.grad is None and w.grad is not None


@pytest.mark.parametrize("op, w_shape", [("conv2d", (4, 3, 3, 2)), ("conv_transpose2d", (3, 4, 3, 2))])
def test_gradients_are_the_same_whichever_inputs_need_them(op, w_shape):
    """Each op computes only the gradients asked for (conv_transpose2d computes dL/dx and dL/dw together
    when both are needed, sharing one im2col): every combination must give the same values."""
    x_array, w_array = random((2, 3, 7, 6), seed=1), random(w_shape, seed=2)
    options = dict(stride=2, padding=1)
    upstream = random(getattr(F, op)(Tensor(x_array), Tensor(w_array), **options).shape, seed=3)
    grads = {}
    for x_needs, w_needs in [(True, True), (True, False), (False, True)]:
        x, w = Tensor(x_array, requires_grad=x_needs), Tensor(w_array, requires_grad=w_needs)
        getattr(F, op)(x, w, **options).backward(upstream)
        assert (x.grad is not None, w.grad is not None) == (x_needs, w_needs)
        grads[x_needs, w_needs] = x.grad, w.grad
    np.testing.assert_array_equal(grads[True, True][0], grads[True, False][0])
    np.testing.assert_array_equal(grads[True, True][1], grads[False, True][1])


# ---------------------------------------------------------------- exact identities


@SETTINGS
@given(case=conv_cases(max_elements=2000))
def test_conv_transpose2d_is_the_adjoint_of_conv2d(case):
    """<conv2d(x, w), y> == <x, conv_transpose2d(y, w)>, with output_padding restoring x's size."""
    x_shape, w_shape, options = case
    x, w = random(x_shape, seed=1), random(w_shape, seed=2)
    conv = F.conv2d(Tensor(x), Tensor(w), **options).data
    y = random(conv.shape, seed=3)
    output_padding = tuple((size + 2 * p - d * (k - 1) - 1) % s for size, k, s, p, d in
                           zip(x_shape[2:], w_shape[2:], options["stride"], options["padding"], options["dilation"]))
    back = F.conv_transpose2d(Tensor(y), Tensor(w), output_padding=output_padding, **options).data
    assert back.shape == x.shape
    assert abs(np.sum(conv * y) - np.sum(x * back)) <= 1e-12 * np.sum(np.abs(conv * y))


def bilinear_kernel(size):
    """FCN's bilinear upsampling filter of even width size = 2f: k[i, j] = (1 - |i - c| / f)(1 - |j - c| / f), c = f - 1/2."""
    factor = size // 2
    hat = 1 - np.abs(np.arange(size) - (factor - 0.5)) / factor
    return np.outer(hat, hat)


@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bilinear_conv_transpose2d_is_bilinear_upsampling(factor, dtype):
    """Kernel 2f, stride f, padding f/2 with one bilinear filter per channel upsamples by f: output pixel
    y reads source coordinate (y + 1/2)/f - 1/2 (align_corners=False). Away from the border, where both
    neighbours exist, that is linear interpolation along each axis (computed here with np.interp)."""
    channels, height, width = 3, 5, 7
    x = random((2, channels, height, width), dtype)
    weight = np.zeros((channels, channels, 2 * factor, 2 * factor), dtype=dtype)
    weight[np.arange(channels), np.arange(channels)] = bilinear_kernel(2 * factor)
    y = F.conv_transpose2d(Tensor(x), Tensor(weight), stride=factor, padding=factor // 2).data
    assert y.shape == (2, channels, height * factor, width * factor) and y.dtype == dtype

    source_y = (np.arange(height * factor) + 0.5) / factor - 0.5
    source_x = (np.arange(width * factor) + 0.5) / factor - 0.5
    rows = np.apply_along_axis(lambda line: np.interp(source_x, np.arange(width), line), 3, x.astype(np.float64))
    expected = np.apply_along_axis(lambda line: np.interp(source_y, np.arange(height), line), 2, rows)
    inside_y = (source_y >= 0) & (source_y <= height - 1)
    inside_x = (source_x >= 0) & (source_x <= width - 1)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y[:, :, inside_y][:, :, :, inside_x], expected[:, :, inside_y][:, :, :, inside_x],
                               rtol=tolerance, atol=tolerance)


@SETTINGS
@given(case=conv_cases(transposed=True))
def test_conv_transpose2d_output_size_is_pytorchs(case):
    x_shape, w_shape, options = case
    y = F.conv_transpose2d(Tensor(random(x_shape)), Tensor(random(w_shape)), **options)
    expected = [transposed_output_size(size, k, options["stride"][a], options["padding"][a],
                                       options["output_padding"][a], options["dilation"][a])
                for a, (size, k) in enumerate(zip(x_shape[2:], w_shape[2:]))]
    assert y.shape == (x_shape[0], w_shape[1], *expected)


# ---------------------------------------------------------------- kernels against the NumPy twins


def assert_close(actual, expected, dtype):
    """float32 within 1e-5, float64 within 1e-12, relative to the largest expected magnitude."""
    assert actual.dtype == dtype and actual.shape == expected.shape
    scale = max(1.0, float(np.max(np.abs(expected), initial=0)))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=(1e-5 if dtype == np.float32 else 1e-12) * scale)


@SETTINGS
@given(case=conv_cases(max_elements=2000), dtype=st.sampled_from([np.float32, np.float64]))
def test_kernels_match_reference(case, dtype):
    x_shape, w_shape, options = case
    geometry = options["stride"], options["padding"], options["dilation"]
    kernel_size = w_shape[2:]
    output_size = tuple(conv_output_size(size, k, s, p, d) for size, k, s, p, d in zip(x_shape[2:], kernel_size, *geometry))
    x, w = random(x_shape, dtype, seed=1), random(w_shape, dtype, seed=2)
    g = random((x_shape[0], w_shape[0], *output_size), dtype, seed=3)

    cols = kernels.im2col(x, kernel_size, *geometry, output_size)
    assert_close(cols, reference.im2col(x, kernel_size, *geometry, output_size), dtype)
    assert_close(kernels.col2im(cols, x_shape[2:], kernel_size, *geometry, output_size),
                 reference.col2im(cols, x_shape[2:], kernel_size, *geometry, output_size), dtype)
    assert_close(kernels.conv2d_forward(x, w, *geometry, output_size),
                 reference.conv2d_forward(x, w, *geometry, output_size), dtype)
    assert_close(kernels.conv2d_backward_input(g, w, x_shape[2:], *geometry),
                 reference.conv2d_backward_input(g, w, x_shape[2:], *geometry), dtype)
    assert_close(kernels.conv2d_backward_weight(g, x, kernel_size, *geometry),
                 reference.conv2d_backward_weight(g, x, kernel_size, *geometry), dtype)
    both = kernels.conv2d_forward_and_backward_weight(x, w, g, *geometry, output_size)
    assert_close(both[0], reference.conv2d_forward(x, w, *geometry, output_size), dtype)
    assert_close(both[1], reference.conv2d_backward_weight(g, x, kernel_size, *geometry), dtype)


def check_kernels_against_reference(x_shape, w_shape, geometry, dtype) -> tuple:
    """Every conv kernel (the fused forward + weight gradient too) on random data against its NumPy
    twins; returns the output size."""
    output_size = tuple(conv_output_size(size, k, s, p, d) for size, k, s, p, d in zip(x_shape[2:], w_shape[2:], *geometry))
    x, w = random(x_shape, dtype, seed=1), random(w_shape, dtype, seed=2)
    g = random((x_shape[0], w_shape[0], *output_size), dtype, seed=3)
    results = [kernels.conv2d_forward(x, w, *geometry, output_size),
               kernels.conv2d_backward_input(g, w, x_shape[2:], *geometry),
               kernels.conv2d_backward_weight(g, x, w_shape[2:], *geometry),
               *kernels.conv2d_forward_and_backward_weight(x, w, g, *geometry, output_size)]
    expected = [reference.conv2d_forward(x, w, *geometry, output_size),
                reference.conv2d_backward_input(g, w, x_shape[2:], *geometry),
                reference.conv2d_backward_weight(g, x, w_shape[2:], *geometry)]
    expected += [expected[0], expected[2]]  # conv2d_forward_and_backward_weight
    for actual, wanted in zip(results, expected, strict=True):
        assert_close(actual, wanted, dtype)
    return output_size


@pytest.mark.parametrize("transposed_gradient_channels", [64, 0])
@pytest.mark.parametrize("chunk", [None, 2000, 500, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiled_paths_match_reference(chunk, dtype, transposed_gradient_channels):
    """The tiny hypothesis cases take one tile; shrink CHUNK_ELEMENTS so the batch is split into groups
    of images (2000), into bands of rows of one image (500), or into single rows (1). The weight
    gradient is computed transposed for few output channels; a threshold of 0 takes the other way."""
    x_shape, w_shape = ((3, 4, 9, 8), (5, 4, 3, 2)) if chunk else ((2, 8, 40, 40), (6, 8, 3, 3))
    with mock.patch.object(conv_fast, "CHUNK_ELEMENTS", chunk or conv_fast.CHUNK_ELEMENTS), \
            mock.patch.object(conv_fast, "TRANSPOSED_GRADIENT_CHANNELS", transposed_gradient_channels):
        output_size = check_kernels_against_reference(x_shape, w_shape, ((2, 1), (1, 2), (1, 2)), dtype)
        tiles = conv_fast.tiles(x_shape[0], output_size[0], w_shape[1] * w_shape[2] * w_shape[3] * output_size[1])
    bands = {rows for _, rows in tiles}
    assert (len(bands) > 1) == (chunk in (500, 1)) and (len(tiles) > 1) == (chunk is not None)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("n_batch", [1, 2, 5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_split_among_workers_matches_reference(threads, n_batch, dtype):
    """Images shared among 1-3 worker threads, or rows when there are fewer images than workers (bands
    in the forward and dL/dW, but not in col2im, which adds into pixels that bands share), in small tiles."""
    with mock.patch.object(workers, "workers", return_value=threads), mock.patch.object(conv_fast, "CHUNK_ELEMENTS", 100):
        check_kernels_against_reference((n_batch, 3, 11, 7), (4, 3, 3, 2), ((1, 2), (1, 1), (2, 1)), dtype)


@pytest.mark.parametrize("n_batch", [10, 16])
def test_each_image_goes_to_one_tile_of_one_worker(n_batch):
    """Groups of images that do not divide a worker's share: the last group of a share must stop at
    the share's end (a UNet layer 32 -> 64 channels at 16 x 16, batch 16, once counted image 8 in both
    workers' shares, so dL/dx and dL/dW of that image were added twice)."""
    per_image = 2 * 3 * 3 * 5 * 4  # patch-matrix entries of one (2, 5, 4) image: groups of 3 images
    with mock.patch.object(workers, "workers", return_value=2), \
            mock.patch.object(conv_fast, "CHUNK_ELEMENTS", 3 * per_image), \
            mock.patch.object(conv_fast_direct, "MAX_PATCH_ROWS", 0):  # dL/dW too through the tiles
        parts = conv_fast.parts(n_batch, 5, per_image // 5, rows_may_split=False)
        covered = [i for tiles in parts for images, _ in tiles for i in range(n_batch)[images]]
        assert sorted(covered) == list(range(n_batch))
        check_kernels_against_reference((n_batch, 2, 5, 4), (3, 2, 3, 3), ((1, 1), (1, 1), (1, 1)), np.float64)


# ---------------------------------------------------------------- the Winograd fast path (3x3, stride 1)


@st.composite
def winograd_cases(draw, max_elements=300):
    """(x shape, weight shape, padding) for a 3x3, stride-1 conv2d: batch 1-3, channels 1-5, padding 0-2
    per axis, odd and non-square sizes down to an input the kernel just fits."""
    padding = draw(pairs(0, 2))
    side = [draw(st.integers(max(1, 3 - 2 * p), 3 - 2 * p + 6)) for p in padding]
    batch = draw(st.integers(1, max(1, min(3, max_elements // (side[0] * side[1])))))
    c_in = draw(st.integers(1, max(1, min(5, max_elements // (batch * side[0] * side[1])))))
    return (batch, c_in, *side), (draw(st.integers(1, 5)), c_in, 3, 3), padding


@contextlib.contextmanager
def winograd_for_every_3x3_convolution():
    """The Winograd path serves few channels and odd sizes too (by default it waits for 16 x 16 channels
    and an output its tiles cover with little waste, and the fewest input channels take the direct sums)."""
    with mock.patch.object(conv_fast_winograd, "MIN_CHANNEL_PRODUCT", 1), \
            mock.patch.object(conv_fast_winograd, "MAX_TILE_WASTE", 4.0), \
            mock.patch.object(conv_fast_direct, "MAX_PATCH_ROWS", 0):
        yield


def check_winograd_against_reference(x_shape, w_shape, padding, dtype, output_size=None):
    """Every conv kernel through the Winograd path (none may fall back on im2col) against the NumPy twins."""
    geometry = (1, 1), padding, (1, 1)
    full = tuple(size + 2 * p - 2 for size, p in zip(x_shape[2:], padding))
    output_size = output_size or full
    x, w = random(x_shape, dtype, seed=1), random(w_shape, dtype, seed=2)
    g = random((x_shape[0], w_shape[0], *full), dtype, seed=3)
    g_kept = random((x_shape[0], w_shape[0], *output_size), dtype, seed=4)  # dL/dy of the positions kept
    with mock.patch.object(conv_fast, "patch_products", side_effect=AssertionError("not the Winograd path")), \
            mock.patch.object(conv_fast, "input_gradient", side_effect=AssertionError("not the Winograd path")):
        results = [kernels.conv2d_forward(x, w, *geometry, output_size),
                   kernels.conv2d_backward_input(g, w, x_shape[2:], *geometry),
                   kernels.conv2d_backward_weight(g_kept, x, (3, 3), *geometry),
                   *kernels.conv2d_forward_and_backward_weight(x, w, g_kept, *geometry, output_size)]
    expected = [reference.conv2d_forward(x, w, *geometry, output_size),
                reference.conv2d_backward_input(g, w, x_shape[2:], *geometry),
                reference.conv2d_backward_weight(g_kept, x, (3, 3), *geometry)]
    expected += [expected[0], expected[2]]
    for actual, wanted in zip(results, expected, strict=True):
        assert_close(actual, wanted, dtype)


@SETTINGS
@given(case=winograd_cases(), dtype=st.sampled_from([np.float32, np.float64]))
def test_winograd_matches_reference(case, dtype):
    with winograd_for_every_3x3_convolution():
        check_winograd_against_reference(*case, dtype)


def test_winograd_takes_only_the_first_output_positions():
    """conv_transpose2d's backward may ask conv2d_forward for an output smaller than the full one (and the
    weight gradient then reads only that part of the patches)."""
    with winograd_for_every_3x3_convolution():
        check_winograd_against_reference((2, 3, 9, 8), (4, 3, 3, 3), (1, 2), np.float64, output_size=(6, 5))


@GRADCHECK_SETTINGS
@given(case=winograd_cases(max_elements=150), with_bias=st.booleans())
def test_winograd_gradients(case, with_bias):
    """conv2d and conv_transpose2d with 3x3 kernels and stride 1: forward, dL/dx and dL/dw run through the
    Winograd path."""
    x_shape, w_shape, padding = case
    for op, weight_shape in (("conv2d", w_shape), ("conv_transpose2d", (x_shape[1], w_shape[0], 3, 3))):
        inputs = [random(x_shape, seed=1), random(weight_shape, seed=2)]
        inputs += [random(weight_shape[0] if op == "conv2d" else weight_shape[1], seed=3)] if with_bias else []
        if op == "conv_transpose2d" and min(x_shape[2:]) + 2 - 2 * max(padding) < 1:
            continue  # its output would be empty
        with winograd_for_every_3x3_convolution():
            check_gradients(lambda x, w, *b, op=op: getattr(F, op)(x, w, *b, padding=padding), inputs)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("n_batch", [1, 2, 5])
@pytest.mark.parametrize("piece_elements", [1, 16 * 3 * 3 * 2, 10 ** 6])
def test_winograd_pieces_and_workers_match_reference(threads, n_batch, piece_elements):
    """Pieces of one row of tiles, of a few rows (bands), of whole images, shared among 1-3 workers
    (bands of tile rows among the workers when there are fewer images), on an odd-sized input."""
    with winograd_for_every_3x3_convolution(), mock.patch.object(workers, "workers", return_value=threads), \
            mock.patch.object(conv_fast_winograd, "PIECE_ELEMENTS", piece_elements), \
            mock.patch.object(conv_fast_winograd, "MIN_PIECE_TILES", 1):
        check_winograd_against_reference((n_batch, 3, 11, 7), (4, 3, 3, 3), (1, 0), np.float64)


def test_winograd_accepts_non_contiguous_inputs():
    x = random((2, 6, 7, 16)).transpose(0, 3, 1, 2)  # (2, 16, 6, 7), not C-contiguous
    w, g = random((16, 16, 3, 3), seed=2), random((2, 16, 6, 7), seed=3)[..., ::-1]
    geometry = (1, 1), (1, 1), (1, 1)
    np.testing.assert_allclose(kernels.conv2d_forward(x, w, *geometry, (6, 7)),
                               reference.conv2d_forward(x, w, *geometry, (6, 7)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(kernels.conv2d_backward_weight(g, x, (3, 3), *geometry),
                               reference.conv2d_backward_weight(g, x, (3, 3), *geometry), rtol=0, atol=1e-11)
    np.testing.assert_allclose(kernels.conv2d_backward_input(g, w, (6, 7), *geometry),
                               reference.conv2d_backward_input(g, w, (6, 7), *geometry), rtol=0, atol=1e-12)


def test_winograd_serves_the_unets_convolutions():
    """By default the path takes 3x3, stride-1 convolutions of at least 16 x 16 channels whose output its
    2x2 tiles cover with little waste, and nothing else."""
    assert conv_fast_winograd.applies((3, 3), (1, 1), (1, 1), 16, 16, (64, 64))
    assert conv_fast_winograd.applies((3, 3), (1, 1), (1, 1), 256, 128, (4, 4))
    assert conv_fast_winograd.applies((3, 3), (1, 1), (1, 1), 64, 64, (15, 16))  # 16 x 16 computed for 15 x 16
    assert not conv_fast_winograd.applies((3, 3), (1, 1), (1, 1), 64, 64, (7, 7))  # 8 x 8 computed for 7 x 7
    assert not conv_fast_winograd.applies((3, 3), (1, 1), (1, 1), 3, 16, (64, 64))
    assert not conv_fast_winograd.applies((3, 3), (2, 2), (1, 1), 64, 64, (32, 32))
    assert not conv_fast_winograd.applies((3, 3), (1, 1), (2, 2), 64, 64, (32, 32))
    assert not conv_fast_winograd.applies((2, 2), (1, 1), (1, 1), 64, 64, (32, 32))


def test_im2col_of_a_band_of_rows_is_that_part_of_the_full_patch_matrix():
    x = random((2, 3, 9, 7))
    geometry = (2, 1), (1, 2), (1, 1)
    full = kernels.im2col(x, (3, 3), *geometry, (5, 9))
    band = kernels.im2col(x, (3, 3), *geometry, (5, 9), band=(1, 4))
    np.testing.assert_array_equal(band, full.reshape(27, 2, 5, 9)[:, :, 1:4].reshape(27, -1))


def test_im2col_takes_only_the_first_output_positions():
    """A smaller output_size keeps the leading patches (conv_transpose2d's backward relies on it)."""
    x = random((2, 2, 7, 6))
    full = kernels.im2col(x, (3, 2), (1, 2), (1, 0), (2, 1), (5, 3))
    part = kernels.im2col(x, (3, 2), (1, 2), (1, 0), (2, 1), (4, 2))
    np.testing.assert_array_equal(part, full.reshape(-1, 2, 5, 3)[:, :, :4, :2].reshape(-1, 16))


@pytest.mark.parametrize("offset, size, stride, out_size, expected", [(-5, 1, 1, 1, (1, 1)), (-5, 1, 2, 2, (2, 2)),
                                                                      (3, 2, 1, 4, (0, 0)), (-1, 4, 1, 4, (1, 4))])
def test_valid_outputs_stay_inside_the_output(offset, size, stride, out_size, expected):
    """im2col writes zeros to outputs [0, lo) without bounds checks, so lo must not pass out_size even when
    a kernel tap misses every kept output position (large padding, output_size smaller than the full output)."""
    assert im2col_kernels._valid_outputs(offset, size, stride, out_size) == expected


def test_col2im_accepts_non_contiguous_columns():
    cols = random((40, 18)).T  # (C*kH*kW, N*H_out*W_out) = (2*3*3, 2*5*4), Fortran-ordered
    geometry = (3, 3), (1, 1), (1, 1), (1, 1), (5, 4)
    np.testing.assert_allclose(kernels.col2im(cols, (5, 4), *geometry), reference.col2im(cols, (5, 4), *geometry),
                               rtol=0, atol=1e-12)


# ---------------------------------------------------------------- dtypes and mutation


@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d"])
def test_float32_stays_float32_and_inputs_are_not_mutated(op):
    x, w, b = random((2, 3, 6, 5), np.float32), random((3, 3, 3, 3), np.float32), random(3, np.float32)
    originals = [a.copy() for a in (x, w, b)]
    leaves = [Tensor(a, requires_grad=True) for a in (x, w, b)]
    y = getattr(F, op)(*leaves, stride=2, padding=1)
    upstream = random(y.shape, np.float32)
    y.backward(upstream.copy())
    assert y.dtype == np.float32 and all(leaf.grad.dtype == np.float32 for leaf in leaves)
    for before, leaf in zip(originals, leaves):
        np.testing.assert_array_equal(leaf.data, before)


@pytest.mark.parametrize("op, w_shape", [("conv2d", (4, 3, 3, 3)), ("conv_transpose2d", (3, 4, 3, 3)),
                                         ("conv2d", (16, 16, 3, 3))])  # direct sums, im2col, Winograd
def test_empty_batch(op, w_shape):
    c_in = w_shape[1] if op == "conv2d" else w_shape[0]
    x, w = Tensor(np.zeros((0, c_in, 6, 6)), requires_grad=True), Tensor(random(w_shape), requires_grad=True)
    filled = getattr(F, op)(Tensor(random((2, c_in, 6, 6))), w, padding=1)  # leaves values in the scratch buffers
    filled.backward(random(filled.shape))
    w.grad = None
    y = getattr(F, op)(x, w, padding=1)
    y.backward(np.zeros(y.shape))
    assert y.shape[0] == 0 and x.grad.shape == x.shape and not w.grad.any()


def test_non_contiguous_inputs():
    x = random((2, 5, 6, 3)).transpose(0, 3, 1, 2)  # (2, 3, 5, 6), not C-contiguous
    w = random((3, 3, 2, 2))[:, :, ::-1]
    expected = reference.conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), (6, 7))
    np.testing.assert_allclose(F.conv2d(x, w, padding=1).data, expected, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- errors at the public boundary


def test_channel_mismatch_message():
    with pytest.raises(ValueError) as error:
        F.conv2d(Tensor(np.zeros((1, 3, 8, 8))), Tensor(np.zeros((4, 2, 3, 3))))
    assert str(error.value) == ("conv2d: weight has C_in=2 but input has 3 channels "
                                "(input (1, 3, 8, 8), weight (4, 2, 3, 3))")
    with pytest.raises(ValueError, match=r"conv_transpose2d: weight has C_in=2 but input has 3 channels"):
        F.conv_transpose2d(Tensor(np.zeros((1, 3, 8, 8))), Tensor(np.zeros((2, 4, 3, 3))))


@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d"])
@pytest.mark.parametrize("x_shape, w_shape, kwargs, message", [
    ((3, 8, 8), (3, 3, 3, 3), {}, r"input must be 4-D .*got shape \(3, 8, 8\)"),
    ((1, 3, 8, 8), (3, 3, 3), {}, r"weight must be 4-D .*got shape \(3, 3, 3\)"),
    ((1, 3, 8, 8), (3, 3, 3, 3), dict(bias=np.zeros(4)), r"bias must have shape \(3,\).*got \(4,\)"),
    ((1, 3, 8, 8), (3, 3, 3, 3), dict(bias=np.zeros((3, 1))), r"bias must have shape \(3,\)"),
    ((1, 3, 8, 8), (3, 3, 3, 3), dict(stride=0), r"stride must be >= 1, got 0"),
    ((1, 3, 8, 8), (3, 3, 3, 3), dict(padding=-1), r"padding must be >= 0, got -1"),
    ((1, 3, 8, 8), (3, 3, 3, 3), dict(dilation=(1, 0)), r"dilation must be >= 1, got \(1, 0\)"),
    ((1, 3, 8, 8), (3, 3, 0, 3), {}, r"weight has an empty dimension .*shape \(3, 3, 0, 3\)"),
    ((1, 0, 8, 8), (0, 0, 3, 3), {}, r"weight has an empty dimension .*shape \(0, 0, 3, 3\)"),
    ((1, 3, 8, 8), (0, 3, 3, 3), {}, r"weight has an empty dimension"),
])
def test_bad_arguments(op, x_shape, w_shape, kwargs, message):
    with pytest.raises(ValueError, match=f"{op}: {message}"):
        getattr(F, op)(Tensor(np.zeros(x_shape)), Tensor(np.zeros(w_shape)), **kwargs)


@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d"])
def test_dtype_errors(op):
    x, w = np.zeros((1, 3, 8, 8)), np.zeros((3, 3, 3, 3))
    with pytest.raises(ValueError, match=f"{op}: input is float64 but weight is float32"):
        getattr(F, op)(Tensor(x), Tensor(w.astype(np.float32)))
    with pytest.raises(ValueError, match=f"{op}: bias is float32 but input is float64"):
        getattr(F, op)(Tensor(x), Tensor(w), Tensor(np.zeros(3, np.float32)))
    with pytest.raises(ValueError, match=f"{op}: input must be float32 or float64, got int64"):
        getattr(F, op)(Tensor(x.astype(np.int64)), Tensor(w))
    with pytest.raises(TypeError, match=f"{op}: stride must be an int or a pair of ints, got 1.5"):
        getattr(F, op)(Tensor(x), Tensor(w), stride=1.5)
    with pytest.raises(TypeError, match=rf"{op}: padding must be an int or a pair of ints, got \(1, 1, 1\)"):
        getattr(F, op)(Tensor(x), Tensor(w), padding=(1, 1, 1))


def test_conv2d_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"conv2d: kernel \(5, 3\) with dilation \(1, 1\) spans \(5, 3\), "
                                         r"larger than the padded input \(4, 6\)"):
        F.conv2d(Tensor(np.zeros((1, 1, 2, 4))), Tensor(np.zeros((1, 1, 5, 3))), padding=1)
    with pytest.raises(ValueError, match=r"spans \(5, 5\)"):  # dilation 2 turns a 3x3 kernel into 5x5
        F.conv2d(Tensor(np.zeros((1, 1, 4, 4))), Tensor(np.zeros((1, 1, 3, 3))), dilation=2)


def test_conv_transpose2d_output_padding_rule():
    x, w = Tensor(np.zeros((1, 2, 4, 4))), Tensor(np.zeros((2, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"conv_transpose2d: output_padding \(2, 2\) must be smaller than "
                                         r"either stride \(2, 2\) or dilation \(1, 1\)"):
        F.conv_transpose2d(x, w, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="output_padding"):
        F.conv_transpose2d(x, w, output_padding=(0, 1))  # stride 1 and dilation 1 allow none
    assert F.conv_transpose2d(x, w, output_padding=1, dilation=2).shape == (1, 2, 9, 9)  # op < dilation is fine


def test_conv_transpose2d_non_positive_output_size():
    with pytest.raises(ValueError, match=r"conv_transpose2d: output size would be \(-1, 5\), it must be positive"):
        F.conv_transpose2d(Tensor(np.zeros((1, 1, 1, 3))), Tensor(np.zeros((1, 1, 1, 3))), padding=(1, 0))


# ---------------------------------------------------------------- PyTorch parity


@SETTINGS
@given(case=conv_cases(max_elements=2000), with_bias=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]))
def test_conv2d_matches_torch(case, with_bias, dtype):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    x_shape, w_shape, options = case
    inputs = [random(x_shape, dtype, 1), random(w_shape, dtype, 2)] + ([random(w_shape[0], dtype, 3)] if with_bias else [])
    check_op(lambda *a: F.conv2d(*a, **options), lambda *a: torch.nn.functional.conv2d(*a, **options), inputs)


@pytest.mark.parametrize("x_shape, w_shape, path", [((2, 16, 12, 10), (16, 16, 3, 3), "winograd"),
                                                   ((2, 3, 13, 11), (16, 3, 3, 3), "direct"),
                                                   ((2, 32, 7, 7), (64, 32, 3, 3), "im2col")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_at_the_models_channel_counts_matches_torch(x_shape, w_shape, path, dtype):
    """The drawn cases above have too few channels for the Winograd path: the three default paths, each
    at channel counts of the models (3x3, padding 1), against PyTorch in the models' float32 too."""
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    c_out, c_in = w_shape[:2]
    taken = ("direct" if conv_fast_direct.applies((3, 3), (1, 1), c_in) else "winograd"
             if conv_fast_winograd.applies((3, 3), (1, 1), (1, 1), c_in, c_out, x_shape[2:]) else "im2col")
    assert taken == path
    inputs = [random(x_shape, dtype, 1), random(w_shape, dtype, 2), random(c_out, dtype, 3)]
    # outputs up to ~30, sums of 144-288 products: float32 rounding in another order than oneDNN's moves
    # them by ~1e-5 absolute (a wrong tap or transform moves them by ~1)
    check_op(lambda *a: F.conv2d(*a, padding=1), lambda *a: torch.nn.functional.conv2d(*a, padding=1), inputs,
             atol=1e-4 if dtype == np.float32 else None)


@SETTINGS
@given(case=conv_cases(transposed=True, max_elements=2000), with_bias=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_conv_transpose2d_matches_torch(case, with_bias, dtype):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    x_shape, w_shape, options = case
    inputs = [random(x_shape, dtype, 1), random(w_shape, dtype, 2)] + ([random(w_shape[1], dtype, 3)] if with_bias else [])
    check_op(lambda *a: F.conv_transpose2d(*a, **options), lambda *a: torch.nn.functional.conv_transpose2d(*a, **options),
             inputs)
