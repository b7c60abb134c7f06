"""Train a small Mask R-CNN on synthetic shapes and report COCO-style box and mask AP.

    python examples/mask_rcnn_shapes.py                      # 600 steps of batch 8, a few minutes on 2 cores
    python examples/mask_rcnn_shapes.py --steps 50 --val-images 20 --out runs/quick

Data: 64x64 images with 1-4 squares, circles and triangles (``minidl.detection.shapes``); a fresh
training image for every slot of every batch (seeded), and the fixed validation set of 200 images.
Training: Adam with a linear warm-up and a cosine decay, all five loss terms summed with weight 1,
until ``--steps`` are done or ``--time-budget`` seconds have passed, whichever comes first (the
cosine follows the nearer of the two, so a run cut by the clock still ends at a small rate).

Evaluation on the validation images: box and mask AP at IoU 0.5, 0.75 and 0.5:0.95 (101-point COCO
interpolation), plus diagnostics: RPN recall at IoU 0.5 (proposals vs ground-truth boxes) and the
mean mask IoU when the mask head is given the ground-truth boxes and classes (mask quality
without detection errors).

Writes into ``--out``: ``metrics.json`` (the numbers above, train_seconds, wall and CPU seconds per
step, the per-step loss terms), ``losses.png`` (loss terms per step), ``predictions.png``
(validation images, ground truth above predictions) and ``checkpoint.npz``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time

import numpy as np
from common import add_run_folder_options, hold_run_folders, non_negative_int, positive_float, positive_int, seed
from tqdm.auto import tqdm

import minidl
from minidl import optim
from minidl.detection.evaluation import evaluate_detections, mask_iou, proposal_recall
from minidl.detection.shapes import CLASS_NAMES, VALIDATION_SIZE, ShapesDataset, validation_set
from minidl.io import save_checkpoint, save_json, settings_for_json
from minidl.viz.detection import plot_detections, plot_loss_terms
from models.mask_rcnn import MaskRCNN, MaskRCNNConfig

SHOWN_IMAGES = 6


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--steps", type=positive_int, default=600, help="training steps (batches)")
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--lr", type=positive_float, default=3e-3, help="peak Adam learning rate")
    parser.add_argument("--warmup", type=non_negative_int, default=50, help="steps of linear learning-rate warm-up")
    parser.add_argument("--time-budget", type=positive_float, default=600.0,
                        help="stop training after this many seconds even if steps remain (the learning-rate "
                             "decay follows whichever limit comes first)")
    parser.add_argument("--rois-per-image", type=positive_int, default=MaskRCNNConfig.roi_batch_per_image,
                        help="proposals sampled per image to train the box head")
    parser.add_argument("--val-images", type=positive_int, default=VALIDATION_SIZE,
                        help=f"evaluate on the first N validation images (at most {VALIDATION_SIZE}); "
                             f"predictions.png shows the first {SHOWN_IMAGES} of them")
    parser.add_argument("--seed", type=seed, default=0)
    add_run_folder_options(parser, "runs/mask_rcnn_shapes", resume=False)
    args = parser.parse_args(argv)
    if args.val_images > VALIDATION_SIZE:
        parser.error(f"argument --val-images: the validation set has {VALIDATION_SIZE} images, got {args.val_images}")
    return args


def learning_rate(step: int, peak: float, warmup: int, progress: float) -> float:
    """Linear warm-up from peak/10 over ``warmup`` steps, then cosine decay from peak to peak/100
    as ``progress`` (the fraction of the run done, 0..1) goes from 0 to 1."""
    if step < warmup:
        return peak * (0.1 + 0.9 * step / warmup)
    return peak * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def train(model, args) -> tuple:
    """Run the training steps; return (per-term loss lists, wall seconds, CPU seconds of this process).

    On a busy machine the wall time includes waiting for a core; the CPU time does not (it sums
    over this process's threads, so it estimates the wall time of a single-threaded run on an idle core).
    """
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    data = ShapesDataset(args.steps * args.batch_size, seed=args.seed + 1)
    losses: dict[str, list] = {}
    started, cpu_started = time.perf_counter(), time.process_time()
    bar = tqdm(range(args.steps), desc="train", unit="step", disable=args.no_progress, dynamic_ncols=True)
    for step in bar:
        # the run ends at --steps or at --time-budget, whichever comes first; the schedule follows suit
        progress = max(step / args.steps, (time.perf_counter() - started) / args.time_budget)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.lr, args.warmup, progress)
        images, samples = data.batch(range(step * args.batch_size, (step + 1) * args.batch_size))
        optimizer.zero_grad()
        terms = model(images, [s.target() for s in samples])
        total = sum(terms.values())
        if not math.isfinite(total.item()):
            raise FloatingPointError(f"loss became {total.item()} at step {step + 1}: {terms}")
        total.backward()
        optimizer.step()
        for name, value in terms.items():
            losses.setdefault(name, []).append(value.item())
        bar.set_postfix(loss=f"{total.item():.3f}", refresh=False)
        if (step + 1) % 50 == 0:
            recent = "  ".join(f"{name} {np.mean(values[-50:]):.4f}" for name, values in losses.items())
            tqdm.write(f"step {step + 1}: {recent}  ({time.perf_counter() - started:.0f} s)")
        if time.perf_counter() - started > args.time_budget:
            tqdm.write(f"time budget of {args.time_budget:.0f} s reached after {step + 1} steps")
            break
    bar.close()
    return losses, time.perf_counter() - started, time.process_time() - cpu_started


def evaluate(model, dataset, batch_size: int, progress: bool) -> tuple:
    """Predictions on every image of ``dataset`` and the metrics (AP and diagnostics)."""
    model.eval()
    predictions, proposals, gt_box_ious = [], [], []
    batches = range(0, len(dataset), batch_size)
    with minidl.no_grad():
        for start in tqdm(batches, desc="evaluate", unit="batch", disable=not progress, leave=False):
            images, samples = dataset.batch(range(start, min(start + batch_size, len(dataset))))
            features = model.features(images)
            *_, image_proposals = model.propose(features)
            predictions += model.detect(features, image_proposals)
            proposals += image_proposals
            on_gt_boxes = model.predict_masks(features, [s.boxes for s in samples], [s.labels for s in samples])
            gt_box_ious += [np.diag(mask_iou(p >= 0.5, s.masks)) for p, s in zip(on_gt_boxes, samples)]
    truths = [s.target() for s in dataset.samples]
    boxes = evaluate_detections(predictions, truths, len(CLASS_NAMES) - 1, kind="box")
    masks = evaluate_detections(predictions, truths, len(CLASS_NAMES) - 1, kind="mask")
    metrics = {"box_ap50": boxes["ap50"], "box_ap75": boxes["ap75"], "box_ap": boxes["ap"],
               "mask_ap50": masks["ap50"], "mask_ap75": masks["ap75"], "mask_ap": masks["ap"],
               "rpn_recall50": proposal_recall(proposals, [t["boxes"] for t in truths], 0.5),
               "mask_iou_on_gt_boxes": float(np.mean(np.concatenate(gt_box_ious))),
               "per_class": {CLASS_NAMES[c]: {"box": boxes["per_class"][c], "mask": masks["per_class"][c]}
                             for c in range(1, len(CLASS_NAMES))}}
    return predictions, metrics


def main(argv=None) -> dict:
    args = parse_args(argv)
    with contextlib.ExitStack() as run:
        hold_run_folders(run, args)
        metrics = train_and_evaluate(args)
    print(f"wrote metrics.json, losses.png, predictions.png, checkpoint.npz to {args.out}")
    return metrics


def train_and_evaluate(args) -> dict:
    out = args.out
    minidl.manual_seed(args.seed)
    model = MaskRCNN(MaskRCNNConfig(roi_batch_per_image=args.rois_per_image), generator=np.random.default_rng(args.seed))

    losses, seconds, cpu_seconds = train(model, args)
    steps = len(losses["mask"])
    print(f"trained {steps} steps in {seconds:.1f} s ({seconds / steps:.3f} s/step; CPU {cpu_seconds / steps:.3f} s/step)")
    validation = validation_set(args.val_images)
    started = time.perf_counter()
    predictions, metrics = evaluate(model, validation, args.batch_size, not args.no_progress)
    metrics = {"status": "ok", **metrics, "train_seconds": seconds, "train_cpu_seconds": cpu_seconds,
               "steps": steps, "batch_size": args.batch_size, "seconds_per_step": seconds / steps,
               "cpu_seconds_per_step": cpu_seconds / steps, "eval_seconds": time.perf_counter() - started,
               "val_images": validation.n, "settings": settings_for_json(args), "losses": losses}

    save_json(out / "metrics.json", metrics)
    save_checkpoint(out / "checkpoint.npz", model, epoch=steps)
    plot_loss_terms(losses, out / "losses.png", title=f"Mask R-CNN on shapes: loss terms ({steps} steps)")
    shown = range(min(SHOWN_IMAGES, validation.n))
    plot_detections(np.stack([validation[i].image for i in shown]), [predictions[i] for i in shown],
                    [validation[i].target() for i in shown], out / "predictions.png", class_names=CLASS_NAMES,
                    title=f"validation: box AP50 {metrics['box_ap50']:.3f}, mask AP50 {metrics['mask_ap50']:.3f}")
    print("  ".join(f"{name} {metrics[name]:.3f}" for name in
                    ("box_ap50", "box_ap", "mask_ap50", "mask_ap75", "mask_ap", "rpn_recall50", "mask_iou_on_gt_boxes")))
    return metrics


if __name__ == "__main__":
    main()
