"""The CAM example's recipe is wired as documented, on a tiny run: cosine schedule over the epochs,
validation every --val-every epochs and after the last, flips on training batches only, split sizes."""

import json
import math
import sys
from pathlib import Path

import numpy as np
from helpers import tiny_fashion_mnist

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import cam_fashion_mnist  # noqa: E402
from minidl.data import FashionMNIST, RandomHorizontalFlip, stratified_split  # noqa: E402


class RecordingFlip(RandomHorizontalFlip):
    """The example's flip, remembering every batch it returned."""
    seen = []

    def __call__(self, images, targets):
        images, targets = super().__call__(images, targets)
        RecordingFlip.seen.append(images.copy())
        return images, targets


def test_recipe_is_wired_as_documented(tmp_path, monkeypatch):
    monkeypatch.setattr(cam_fashion_mnist, "RandomHorizontalFlip", RecordingFlip)
    RecordingFlip.seen = []
    root, epochs, lr = tiny_fashion_mnist(tmp_path), 3, 0.01
    summary = cam_fashion_mnist.main(["--data-root", str(root), "--epochs", str(epochs), "--lr", str(lr),
                                      "--batch-size", "8", "--val-fraction", "0.25", "--val-every", "2", "--grid", "2",
                                      "--style", "jet", "--out", str(tmp_path / "run"), "--no-progress"])
    history = summary["history"]
    assert np.allclose(history["lr"], [lr * (1 + math.cos(math.pi * e / epochs)) / 2 for e in range(epochs)])
    assert [value is not None for value in history["val_accuracy"]] == [False, True, True]
    assert summary["val_accuracy"] == history["val_accuracy"][-1]
    # every 4th image of each class held out: 40 official training images -> 30 train / 10 validation
    assert summary["data"]["train"] == 30 and summary["data"]["val"] == 10 and summary["data"]["test"] == 20
    assert {key: summary["recipe"][key] for key in ("epochs", "batch_size", "lr", "val_every")} == {
        "epochs": epochs, "batch_size": 8, "lr": lr, "val_every": 2}

    official = FashionMNIST(root, train=True)
    train_indices, _ = stratified_split(official.targets, 0.25)
    unflipped = {image.tobytes() for image in official.images[train_indices]}
    flipped = {image[..., ::-1].tobytes() for image in official.images[train_indices]}
    seen = [image.tobytes() for batch in RecordingFlip.seen for image in batch]
    assert len(RecordingFlip.seen) == epochs * 4  # 30 training images in batches of 8 (the last one of 6)
    assert all(image in unflipped | flipped for image in seen)  # training images only, some mirrored
    assert 0.3 < np.mean([image in flipped for image in seen]) < 0.7
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["recipe"] == summary["recipe"]
