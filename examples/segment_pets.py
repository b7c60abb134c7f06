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
validation split; the network trains on the rest. The validation split is evaluated every
``--val-every`` epochs (the curves) and at the end; each network's default recipe
(``common.RECIPES``: epochs, learning rate, batch size, dropout, SegNet's depth) was chosen on it.
The test split is evaluated once, after training, for the reported numbers.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np

from common import (EVAL_BATCH_SIZE, check_segmentation_args, class_names, hold_run_folders, load_splits,
                    mask_target, pet_iou_captions, predict, recipe, recipe_record, segmentation_options,
                    segmentation_scores, shown_indices, train_segmenter)

from minidl.train import CHECKPOINT_NAME, CURVES_NAME, METRICS_NAME, record_results
from minidl.viz.segmentation import plot_segmentations
from models import SEGMENTERS

SHOWN_TEST_IMAGES = 6
TARGET_DESCRIPTIONS = {
    "pet": "pet = trimap 1 or 3, background = trimap 2",
    "pet_ignore_border": "pet = trimap 1, background = trimap 2, border (trimap 3) ignored",
    "three_class": "background = trimap 2, pet = trimap 1, border = trimap 3 (the course's three classes)",
}


def parse_args(argv=None):
    parser = segmentation_options(__doc__, default_out="runs/segment_pets")
    parser.add_argument("--model", choices=list(SEGMENTERS), default="unet", help="which network")
    args = parser.parse_args(argv)
    check_segmentation_args(parser, args, [args.model])
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    out = args.out
    with contextlib.ExitStack() as run:
        hold_run_folders(run, args)
        train, val, test = load_splits(args)
        settings = recipe(args, args.model)
        print(f"{args.model}: {len(train)} train, {len(val)} validation and {len(test)} test images at "
              f"{args.size}x{args.size}; " + ", ".join(f"{key} {value}" for key, value in settings.items())
              + f" -> {out}")

        started = time.perf_counter()
        model, history = train_segmenter(args.model, train, val, args, out, title=f"{args.model} on Oxford-IIIT "
                                         f"Pet (val: {len(val)} held-out trainval images)")
        wall_seconds = time.perf_counter() - started
        classes = class_names(args)
        validation = (segmentation_scores(predict(model, val.images, EVAL_BATCH_SIZE), val.targets, len(classes))
                      if len(val) else None)
        predictions = predict(model, test.images, EVAL_BATCH_SIZE)  # the one look at the test split
        scores = segmentation_scores(predictions, test.targets, len(classes))
        baseline = segmentation_scores(np.zeros_like(predictions), test.targets, len(classes))

        shown = shown_indices(SHOWN_TEST_IMAGES, len(test))
        plot_segmentations(test.images[shown], {"true mask": test.targets[shown],
                                                "predicted mask": predictions[shown]},
                           out / "predictions.png", overlay="predicted mask", class_names=classes,
                           captions={"predicted mask": pet_iou_captions(predictions[shown], test.targets[shown],
                                                                        len(classes))},
                           title=f"{args.model}, test images: mean IoU {scores['mean_iou']:.3f}")
        seconds_per_epoch = float(np.median(history["seconds"]))
        report = record_results(out, {
            "model": args.model, "epochs": len(history),
            "parameters": int(sum(p.size for p in model.parameters())),
            "train_seconds": float(sum(history["seconds"])), "seconds_per_epoch_median": seconds_per_epoch,
            "wall_seconds_this_run": wall_seconds,
            "images": {"train": len(train), "val": len(val), "test": len(test), "size": args.size},
            "target": TARGET_DESCRIPTIONS[mask_target(args)], "classes": classes,
            "recipe": recipe_record(args, args.model, train, val),
            **({f"val_{name}": value for name, value in validation.items()} if validation else {}),
            **{f"test_{name}": value for name, value in scores.items()},
            "test_iou_by_class": dict(zip(classes, scores["iou_per_class"])),
            "baseline_all_background": baseline,
            "history_note": "val_* columns: the validation split (held out of trainval), every val_every epochs "
                            "(null in between); the test split was evaluated once, after training",
        })
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
