"""Smoke runs of the segmentation examples on a few bundled images: files written, numbers sane, resume works."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_figure

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))

import common  # noqa: E402
import compare_segmenters  # noqa: E402
import segment_pets  # noqa: E402
from models import UNet  # noqa: E402

TINY = ["--limit", "6", "--epochs", "1", "--batch-size", "3", "--base-channels", "2", "--no-progress"]


def test_segment_pets_writes_its_run_folder_and_resumes(tmp_path):
    out = tmp_path / "run"
    report = segment_pets.main([*TINY, "--model", "segnet", "--out", str(out)])
    assert (out / "checkpoint.npz").stat().st_size > 0
    assert_figure(out / "curves.png")
    assert_figure(out / "predictions.png")
    saved = json.loads((out / "metrics.json").read_text())
    for key in ("model", "epochs", "parameters", "train_seconds", "test_pixel_accuracy", "test_mean_iou",
                "test_iou_per_class", "test_dice", "baseline_all_background"):
        assert key in saved, key
    assert saved["model"] == "segnet" and saved["epochs"] == 1 and saved["images"]["test"] == 6
    assert 0 <= saved["test_pixel_accuracy"] <= 1 and len(saved["test_iou_per_class"]) == 2
    # the baseline predicts background everywhere: its pixel accuracy is the background share of the test masks
    masks = segment_pets.load_splits(segment_pets.parse_args(TINY))[2].targets
    assert np.isclose(saved["baseline_all_background"]["pixel_accuracy"], (masks == 0).mean())

    resumed = segment_pets.main([*TINY, "--model", "segnet", "--out", str(out), "--resume", "--epochs", "2"])
    assert resumed["epochs"] == 2
    assert resumed["history"]["train_loss"][0] == report["history"]["train_loss"][0]


def test_segment_pets_three_class_reports_every_class(tmp_path):
    report = segment_pets.main([*TINY, "--target", "three_class", "--out", str(tmp_path)])
    assert report["classes"] == ["background", "pet", "border"] and len(report["test_iou_per_class"]) == 3
    assert list(report["test_iou_by_class"]) == report["classes"]
    assert report["parameters"] == sum(p.size for p in UNet(3, 3, base_channels=2).parameters())  # 3 outputs
    masks = segment_pets.load_splits(segment_pets.parse_args([*TINY, "--target", "three_class"]))[2].targets
    assert set(np.unique(masks)) == {0, 1, 2}  # the border is a class, not ignored
    # the all-background baseline: background IoU = background share, the other two 0
    assert np.allclose(report["baseline_all_background"]["iou_per_class"], [(masks == 0).mean(), 0, 0])
    assert (tmp_path / "predictions.png").stat().st_size > 0


def test_compare_segmenters_writes_table_and_figure(tmp_path):
    rows = compare_segmenters.main([*TINY, "--models", "unet", "fcn8s", "--out", str(tmp_path)])
    assert [row["model"] for row in rows] == ["unet", "fcn8s"]
    table = (tmp_path / "comparison.md").read_text()
    assert "| unet |" in table and "| fcn8s |" in table and "all background (baseline)" in table
    assert_figure(tmp_path / "predictions.png")
    assert all(row["gflop_per_image"] > 0 for row in rows)


def test_validation_split_is_a_fifth_of_each_breed_and_apart_from_train_and_test():
    assert [len(split) for split in segment_pets.load_splits(segment_pets.parse_args([]))] == [270, 30, 298]
    train, val, test = segment_pets.load_splits(segment_pets.parse_args(["--val-fraction", "0.2"]))
    assert (len(train), len(val), len(test)) == (240, 60, 298)  # bundled trainval: 3 breeds x 100

    def keys(split):  # one hashable key per image, to compare splits by content
        return {image.tobytes() for image in split.images}
    assert not keys(train) & keys(val) and not keys(val) & keys(test) and not keys(train) & keys(test)
    trainval = common.OxfordPets(None, "trainval")
    breeds = np.array([name.rsplit("_", 1)[0] for name in trainval.names])
    held_out = np.array([image.tobytes() in keys(val) for image in trainval.images])
    for breed in np.unique(breeds):  # every 5th image of each breed, in file order
        assert np.array_equal(np.flatnonzero(held_out[breeds == breed]), np.arange(4, 100, 5)), breed


class RecordingFlip(common.RandomHorizontalFlip):
    """The example's flip, remembering every batch it was applied to."""
    seen = []

    def __call__(self, images, targets):
        RecordingFlip.seen.append(images.copy())
        return super().__call__(images, targets)


def test_recipe_is_wired_as_documented(tmp_path, monkeypatch):
    """A tiny run: cosine schedule over the epochs, validation every --val-every epochs and after the
    last, flips on training batches only, and the recipe and validation numbers in metrics.json."""
    monkeypatch.setattr(common, "RandomHorizontalFlip", RecordingFlip)
    RecordingFlip.seen = []
    epochs, lr = 5, 0.004
    report = segment_pets.main(["--limit", "15", "--epochs", str(epochs), "--lr", str(lr), "--batch-size", "4",
                                "--base-channels", "2", "--val-fraction", "0.2", "--val-every", "2", "--no-progress",
                                "--out", str(tmp_path)])
    history = report["history"]
    assert np.allclose(history["lr"], [lr * (1 + math.cos(math.pi * e / epochs)) / 2 for e in range(epochs)])
    assert [value is not None for value in history["val_loss"]] == [False, True, False, True, True]
    assert report["images"] == {"train": 12, "val": 3, "test": 15, "size": 64}
    assert report["recipe"]["epochs"] == epochs and report["recipe"]["batch_size"] == 4
    assert report["recipe"]["val_images"] == 3 and 0 <= report["val_mean_iou"] <= 1

    train, val, _ = segment_pets.load_splits(segment_pets.parse_args(["--limit", "15", "--val-fraction", "0.2"]))
    assert len(RecordingFlip.seen) == epochs * 3  # 12 training images in batches of 4, each epoch
    train_images = {image.tobytes() for image in train.images}
    train_images |= {image[..., ::-1].tobytes() for image in train.images}
    assert all(image.tobytes() in train_images for batch in RecordingFlip.seen for image in batch)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["recipe"] == report["recipe"] and saved["val_pixel_accuracy"] == report["val_pixel_accuracy"]


def test_default_recipe_comes_from_the_model_and_flags_override_it(capsys):
    args = segment_pets.parse_args(["--model", "fcn8s", "--lr", "0.01"])
    assert common.recipe(args, "fcn8s") == {**common.RECIPES["fcn8s"], "lr": 0.01}
    assert common.recipe(args, "unet")["epochs"] == common.RECIPES["unet"]["epochs"]
    with pytest.raises(SystemExit):
        segment_pets.parse_args(["--depth", "2", "--model", "unet"])
    assert "argument --depth: unet has no depth setting; it applies to segnet" in capsys.readouterr().err


def test_recipe_model_arguments_reach_the_model(tmp_path):
    """Dropout and SegNet's depth are constructor arguments: the built networks have the recipe's."""
    args = segment_pets.parse_args([*TINY, "--out", str(tmp_path)])
    train, val, _ = segment_pets.load_splits(args)
    unet, _ = common.train_segmenter("unet", train, val, args, None, title=None)
    segnet, _ = common.train_segmenter("segnet", train, val, args, None, title=None)
    assert {module.p for module in unet.modules() if isinstance(module, common.minidl.nn.Dropout)} == {
        common.RECIPES["unet"]["dropout"]}
    assert segnet.depth == len(segnet.encoder) == common.RECIPES["segnet"]["depth"]
    assert segnet.dropout.p == common.RECIPES["segnet"]["dropout"]
    args = segment_pets.parse_args([*TINY, "--model", "segnet", "--depth", "2", "--dropout", "0.25"])
    segnet, _ = common.train_segmenter("segnet", train, val, args, None, title=None)
    assert (segnet.depth, segnet.dropout.p) == (2, 0.25)
