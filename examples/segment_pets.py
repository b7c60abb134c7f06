"""Segment pets from background in Oxford-IIIT Pet photos with a UNet (or SegNet, FCN-32s/16s/8s).

    python examples/segment_pets.py                       # UNet on the bundled 64x64 sample
    python examples/segment_pets.py --model fcn8s --epochs 10
    python examples/segment_pets.py --data-root ~/data/oxford-pets --size 128

Trains on the official ``trainval`` split, evaluates on ``test``, and writes into ``--out``:
``metrics.json`` (per-epoch history, test pixel accuracy / mean IoU / IoU and Dice per class, and the
same numbers for the trivial all-background prediction), ``curves.png``, ``checkpoint.npz`` (resume
with ``--resume``) and ``predictions.png`` (test photo / true mask / predicted mask / overlay).

Target: each pixel is "pet" (trimap 1 = pet or 3 = the border band around its outline) or
"background" (trimap 2). With ``--ignore-border`` the border pixels are left out of the loss and the
metrics instead, so only the confidently labelled pixels count. ``--target three_class`` trains the
three classes of the DeepLearning.AI course "Advanced Computer Vision with TensorFlow" instead:
background / pet / border, each with its IoU in ``metrics.json`` and its colour in the figure. The
curves show the test split after every epoch; nothing is tuned on it (the number of epochs is fixed
beforehand).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import minidl  # noqa: E402
from minidl import functional as F  # noqa: E402
from minidl import metrics, optim  # noqa: E402
from minidl.data import IGNORE_INDEX, ArrayDataset, DataLoader, OxfordPets, RandomHorizontalFlip  # noqa: E402
from minidl.data.oxford_pets import MASK_TARGETS  # noqa: E402
from minidl.io import save_json  # noqa: E402
from minidl.random import manual_seed  # noqa: E402
from minidl.train import CHECKPOINT_NAME, CURVES_NAME, METRICS_NAME, fit  # noqa: E402
from minidl.viz.curves import plot_training_curves  # noqa: E402
from minidl.viz.segmentation import plot_segmentations  # noqa: E402
from models import SEGMENTERS, build_segmenter  # noqa: E402

SHOWN_TEST_IMAGES = 6
TARGET_DESCRIPTIONS = {
    "pet": "pet = trimap 1 or 3, background = trimap 2",
    "pet_ignore_border": "pet = trimap 1, background = trimap 2, border (trimap 3) ignored",
    "three_class": "background = trimap 2, pet = trimap 1, border = trimap 3 (the course's three classes)",
}


def training_options(description: str, default_out: str) -> argparse.ArgumentParser:
    """The command-line options shared by the segmentation examples (all but the model choice)."""
    parser = argparse.ArgumentParser(description=description.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--epochs", type=int, default=12, help="passes over the training images")
    parser.add_argument("--batch-size", type=int, default=16, help="images per gradient step")
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam's initial learning rate (cosine decay to 0)")
    parser.add_argument("--base-channels", type=int, default=16, help="channels of the first stage")
    parser.add_argument("--size", type=int, default=64, help="image side (the bundled sample is 64)")
    parser.add_argument("--seed", type=int, default=0, help="seeds initialisation, dropout, shuffling, flips")
    parser.add_argument("--target", choices=("pet", "three_class"), default="pet",
                        help="pet: pet (trimap pet + border) vs background; three_class: background / pet / "
                             "border, as the DeepLearning.AI course trains it")
    parser.add_argument("--ignore-border", action="store_true", help="leave trimap border pixels out (--target pet)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images of each split")
    parser.add_argument("--data-root", default=None,
                        help="folder with images/ and annotations/ of the full data set; omit for the bundled sample")
    parser.add_argument("--out", default=default_out, help="run folder")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the run folder's checkpoint up to --epochs (a larger --epochs extends "
                             "the run; the cosine schedule then spans the new total)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = training_options(__doc__, default_out="runs/segment_pets")
    parser.add_argument("--model", choices=list(SEGMENTERS), default="unet", help="which network")
    return parser.parse_args(argv)


def mask_target(args) -> str:
    """The ``OxfordPets`` target of the run: "pet", "pet_ignore_border" or "three_class"."""
    if args.ignore_border and args.target != "pet":
        raise SystemExit(f"--ignore-border applies to --target pet only (three_class learns the border as a class), "
                         f"got --target {args.target}")
    return "pet_ignore_border" if args.ignore_border else args.target


def class_names(args) -> list[str]:
    """Names of the classes the run segments, index = class: background, pet (, border)."""
    return MASK_TARGETS[mask_target(args)][1]


def load_splits(args) -> tuple[ArrayDataset, ArrayDataset]:
    """(trainval, test) as datasets of images (N, 3, S, S) float32 in [0, 1] and masks (N, S, S) int64."""
    splits = [OxfordPets(args.data_root, split, args.size, mask_target(args)) for split in ("trainval", "test")]
    return tuple(ArrayDataset(s.images[:args.limit], s.targets[:args.limit]) for s in splits)


def pixel_accuracy(logits: np.ndarray, masks: np.ndarray) -> float:
    """Share of labelled pixels whose argmax class is right (the metric shown in the progress bar)."""
    return metrics.pixel_accuracy(metrics.confusion_matrix(logits.argmax(axis=1), masks, logits.shape[1],
                                                           IGNORE_INDEX))


def segmentation_loss(logits, masks):
    """Mean per-pixel cross-entropy over the labelled pixels: -mean log softmax(logits)[true class]."""
    return F.cross_entropy(logits, masks, ignore_index=IGNORE_INDEX)


def predict(model, images: np.ndarray, batch_size: int) -> np.ndarray:
    """Class maps (N, H, W) int64: argmax over classes of the model's logits, in eval mode."""
    model.eval()
    with minidl.no_grad():
        return np.concatenate([model(minidl.Tensor(images[i:i + batch_size])).data.argmax(axis=1)
                               for i in range(0, len(images), batch_size)])


def segmentation_scores(predictions: np.ndarray, masks: np.ndarray, num_classes: int = 2) -> dict:
    """Pixel accuracy, mean IoU, IoU and Dice per class over all pixels; "dice" = the pet class's Dice."""
    tracker = metrics.SegmentationMetrics(num_classes, ignore_index=IGNORE_INDEX)
    tracker.update(predictions, masks)
    scores = tracker.compute()
    return {"pixel_accuracy": scores["pixel_accuracy"], "mean_iou": scores["mean_iou"],
            "iou_per_class": scores["iou_per_class"], "dice": scores["dice_per_class"][1],
            "dice_per_class": scores["dice_per_class"]}


def pet_iou_captions(predictions: np.ndarray, masks: np.ndarray, num_classes: int = 2) -> list[str]:
    """One "pet IoU 0.83" caption per image (the pet is class 1)."""
    return [f"pet IoU {metrics.iou_per_class(metrics.confusion_matrix(p, m, num_classes, IGNORE_INDEX))[1]:.2f}"
            for p, m in zip(predictions, masks)]


def train_segmenter(name: str, train: ArrayDataset, test: ArrayDataset, args, run_dir: Path):
    """Build model ``name``, train it with Adam for ``args.epochs`` epochs; return (model, history).

    The learning rate follows a half cosine from ``args.lr`` down to 0 over the epochs, so the last
    epochs take small steps and the final weights do not depend on where one noisy step landed.

    Everything random is seeded from ``args.seed``: initialisation and dropout (minidl's global
    generator), the loader's shuffling and the flips; ``fit`` saves their states in the checkpoint.
    """
    manual_seed(args.seed)
    model = build_segmenter(name, in_channels=3, num_classes=len(class_names(args)), base_channels=args.base_channels)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    schedule = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    flip = RandomHorizontalFlip(seed=args.seed + 1)
    train_loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, seed=args.seed, transform=flip)
    test_loader = DataLoader(test, batch_size=args.batch_size)
    history = fit(model, optimizer, segmentation_loss, train_loader, args.epochs, val_loader=test_loader,
                  metrics={"pixel_accuracy": pixel_accuracy}, scheduler=schedule, run_dir=run_dir,
                  resume=args.resume, verbose=0 if args.no_progress else 1)
    return model, history


def shown_indices(count: int, total: int) -> np.ndarray:
    """``count`` test images spread evenly over the split (it is ordered by breed)."""
    return np.linspace(0, total - 1, min(count, total)).round().astype(int)


def main(argv=None) -> dict:
    args = parse_args(argv)
    out = Path(args.out)
    train, test = load_splits(args)
    print(f"{args.model}: {len(train)} trainval and {len(test)} test images at {args.size}x{args.size}, "
          f"{args.epochs} epochs -> {out}")

    started = time.perf_counter()
    model, history = train_segmenter(args.model, train, test, args, out)
    wall_seconds = time.perf_counter() - started
    predictions = predict(model, test.images, args.batch_size)
    classes = class_names(args)
    scores = segmentation_scores(predictions, test.targets, len(classes))
    baseline = segmentation_scores(np.zeros_like(predictions), test.targets, len(classes))

    plot_training_curves(history.to_dict(), out / CURVES_NAME, title=f"{args.model} on Oxford-IIIT Pet "
                         "(train: trainval split, val: test split)")
    shown = shown_indices(SHOWN_TEST_IMAGES, len(test))
    plot_segmentations(test.images[shown], {"true mask": test.targets[shown], "predicted mask": predictions[shown]},
                       out / "predictions.png", overlay="predicted mask", class_names=classes,
                       captions={"predicted mask": pet_iou_captions(predictions[shown], test.targets[shown],
                                                                    len(classes))},
                       title=f"{args.model}, test images: mean IoU {scores['mean_iou']:.3f}")
    report = {
        "status": "ok", "model": args.model, "epochs": len(history),
        "parameters": int(sum(p.size for p in model.parameters())),
        "train_seconds": float(sum(history["seconds"])), "wall_seconds_this_run": wall_seconds,
        "images": {"trainval": len(train), "test": len(test), "size": args.size},
        "target": TARGET_DESCRIPTIONS[mask_target(args)], "classes": classes,
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "no_progress")},
        **{f"test_{name}": value for name, value in scores.items()},
        "test_iou_by_class": dict(zip(classes, scores["iou_per_class"])),
        "baseline_all_background": baseline,
        "history": history.to_dict(),
        "history_note": "val_* columns are the test split, evaluated after every epoch and used for no decision",
    }
    save_json(out / METRICS_NAME, report)
    print(f"test: pixel accuracy {scores['pixel_accuracy']:.3f}, mean IoU {scores['mean_iou']:.3f}, "
          f"pet Dice {scores['dice']:.3f} (all-background baseline: pixel accuracy "
          f"{baseline['pixel_accuracy']:.3f}, mean IoU {baseline['mean_iou']:.3f})")
    print("test IoU per class: " + ", ".join(f"{name} {iou:.3f}" for name, iou in report["test_iou_by_class"].items()))
    for name in (METRICS_NAME, CURVES_NAME, CHECKPOINT_NAME, "predictions.png"):
        print(f"wrote {out / name}")
    return report


if __name__ == "__main__":
    main()
