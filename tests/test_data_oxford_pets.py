"""OxfordPets: the official layout on tiny files written here (JPEG, a GIF and an RGBA PNG named
.jpg, trimaps, split files), the target mappings, clear errors, the bundled sample, and (when
../shared/data is present) the real files."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from minidl.data import IGNORE_INDEX, OxfordPets
from minidl.data.oxford_pets import BUNDLED_SAMPLE

REAL_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "oxford-pets"
SAMPLES = BUNDLED_SAMPLE.parent

# 32x32 trimap: columns 0-15 pet (1), 16-23 background (2), 24-31 border (3). Each block is a
# multiple of 4 wide, so a nearest-neighbour resize to 8x8 gives columns 0-3 / 4-5 / 6-7 exactly.
TRIMAP = np.repeat(np.repeat(np.array([[1, 1, 1, 1, 2, 2, 3, 3]], np.uint8), 4, axis=1), 32, axis=0)
TRIMAP_8 = np.tile(np.array([1, 1, 1, 1, 2, 2, 3, 3], np.uint8), (8, 1))
COLOURS = {"Abyssinian_1": (200, 40, 10), "Abyssinian_2": (0, 153, 255), "Bengal_3": (30, 220, 90),
           "boxer_4": (250, 250, 0), "boxer_5": (10, 10, 10)}


def make_pets(root: Path) -> Path:
    """Five solid-colour 32x32 images in the official layout; two of the .jpg files are not JPEG."""
    (root / "images").mkdir(parents=True)
    (root / "annotations" / "trimaps").mkdir(parents=True)
    for name, colour in COLOURS.items():
        image = Image.new("RGB", (32, 32), colour)
        path = root / "images" / f"{name}.jpg"
        if name == "Abyssinian_2":
            image.convert("P").save(path, format="GIF")  # colour of the web palette: exact
        elif name == "Bengal_3":
            Image.new("RGBA", (32, 32), (*colour, 77)).save(path, format="PNG")
        else:
            image.save(path, format="JPEG", quality=95)
        Image.fromarray(TRIMAP).save(root / "annotations" / "trimaps" / f"{name}.png")
    (root / "annotations" / "trainval.txt").write_text("# Image CLASS-ID SPECIES BREED ID\n"
                                                       "boxer_4 3 2 1\nAbyssinian_1 1 1 1\n\n")
    (root / "annotations" / "test.txt").write_text("Abyssinian_2 1 1 1\nBengal_3 2 1 2\n")
    return root


@pytest.fixture
def pets(tmp_path):
    return make_pets(tmp_path / "pets")


def test_reads_official_layout(pets):
    dataset = OxfordPets(pets, split="trainval", size=8)
    assert dataset.names == ["boxer_4", "Abyssinian_1"]
    assert dataset.images.shape == (2, 3, 8, 8) and dataset.images.dtype == np.float32
    assert dataset.images.flags.c_contiguous
    assert dataset.targets.shape == (2, 8, 8) and dataset.targets.dtype == np.int64
    assert dataset.trimaps.dtype == np.uint8
    np.testing.assert_array_equal(dataset.trimaps, np.stack([TRIMAP_8, TRIMAP_8]))
    np.testing.assert_array_equal(dataset.species, [1, 0])
    for image, name in zip(dataset.images, dataset.names):  # JPEG is lossy: close to the solid colour
        np.testing.assert_allclose(image, np.broadcast_to(np.array(COLOURS[name])[:, None, None] / 255, image.shape),
                                   atol=4 / 255)
    image, mask = dataset[1]
    assert image.shape == (3, 8, 8) and mask.shape == (8, 8)


def test_gif_and_rgba_files_named_jpg_become_rgb(pets):
    dataset = OxfordPets(pets, split="test", size=8)
    assert dataset.names == ["Abyssinian_2", "Bengal_3"]
    for image, name in zip(dataset.images, dataset.names):  # lossless formats: exact colours, alpha dropped
        np.testing.assert_array_equal(image * 255, np.broadcast_to(np.array(COLOURS[name], np.float32)[:, None, None],
                                                                   image.shape))


@pytest.mark.parametrize("target, pet, background, border, classes", [
    ("pet", 1, 0, 1, ["background", "pet"]),
    ("pet_ignore_border", 1, 0, IGNORE_INDEX, ["background", "pet"]),
    ("three_class", 1, 0, 2, ["background", "pet", "border"]),
])
def test_mask_targets(pets, target, pet, background, border, classes):
    dataset = OxfordPets(pets, split="test", size=8, target=target)
    expected = np.select([TRIMAP_8 == 1, TRIMAP_8 == 2, TRIMAP_8 == 3], [pet, background, border])
    np.testing.assert_array_equal(dataset.targets, np.stack([expected, expected]))
    assert dataset.classes == classes


def test_species_target_and_all_split(pets):
    dataset = OxfordPets(pets, split="all", size=8, target="species")
    # trainval in file order, then test, then the image listed in neither file
    assert dataset.names == ["boxer_4", "Abyssinian_1", "Abyssinian_2", "Bengal_3", "boxer_5"]
    assert dataset.targets.dtype == np.int64 and dataset.targets.shape == (5,)
    np.testing.assert_array_equal(dataset.targets, [1, 0, 0, 0, 1])
    assert dataset.classes == ["cat", "dog"]
    # the species classifier's images keep their masks: pet and border True, background False
    test = OxfordPets(pets, split="test", size=8, target="species")
    np.testing.assert_array_equal(test.pet_masks, np.stack([(TRIMAP_8 == 1) | (TRIMAP_8 == 3)] * 2))


def test_missing_folder_says_where_and_how(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"folder .*nowhere does not exist; expected .*images/\*\.jpg.*"
                                                r"trainval\.txt.*robots\.ox\.ac\.uk.*root=None"):
        OxfordPets(tmp_path / "nowhere")


def test_missing_split_file(pets):
    (pets / "annotations" / "test.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"split file .*test\.txt not found"):
        OxfordPets(pets, split="test", size=8)


def test_listed_image_without_trimap(pets):
    (pets / "annotations" / "trimaps" / "Bengal_3.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"trimaps/Bengal_3\.png not found"):
        OxfordPets(pets, split="test", size=8)


@pytest.mark.parametrize("content", [b"", b"not an image", "truncated"])
def test_corrupt_image_names_the_file(pets, content):
    path = pets / "images" / "Abyssinian_1.jpg"
    path.write_bytes(path.read_bytes()[:200] if content == "truncated" else content)
    with pytest.raises(ValueError, match=r"cannot decode .*images/Abyssinian_1\.jpg"):
        OxfordPets(pets, split="trainval", size=8)


def test_trimap_with_unknown_codes(pets):
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(pets / "annotations" / "trimaps" / "Bengal_3.png")
    with pytest.raises(ValueError, match=r"trimap .*Bengal_3\.png must be one 8-bit channel of codes 1, 2, 3"):
        OxfordPets(pets, split="test", size=8)


def test_trimap_size_must_match_image(pets):
    Image.fromarray(TRIMAP[:16]).save(pets / "annotations" / "trimaps" / "Bengal_3.png")
    with pytest.raises(ValueError, match=r"trimap .*Bengal_3\.png is \(32, 16\) \(w, h\) but its image is \(32, 32\)"):
        OxfordPets(pets, split="test", size=8)


@pytest.mark.parametrize("kwargs, message", [
    ({"split": "train"}, r"split must be one of \('trainval', 'test', 'all'\), got 'train'"),
    ({"target": "breed"}, r"target must be one of .*got 'breed'"),
    ({"size": 128}, r"bundled sample is 64x64, got size=128"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OxfordPets(**kwargs)


@pytest.mark.parametrize("split, count, cats", [("trainval", 300, 200), ("test", 298, 198), ("all", 600, 400)])
def test_bundled_sample(split, count, cats):
    dataset = OxfordPets(split=split)
    assert dataset.images.shape == (count, 3, 64, 64) and dataset.images.dtype == np.float32
    assert 0 <= dataset.images.min() and dataset.images.max() <= 1
    assert dataset.targets.shape == (count, 64, 64) and dataset.targets.dtype == np.int64
    assert set(np.unique(dataset.targets)) == {0, 1}
    assert set(np.unique(dataset.trimaps)) == {1, 2, 3}
    assert np.sum(dataset.species == 0) == cats and len(dataset.names) == count
    licence = (SAMPLES / "LICENSE-oxford-pets").read_text()
    assert "CC BY-SA 4.0" in licence and "Parkhi" in licence and "copyright of the images stays" in licence


def test_bundled_unlisted_images_only_in_all():
    names = OxfordPets(split="all", target="species").names
    listed = set(OxfordPets(split="trainval", target="species").names) | set(OxfordPets(split="test").names)
    assert [n for n in names if n not in listed] == ["Abyssinian_34", "Abyssinian_82"]


@pytest.mark.skipif(not REAL_ROOT.is_dir(), reason=f"optional real data set not present at {REAL_ROOT}")
def test_real_files_equal_bundle():
    """Decoding the 600 real photos at 64x64 reproduces the bundled sample exactly."""
    real, bundled = OxfordPets(REAL_ROOT, split="all", size=64), OxfordPets(split="all")
    assert real.names == bundled.names
    np.testing.assert_array_equal(real.images, bundled.images)
    np.testing.assert_array_equal(real.trimaps, bundled.trimaps)
    assert (len(OxfordPets(REAL_ROOT, "trainval")), len(OxfordPets(REAL_ROOT, "test"))) == (300, 298)
