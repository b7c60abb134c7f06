"""Train UNet, SegNet, FCN-32s, FCN-16s and FCN-8s on the same pets and seed, each with its recipe, and compare them.

    python examples/compare_segmenters.py                  # bundled 64x64 sample
    python examples/compare_segmenters.py --epochs 20 --models unet fcn8s

Each model trains exactly as ``segment_pets.py`` trains one (same data and validation split, loss,
optimiser, seed, and the model's recipe from ``common.RECIPES`` unless flags override it) in its
own sub-folder of ``--out``; the test split is evaluated once per model, after its training. Then the
comparison is written to ``--out``: ``comparison.md`` (a table
of parameters, GFLOP per image, seconds per epoch, test pixel accuracy, mean IoU and pet Dice),
``comparison.json`` (the same numbers) and ``predictions.png`` (every model's mask for the same test
images, with the per-image pet IoU under each).
"""

from __future__ import annotations

import contextlib

import numpy as np

from common import (EVAL_BATCH_SIZE, check_segmentation_args, class_names, hold_run_folders, load_splits,
                    pet_iou_captions, predict, recipe, recipe_record, segmentation_options, segmentation_scores,
                    shown_indices, train_segmenter)

from minidl.io import atomic_write, save_json
from minidl.viz.segmentation import plot_segmentations
from models import SEGMENTERS

SHOWN_TEST_IMAGES = 5
COLUMNS = ("model", "parameters", "GFLOP/image", "s/epoch", "pixel acc", "mean IoU", "pet Dice")


def markdown_table(rows: list[dict], baseline: dict, setup: str) -> str:
    """The comparison as a markdown table, one row per model plus the all-background baseline."""
    lines = [f"# Segmenters on Oxford-IIIT Pet ({setup})", "", "| " + " | ".join(COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append(f"| {row['model']} | {row['parameters']:,} | {row['gflop_per_image']:.3f} | "
                     f"{row['seconds_per_epoch']:.1f} | {row['test_pixel_accuracy']:.3f} | "
                     f"{row['test_mean_iou']:.3f} | {row['test_dice']:.3f} |")
    lines.append(f"| all background (baseline) | 0 | 0 | - | {baseline['pixel_accuracy']:.3f} | "
                 f"{baseline['mean_iou']:.3f} | {baseline['dice']:.3f} |")
    lines += ["", "GFLOP/image: floating-point operations (2 per multiply-add) of the convolutions in one forward "
              "pass. s/epoch: median wall time of an epoch (training, and the validation split every few epochs). "
              "Pet Dice: "
              "2 |pred AND true| / (|pred| + |true|) over the pet pixels of all test images."]
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = segmentation_options(__doc__, default_out="runs/compare_segmenters")
    parser.add_argument("--models", nargs="+", choices=list(SEGMENTERS), default=list(SEGMENTERS),
                        help="networks to train, in this order")
    args = parser.parse_args(argv)
    check_segmentation_args(parser, args, args.models)
    return args


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    chosen, out = args.models, args.out
    with contextlib.ExitStack() as run:
        # the comparison's own folder, then one run folder per model, all checked before anything trains
        hold_run_folders(run, args, out, resume=False)
        hold_run_folders(run, args, *(out / name for name in chosen))
        train, val, test = load_splits(args)
        classes = class_names(args)
        print(f"comparing {', '.join(chosen)}: {len(train)} train, {len(val)} validation and {len(test)} test "
              f"images at {args.size}x{args.size}, each with its recipe -> {out}")

        rows, predictions = [], {}
        for name in chosen:
            print(f"--- {name}")
            model, history = train_segmenter(name, train, val, args, out / name,
                                             title=f"{name} on Oxford-IIIT Pet (val: {len(val)} held-out images)")
            predictions[name] = predict(model, test.images, EVAL_BATCH_SIZE)
            scores = segmentation_scores(predictions[name], test.targets, len(classes))
            rows.append({"model": name, "parameters": int(sum(p.size for p in model.parameters())),
                         "gflop_per_image": model.conv_flops(args.size, args.size) / 1e9,
                         "seconds_per_epoch": float(np.median(history["seconds"])),
                         "recipe": recipe_record(args, name, train, val),
                         **{f"test_{key}": value for key, value in scores.items()}})
        baseline = segmentation_scores(np.zeros_like(test.targets), test.targets, len(classes))

        recipes = "; ".join(f"{name} {settings['epochs']} epochs, batch {settings['batch_size']}, lr {settings['lr']}"
                            for name, settings in ((name, recipe(args, name)) for name in chosen))
        setup = (f"{len(train)} train / {len(val)} validation / {len(test)} test images at {args.size}x{args.size}, "
                 f"Adam with cosine decay: {recipes}; base channels {args.base_channels}, seed {args.seed}")
        table = markdown_table(rows, baseline, setup)
        atomic_write(out / "comparison.md", lambda file: file.write(table.encode("utf-8")))
        save_json(out / "comparison.json", {"setup": setup, "models": rows, "baseline_all_background": baseline})
        shown = shown_indices(SHOWN_TEST_IMAGES, len(test))
        plot_segmentations(test.images[shown], {"true mask": test.targets[shown],
                                                **{name: masks[shown] for name, masks in predictions.items()}},
                           out / "predictions.png", class_names=classes,
                           captions={name: pet_iou_captions(masks[shown], test.targets[shown], len(classes))
                                     for name, masks in predictions.items()},
                           title="Test images, every model after its training")
    print(table)
    for name in ("comparison.md", "comparison.json", "predictions.png"):
        print(f"wrote {out / name}")
    return rows


if __name__ == "__main__":
    main()
