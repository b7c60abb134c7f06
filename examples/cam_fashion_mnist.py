"""Class activation maps on Fashion-MNIST: which pixels made the network say "sneaker"?

    python examples/cam_fashion_mnist.py                          # the subset bundled with minidl
    python examples/cam_fashion_mnist.py --data-root ../shared/data/fashion-mnist   # full data set
    python examples/cam_fashion_mnist.py --class "Ankle boot"     # per-class grid of another class
    python examples/cam_fashion_mnist.py --class-by predicted     # the grid of images *predicted* as sneakers

Trains the CAM-able classifier (models/classifier.py: 3x3 convs -> global average pooling -> one
linear layer), prints its test accuracy and draws test images with their class activation map
CAM_c = sum_k w_ck A_k overlaid (red = high, blue = low). Each title gives the predicted class and
its softmax confidence, GREEN when the confidence is at least 90 %, RED below.

Splits: ``--val-fraction`` of each class's training images (evenly spaced in file order, the same
in every run) is held out for validation, evaluated every ``--val-every`` epochs; the default recipe
(epochs, learning rate, batch size) was chosen on it. The test split is evaluated once, after training.

``--style seed`` draws the figure of the DeepLearning.AI course "Advanced Computer Vision with
TensorFlow" instead: the CAM itself in green shades (confidence >= 90 %) or red shades over the
image, the darker the pixel the larger the CAM ("the more the model likes it"); ``--style both``
(the default) writes both. The course picks its per-class grid by the *predicted* class, so a boot
the model takes for a sneaker appears among the sneakers: ``--class-by predicted``.

The --out folder receives cam_grid.png (the first test images), cam_class_<name>.png (test images
of one class), each with a ``_seed`` twin in the course's style, curves.png, checkpoint.npz and
metrics.json (test accuracy and the largest violation of the CAM identity
mean_ij CAM_c[i, j] + b_c = logit_c, a float32 rounding error).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import numpy as np
from common import (add_run_folder_options, fraction, hold_run_folders, positive_float, positive_int, seed,
                    training_settings)

import minidl  # noqa: E402
import minidl.functional as F  # noqa: E402
from minidl import optim  # noqa: E402
from minidl.data import ArrayDataset, DataLoader, FashionMNIST, RandomHorizontalFlip, stratified_split  # noqa: E402
from minidl.explain import class_activation_map  # noqa: E402
from minidl.explain.gradients import logits_of  # noqa: E402
from minidl.io import save_json, settings_for_json  # noqa: E402
from minidl.metrics import accuracy  # noqa: E402
from minidl.train import METRICS_NAME, evaluate, fit  # noqa: E402
from minidl.viz.explanations import CAM_STYLES, plot_cam_grid  # noqa: E402
from models.classifier import CAMClassifier  # noqa: E402

CONFIDENCE_THRESHOLD = 0.9


def class_index(name: str) -> int:
    """An argparse ``type``: a Fashion-MNIST class by name (any case) or index."""
    classes = FashionMNIST.classes
    if name.isdigit() and int(name) < len(classes):
        return int(name)
    lowered = [c.lower() for c in classes]
    if name.lower() not in lowered:
        raise argparse.ArgumentTypeError(f"must be one of {classes} or 0..{len(classes) - 1}, got {name!r}")
    return lowered.index(name.lower())


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train a CAM-able CNN on Fashion-MNIST and draw class activation maps.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=None,
                        help="folder with the official IDX files; default: the subset bundled with minidl")
    parser.add_argument("--epochs", type=positive_int, default=20,
                        help="training epochs (20 beat 10 on the full data's validation split and take about 9 "
                             "minutes there on 2 cores, README 'Training recipes')")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="training mini-batch size")
    parser.add_argument("--lr", type=positive_float, default=4e-3,
                        help="initial learning rate of Adam, annealed to 0 by a cosine schedule (4e-3 beat 2e-3 "
                             "on the validation split, README 'Training recipes')")
    parser.add_argument("--seed", type=seed, default=0, help="seed of initialisation, shuffling and flips")
    parser.add_argument("--val-fraction", type=fraction, default=0.1,
                        help="share of each class's training images held out for validation (0: none)")
    parser.add_argument("--val-every", type=positive_int, default=2,
                        help="evaluate the validation split every N epochs (and after the last)")
    parser.add_argument("--grid", type=positive_int, default=24, help="number of test images in cam_grid.png")
    parser.add_argument("--class", dest="class_index", type=class_index, default="Sneaker",
                        help=f"class (name or index) of the per-class grid; one of {FashionMNIST.classes}")
    parser.add_argument("--class-by", choices=("true", "predicted"), default="true",
                        help="the per-class grid shows test images of that true class, or those predicted as it "
                             "(the course's choice)")
    parser.add_argument("--style", choices=(*CAM_STYLES, "both"), default="both",
                        help="jet: the CAM in jet over the image; seed: the course's green/red shades, darker = "
                             "larger CAM; both: one file of each (the seed one ends in _seed.png)")
    add_run_folder_options(parser, "runs/cam_fashion_mnist")
    return parser.parse_args(argv)


def predictions(model, images) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits, predicted classes and their softmax confidences."""
    logits = logits_of(model, images)
    probabilities = F.softmax(minidl.Tensor(logits), dim=1).data
    predicted = probabilities.argmax(axis=1)
    return logits, predicted, probabilities[np.arange(len(images)), predicted]


def cam_figure(model, images, path: Path, title: str, styles) -> float:
    """Draw images with the CAM of their predicted class, one file per style (``<path>_seed.png`` for the
    course's); return the worst CAM identity error."""
    logits, predicted, confidence = predictions(model, images)
    maps = class_activation_map(model.features, model.linear, images, target=predicted)
    labels = [FashionMNIST.classes[c] for c in predicted]
    for style in styles:
        styled = path if style == "jet" else path.with_name(f"{path.stem}_{style}{path.suffix}")
        plot_cam_grid(images, maps, labels, confidence, styled, threshold=CONFIDENCE_THRESHOLD, style=style,
                      title=title if style == "jet" else f"{title}\ncourse style: darker = larger CAM")
    bias = model.linear.bias.data
    worst = 0.0
    for c in range(logits.shape[1]):  # the identity for every class, not only the predicted one
        raw = class_activation_map(model.features, model.linear, images, target=c, upsample=False)
        worst = max(worst, float(np.abs(raw.mean(axis=(1, 2)) + bias[c] - logits[:, c]).max()))
    return worst


def main(argv=None) -> dict:
    args = parse_args(argv)
    with contextlib.ExitStack() as run:
        hold_run_folders(run, args)
        return train_and_draw(args)


def train_and_draw(args) -> dict:
    chosen = args.class_index
    minidl.manual_seed(args.seed)
    official_train = FashionMNIST(args.data_root, train=True)
    test_set = FashionMNIST(args.data_root, train=False)
    train_indices, val_indices = stratified_split(official_train.targets, args.val_fraction)
    train_set, val_set = (ArrayDataset(official_train.images[i], official_train.targets[i])
                          for i in (train_indices, val_indices))
    print(f"data: {len(train_set)} train / {len(val_set)} validation / {len(test_set)} test images "
          f"from {test_set.source}")
    train_loader = DataLoader(train_set, args.batch_size, shuffle=True, seed=args.seed,
                              transform=RandomHorizontalFlip(seed=args.seed + 1))
    val_loader = DataLoader(val_set, batch_size=500) if len(val_set) else None
    test_loader = DataLoader(test_set, batch_size=500)

    model = CAMClassifier(in_channels=1, num_classes=len(FashionMNIST.classes))
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    parameters = sum(p.data.size for p in model.parameters())
    print(f"model: CAMClassifier with {parameters:,} parameters; {args.epochs} epochs")
    metrics = {"accuracy": accuracy}
    history = fit(model, optimizer, F.cross_entropy, train_loader, args.epochs, val_loader=val_loader,
                  metrics=metrics, scheduler=scheduler, run_dir=args.out, resume=args.resume,
                  settings=training_settings(args, "grid", "class_index", "class_by", "style"),
                  verbose=2 if args.no_progress else 1, val_every=args.val_every)
    test = evaluate(model, test_loader, F.cross_entropy, metrics, progress=not args.no_progress, description="test")
    print(f"test accuracy {test['accuracy']:.2%} (loss {test['loss']:.4f})")

    model.eval()
    started = time.perf_counter()
    styles = CAM_STYLES if args.style == "both" else (args.style,)
    grid_error = cam_figure(model, test_set.images[:args.grid], args.out / "cam_grid.png",
                            f"CAM of the predicted class (green: confidence >= {CONFIDENCE_THRESHOLD:.0%}, red: below)",
                            styles)
    name = FashionMNIST.classes[chosen]
    if args.class_by == "true":
        of_class, picked = test_set.targets == chosen, f"test images of class {name}"
    else:
        predicted = np.concatenate([predictions(model, test_set.images[i:i + 500])[1]
                                    for i in range(0, len(test_set), 500)])
        of_class, picked = predicted == chosen, f"test images predicted {name}"
    class_path = args.out / f"cam_class_{name.replace('/', '_').replace(' ', '_').lower()}.png"
    class_images = test_set.images[of_class][:args.grid]
    if len(class_images):
        class_error = cam_figure(model, class_images, class_path, f"{picked}: CAM of the predicted class", styles)
    else:
        class_error = 0.0
        print(f"no {picked.replace('test images', 'test image')}: no per-class grid")
    summary = {
        "status": "ok",
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "cam_identity_max_abs_error": max(grid_error, class_error),
        "val_accuracy": history["val_accuracy"][-1] if val_loader else None,
        "recipe": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "optimizer": "Adam",
                   "schedule": "cosine decay of lr to 0 over the epochs",
                   "augmentation": "random left-right flip (p=0.5) of training batches",
                   "val_split": f"{args.val_fraction} of each class's training images, evenly spaced "
                                "(stratified_split)", "val_every": args.val_every},
        "class_grid_images": len(class_images),
        "epochs": len(history),
        "train_seconds": sum(history["seconds"]),
        "seconds_per_epoch_median": float(np.median(history["seconds"])),
        "cam_seconds": time.perf_counter() - started,
        "parameters": parameters,
        "data": {"source": test_set.source, "train": len(train_set), "val": len(val_set), "test": len(test_set)},
        "settings": settings_for_json(args),
        "history": history.to_dict(),
    }
    save_json(args.out / METRICS_NAME, summary)
    print(f"CAM identity mean(CAM_c) + b_c = logit_c holds to {summary['cam_identity_max_abs_error']:.2e}")
    figures = [path.name if style == "jet" else f"{path.stem}_{style}.png"
               for path in (args.out / "cam_grid.png", class_path)[:1 + bool(len(class_images))] for style in styles]
    for path in (*figures, METRICS_NAME, "curves.png", "checkpoint.npz"):
        print(f"wrote {args.out / path}")
    return summary


if __name__ == "__main__":
    main()
