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
background / pet / border, each with its IoU in ``metrics.json`` and its colour in the figure.

Three splits, and what each is for: ``--val-fraction`` of the trainval images (every 10th image of
each breed for the default 0.1, every 5th for 0.2; the same images in every run) is held out as the
validation split; the network trains on the rest. The validation split is evaluated every ``--val-every`` epochs (the curves) and
at the end; each network's default recipe (``RECIPES``: epochs, learning rate, batch size, dropout) was
chosen on it. The test split is evaluated once, after training, for the reported numbers.
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
from minidl.data import (IGNORE_INDEX, ArrayDataset, DataLoader, OxfordPets, RandomHorizontalFlip,  # noqa: E402
                         stratified_split)
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
EVAL_BATCH_SIZE = 64  # evaluation keeps no graph, so larger batches fit and cost fewer Python calls

# Each network's default training recipe. The epochs are what fits in the UNet's 40 epochs, about
# 4 minutes of training on 2 cores (an epoch of SegNet costs ~75 %, of FCN ~50 % of the UNet's); lr, batch size and dropout were compared on the validation split
# (``--val-fraction 0.2``) of the bundled sample: the README's "Training recipes" has the numbers.
# All use Adam with a cosine decay of the learning rate to 0 over the epochs and random flips.
# "dropout" is the UNet's after each pool and concatenation, FCN's after fc6 and fc7 (the paper's
# 0.5); SegNet has none.
RECIPES = {
    "unet": {"epochs": 40, "lr": 2e-3, "batch_size": 16, "dropout": 0.1},
    "segnet": {"epochs": 50, "lr": 2e-3, "batch_size": 16},
    "fcn32s": {"epochs": 80, "lr": 2e-3, "batch_size": 16, "dropout": 0.5},
    "fcn16s": {"epochs": 80, "lr": 2e-3, "batch_size": 16, "dropout": 0.5},
    "fcn8s": {"epochs": 80, "lr": 2e-3, "batch_size": 16, "dropout": 0.5},
}


def training_options(description: str, default_out: str) -> argparse.ArgumentParser:
    """The command-line options shared by the segmentation examples (all but the model choice)."""
    parser = argparse.ArgumentParser(description=description.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    def per_model(key):
        return "per model: " + ", ".join(f"{name} {settings[key]}" for name, settings in RECIPES.items()
                                         if key in settings)
    # default=SUPPRESS: without the flag the attribute is absent and recipe() takes the model's value
    parser.add_argument("--epochs", type=int, default=argparse.SUPPRESS,
                        help=f"passes over the training images (default {per_model('epochs')})")
    parser.add_argument("--batch-size", type=int, default=argparse.SUPPRESS,
                        help=f"images per gradient step (default {per_model('batch_size')})")
    parser.add_argument("--lr", type=float, default=argparse.SUPPRESS,
                        help=f"Adam's initial learning rate, cosine decay to 0 (default {per_model('lr')})")
    parser.add_argument("--dropout", type=float, default=argparse.SUPPRESS,
                        help=f"dropout probability of the UNet and FCNs (default {per_model('dropout')})")
    parser.add_argument("--base-channels", type=int, default=16, help="channels of the first stage")
    parser.add_argument("--size", type=int, default=64, help="image side (the bundled sample is 64)")
    parser.add_argument("--seed", type=int, default=0, help="seeds initialisation, dropout, shuffling, flips")
    parser.add_argument("--target", choices=("pet", "three_class"), default="pet",
                        help="pet: pet (trimap pet + border) vs background; three_class: background / pet / "
                             "border, as the DeepLearning.AI course trains it")
    parser.add_argument("--ignore-border", action="store_true", help="leave trimap border pixels out (--target pet)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images of each split")
    parser.add_argument("--val-fraction", type=float, default=0.1,
                        help="share of each breed's trainval images held out for validation (0: train on all)")
    parser.add_argument("--val-every", type=int, default=5,
                        help="evaluate the validation split every N epochs (and after the last)")
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


def recipe(args, model: str) -> dict:
    """``model``'s training recipe: ``RECIPES[model]``, with the values given on the command line instead."""
    if hasattr(args, "dropout") and "dropout" not in RECIPES[model]:
        raise SystemExit(f"--dropout: {model} has no dropout layer (the UNet and the FCNs have)")
    return {key: getattr(args, key, default) for key, default in RECIPES[model].items()}


def mask_target(args) -> str:
    """The ``OxfordPets`` target of the run: "pet", "pet_ignore_border" or "three_class"."""
    if args.ignore_border and args.target != "pet":
        raise SystemExit(f"--ignore-border applies to --target pet only (three_class learns the border as a class), "
                         f"got --target {args.target}")
    return "pet_ignore_border" if args.ignore_border else args.target


def class_names(args) -> list[str]:
    """Names of the classes the run segments, index = class: background, pet (, border)."""
    return MASK_TARGETS[mask_target(args)][1]


def load_splits(args) -> tuple[ArrayDataset, ArrayDataset, ArrayDataset]:
    """(train, val, test): images (N, 3, S, S) float32 in [0, 1] and masks (N, S, S) int64.

    val holds ``args.val_fraction`` of each breed's trainval images, evenly spaced in file order
    (``stratified_split``; the breed is the file name without its number), train the rest.
    """
    trainval, test = (OxfordPets(args.data_root, split, args.size, mask_target(args)) for split in ("trainval", "test"))
    breeds = [name.rsplit("_", 1)[0] for name in trainval.names[:args.limit]]
    train_indices, val_indices = stratified_split(breeds, args.val_fraction)
    return (ArrayDataset(trainval.images[train_indices], trainval.targets[train_indices]),
            ArrayDataset(trainval.images[val_indices], trainval.targets[val_indices]),
            ArrayDataset(test.images[:args.limit], test.targets[:args.limit]))


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


def train_segmenter(name: str, train: ArrayDataset, val: ArrayDataset, args, run_dir: Path):
    """Build model ``name``, train it with its recipe (``recipe(args, name)``); return (model, history).

    Adam, with a learning rate that follows a half cosine from the recipe's lr down to 0 over the
    epochs, so the last epochs take small steps and the final weights do not depend on where one
    noisy step landed. Each training batch is flipped left-right at random (image and mask
    together); the validation images are not. ``val`` (if not empty) is evaluated every
    ``args.val_every`` epochs and after the last.

    Everything random is seeded from ``args.seed``: initialisation and dropout (minidl's global
    generator), the loader's shuffling and the flips; ``fit`` saves their states in the checkpoint.
    """
    settings = recipe(args, name)
    manual_seed(args.seed)
    dropout = {"dropout": settings["dropout"]} if "dropout" in settings else {}
    model = build_segmenter(name, in_channels=3, num_classes=len(class_names(args)), base_channels=args.base_channels,
                            **dropout)
    optimizer = optim.Adam(model.parameters(), lr=settings["lr"])
    schedule = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings["epochs"])
    flip = RandomHorizontalFlip(seed=args.seed + 1)
    train_loader = DataLoader(train, batch_size=settings["batch_size"], shuffle=True, seed=args.seed, transform=flip)
    val_loader = DataLoader(val, batch_size=EVAL_BATCH_SIZE) if len(val) else None
    history = fit(model, optimizer, segmentation_loss, train_loader, settings["epochs"], val_loader=val_loader,
                  metrics={"pixel_accuracy": pixel_accuracy}, scheduler=schedule, run_dir=run_dir,
                  resume=args.resume, verbose=0 if args.no_progress else 1, val_every=args.val_every)
    return model, history


def recipe_record(args, name: str, train: ArrayDataset, val: ArrayDataset) -> dict:
    """What metrics.json says about how ``name`` was trained and validated."""
    return {**recipe(args, name), "optimizer": "Adam", "schedule": "cosine decay of lr to 0 over the epochs",
            "augmentation": "random left-right flip (p=0.5) of training batches",
            "train_images": len(train), "val_images": len(val), "val_every": args.val_every,
            "val_split": f"every image j of a breed (trainval file order) with floor((j+1)*f) > floor(j*f), "
                         f"f = {args.val_fraction}"}


def shown_indices(count: int, total: int) -> np.ndarray:
    """``count`` test images spread evenly over the split (it is ordered by breed)."""
    return np.linspace(0, total - 1, min(count, total)).round().astype(int)


def main(argv=None) -> dict:
    args = parse_args(argv)
    out = Path(args.out)
    train, val, test = load_splits(args)
    settings = recipe(args, args.model)
    print(f"{args.model}: {len(train)} train, {len(val)} validation and {len(test)} test images at "
          f"{args.size}x{args.size}, {settings['epochs']} epochs, batch {settings['batch_size']}, "
          f"lr {settings['lr']} -> {out}")

    started = time.perf_counter()
    model, history = train_segmenter(args.model, train, val, args, out)
    wall_seconds = time.perf_counter() - started
    classes = class_names(args)
    validation = (segmentation_scores(predict(model, val.images, EVAL_BATCH_SIZE), val.targets, len(classes))
                  if len(val) else None)
    predictions = predict(model, test.images, EVAL_BATCH_SIZE)  # the one look at the test split
    scores = segmentation_scores(predictions, test.targets, len(classes))
    baseline = segmentation_scores(np.zeros_like(predictions), test.targets, len(classes))

    plot_training_curves(history.to_dict(), out / CURVES_NAME, title=f"{args.model} on Oxford-IIIT Pet "
                         f"(val: {len(val)} held-out trainval images)")
    shown = shown_indices(SHOWN_TEST_IMAGES, len(test))
    plot_segmentations(test.images[shown], {"true mask": test.targets[shown], "predicted mask": predictions[shown]},
                       out / "predictions.png", overlay="predicted mask", class_names=classes,
                       captions={"predicted mask": pet_iou_captions(predictions[shown], test.targets[shown],
                                                                    len(classes))},
                       title=f"{args.model}, test images: mean IoU {scores['mean_iou']:.3f}")
    seconds_per_epoch = float(np.median(history["seconds"]))
    report = {
        "status": "ok", "model": args.model, "epochs": len(history),
        "parameters": int(sum(p.size for p in model.parameters())),
        "train_seconds": float(sum(history["seconds"])), "seconds_per_epoch_median": seconds_per_epoch,
        "wall_seconds_this_run": wall_seconds,
        "images": {"train": len(train), "val": len(val), "test": len(test), "size": args.size},
        "target": TARGET_DESCRIPTIONS[mask_target(args)], "classes": classes,
        "recipe": recipe_record(args, args.model, train, val),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "no_progress")},
        **({f"val_{name}": value for name, value in validation.items()} if validation else {}),
        **{f"test_{name}": value for name, value in scores.items()},
        "test_iou_by_class": dict(zip(classes, scores["iou_per_class"])),
        "baseline_all_background": baseline,
        "history": history.to_dict(),
        "history_note": "val_* columns: the validation split (held out of trainval), every val_every epochs "
                        "(null in between); the test split was evaluated once, after training",
    }
    save_json(out / METRICS_NAME, report)
    if validation:
        print(f"validation: pixel accuracy {validation['pixel_accuracy']:.3f}, "
              f"mean IoU {validation['mean_iou']:.3f}")
    print(f"test: pixel accuracy {scores['pixel_accuracy']:.3f}, mean IoU {scores['mean_iou']:.3f}, "
          f"pet Dice {scores['dice']:.3f} (all-background baseline: pixel accuracy "
          f"{baseline['pixel_accuracy']:.3f}, mean IoU {baseline['mean_iou']:.3f}); "
          f"{seconds_per_epoch:.1f} s per epoch (median), {report['train_seconds']:.0f} s of training")
    print("test IoU per class: " + ", ".join(f"{name} {iou:.3f}" for name, iou in report["test_iou_by_class"].items()))
    for name in (METRICS_NAME, CURVES_NAME, CHECKPOINT_NAME, "predictions.png"):
        print(f"wrote {out / name}")
    return report


if __name__ == "__main__":
    main()
