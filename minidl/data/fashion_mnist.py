"""Fashion-MNIST (Xiao, Rasul, Vollgraf 2017): 28x28 grayscale clothing images in 10 classes.

Read from the official IDX files (``root=path``) or from the subset bundled with minidl
(``root=None``). The IDX format is tiny and worth knowing: every header field is a big-endian
uint32.

    image file:  magic 2051 = 0x00000803 (0x08 = unsigned bytes, 3 dimensions), N, rows, cols,
                 then N*rows*cols pixel bytes (0 = background .. 255), row by row
    label file:  magic 2049 = 0x00000801 (unsigned bytes, 1 dimension), N, then N label bytes

The official release ships them gzip-compressed (``train-images-idx3-ubyte.gz`` ...); the
uncompressed files (same names without ``.gz``) are read too.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from .dataset import ArrayDataset

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049
BUNDLED_SAMPLE = Path(__file__).parent / "samples" / "fashion_mnist_subset.npz"
HOW_TO_GET = (
    "Get the four files from https://github.com/zalandoresearch/fashion-mnist (folder data/fashion/) "
    "or with `apt-get install dataset-fashion-mnist` (installs them into /usr/share/datasets/fashion-mnist), "
    "or pass root=None to use the subset bundled with minidl"
)


class FashionMNIST(ArrayDataset):
    """Fashion-MNIST as arrays: ``images`` (N, 1, 28, 28) float32 in [0, 1], ``targets`` (N,) int64.

    ``FashionMNIST(root=None, train=True)``
      root=None: the subset bundled with minidl (10,000 train images, 1,000 per class, and
      2,000 test images, 200 per class, drawn from the official files; see samples/README.md).
      root=folder: the official files ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``
      (train=True, 60,000 images) or ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``
      (train=False, 10,000 images), gzip-compressed or not.

    Pixels are scaled from 0..255 to [0, 1] once, at load time, so batches need no conversion.
    ``targets[i]`` indexes ``classes`` (0 = T-shirt/top ... 9 = Ankle boot).
    """

    classes = CLASSES

    def __init__(self, root: str | Path | None = None, train: bool = True):
        split = "train" if train else "test"
        if root is None:
            with np.load(BUNDLED_SAMPLE, allow_pickle=False) as sample:
                pixels, labels = sample[f"{split}_images"], sample[f"{split}_labels"]
        else:
            pixels, labels = read_fashion_mnist_files(Path(root), train)
        super().__init__(pixels[:, None].astype(np.float32) / np.float32(255), labels.astype(np.int64))
        self.source = "bundled subset" if root is None else str(root)
        self.train = train

    def __repr__(self):
        split = "train" if self.train else "test"
        return f"FashionMNIST({split}, {len(self)} images from {self.source})"


def read_fashion_mnist_files(root: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (N, 28, 28) uint8 and labels (N,) uint8 of one official split, checked for consistency."""
    if not root.is_dir():
        raise FileNotFoundError(
            f"FashionMNIST: folder {root} does not exist; it should hold the official IDX files "
            f"(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
            f"t10k-labels-idx1-ubyte.gz). {HOW_TO_GET}"
        )
    prefix = "train" if train else "t10k"
    image_path = _find_idx_file(root, f"{prefix}-images-idx3-ubyte")
    label_path = _find_idx_file(root, f"{prefix}-labels-idx1-ubyte")
    pixels = read_idx(image_path, IMAGE_MAGIC)
    labels = read_idx(label_path, LABEL_MAGIC)
    if pixels.shape[1:] != (28, 28):
        raise ValueError(f"FashionMNIST: {image_path} holds {pixels.shape[1]}x{pixels.shape[2]} images, expected 28x28")
    if len(pixels) != len(labels):
        raise ValueError(
            f"FashionMNIST: {image_path} holds {len(pixels)} images but {label_path} holds {len(labels)} labels"
        )
    if labels.max(initial=0) >= len(CLASSES):
        raise ValueError(f"FashionMNIST: {label_path} has label {labels.max()}, expected 0..{len(CLASSES) - 1}")
    return pixels, labels


def _find_idx_file(root: Path, name: str) -> Path:
    for candidate in (root / f"{name}.gz", root / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"FashionMNIST: neither {name}.gz nor {name} found in {root}. {HOW_TO_GET}")


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read one unsigned-byte IDX file (gzip-compressed if its name ends in ``.gz``).

    Checks that the magic number is ``magic`` and that the file holds exactly the
    prod(sizes) bytes its header announces (a truncated or padded file is an error).
    Returns a read-only uint8 array of shape ``sizes``.
    """
    raw = _read_bytes(path)
    ndim = magic & 0xFF  # the low byte of the magic number counts the dimensions
    header_bytes = 4 + 4 * ndim
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found is not None and found != magic:
        kind = {IMAGE_MAGIC: "image", LABEL_MAGIC: "label"}.get(magic, "IDX")
        raise ValueError(f"read_idx: {path} has magic number {found}, expected {magic} "
                         f"(an IDX {kind} file); wrong file?")
    if len(raw) < header_bytes:
        raise ValueError(f"read_idx: {path} has {len(raw)} bytes, fewer than its {header_bytes}-byte header "
                         f"(truncated?)")
    sizes = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header_bytes + int(np.prod(sizes))
    if len(raw) != expected:
        raise ValueError(
            f"read_idx: {path} has {len(raw)} bytes but its header announces sizes {sizes}, "
            f"i.e. {expected} bytes; the file is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_bytes).reshape(sizes)


def _read_bytes(path: Path) -> bytes:
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as file:
            return file.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise ValueError(f"read_idx: {path} is not a complete gzip file ({error}); download it again") from error
