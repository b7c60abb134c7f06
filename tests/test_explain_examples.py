"""Smoke runs of examples/cam_fashion_mnist.py and examples/saliency_cats_dogs.py on tiny data in the
official formats: every promised file is written and metrics.json holds the promised numbers."""

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from helpers import assert_figure, tiny_fashion_mnist  # noqa: E402

from minidl.data import FashionMNIST, OxfordPets  # noqa: E402

import cam_fashion_mnist  # noqa: E402
import saliency_cats_dogs  # noqa: E402


def tiny_oxford_pets(root: Path) -> Path:
    """Six trainval and four test photos (capital initial = cat) with trimaps, 24 x 20 pixels."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "annotations" / "trimaps").mkdir(parents=True)
    splits = {"trainval": ["Bengal_1", "Bengal_2", "Bengal_3", "beagle_1", "beagle_2", "beagle_3"],
              "test": ["Bengal_4", "Bengal_5", "beagle_4", "beagle_5"]}
    for split, names in splits.items():
        for name in names:
            Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(root / "images" / f"{name}.jpg")
            Image.fromarray(rng.integers(1, 4, (20, 24), dtype=np.uint8)).save(
                root / "annotations" / "trimaps" / f"{name}.png")
        (root / "annotations" / f"{split}.txt").write_text("".join(f"{name} 1 1 1\n" for name in names))
    return root


def test_cam_example_writes_the_grids_and_the_cam_identity(tmp_path, capsys):
    out = tmp_path / "run"
    summary = cam_fashion_mnist.main(["--data-root", str(tiny_fashion_mnist(tmp_path)), "--epochs", "1",
                                      "--val-fraction", "0.25", "--grid", "6", "--class", "Bag", "--out", str(out),
                                      "--no-progress"])
    assert sorted(p.name for p in out.iterdir()) == ["cam_class_bag.png", "cam_class_bag_seed.png", "cam_grid.png",
                                                     "cam_grid_seed.png", "checkpoint.npz", "curves.png",
                                                     "metrics.json"]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    assert 0 <= saved["test_accuracy"] <= 1
    # --val-fraction 0.25 holds out every 4th image of each class (4 per class among 40, labels 0..9 in turn)
    assert saved["data"] == {"source": saved["data"]["source"], "train": 30, "val": 10, "test": 20}
    assert saved["recipe"]["epochs"] == 1 and 0 <= saved["val_accuracy"] <= 1
    assert 0 <= saved["cam_identity_max_abs_error"] < 1e-4  # float32 rounding only
    assert "test accuracy" in capsys.readouterr().out
    for name in ("cam_class_bag.png", "cam_grid.png", "curves.png"):
        assert_figure(out / name)
    # one style, and the per-class grid of the images the model *predicts* as the class
    bags = (FashionMNIST(tmp_path, train=False).targets == FashionMNIST.classes.index("Bag")).sum()
    assert saved["class_grid_images"] == min(6, bags) > 0
    predicted = cam_fashion_mnist.main(["--data-root", str(tmp_path), "--epochs", "1", "--grid", "6", "--class",
                                        "Bag", "--class-by", "predicted", "--style", "seed",
                                        "--out", str(tmp_path / "seed"), "--no-progress"])
    class_grid = ["cam_class_bag_seed.png"] if predicted["class_grid_images"] else []  # none predicted: no grid
    assert sorted(p.name for p in (tmp_path / "seed").glob("*.png")) == sorted(
        [*class_grid, "cam_grid_seed.png", "curves.png"])


def test_saliency_example_writes_its_figures_and_aucs(tmp_path):
    out = tmp_path / "run"
    summary = saliency_cats_dogs.main(["--data-root", str(tiny_oxford_pets(tmp_path / "pets")), "--size", "16",
                                       "--epochs", "1", "--show", "2", "--evaluate", "3", "--steps", "4",
                                       "--smoothgrad-samples", "2", "--out", str(out), "--no-progress"])
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.npz", "curves.png", "metrics.json", "perturbation_curves.png", "saliency.png",
        "saliency_course.png", "sanity_check_grad-cam.png", "sanity_check_saliency.png"]
    for name in ("curves.png", "perturbation_curves.png", "saliency.png", "saliency_course.png",
                 "sanity_check_grad-cam.png", "sanity_check_saliency.png"):
        assert_figure(out / name)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    methods = ["saliency", "saliency (course)", "SmoothGrad", "gradient x input", "Integrated Gradients", "Grad-CAM",
               "CAM", "occlusion", "random"]
    for kind in ("deletion_auc", "insertion_auc"):
        assert list(saved[kind]) == methods and all(0 <= auc <= 1 for auc in saved[kind].values())
    # the pointing game scores 3 test photos spread over the split (0, 2, 3 of 4) against their pets (trimap 1 or 3)
    masks = OxfordPets(tmp_path / "pets", "test", size=16, target="species").pet_masks[[0, 2, 3]]
    assert list(saved["pointing_game"]) == methods
    for scores in saved["pointing_game"].values():
        assert scores["images"] == 3 and np.isclose(scores["uniform"], masks.mean())
        assert 0 <= scores["hit_rate"] <= 1 and (scores["undefined"] == 3 or 0 <= scores["energy"] <= 1)
    for rows in saved["randomization_spearman"].values():
        assert rows["original"] == 1.0 and len(rows) == 6  # original + 4 convs + linear
