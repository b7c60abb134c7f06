"""FashionMNIST: IDX parsing on files written here, clear errors on bad files, the bundled subset,
and (when ../shared/data is present) the real official files."""

import gzip
from pathlib import Path

import numpy as np
import pytest
from helpers import idx_bytes, write_split

from minidl.data import FashionMNIST
from minidl.data.fashion_mnist import BUNDLED_SAMPLE, read_fashion_mnist_files, read_idx

REAL_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fashion-mnist"
SAMPLES = BUNDLED_SAMPLE.parent


@pytest.fixture
def tiny():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8), np.array([3, 0, 9, 1, 3], dtype=np.uint8)


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("train, prefix", [(True, "train"), (False, "t10k")])
def test_reads_idx_files(tmp_path, tiny, compress, train, prefix):
    pixels, labels = tiny
    write_split(tmp_path, prefix, pixels, labels, compress)
    dataset = FashionMNIST(tmp_path, train=train)
    assert dataset.images.shape == (5, 1, 28, 28) and dataset.images.dtype == np.float32
    assert dataset.targets.dtype == np.int64
    np.testing.assert_array_equal(dataset.images[:, 0] * 255, pixels.astype(np.float32))
    np.testing.assert_array_equal(dataset.targets, labels)
    image, label = dataset[2]
    assert image.shape == (1, 28, 28) and label == 9
    assert len(dataset) == 5 and dataset.classes[9] == "Ankle boot"


def test_truncated_gzip_names_the_file(tmp_path, tiny):
    write_split(tmp_path, "train", *tiny, compress=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz is not a complete gzip file"):
        FashionMNIST(tmp_path)


def test_garbage_gzip_names_the_file(tmp_path, tiny):
    write_split(tmp_path, "train", *tiny, compress=True)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"this is not gzip at all")
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz is not a complete gzip file"):
        FashionMNIST(tmp_path)


@pytest.mark.parametrize("cut", [1, 500])
def test_truncated_idx_data(tmp_path, tiny, cut):
    write_split(tmp_path, "train", *tiny, compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte has \d+ bytes but its header announces "
                                         r"sizes \(5, 28, 28\).*truncated or corrupt"):
        FashionMNIST(tmp_path)


def test_truncated_header(tmp_path):
    path = tmp_path / "x-idx1-ubyte"
    path.write_bytes((2049).to_bytes(4, "big") + b"\x00\x00")
    with pytest.raises(ValueError, match=r"x-idx1-ubyte has 6 bytes, fewer than its 8-byte header"):
        read_idx(path, 2049)


def test_wrong_magic_number(tmp_path, tiny):
    pixels, labels = tiny
    write_split(tmp_path, "train", pixels, labels, compress=True)
    # a label file where the image file should be
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(2049, labels)))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz has magic number 2049, expected 2051"):
        FashionMNIST(tmp_path)


def test_image_and_label_counts_must_agree(tmp_path, tiny):
    pixels, labels = tiny
    write_split(tmp_path, "train", pixels, labels[:4], compress=True)
    with pytest.raises(ValueError, match=r"holds 5 images but .*train-labels-idx1-ubyte\.gz holds 4 labels"):
        FashionMNIST(tmp_path)


def test_labels_out_of_range(tmp_path, tiny):
    pixels, labels = tiny
    write_split(tmp_path, "train", pixels, np.array([0, 1, 2, 10, 3]), compress=True)
    with pytest.raises(ValueError, match=r"has label 10, expected 0\.\.9"):
        FashionMNIST(tmp_path)


def test_missing_folder_says_where_and_how(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"folder .*nowhere does not exist.*t10k-labels-idx1-ubyte\.gz"
                                                r".*zalandoresearch/fashion-mnist.*root=None"):
        FashionMNIST(tmp_path / "nowhere")


def test_missing_file(tmp_path, tiny):
    write_split(tmp_path, "train", *tiny, compress=True)
    with pytest.raises(FileNotFoundError, match=r"neither t10k-images-idx3-ubyte\.gz nor t10k-images-idx3-ubyte"):
        FashionMNIST(tmp_path, train=False)


@pytest.mark.parametrize("train, per_class", [(True, 1000), (False, 200)])
def test_bundled_subset(train, per_class):
    dataset = FashionMNIST(train=train)
    assert dataset.images.shape == (10 * per_class, 1, 28, 28) and dataset.images.dtype == np.float32
    assert dataset.images.min() == 0 and dataset.images.max() == 1
    assert dataset.targets.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(dataset.targets, minlength=10), np.full(10, per_class))
    assert len(dataset.classes) == 10
    licence = (SAMPLES / "LICENSE-fashion-mnist").read_text()
    assert licence.startswith("The MIT License (MIT) Copyright © 2017 Zalando SE")
    assert "Xiao" in (SAMPLES / "README.md").read_text()


@pytest.mark.skipif(not REAL_ROOT.is_dir(), reason=f"optional real data set not present at {REAL_ROOT}")
def test_real_files_and_bundle_provenance():
    """The official files load, and the bundled subset is exactly their pixels at the recorded indices."""
    test_set = FashionMNIST(REAL_ROOT, train=False)
    assert test_set.images.shape == (10_000, 1, 28, 28)
    np.testing.assert_array_equal(np.bincount(test_set.targets), np.full(10, 1000))
    with np.load(BUNDLED_SAMPLE, allow_pickle=False) as sample:
        for train, split, count in ((True, "train", 60_000), (False, "test", 10_000)):
            pixels, labels = read_fashion_mnist_files(REAL_ROOT, train)
            assert pixels.shape == (count, 28, 28)
            indices = sample[f"{split}_indices"]
            np.testing.assert_array_equal(sample[f"{split}_images"], pixels[indices])
            np.testing.assert_array_equal(sample[f"{split}_labels"], labels[indices])
