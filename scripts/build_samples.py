"""Build the data samples bundled in minidl/data/samples/ from the full data sets.

    python scripts/build_samples.py [--data-root ../shared/data]    (minidl installed, or PYTHONPATH=.)

Reads the official Fashion-MNIST IDX files and the Oxford-IIIT Pet images with minidl's own
readers and writes, deterministically (same inputs -> byte-identical outputs):

  fashion_mnist_subset.npz  1,000 train images per class and 200 test images per class, drawn
                            with np.random.default_rng(0) and kept in file order; the indices into
                            the official files are stored with them.
  oxford_pets_64.npz        every image of the Oxford-IIIT Pet folder resized to 64x64 (bilinear),
                            its trimap (nearest), name, split and species.
  LICENSE-fashion-mnist     copied unchanged from the data folder.
  README.md                 what was used: source files with sizes and SHA-256, counts, array shapes.

The Oxford-IIIT Pet licence notice (LICENSE-oxford-pets) is a static file kept beside them.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

from minidl.data.fashion_mnist import CLASSES, read_fashion_mnist_files
from minidl.data.oxford_pets import BUNDLED_SIZE, read_oxford_pets_files, split_names

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "minidl" / "data" / "samples"
PER_CLASS = {"train": 1000, "test": 200}
SEED = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data",
                        help="folder holding fashion-mnist/ and oxford-pets/ (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=SAMPLES, help="output folder (default: %(default)s)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    fashion_root, pets_root = args.data_root / "fashion-mnist", args.data_root / "oxford-pets"
    fashion = build_fashion_mnist(fashion_root)
    pets = build_oxford_pets(pets_root)
    save_npz(args.out / "fashion_mnist_subset.npz", fashion)
    save_npz(args.out / "oxford_pets_64.npz", pets)
    shutil.copyfile(fashion_root / "LICENSE", args.out / "LICENSE-fashion-mnist")
    (args.out / "README.md").write_text(readme(args.out, fashion, pets))
    for path in sorted(args.out.iterdir()):
        print(f"{path.stat().st_size / 1e6:8.3f} MB  {path}")


def build_fashion_mnist(root: Path) -> dict:
    """A class-balanced random subset of each official split, with its provenance."""
    arrays, sources = {}, []
    for split, train in (("train", True), ("test", False)):
        pixels, labels = read_fashion_mnist_files(root, train)
        rng = np.random.default_rng(SEED)
        indices = np.sort(np.concatenate([
            rng.choice(np.flatnonzero(labels == c), PER_CLASS[split], replace=False) for c in range(len(CLASSES))
        ]))
        arrays[f"{split}_images"] = pixels[indices]
        arrays[f"{split}_labels"] = labels[indices]
        arrays[f"{split}_indices"] = indices.astype(np.int32)
    for path in sorted(root.glob("*-ubyte.gz")):
        sources.append(describe(path))
    arrays["source_files"] = np.array(sources)
    return arrays


def build_oxford_pets(root: Path) -> dict:
    """All images at 64x64 in the loader's "all" order: trainval, test, then the unlisted ones."""
    names, pixels, trimaps = read_oxford_pets_files(root, "all", BUNDLED_SIZE)
    trainval, test = set(split_names(root, "trainval")), set(split_names(root, "test"))
    split = ["trainval" if n in trainval else "test" if n in test else "unlisted" for n in names]
    return {
        "images": pixels,
        "trimaps": trimaps,
        "names": np.array(names),
        "split": np.array(split),
        "species": np.array([0 if n[0].isupper() else 1 for n in names], dtype=np.int64),
        "source_files": np.array([describe(root / "annotations" / f"{s}.txt") for s in ("trainval", "test")]
                                 + [f"images/*.jpg and annotations/trimaps/*.png: {len(names)} pairs, "
                                    f"{folder_bytes(root / 'images'):,} + "
                                    f"{folder_bytes(root / 'annotations' / 'trimaps'):,} bytes"]),
    }


def save_npz(path: Path, arrays: dict) -> None:
    """Like np.savez_compressed, but with fixed zip timestamps (reproducible bytes) and atomic."""
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
    os.replace(tmp, path)


def describe(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return f"{path.name}: {path.stat().st_size:,} bytes, sha256 {digest}"


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def breeds(names) -> str:
    counts = {}
    for name in names:
        breed = name.rsplit("_", 1)[0]
        counts[breed] = counts.get(breed, 0) + 1
    return ", ".join(f"{count} {breed}" for breed, count in counts.items())


def readme(out: Path, fashion: dict, pets: dict) -> str:
    def table(arrays: dict) -> str:
        return "\n".join(f"| `{k}` | {v.shape} | {v.dtype} |" for k, v in arrays.items() if k != "source_files")

    def sources(arrays: dict) -> str:
        return "\n".join(f"* {line}" for line in arrays["source_files"])

    size = {p.name: p.stat().st_size for p in out.glob("*.npz")}
    return f"""# Data samples bundled with minidl

Built by `scripts/build_samples.py` from the full data sets (see `../shared/data/README.md`).
Load them with `FashionMNIST()` and `OxfordPets()` (root=None), or `np.load(path, allow_pickle=False)`.

## fashion_mnist_subset.npz ({size["fashion_mnist_subset.npz"]:,} bytes)

Fashion-MNIST, Xiao, Rasul and Vollgraf, *Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine
Learning Algorithms*, arXiv:1708.07747 (2017). MIT licence, Copyright (c) 2017 Zalando SE:
see `LICENSE-fashion-mnist`.

{PER_CLASS["train"]:,} train images per class and {PER_CLASS["test"]:,} test images per class, chosen with
`np.random.default_rng({SEED}).choice` per class (train and test drawn separately), in file order.
`*_indices` are the positions in the official files. Pixels 0..255, labels 0..9.

| array | shape | dtype |
| --- | --- | --- |
{table(fashion)}

Source files:
{sources(fashion)}

## oxford_pets_64.npz ({size["oxford_pets_64.npz"]:,} bytes)

The Oxford-IIIT Pet Dataset, O. M. Parkhi, A. Vedaldi, A. Zisserman and C. V. Jawahar, *Cats and Dogs*,
IEEE CVPR 2012. Creative Commons Attribution-ShareAlike 4.0 (CC BY-SA 4.0); the copyright of the images
stays with their owners: see `LICENSE-oxford-pets`. This file is a derivative (resized arrays) under the
same licence.

All {len(pets["names"])} images ({breeds(pets["names"])}; capital initial = cat, lowercase = dog),
resized to {BUNDLED_SIZE}x{BUNDLED_SIZE}: photos with Pillow's bilinear filter (GIF and RGBA files converted
to RGB), trimaps (1 = pet, 2 = background, 3 = border) with nearest neighbour. Order: the names of
`trainval.txt`, then `test.txt`, then images listed in neither (`split == "unlisted"`:
{", ".join(pets["names"][pets["split"] == "unlisted"])}). `species`: 0 = cat, 1 = dog.

| array | shape | dtype |
| --- | --- | --- |
{table(pets)}

Source files:
{sources(pets)}
"""


if __name__ == "__main__":
    main()
