"""The Oxford-IIIT Pet dataset (Parkhi et al., CVPR 2012): photos of cats and dogs with trimaps.

Official layout (from ``images.tar.gz`` and ``annotations.tar.gz``)::

    root/images/<Name>.jpg                 the photos (a few are really GIF or RGBA PNG files)
    root/annotations/trimaps/<Name>.png    one 8-bit trimap per photo, same width and height
    root/annotations/trainval.txt          the official split: "<Name> <CLASS-ID> <SPECIES> <BREED-ID>"
    root/annotations/test.txt

Trimap codes: 1 = pet, 2 = background, 3 = border (the uncertain band around the outline).
The species is in the file name: a capital initial is a cat (``Abyssinian_1``), a lowercase
initial is a dog (``american_bulldog_10``).

Segmentation targets (``target=``), all int64 class indices, background always 0 and pet always 1:

    target               trimap 1 (pet)   trimap 2 (background)   trimap 3 (border)
    "pet"                      1                  0                        1
    "pet_ignore_border"        1                  0                  IGNORE_INDEX (-100)
    "three_class"              1                  0                        2

``IGNORE_INDEX`` is -100, the default ``ignore_index`` of ``F.cross_entropy`` (as in PyTorch), so
border pixels with ``"pet_ignore_border"`` drop out of the loss and, with
``ignore_index=IGNORE_INDEX``, out of ``minidl.metrics``. ``target="species"`` gives one label per
image: 0 = cat, 1 = dog.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from .dataset import ArrayDataset

TRIMAP_PET, TRIMAP_BACKGROUND, TRIMAP_BORDER = 1, 2, 3
IGNORE_INDEX = -100
SPLITS = ("trainval", "test", "all")
BUNDLED_SAMPLE = Path(__file__).parent / "samples" / "oxford_pets_64.npz"
BUNDLED_SIZE = 64
HOW_TO_GET = (
    "Get images.tar.gz and annotations.tar.gz from https://www.robots.ox.ac.uk/~vgg/data/pets/ and unpack "
    "both into that folder, or pass root=None to use the 600-image 64x64 sample bundled with minidl"
)

# target name -> (lookup table from trimap code 0..3 to class index, class names); code 0 never occurs
MASK_TARGETS = {
    "pet": (np.array([IGNORE_INDEX, 1, 0, 1], np.int64), ["background", "pet"]),
    "pet_ignore_border": (np.array([IGNORE_INDEX, 1, 0, IGNORE_INDEX], np.int64), ["background", "pet"]),
    "three_class": (np.array([IGNORE_INDEX, 1, 0, 2], np.int64), ["background", "pet", "border"]),
}
SPECIES = ["cat", "dog"]
TARGETS = (*MASK_TARGETS, "species")


class OxfordPets(ArrayDataset):
    """Oxford-IIIT Pet photos resized to ``size`` x ``size``, with segmentation or species targets.

    ``OxfordPets(root=None, split="trainval", size=64, target="pet")``
      root=None: the sample bundled with minidl (600 images of 3 breeds at 64x64; size must be 64).
      root=folder: the official layout (see the module docstring).
      split: "trainval" or "test" (the names in annotations/<split>.txt, in file order), or "all":
      trainval, then test, then the images listed in neither file (in the bundled sample these are
      Abyssinian_34, whose trimap is all background, and Abyssinian_82).
      target: "pet", "pet_ignore_border", "three_class" (module docstring) or "species".

    Attributes (N images):
      images   (N, 3, size, size) float32 in [0, 1]; bilinear resize (Pillow's, which widens its
               filter when shrinking, so it does not alias). GIF and RGBA files become RGB.
      targets  (N, size, size) int64 mask for the segmentation targets, (N,) int64 for "species".
      trimaps  (N, size, size) uint8, the raw codes 1/2/3, resized with nearest neighbour.
      species  (N,) int64, 0 = cat, 1 = dog.   names: list of N file stems.   classes: target names.
      pet_masks  (N, size, size) bool, trimap pet or border: where the animal is, whatever the target
               (with target="species" the ground truth to score explanations against).

    Photos are decoded and resized once per process: the result is cached in memory per
    (file, size), so building the trainval and test sets, or a second dataset, reuses it.
    """

    def __init__(self, root: str | Path | None = None, split: str = "trainval", size: int = 64,
                 target: str = "pet"):
        if split not in SPLITS:
            raise ValueError(f"OxfordPets: split must be one of {SPLITS}, got {split!r}")
        if target not in TARGETS:
            raise ValueError(f"OxfordPets: target must be one of {TARGETS}, got {target!r}")
        if root is None:
            if size != BUNDLED_SIZE:
                raise ValueError(
                    f"OxfordPets: the bundled sample is {BUNDLED_SIZE}x{BUNDLED_SIZE}, got size={size}; "
                    f"pass root= (the full data set) for other sizes"
                )
            names, pixels, trimaps = _load_bundled(split)
        else:
            if not isinstance(size, int) or size < 1:
                raise ValueError(f"OxfordPets: size must be a positive int, got {size!r}")
            names, pixels, trimaps = read_oxford_pets_files(Path(root), split, size)

        self.names = names
        self.trimaps = trimaps
        self.species = np.array([0 if name[0].isupper() else 1 for name in names], dtype=np.int64)
        if target == "species":
            targets, classes = self.species, SPECIES
        else:
            table, classes = MASK_TARGETS[target]
            targets = table[trimaps]
        self.classes = list(classes)
        super().__init__(pixels.transpose(0, 3, 1, 2).astype(np.float32, order="C") / np.float32(255), targets)
        self.source = "bundled sample" if root is None else str(root)
        self.split, self.size, self.target = split, size, target

    @property
    def pet_masks(self) -> np.ndarray:
        """(N, size, size) bool: True on the pet and its border band (trimap 1 or 3), False on background."""
        return self.trimaps != TRIMAP_BACKGROUND

    def __repr__(self):
        return (f"OxfordPets({self.split}, {len(self)} images at {self.size}x{self.size}, "
                f"target={self.target!r}, from {self.source})")


def read_oxford_pets_files(root: Path, split: str, size: int):
    """Names (list), pixels (N, size, size, 3) uint8 and trimaps (N, size, size) uint8 of one split."""
    image_dir, trimap_dir = root / "images", root / "annotations" / "trimaps"
    for folder in (root, image_dir, trimap_dir):
        if not folder.is_dir():
            raise FileNotFoundError(
                f"OxfordPets: folder {folder} does not exist; expected {root}/images/*.jpg, "
                f"{root}/annotations/trimaps/*.png and {root}/annotations/trainval.txt, test.txt. {HOW_TO_GET}"
            )
    names = split_names(root, split)
    if not names:
        raise ValueError(f"OxfordPets: split {split!r} in {root} has no images")
    pairs = [_load_pair(image_dir / f"{name}.jpg", trimap_dir / f"{name}.png", size)
             for name in tqdm(names, desc=f"OxfordPets {split} {size}x{size}", unit="img", disable=None)]
    return names, np.stack([pixels for pixels, _ in pairs]), np.stack([trimap for _, trimap in pairs])


def split_names(root: Path, split: str) -> list[str]:
    """Image names of a split: the first column of annotations/<split>.txt (``#`` lines skipped).

    "all" = trainval, then test, then every image in root/images listed in neither file (sorted).
    """
    if split != "all":
        list_path = root / "annotations" / f"{split}.txt"
        if not list_path.is_file():
            raise FileNotFoundError(f"OxfordPets: split file {list_path} not found. {HOW_TO_GET}")
        names = []
        for number, line in enumerate(list_path.read_text().splitlines(), start=1):
            if line.strip() and not line.startswith("#"):
                name = line.split()[0]
                if "/" in name or "\\" in name or name in (".", ".."):  # a name is a file stem, no path
                    raise ValueError(f"OxfordPets: line {number} of {list_path} names {name!r}, which is not an "
                                     f"image name (it would read a file outside {root}/images)")
                names.append(name)
        return names
    listed = split_names(root, "trainval") + split_names(root, "test")
    unlisted = sorted({path.stem for path in (root / "images").glob("*.jpg")} - set(listed))
    return listed + unlisted


@lru_cache(maxsize=None)
def _load_pair(image_path: Path, trimap_path: Path, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One photo as (size, size, 3) uint8 RGB (bilinear) and its trimap as (size, size) uint8 (nearest)."""
    image = _open_image(image_path).convert("RGB")
    trimap = _open_image(trimap_path)
    if trimap.size != image.size:
        raise ValueError(f"OxfordPets: trimap {trimap_path} is {trimap.size} (w, h) but its image is {image.size}")
    codes = np.asarray(trimap)  # checked at full size: nearest-neighbour resizing may skip a stray code
    if codes.ndim != 2 or not np.isin(codes, (TRIMAP_PET, TRIMAP_BACKGROUND, TRIMAP_BORDER)).all():
        raise ValueError(
            f"OxfordPets: trimap {trimap_path} must be one 8-bit channel of codes 1, 2, 3; "
            f"found mode {trimap.mode} with values {np.unique(codes)[:10]}"
        )
    return np.asarray(image.resize((size, size), Image.BILINEAR)), np.asarray(trimap.resize((size, size), Image.NEAREST))


def _open_image(path: Path) -> Image.Image:
    """Decode a file completely with Pillow (format from its content, not its name)."""
    if not path.is_file():
        raise FileNotFoundError(f"OxfordPets: {path} not found (each listed image needs images/<name>.jpg "
                                f"and annotations/trimaps/<name>.png)")
    try:
        with Image.open(path) as image:
            image.load()
            return image
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"OxfordPets: cannot decode {path} ({error}); the file is corrupt or truncated") from error


def _load_bundled(split: str):
    with np.load(BUNDLED_SAMPLE, allow_pickle=False) as sample:
        keep = slice(None) if split == "all" else sample["split"] == split
        return sample["names"][keep].tolist(), sample["images"][keep], sample["trimaps"][keep]
