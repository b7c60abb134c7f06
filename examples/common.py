"""What the examples share: flag checks, the run folder, and the segmentation steps of two examples.

Flags are checked when they are parsed, so a bad run fails in a second with a message naming the
flag (``argument --epochs: must be an integer >= 1, got '0'``), never after minutes of training.
The run folder (``--out``) is taken before the data loads (``hold_run_folders``): locked, refused if
it holds a finished run unless ``--resume`` or ``--overwrite``, checked to be a writable folder.

Importing this module also puts the repository on ``sys.path``, so the examples run from a checkout
without installing minidl (``python examples/segment_pets.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402

import minidl  # noqa: E402
from minidl import functional as F  # noqa: E402
from minidl import metrics, optim  # noqa: E402
from minidl.data import (IGNORE_INDEX, ArrayDataset, DataLoader, OxfordPets, RandomHorizontalFlip,  # noqa: E402
                         stratified_split)
from minidl.data.oxford_pets import BUNDLED_SIZE, MASK_TARGETS  # noqa: E402
from minidl.io import RunFolderError, run_folder, settings_for_json  # noqa: E402
from minidl.train import ResumeError, fit  # noqa: E402
from models import build_segmenter  # noqa: E402

# Flags that say how to run, not what to train: they may differ when a run is resumed.
HOW_TO_RUN = ("out", "resume", "overwrite", "no_progress")


# ------------------------------------------------------------------------------------- flag checks
def _number_flag(kind, what: str, lowest, highest=math.inf, above: bool = False):
    """An argparse ``type``: ``text`` as ``kind`` (int or float), finite, in [lowest, highest) (or above
    ``lowest``); otherwise ArgumentTypeError, which argparse reports with the flag's name."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if not (math.isfinite(value) and lowest <= value < highest) or (above and value == lowest):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value
    return parse


positive_int = _number_flag(int, "an integer >= 1", 1)  # epochs, batch size, image counts
non_negative_int = _number_flag(int, "an integer >= 0", 0)  # warm-up steps
seed = _number_flag(int, "an integer in [0, 2**32)", 0, 2**32)  # what NumPy's generators accept
positive_float = _number_flag(float, "a finite number > 0", 0.0, above=True)  # learning rates, time budgets
non_negative_float = _number_flag(float, "a finite number >= 0", 0.0)  # noise levels
fraction = _number_flag(float, "a number in [0, 1)", 0.0, 1.0)  # the share of images held out for validation
probability = _number_flag(float, "a probability in [0, 1)", 0.0, 1.0)  # dropout


def check_size_for_bundled_sample(parser: argparse.ArgumentParser, args) -> None:
    """The bundled Oxford-IIIT Pet sample exists at one size only; other sizes need --data-root."""
    if args.data_root is None and args.size != BUNDLED_SIZE:
        parser.error(f"argument --size: the bundled sample is {BUNDLED_SIZE}x{BUNDLED_SIZE}, got {args.size}; "
                     f"pass --data-root (the full data set) for other sizes")


# -------------------------------------------------------------------------------------- run folder
def add_run_folder_options(parser: argparse.ArgumentParser, default_out, resume: bool = True) -> None:
    """--out, --overwrite, --no-progress and (if the example can continue a run) --resume."""
    parser.add_argument("--out", type=Path, default=Path(default_out), help="run folder")
    existing_run = parser.add_mutually_exclusive_group()
    if resume:
        existing_run.add_argument("--resume", action="store_true",
                                  help="continue the run saved in --out up to --epochs (the other settings must match)")
    existing_run.add_argument("--overwrite", action="store_true",
                              help="replace a run already in --out (without this flag it is kept and the new run refused)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (for log files)")


def hold_run_folders(stack: contextlib.ExitStack, args, *folders, resume: bool | None = None) -> None:
    """Take the run folders (default: ``args.out``) for the rest of ``stack``; exit with the reason if one
    is refused (it holds a run, another run writes there, it is not a writable folder).

    Taken before any data loads, so a run that cannot write its results fails at once. A --resume that
    ``fit`` refuses (other settings, fewer epochs) also ends with its reason rather than a traceback.
    """
    stack.push(_exit_with_resume_error)
    resumable = hasattr(args, "resume")
    resume = resumable and args.resume if resume is None else resume
    for folder in folders or (args.out,):
        try:
            stack.enter_context(run_folder(folder, resume=resume, overwrite=args.overwrite,
                                           ways_on=("--resume" if resumable else None, "--overwrite")))
        except (RunFolderError, OSError) as error:
            raise SystemExit(f"error: --out: {error}") from None


def _exit_with_resume_error(kind, error, traceback) -> None:
    if isinstance(error, ResumeError):
        raise SystemExit(f"error: --resume: {error}") from None


def training_settings(args, *not_training: str) -> dict:
    """The flags that define what is trained, as saved in the checkpoint and compared on resume:
    all but ``HOW_TO_RUN`` and ``not_training`` (e.g. how many images a figure shows)."""
    return {key: value for key, value in settings_for_json(args).items()
            if key not in HOW_TO_RUN and key not in not_training}


# ------------------------------------------------------------------ segmentation (two examples)
EVAL_BATCH_SIZE = 64  # evaluation keeps no graph, so larger batches fit and cost fewer Python calls

# Each network's default training recipe, compared on the validation split of the bundled sample (the
# README's "Training recipes" has the numbers). The epochs fit in 2-4 minutes of training on 2
# cores (measured in the README). All use Adam with a cosine decay of the learning rate to 0 over the epochs and random flips.
# "dropout" is the UNet's after each pool and concatenation, FCN's after fc6 and fc7 (the paper's 0.5),
# SegNet's at its central stages (Bayesian SegNet; 0.5 lost to none on validation). SegNet's "depth":
# three 2x2 pools (8x8 maps at the bottom for 64x64 images) beat four and five on validation; its
# decoder has no skipped feature maps, only the pool positions, to restore what each pool discards.
RECIPES = {
    "unet": {"epochs": 40, "lr": 2e-3, "batch_size": 16, "dropout": 0.1},
    "segnet": {"epochs": 50, "lr": 2e-3, "batch_size": 16, "depth": 3, "dropout": 0.0},
    "fcn32s": {"epochs": 80, "lr": 2e-3, "batch_size": 16, "dropout": 0.5},
    "fcn16s": {"epochs": 80, "lr": 2e-3, "batch_size": 16, "dropout": 0.5},
    "fcn8s": {"epochs": 80, "lr": 2e-3, "batch_size": 16, "dropout": 0.5},
}


# Recipe entries that are arguments of the network's constructor rather than of its training.
MODEL_ARGUMENTS = ("dropout", "depth")


def segmentation_options(description: str, default_out: str) -> argparse.ArgumentParser:
    """The command-line options shared by the segmentation examples (all but the model choice)."""
    parser = argparse.ArgumentParser(description=description.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)

    def per_model(key):
        return "per model: " + ", ".join(f"{name} {settings[key]}" for name, settings in RECIPES.items()
                                         if key in settings)
    # default=SUPPRESS: without the flag the attribute is absent and recipe() takes the model's value
    parser.add_argument("--epochs", type=positive_int, default=argparse.SUPPRESS,
                        help=f"passes over the training images (default {per_model('epochs')})")
    parser.add_argument("--batch-size", type=positive_int, default=argparse.SUPPRESS,
                        help=f"images per gradient step (default {per_model('batch_size')})")
    parser.add_argument("--lr", type=positive_float, default=argparse.SUPPRESS,
                        help=f"Adam's initial learning rate, cosine decay to 0 (default {per_model('lr')})")
    parser.add_argument("--dropout", type=probability, default=argparse.SUPPRESS,
                        help=f"dropout probability (default {per_model('dropout')})")
    parser.add_argument("--depth", type=positive_int, default=argparse.SUPPRESS,
                        help=f"SegNet's number of encoder stages, each ending in a 2x2 max-pool "
                             f"(default {per_model('depth')})")
    parser.add_argument("--base-channels", type=positive_int, default=16, help="channels of the first stage")
    parser.add_argument("--size", type=positive_int, default=BUNDLED_SIZE,
                        help="image side (the bundled sample is 64)")
    parser.add_argument("--seed", type=seed, default=0, help="seeds initialisation, dropout, shuffling, flips")
    parser.add_argument("--target", choices=("pet", "three_class"), default="pet",
                        help="pet: pet (trimap pet + border) vs background; three_class: background / pet / "
                             "border, as the DeepLearning.AI course trains it")
    parser.add_argument("--ignore-border", action="store_true", help="leave trimap border pixels out (--target pet)")
    parser.add_argument("--limit", type=positive_int, default=None, help="use only the first N images of each split")
    parser.add_argument("--val-fraction", type=fraction, default=0.1,
                        help="share of each breed's trainval images held out for validation (0: train on all)")
    parser.add_argument("--val-every", type=positive_int, default=5,
                        help="evaluate the validation split every N epochs (and after the last)")
    parser.add_argument("--data-root", default=None,
                        help="folder with images/ and annotations/ of the full data set; omit for the bundled sample")
    add_run_folder_options(parser, default_out)
    return parser


def recipe(args, model: str) -> dict:
    """``model``'s training recipe: ``RECIPES[model]``, with the values given on the command line instead."""
    for key in MODEL_ARGUMENTS:
        if hasattr(args, key) and key not in RECIPES[model]:
            having = [name for name, settings in RECIPES.items() if key in settings]
            raise ValueError(f"--{key}: {model} has no {key} setting; it applies to {', '.join(having)}")
    return {key: getattr(args, key, default) for key, default in RECIPES[model].items()}


def check_segmentation_args(parser: argparse.ArgumentParser, args, models) -> None:
    """Refuse at parse time what would fail later: a size one of ``models`` cannot take, --ignore-border
    with a target that learns the border."""
    check_size_for_bundled_sample(parser, args)
    if args.ignore_border and args.target != "pet":
        parser.error(f"argument --ignore-border: applies to --target pet only (three_class learns the border as a "
                     f"class), got --target {args.target}")
    for name in models:
        try:
            recipe(args, name)
        except ValueError as error:
            parser.error(f"argument {error}")
        try:
            build_segmenter(name, in_channels=3, num_classes=2, base_channels=args.base_channels).output_size(args.size)
        except ValueError as error:
            parser.error(f"argument --size: {error}")


def mask_target(args) -> str:
    """The ``OxfordPets`` target of the run: "pet", "pet_ignore_border" or "three_class"."""
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


def train_segmenter(name: str, train: ArrayDataset, val: ArrayDataset, args, run_dir: Path, title: str):
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
    minidl.manual_seed(args.seed)
    architecture = {key: settings[key] for key in MODEL_ARGUMENTS if key in settings}
    model = build_segmenter(name, in_channels=3, num_classes=len(class_names(args)), base_channels=args.base_channels,
                            **architecture)
    optimizer = optim.Adam(model.parameters(), lr=settings["lr"])
    schedule = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings["epochs"])
    flip = RandomHorizontalFlip(seed=args.seed + 1)
    train_loader = DataLoader(train, batch_size=settings["batch_size"], shuffle=True, seed=args.seed, transform=flip)
    val_loader = DataLoader(val, batch_size=EVAL_BATCH_SIZE) if len(val) else None
    history = fit(model, optimizer, segmentation_loss, train_loader, settings["epochs"], val_loader=val_loader,
                  metrics={"pixel_accuracy": pixel_accuracy}, scheduler=schedule, run_dir=run_dir,
                  resume=args.resume, overwrite=args.overwrite,
                  settings={**training_settings(args, "models"), **settings, "model": name}, curves_title=title,
                  verbose=0 if args.no_progress else 1, val_every=args.val_every)
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
