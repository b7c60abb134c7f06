"""The synthetic shapes data and the mask transfer between image and box grid."""

import numpy as np
import pytest

from minidl.detection.masks import mask_targets, paste_masks
from minidl.detection.shapes import ShapesDataset, make_sample, masks_to_boxes, shape_mask, validation_set


def test_samples_are_consistent():
    data = ShapesDataset(40, seed=3)
    for sample in data.samples:
        n = len(sample.labels)
        assert 1 <= n <= 4
        assert sample.image.shape == (3, 64, 64) and sample.image.dtype == np.float32
        assert 0 <= sample.image.min() and sample.image.max() <= 1
        assert sample.masks.shape == (n, 64, 64) and sample.masks.dtype == bool
        assert set(sample.labels) <= {1, 2, 3}
        np.testing.assert_array_equal(sample.boxes, masks_to_boxes(sample.masks))
        assert (sample.masks.sum(axis=0) <= 1).all()  # visible masks never share a pixel


def test_seeded_and_validation_set_fixed():
    a, b = ShapesDataset(5, seed=7), ShapesDataset(5, seed=7)
    for x, y in zip(a.samples, b.samples):
        np.testing.assert_array_equal(x.image, y.image)
        np.testing.assert_array_equal(x.masks, y.masks)
    assert len(validation_set()) == 200
    np.testing.assert_array_equal(validation_set(3)[2].image, validation_set()[2].image)
    images, samples = a.batch([0, 2])
    assert images.shape == (2, 3, 64, 64) and len(samples) == 2
    with pytest.raises(ValueError, match="validation_set"):
        validation_set(201)


def test_shape_masks_hand_cases():
    square = shape_mask(1, top=2, left=3, side=4, image_size=10)
    assert square.sum() == 16 and square[2:6, 3:7].all()
    circle = shape_mask(2, 0, 0, 10, 10)
    assert circle[5, 5] and not circle[0, 0] and circle.sum() < 100
    triangle = shape_mask(3, 0, 0, 10, 10)
    assert triangle[9].sum() > triangle[1].sum()  # widens downwards from the apex
    np.testing.assert_array_equal(masks_to_boxes(square[None]), [[3, 2, 7, 6]])


def test_make_sample_draws_objects_clearly_different_from_background():
    sample = make_sample(np.random.default_rng(0), noise=0.0)
    background = sample.image[:, ~sample.masks.any(axis=0)]
    assert np.ptp(background, axis=1).max() == 0  # a plain background without noise
    for mask in sample.masks:
        colour = sample.image[:, mask][:, 0]
        assert np.linalg.norm(colour - background[:, 0]) >= 0.4


def test_mask_targets_and_paste_round_trip():
    """A mask resampled onto its own box's 28 x 28 grid and pasted back is the mask again (up to the
    one-pixel rim where the bilinear read straddles the edge)."""
    mask = shape_mask(2, top=10, left=20, side=18, image_size=64)
    box = masks_to_boxes(mask[None])
    grid = mask_targets(mask[None], box, np.array([0]), 28)
    assert grid.shape == (1, 28, 28) and set(np.unique(grid)) <= {0.0, 1.0}
    pasted = paste_masks(grid, box, (64, 64))[0] >= 0.5
    assert (pasted & mask).sum() / (pasted | mask).sum() > 0.95
    assert not pasted[:, :20].any() and not pasted[:10].any()  # nothing outside the box


def test_paste_masks_hand_case():
    """A 2x2 grid over the box (0, 0, 4, 4): pixel centres 0.5 .. 3.5 read grid positions
    -0.25, 0.25, 0.75, 1.25 -> clamped to [0, 1] -> weights of the two cells."""
    grid = np.array([[[0.0, 1.0], [0.0, 1.0]]])
    pasted = paste_masks(grid, np.array([[0.0, 0.0, 4.0, 4.0]]), (5, 6))[0]
    np.testing.assert_allclose(pasted[0, :4], [0.0, 0.25, 0.75, 1.0])
    assert not pasted[4].any() and not pasted[:, 4:].any()
    assert paste_masks(np.zeros((0, 28, 28)), np.zeros((0, 4)), (8, 8)).shape == (0, 8, 8)
