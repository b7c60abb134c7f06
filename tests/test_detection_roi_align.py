"""RoIAlign: Numba kernels vs the NumPy sampling-matrix twin, gradchecks, and hand cases worked out
from torchvision's roi_align formula (torchvision itself is not installed).
"""

import numpy as np
import pytest
from helpers import check_gradients
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl import Tensor
from minidl.detection.roi_align import boxes_to_rois, roi_align
from minidl.kernels import roi_align as kernels
from minidl.kernels.reference import roi_align as reference


def random_rois(rng, count, batch, image_size, spill=3.0):
    """(count, 5) rows (batch_index, x1, y1, x2, y2), some reaching past the image border, some tiny."""
    height, width = image_size
    corners = rng.uniform(-spill, [width + spill, height + spill], (count, 2))
    sizes = rng.uniform(0.0, [width / 2 + 2, height / 2 + 2], (count, 2))
    return np.concatenate([rng.integers(0, batch, (count, 1)), corners, corners + sizes], axis=1)


geometry = st.fixed_dictionaries(dict(
    batch=st.integers(1, 3), channels=st.integers(1, 3), height=st.integers(1, 9), width=st.integers(1, 9),
    rois=st.integers(0, 6), pooled=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    scale=st.sampled_from([1.0, 0.5, 0.25]), sampling_ratio=st.sampled_from([-1, 0, 1, 2, 3]),
    aligned=st.booleans(), seed=st.integers(0, 2**31 - 1)))


@settings(max_examples=60, deadline=None)
@given(geometry)
def test_kernels_match_reference(g):
    rng = np.random.default_rng(g["seed"])
    x = rng.standard_normal((g["batch"], g["height"], g["width"], g["channels"]))
    rois = random_rois(rng, g["rois"], g["batch"], (g["height"] / g["scale"], g["width"] / g["scale"]))
    boxes, index = rois[:, 1:].copy(), rois[:, 0].astype(np.int64)
    options = (g["scale"], g["pooled"], g["sampling_ratio"], g["aligned"])
    y = kernels.roi_align_forward(x, boxes, index, *options)
    np.testing.assert_allclose(y, reference.roi_align_forward(x, boxes, index, *options), atol=1e-12)
    upstream = rng.standard_normal(y.shape)
    backward_options = (g["scale"], g["sampling_ratio"], g["aligned"])
    grad = kernels.roi_align_backward(upstream, boxes, index, x.shape, *backward_options)
    np.testing.assert_allclose(grad, reference.roi_align_backward(upstream, boxes, index, x.shape, *backward_options),
                               atol=1e-12)
    # adjoint identity <S x, g> = <x, S^T g>
    assert np.sum(y * upstream) == pytest.approx(np.sum(x * grad), abs=1e-10)


@settings(max_examples=15, deadline=None)
@given(geometry.filter(lambda g: g["rois"] > 0 and g["height"] * g["width"] * g["batch"] * g["channels"] <= 120))
def test_gradcheck(g):
    """(The empty RoI list has its own test: there is no output to check a gradient against.)"""
    rng = np.random.default_rng(g["seed"])
    x = rng.standard_normal((g["batch"], g["channels"], g["height"], g["width"]))
    rois = random_rois(rng, g["rois"], g["batch"], (g["height"] / g["scale"], g["width"] / g["scale"]))
    check_gradients(lambda features: roi_align(features, rois, g["pooled"], g["scale"], g["sampling_ratio"],
                                               g["aligned"]), [x])


def test_single_pixel_box_hand_cases():
    x = np.arange(20, dtype=np.float64).reshape(1, 1, 4, 5)
    pixel = np.array([[0, 2.0, 1.0, 3.0, 2.0]])  # the pixel at row 1, column 2
    # aligned: the one sample sits at the pixel centre, i.e. exactly on feature value x[1, 2]
    assert roi_align(x, pixel, 1, sampling_ratio=1, aligned=True).data.item() == x[0, 0, 1, 2]
    # legacy: the sample sits at (1.5, 2.5) in feature coordinates, the mean of four values
    assert roi_align(x, pixel, 1, sampling_ratio=1, aligned=False).data.item() == x[0, 0, 1:3, 2:4].mean()


def test_linear_ramp_is_reproduced_exactly():
    """Bilinear interpolation of a linear function is exact, so each bin's mean is the ramp at the
    bin centre: with aligned=True the bin centre (cx, cy) in image pixels is feature position
    (cy * scale - 0.5, cx * scale - 0.5)."""
    a, b, c = 0.3, -0.7, 2.0
    rows, cols = np.meshgrid(np.arange(16.0), np.arange(16.0), indexing="ij")
    x = (a * rows + b * cols + c)[None, None]
    box = np.array([[0, 12.0, 8.0, 44.0, 40.0]])  # image coordinates, feature stride 4
    y = roi_align(x, box, (4, 2), spatial_scale=0.25, sampling_ratio=2, aligned=True).data[0, 0]
    centre_y = 8.0 + (np.arange(4) + 0.5) * 32 / 4
    centre_x = 12.0 + (np.arange(2) + 0.5) * 32 / 2
    expected = a * (centre_y[:, None] * 0.25 - 0.5) + b * (centre_x[None, :] * 0.25 - 0.5) + c
    np.testing.assert_allclose(y, expected, atol=1e-12)


def test_adaptive_sampling_ratio_and_far_outside_box():
    x = np.random.default_rng(0).standard_normal((1, 2, 6, 6))
    # sampling_ratio <= 0 uses ceil(box size / bins) points per axis: here 3 x 2 for a 6 x 4 box in 2 x 2 bins
    box = np.array([[0, 0.0, 0.0, 4.0, 6.0]])
    np.testing.assert_allclose(roi_align(x, box, 2, sampling_ratio=0, aligned=True).data,
                               roi_align(x, box, 2, sampling_ratio=-1, aligned=True).data)
    # aligned: start -0.5, bins 3 x 2 pixels, sample offsets (i + 0.5) * 1 -> all samples on integer
    # positions ph * 3 + iy, pw * 2 + ix, where bilinear interpolation reads the value itself
    explicit = np.zeros((2, 2, 2))
    for ph in range(2):
        for pw in range(2):
            ys, xs = ph * 3 + np.arange(3), pw * 2 + np.arange(2)
            explicit[:, ph, pw] = x[0][:, ys][:, :, xs].mean(axis=(1, 2))
    np.testing.assert_allclose(roi_align(x, box, 2, sampling_ratio=0, aligned=True).data[0], explicit, atol=1e-12)
    # samples more than one pixel outside the map read 0
    outside = np.array([[0, 20.0, 20.0, 30.0, 30.0]])
    assert not roi_align(x, outside, 3, aligned=True).data.any()


def test_empty_roi_list_and_list_form():
    x = Tensor(np.random.default_rng(1).standard_normal((2, 3, 5, 5)).astype(np.float32), requires_grad=True)
    empty = roi_align(x, np.zeros((0, 5)), (2, 3))
    assert empty.shape == (0, 3, 2, 3) and empty.dtype == np.float32
    (empty.sum() + (x * 0).sum()).backward()
    np.testing.assert_array_equal(x.grad, 0)
    per_image = [np.array([[0.0, 0.0, 3.0, 3.0]]), np.array([[1.0, 1.0, 4.0, 5.0], [0.0, 0.0, 2.0, 2.0]])]
    rows = boxes_to_rois(per_image)
    np.testing.assert_array_equal(rows[:, 0], [0, 1, 1])
    np.testing.assert_array_equal(roi_align(x, per_image, 2, 1.0, 2, True).data, roi_align(x, rows, 2, 1.0, 2, True).data)
    assert roi_align(x, [np.zeros((0, 4)), np.zeros((0, 4))], 2).shape == (0, 3, 2, 2)


def test_float32_stays_float32():
    x = Tensor(np.random.default_rng(2).standard_normal((1, 4, 6, 6)).astype(np.float32), requires_grad=True)
    y = roi_align(x, np.array([[0, 0.5, 0.5, 5.0, 4.0]]), 3, 1.0, 2, True)
    assert y.dtype == np.float32
    y.backward(np.ones(y.shape, dtype=np.float32))
    assert x.grad.dtype == np.float32


@pytest.mark.parametrize("boxes, output_size, message", [
    (np.zeros((2, 4)), 2, "boxes must be \\(K, 5\\)"),
    (np.array([[2, 0, 0, 1, 1.0]]), 2, "batch indices"),
    (np.array([[0.5, 0, 0, 1, 1.0]]), 2, "batch indices"),
    (np.array([[0, 0, 0, np.nan, 1.0]]), 2, "NaN"),
    (np.array([[0, 0, 0, 1, 1.0]]), 0, "output_size"),
    ([np.zeros((1, 4))], 2, "one \\(L_i, 4\\) array per image"),
])
def test_bad_arguments(boxes, output_size, message):
    with pytest.raises(ValueError, match=f"roi_align: .*{message}"):
        roi_align(np.zeros((2, 1, 4, 4)), boxes, output_size)
