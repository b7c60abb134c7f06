"""Smoke run of examples/train_fashion_mnist.py on tiny IDX files: run folder written, resume continues."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from helpers import assert_figure, saved_model_predictions, tiny_fashion_mnist  # noqa: E402

from minidl.data import FashionMNIST  # noqa: E402
from models.fashion_cnn import FashionCNN  # noqa: E402

import train_fashion_mnist  # noqa: E402


def test_example_writes_its_run_folder_and_resumes(tmp_path, capsys):
    root, out = tiny_fashion_mnist(tmp_path), tmp_path / "run"
    options = ["--data-root", str(root), "--batch-size", "8", "--out", str(out), "--no-progress"]
    first = train_fashion_mnist.main([*options, "--epochs", "1"])
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "curves.png", "metrics.json"]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(first))
    assert saved["epochs"] == 1 and saved["parameters"] == 29178
    assert saved["data"] == {"source": str(root), "train": 36, "validation": 4, "test": 20}
    assert 0 <= saved["test_accuracy"] <= 1 and saved["train_seconds"] > 0
    assert f"wrote {out / 'curves.png'}" in capsys.readouterr().out
    assert_figure(out / "curves.png")
    test_set = FashionMNIST(root, train=False)  # the reported accuracy is the saved model's on the test split
    predictions = saved_model_predictions(FashionCNN(), out / "checkpoint.npz", test_set.images)
    assert saved["test_accuracy"] == pytest.approx((predictions == test_set.targets).mean(), abs=1e-12)

    resumed = train_fashion_mnist.main([*options, "--epochs", "2", "--resume"])
    assert resumed["history"]["epoch"] == [1, 2]
    assert resumed["history"]["train_loss"][0] == first["history"]["train_loss"][0]
