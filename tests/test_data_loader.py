"""DataLoader (epochs, batching, seeded shuffling) and the batch transforms."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl import Tensor
from minidl.data import (ArrayDataset, Compose, DataLoader, Normalize, OxfordPets, RandomHorizontalFlip,
                         stratified_split)


def numbered(n: int) -> ArrayDataset:
    """Sample i has image value i (shape (1, 2, 3)) and target i, so batches reveal their indices."""
    images = np.repeat(np.arange(n, dtype=np.float32), 6).reshape(n, 1, 2, 3)
    return ArrayDataset(images, np.arange(n, dtype=np.int64))


class ListDataset:
    """A dataset that is not an ArrayDataset: only len() and [i] -> (image, target)."""

    def __init__(self, pairs):
        self.pairs = pairs

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        return self.pairs[i]


def epoch(loader):
    return [targets for _, targets in loader]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), batch_size=st.integers(1, 12), shuffle=st.booleans(), drop_last=st.booleans())
def test_one_epoch_visits_each_sample_once(n, batch_size, shuffle, drop_last):
    loader = DataLoader(numbered(n), batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=1)
    batches = list(loader)
    assert len(batches) == len(loader)
    sizes = [len(targets) for _, targets in batches]
    if drop_last:
        assert sizes == [batch_size] * (n // batch_size)
    else:
        assert sizes == [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])
    seen = np.concatenate([targets for _, targets in batches]) if batches else np.array([], np.int64)
    assert len(set(seen.tolist())) == len(seen)  # no repeats
    if not drop_last:
        np.testing.assert_array_equal(np.sort(seen), np.arange(n))
    if not shuffle:
        np.testing.assert_array_equal(seen, np.arange(len(seen)))
    for images, targets in batches:  # images and targets stay paired
        np.testing.assert_array_equal(images.data[:, 0, 0, 0], targets)


def test_batch_types():
    images, targets = next(iter(DataLoader(numbered(5), batch_size=4)))
    assert isinstance(images, Tensor) and images.shape == (4, 1, 2, 3) and images.dtype == np.float32
    assert not images.requires_grad
    assert isinstance(targets, np.ndarray) and targets.dtype == np.int64


def test_seeded_shuffle_is_reproducible_and_changes_per_epoch():
    first, second = (DataLoader(numbered(30), batch_size=7, shuffle=True, seed=123) for _ in range(2))
    epochs_a = [np.concatenate(epoch(first)) for _ in range(3)]
    epochs_b = [np.concatenate(epoch(second)) for _ in range(3)]
    for a, b in zip(epochs_a, epochs_b):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(epochs_a[0], epochs_a[1])  # a fresh order each epoch
    other = np.concatenate(epoch(DataLoader(numbered(30), batch_size=7, shuffle=True, seed=124)))
    assert not np.array_equal(epochs_a[0], other)


def test_generic_dataset_batches_like_array_dataset():
    arrays = numbered(9)
    listed = ListDataset([arrays[i] for i in range(9)])
    loaders = DataLoader(arrays, 4, shuffle=True, seed=5), DataLoader(listed, 4, shuffle=True, seed=5)
    for (x1, y1), (x2, y2) in zip(*loaders):
        np.testing.assert_array_equal(x1.data, x2.data)
        np.testing.assert_array_equal(y1, y2)


def test_transform_is_applied_to_each_batch():
    def add_hundred(images, targets):
        return images + 100, targets

    for images, targets in DataLoader(numbered(6), batch_size=4, transform=add_hundred):
        np.testing.assert_array_equal(images.data[:, 0, 0, 0], targets + 100)


def test_segmentation_batches_from_the_bundled_pets():
    loader = DataLoader(OxfordPets(split="test"), batch_size=64, shuffle=True, seed=0,
                        transform=Compose([RandomHorizontalFlip(seed=0), Normalize([0.5] * 3, [0.25] * 3)]))
    batches = list(loader)
    assert len(batches) == 5 and [len(masks) for _, masks in batches] == [64, 64, 64, 64, 42]
    images, masks = batches[0]
    assert images.shape == (64, 3, 64, 64) and images.dtype == np.float32
    assert masks.shape == (64, 64, 64) and masks.dtype == np.int64


def test_array_dataset_length_mismatch():
    with pytest.raises(ValueError, match=r"ArrayDataset: images and targets must have the same length, "
                                         r"got images \(3, 2\) and targets \(4,\)"):
        ArrayDataset(np.zeros((3, 2)), np.zeros(4))


@pytest.mark.parametrize("batch_size", [0, -1, 2.0])
def test_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match=r"DataLoader: batch_size must be a positive int"):
        DataLoader(numbered(3), batch_size=batch_size)


# ----------------------------------------------------------------------------------- transforms
def image_and_mask(n=16, height=3, width=5):
    rng = np.random.default_rng(0)
    masks = rng.integers(0, 4, size=(n, height, width))
    images = np.stack([masks, 2 * masks], axis=1).astype(np.float32)  # images determine their masks
    return images, masks


def test_flip_moves_image_and_mask_together():
    images, masks = image_and_mask()
    before = images.copy(), masks.copy()
    out_images, out_masks = RandomHorizontalFlip(p=0.5, seed=0)(images, masks)
    flipped = np.array([not np.array_equal(a, b) for a, b in zip(out_masks, masks)])
    assert 0 < flipped.sum() < len(masks)  # some, not all (16 draws at p = 0.5 with this seed)
    np.testing.assert_array_equal(out_images[:, 0], out_masks)  # still aligned
    np.testing.assert_array_equal(out_masks[flipped], masks[flipped][..., ::-1])
    np.testing.assert_array_equal(out_masks[~flipped], masks[~flipped])
    assert out_images.dtype == np.float32
    np.testing.assert_array_equal(images, before[0])  # inputs untouched
    np.testing.assert_array_equal(masks, before[1])


def test_flip_probability_extremes_and_labels():
    images, masks = image_and_mask()
    labels = np.arange(len(images))
    out_images, out_labels = RandomHorizontalFlip(p=1.0)(images, labels)
    np.testing.assert_array_equal(out_images, images[..., ::-1])
    np.testing.assert_array_equal(out_labels, labels)
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.0)(images, masks)[1], masks)


def test_flip_is_seeded():
    images, masks = image_and_mask()
    a, b = RandomHorizontalFlip(seed=7), RandomHorizontalFlip(seed=7)
    for _ in range(3):
        np.testing.assert_array_equal(a(images, masks)[1], b(images, masks)[1])


def test_flip_rejects_mismatched_masks():
    images, masks = image_and_mask()
    with pytest.raises(ValueError, match=r"masks \(16, 3, 4\) do not match images \(16, 2, 3, 5\)"):
        RandomHorizontalFlip()(images, masks[..., :4])


def test_normalize_per_channel():
    images, masks = image_and_mask()
    out, out_masks = Normalize(mean=[1.0, 2.0], std=[0.5, 4.0])(images, masks)
    assert out.dtype == np.float32 and out_masks is masks
    np.testing.assert_allclose(out[:, 0], (images[:, 0] - 1) / 0.5)
    np.testing.assert_allclose(out[:, 1], (images[:, 1] - 2) / 4)


def test_normalize_checks_channels_and_std():
    images, masks = image_and_mask()
    with pytest.raises(ValueError, match=r"Normalize: images must be \(N, 3, H, W\) for 3 channel means, "
                                         r"got shape \(16, 2, 3, 5\)"):
        Normalize([0, 0, 0], [1, 1, 1])(images, masks)
    with pytest.raises(TypeError, match=r"Normalize: images must be floating point, got dtype int64"):
        Normalize([0, 0], [1, 1])(masks[:, None].repeat(2, axis=1), masks)
    with pytest.raises(ValueError, match=r"std must be positive"):
        Normalize([0], [0])


def test_compose_applies_in_order():
    images, masks = image_and_mask()
    out, _ = Compose([Normalize([1, 1], [1, 1]), Normalize([0, 0], [2, 2])])(images, masks)
    np.testing.assert_allclose(out, (images - 1) / 2)


@settings(max_examples=60, deadline=None)
@given(groups=st.lists(st.sampled_from("abc"), min_size=1, max_size=60), fraction=st.sampled_from([0.0, 0.1, 0.2, 0.5]))
def test_stratified_split_holds_out_each_groups_share_evenly(groups, fraction):
    kept, held_out = stratified_split(groups, fraction)
    assert np.array_equal(np.sort(np.concatenate([kept, held_out])), np.arange(len(groups)))
    groups = np.array(groups)
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        # the j-th member (0-based) of a group is held out when floor((j+1) f) > floor(j f)
        expected = [m for j, m in enumerate(members) if int((j + 1) * fraction) > int(j * fraction)]
        assert held_out[np.isin(held_out, members)].tolist() == expected
        assert len(expected) == int(len(members) * fraction)


def test_stratified_split_every_fifth_and_bad_arguments():
    kept, held_out = stratified_split(["x", "y"] * 10, 0.2)  # x at 0, 2, 4, ...; y at 1, 3, 5, ...
    assert held_out.tolist() == [8, 9, 18, 19] and len(kept) == 16
    with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\), got 1.0"):
        stratified_split([0, 1], 1.0)
    with pytest.raises(ValueError, match="groups must be one value per sample"):
        stratified_split(np.zeros((2, 2)), 0.2)
