"""Smoke runs of the segmentation examples on a few bundled images: files written, numbers sane, resume works."""

import json
import sys
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))

import compare_segmenters  # noqa: E402
import segment_pets  # noqa: E402
from models import UNet  # noqa: E402

TINY = ["--limit", "6", "--epochs", "1", "--batch-size", "3", "--base-channels", "2", "--no-progress"]


def test_segment_pets_writes_its_run_folder_and_resumes(tmp_path):
    out = tmp_path / "run"
    report = segment_pets.main([*TINY, "--model", "segnet", "--out", str(out)])
    for name in ("metrics.json", "curves.png", "checkpoint.npz", "predictions.png"):
        assert (out / name).stat().st_size > 0, name
    saved = json.loads((out / "metrics.json").read_text())
    for key in ("model", "epochs", "parameters", "train_seconds", "test_pixel_accuracy", "test_mean_iou",
                "test_iou_per_class", "test_dice", "baseline_all_background"):
        assert key in saved, key
    assert saved["model"] == "segnet" and saved["epochs"] == 1 and saved["images"]["test"] == 6
    assert 0 <= saved["test_pixel_accuracy"] <= 1 and len(saved["test_iou_per_class"]) == 2
    # the baseline predicts background everywhere: its pixel accuracy is the background share of the test masks
    masks = segment_pets.load_splits(segment_pets.parse_args(TINY))[1].targets
    assert np.isclose(saved["baseline_all_background"]["pixel_accuracy"], (masks == 0).mean())

    resumed = segment_pets.main([*TINY, "--model", "segnet", "--out", str(out), "--resume", "--epochs", "2"])
    assert resumed["epochs"] == 2
    assert resumed["history"]["train_loss"][0] == report["history"]["train_loss"][0]


def test_segment_pets_three_class_reports_every_class(tmp_path):
    report = segment_pets.main([*TINY, "--target", "three_class", "--out", str(tmp_path)])
    assert report["classes"] == ["background", "pet", "border"] and len(report["test_iou_per_class"]) == 3
    assert list(report["test_iou_by_class"]) == report["classes"]
    assert report["parameters"] == sum(p.size for p in UNet(3, 3, base_channels=2).parameters())  # 3 outputs
    masks = segment_pets.load_splits(segment_pets.parse_args([*TINY, "--target", "three_class"]))[1].targets
    assert set(np.unique(masks)) == {0, 1, 2}  # the border is a class, not ignored
    # the all-background baseline: background IoU = background share, the other two 0
    assert np.allclose(report["baseline_all_background"]["iou_per_class"], [(masks == 0).mean(), 0, 0])
    assert (tmp_path / "predictions.png").stat().st_size > 0


def test_compare_segmenters_writes_table_and_figure(tmp_path):
    rows = compare_segmenters.main([*TINY, "--models", "unet", "fcn8s", "--out", str(tmp_path)])
    assert [row["model"] for row in rows] == ["unet", "fcn8s"]
    table = (tmp_path / "comparison.md").read_text()
    assert "| unet |" in table and "| fcn8s |" in table and "all background (baseline)" in table
    assert (tmp_path / "predictions.png").stat().st_size > 0
    assert all(row["gflop_per_image"] > 0 for row in rows)
