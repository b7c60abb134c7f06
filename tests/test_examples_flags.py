"""Bad command-line flags of the six examples fail at parse time with a message naming the flag, and a run
folder that holds a finished run is refused before any data loads or trains (no training in these tests)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import cam_fashion_mnist  # noqa: E402
import compare_segmenters  # noqa: E402
import mask_rcnn_shapes  # noqa: E402
import saliency_cats_dogs  # noqa: E402
import segment_pets  # noqa: E402
import train_fashion_mnist  # noqa: E402

EXAMPLES = {"train_fashion_mnist": train_fashion_mnist, "cam_fashion_mnist": cam_fashion_mnist,
            "saliency_cats_dogs": saliency_cats_dogs, "segment_pets": segment_pets,
            "compare_segmenters": compare_segmenters, "mask_rcnn_shapes": mask_rcnn_shapes}
TRAINING = ["train_fashion_mnist", "cam_fashion_mnist", "saliency_cats_dogs", "segment_pets", "compare_segmenters"]
BAD_NUMBERS = ["0", "-1", "nan", "inf", "2.5", "x"]

# (example, flag): the flags that take a count of at least 1
COUNTS = [(name, flag) for name in TRAINING for flag in ("--epochs", "--batch-size")] + [
    ("segment_pets", "--limit"), ("compare_segmenters", "--limit"), ("segment_pets", "--base-channels"),
    ("cam_fashion_mnist", "--grid"), ("cam_fashion_mnist", "--val-every"), ("segment_pets", "--val-every"), ("saliency_cats_dogs", "--show"), ("saliency_cats_dogs", "--evaluate"),
    ("saliency_cats_dogs", "--steps"), ("saliency_cats_dogs", "--smoothgrad-samples"),
    ("saliency_cats_dogs", "--size"), ("mask_rcnn_shapes", "--steps"), ("mask_rcnn_shapes", "--batch-size"),
    ("mask_rcnn_shapes", "--rois-per-image"), ("mask_rcnn_shapes", "--val-images")]
RATES = [(name, "--lr") for name in EXAMPLES] + [("mask_rcnn_shapes", "--time-budget")]


def parse_error(example: str, argv: list, capsys) -> str:
    """The message argparse prints when ``argv`` is refused (the test fails if it is accepted)."""
    with pytest.raises(SystemExit) as exit_:
        EXAMPLES[example].parse_args(argv)
    assert exit_.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("example, flag", COUNTS)
@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_counts_must_be_positive_integers(example, flag, value, capsys):
    error = parse_error(example, [f"{flag}={value}"], capsys)
    assert f"argument {flag}: must be an integer >= 1, got '{value}'" in error


@pytest.mark.parametrize("example, flag", RATES)
@pytest.mark.parametrize("value", ["0", "-0.1", "nan", "inf", "-inf", "x"])
def test_rates_and_budgets_must_be_finite_and_positive(example, flag, value, capsys):
    assert f"argument {flag}: must be a finite number > 0, got '{value}'" in parse_error(example, [f"{flag}={value}"], capsys)


@pytest.mark.parametrize("example", list(EXAMPLES))
@pytest.mark.parametrize("value", ["-1", "4294967296", "1.5"])
def test_seeds_must_be_what_numpy_accepts(example, value, capsys):
    assert f"argument --seed: must be an integer in [0, 2**32), got '{value}'" in parse_error(
        example, [f"--seed={value}"], capsys)


@pytest.mark.parametrize("example, argv, expected", [
    ("mask_rcnn_shapes", ["--warmup", "-1"], "argument --warmup: must be an integer >= 0"),
    ("segment_pets", ["--val-fraction", "1"], "argument --val-fraction: must be a number in [0, 1), got '1'"),
    ("cam_fashion_mnist", ["--val-fraction=-0.1"], "argument --val-fraction: must be a number in [0, 1)"),
    ("mask_rcnn_shapes", ["--val-images", "201"], "argument --val-images: the validation set has 200 images"),
    ("saliency_cats_dogs", ["--noise", "-0.1"], "argument --noise: must be a finite number >= 0"),
    ("saliency_cats_dogs", ["--size", "4", "--data-root", "x"], "argument --size: the classifier halves the image"),
    ("saliency_cats_dogs", ["--size", "32"], "argument --size: the bundled sample is 64x64, got 32"),
    ("segment_pets", ["--size", "96"], "argument --size: the bundled sample is 64x64, got 96"),
    ("segment_pets", ["--size", "60", "--data-root", "x", "--model", "fcn8s"],
     "argument --size: FCN8s: input height/width 60 does not work"),
    ("compare_segmenters", ["--size", "48", "--data-root", "x", "--models", "unet", "fcn32s"],
     "argument --size: FCN32s: input height/width 48 does not work"),
    ("segment_pets", ["--target", "three_class", "--ignore-border"],
     "argument --ignore-border: applies to --target pet only"),
    ("cam_fashion_mnist", ["--class", "Dog"], "argument --class: must be one of"),
    ("cam_fashion_mnist", ["--class", "10"], "argument --class: must be one of"),
    ("train_fashion_mnist", ["--resume", "--overwrite"], "argument --overwrite: not allowed with argument --resume"),
])
def test_other_flags_and_combinations_are_checked_at_parse_time(example, argv, expected, capsys):
    assert expected in parse_error(example, argv, capsys)


def test_good_flags_parse():
    args = mask_rcnn_shapes.parse_args(["--val-images", "3", "--warmup", "0", "--time-budget", "0.5"])
    assert (args.val_images, args.warmup, args.time_budget) == (3, 0, 0.5)
    assert cam_fashion_mnist.parse_args(["--class", "ankle BOOT"]).class_index == 9
    args = segment_pets.parse_args(["--size", "96", "--data-root", "x", "--lr", "1e-3", "--seed", str(2**32 - 1)])
    assert (args.size, args.lr, args.seed) == (96, 1e-3, 2**32 - 1)


# the first thing each example does once its run folder is held (loading the data, or all the work)
FIRST_STEP = {"train_fashion_mnist": "train_and_test", "cam_fashion_mnist": "train_and_draw",
              "saliency_cats_dogs": "OxfordPets", "segment_pets": "load_splits", "compare_segmenters": "load_splits",
              "mask_rcnn_shapes": "train_and_evaluate"}


def test_a_finished_run_is_refused_before_the_data_loads(tmp_path, monkeypatch):
    """A run folder holding a finished run: every example stops at once, naming the folder and the ways on."""
    loaded = []
    for name, step in FIRST_STEP.items():
        monkeypatch.setattr(EXAMPLES[name], step, lambda *args, **kwargs: loaded.append(args))
    for name in EXAMPLES:
        out = tmp_path / name
        out.mkdir()
        (out / "metrics.json").write_text(json.dumps({"status": "ok"}))
        with pytest.raises(SystemExit) as refused:
            EXAMPLES[name].main(["--out", str(out), "--no-progress"])
        message = str(refused.value.code)
        assert f"run folder {out} already holds a run (status ok)" in message, name
        assert "--overwrite" in message and ("--resume" in message) == (name != "mask_rcnn_shapes"), name
        assert not loaded, name  # refused before any data loads
        assert json.loads((out / "metrics.json").read_text()) == {"status": "ok"}


def test_compare_segmenters_checks_every_model_folder_first(tmp_path, monkeypatch):
    loaded = []
    monkeypatch.setattr(compare_segmenters, "load_splits", lambda args: loaded.append(args))
    (tmp_path / "fcn8s").mkdir()
    np.savez(tmp_path / "fcn8s" / "checkpoint.npz", **{"meta/epoch": np.array(3)})
    with pytest.raises(SystemExit) as refused:
        compare_segmenters.main(["--models", "unet", "fcn8s", "--out", str(tmp_path), "--no-progress"])
    assert f"run folder {tmp_path / 'fcn8s'} already holds a run (a checkpoint after epoch 3)" in str(
        refused.value.code)
    assert not loaded  # unet did not train first
    with pytest.raises(SystemExit, match="no checkpoint file at .*unet.* to resume from"):
        compare_segmenters.main(["--models", "unet", "fcn8s", "--out", str(tmp_path), "--resume", "--no-progress"])


def test_an_out_that_is_a_file_fails_at_once(tmp_path):
    a_file = tmp_path / "results.txt"
    a_file.write_text("mine")
    with pytest.raises(SystemExit, match=f"error: --out: run folder {a_file} is not a folder"):
        segment_pets.main(["--out", str(a_file)])
    assert a_file.read_text() == "mine"


def test_an_unwritable_out_fails_before_the_data_loads(tmp_path, monkeypatch):
    """A read-only --out (simulated: tests may run as root, where chmod does not stop writes)."""
    import minidl.io

    def read_only(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    loaded = []
    monkeypatch.setattr(segment_pets, "load_splits", lambda args: loaded.append(args))
    monkeypatch.setattr(minidl.io, "open", read_only, raising=False)
    with pytest.raises(SystemExit, match=r"error: --out: .*Permission denied"):
        segment_pets.main(["--out", str(tmp_path / "run"), "--no-progress"])
    assert not loaded


def test_a_refused_resume_ends_with_its_reason(tmp_path, monkeypatch):
    """fit refuses to resume with another seed: the example exits with that reason, no traceback."""
    from minidl.train import ResumeError

    def refused(*args, **kwargs):
        raise ResumeError("fit: cannot resume run with other settings: seed 3 (the checkpoint has 0)")

    monkeypatch.setattr(segment_pets, "load_splits", lambda args: ([], [], []))
    monkeypatch.setattr(segment_pets, "train_segmenter", refused)
    monkeypatch.setattr(segment_pets, "recipe", lambda args, name: {})
    (tmp_path / "checkpoint.npz").write_bytes(b"")
    with pytest.raises(SystemExit, match=r"error: --resume: fit: cannot resume run with other settings: seed 3"):
        segment_pets.main(["--out", str(tmp_path), "--resume", "--no-progress"])
