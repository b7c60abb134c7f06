"""Saliency on cats and dogs: which pixels does a cat-vs-dog classifier look at?

    python examples/saliency_cats_dogs.py                            # bundled 64x64 sample of Oxford-IIIT Pet
    python examples/saliency_cats_dogs.py --data-root ../shared/data/oxford-pets --size 96   # from the photos

Trains the CAM-able classifier (models/classifier.py) on the species in the file name (capital
initial = cat, lowercase = dog), then, for test photos, draws side by side: the photo (titled
with the predicted species and confidence, green >= 90 %, red below), the saliency map
max_c |d y / d x_c| (Simonyan et al.), SmoothGrad (the gradient averaged over noisy copies) and
Grad-CAM on the last conv block.

Are the maps any good? Deletion (pixels replaced by 0, most important first: the cat
probability should fall fast, low AUC is good) and insertion (pixels pasted onto a blurred copy:
it should rise fast, high AUC is good) against a random map; and the model-randomisation sanity
check (Adebayo et al.): maps of a model whose layers are re-initialised should no longer
resemble the trained model's.

The --out folder receives saliency.png, perturbation_curves.png, sanity_check.png, curves.png,
checkpoint.npz and metrics.json (test accuracy, AUCs per method, correlations after randomisation).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import minidl  # noqa: E402
import minidl.functional as F  # noqa: E402
from minidl import optim  # noqa: E402
from minidl.data import DataLoader, OxfordPets, RandomHorizontalFlip  # noqa: E402
from minidl.explain import (deletion_curve, grad_cam, insertion_curve, model_randomization,  # noqa: E402
                            reduce_channels, saliency, smooth_grad)
from minidl.explain.gradients import logits_of  # noqa: E402
from minidl.io import save_json, settings_for_json  # noqa: E402
from minidl.metrics import accuracy  # noqa: E402
from minidl.train import METRICS_NAME, evaluate, fit  # noqa: E402
from minidl.viz.explanations import plot_attribution_table, plot_perturbation_curves, plot_randomization  # noqa: E402
from models.classifier import CAMClassifier  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train a cat-vs-dog CNN on Oxford-IIIT Pet photos and compare saliency, SmoothGrad, Grad-CAM.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=None,
                        help="folder with the official images/ and annotations/; default: the 64x64 sample "
                             "bundled with minidl")
    parser.add_argument("--size", type=int, default=64, help="image height and width (64 for the bundled sample)")
    parser.add_argument("--epochs", type=int, default=15, help="training epochs")
    parser.add_argument("--batch-size", type=int, default=32, help="training mini-batch size")
    parser.add_argument("--lr", type=float, default=2e-3,
                        help="initial learning rate of Adam, annealed to 0 by a cosine schedule")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation, shuffling, flips, noise")
    parser.add_argument("--show", type=int, default=6, help="test photos in saliency.png (half cats, half dogs)")
    parser.add_argument("--evaluate", type=int, default=48, help="test photos for deletion/insertion curves")
    parser.add_argument("--steps", type=int, default=32, help="points on the deletion/insertion curves")
    parser.add_argument("--smoothgrad-samples", type=int, default=25, help="noisy copies per SmoothGrad map")
    parser.add_argument("--noise", type=float, default=0.15, help="SmoothGrad sigma as a fraction of the image range")
    parser.add_argument("--out", type=Path, default=Path("runs/saliency_cats_dogs"), help="run folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    return parser.parse_args(argv)


def explanation_methods(model, args) -> dict:
    """name -> function(images, target) -> maps (N, H, W); the random map is the baseline to beat."""
    rng = np.random.default_rng(args.seed)
    return {
        "saliency": lambda x, t: saliency(model, x, t),
        "SmoothGrad": lambda x, t: reduce_channels(
            smooth_grad(model, x, t, n_samples=args.smoothgrad_samples, noise_level=args.noise, seed=args.seed)),
        "Grad-CAM": lambda x, t: grad_cam(model.features, model.head, x, t),
        "random": lambda x, t: rng.random((len(x), *x.shape[2:])).astype(x.dtype),
    }


def shown_photos(test_set, count: int) -> np.ndarray:
    """Indices of the first count // 2 cats and the first count - count // 2 dogs of the test split."""
    cats, dogs = np.flatnonzero(test_set.targets == 0), np.flatnonzero(test_set.targets == 1)
    return np.concatenate([cats[:count // 2], dogs[:count - count // 2]])


def main(argv=None) -> dict:
    args = parse_args(argv)
    progress = not args.no_progress
    minidl.manual_seed(args.seed)
    train_set = OxfordPets(args.data_root, "trainval", size=args.size, target="species")
    test_set = OxfordPets(args.data_root, "test", size=args.size, target="species")
    print(f"data: {len(train_set)} train / {len(test_set)} test photos ({np.mean(test_set.targets == 0):.0%} cats "
          f"in test) from {test_set.source}")
    train_loader = DataLoader(train_set, args.batch_size, shuffle=True, seed=args.seed,
                              transform=RandomHorizontalFlip(seed=args.seed + 1))
    test_loader = DataLoader(test_set, batch_size=100)

    model = CAMClassifier(in_channels=3, num_classes=2, widths=(16, 32, 64, 128))
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    parameters = sum(p.data.size for p in model.parameters())
    print(f"model: CAMClassifier with {parameters:,} parameters; {args.epochs} epochs")
    metrics = {"accuracy": accuracy}
    history = fit(model, optimizer, F.cross_entropy, train_loader, args.epochs, metrics=metrics,
                  scheduler=scheduler, run_dir=args.out, verbose=1 if progress else 2)
    test = evaluate(model, test_loader, F.cross_entropy, metrics, progress=progress, description="test")
    majority = max(np.mean(test_set.targets == 0), np.mean(test_set.targets == 1))
    print(f"test accuracy {test['accuracy']:.2%} (loss {test['loss']:.4f}; always guessing the majority "
          f"species gives {majority:.2%})")

    model.eval()
    started = time.perf_counter()
    methods = explanation_methods(model, args)

    chosen = shown_photos(test_set, args.show)
    shown, truth = test_set.images[chosen], test_set.targets[chosen]
    probabilities = F.softmax(minidl.Tensor(logits_of(model, shown)), dim=1).data
    predicted = probabilities.argmax(axis=1)
    columns = {name: method(shown, predicted) for name, method in methods.items() if name != "random"}
    labels = [test_set.classes[p] if p == t else f"{test_set.classes[p]} (is {test_set.classes[t]})"
              for p, t in zip(predicted, truth)]
    plot_attribution_table(shown, columns, labels,
                           probabilities[np.arange(len(shown)), predicted], args.out / "saliency.png",
                           overlaid={"Grad-CAM"}, title="Where does the cat-vs-dog classifier look?")

    evaluated = test_set.images[:args.evaluate]
    target = logits_of(model, evaluated).argmax(axis=1)
    curves = {"deletion": {}, "insertion": {}}
    for name, method in tqdm(methods.items(), desc="deletion/insertion", disable=not progress):
        maps = method(evaluated, target)
        curves["deletion"][name] = deletion_curve(model, evaluated, maps, target, steps=args.steps)
        curves["insertion"][name] = insertion_curve(model, evaluated, maps, target, steps=args.steps)
    plot_perturbation_curves(curves, args.out / "perturbation_curves.png",
                             title=f"p(predicted species) as pixels move ({len(evaluated)} test photos)")

    sanity_images = test_set.images[:8]
    sanity = {name: model_randomization(model, lambda _, x, t, method=methods[name]: method(x, t), sanity_images,
                                        seed=args.seed)
              for name in ("saliency", "Grad-CAM")}
    for name, result in sanity.items():
        plot_randomization(result, sanity_images[0], args.out / f"sanity_check_{name.lower()}.png",
                           title=f"model randomisation: {name}")

    summary = {
        "status": "ok",
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "majority_class_accuracy": majority,
        "deletion_auc": {name: float(curve.auc.mean()) for name, curve in curves["deletion"].items()},
        "insertion_auc": {name: float(curve.auc.mean()) for name, curve in curves["insertion"].items()},
        "randomization_spearman": {name: dict(zip(result.layers, result.correlations.mean(axis=1).tolist()))
                                   for name, result in sanity.items()},
        "epochs": len(history),
        "train_seconds": sum(history["seconds"]),
        "explain_seconds": time.perf_counter() - started,
        "parameters": parameters,
        "data": {"source": test_set.source, "train": len(train_set), "test": len(test_set)},
        "settings": settings_for_json(args),
        "history": history.to_dict(),
    }
    save_json(args.out / METRICS_NAME, summary)
    for kind in ("deletion", "insertion"):
        aucs = "  ".join(f"{name} {auc:.3f}" for name, auc in summary[f"{kind}_auc"].items())
        print(f"{kind} AUC ({'lower' if kind == 'deletion' else 'higher'} is better): {aucs}")
    for name, rows in summary["randomization_spearman"].items():
        print(f"{name}: Spearman correlation with the trained model's maps after randomising all layers "
              f"{list(rows.values())[-1]:.3f}")
    for path in ("saliency.png", "perturbation_curves.png", *(f"sanity_check_{n.lower()}.png" for n in sanity),
                 METRICS_NAME, "curves.png", "checkpoint.npz"):
        print(f"wrote {args.out / path}")
    return summary


if __name__ == "__main__":
    main()
