"""Saliency on cats and dogs: which pixels does a cat-vs-dog classifier look at?

    python examples/saliency_cats_dogs.py                            # bundled 64x64 sample of Oxford-IIIT Pet
    python examples/saliency_cats_dogs.py --data-root ../shared/data/oxford-pets --size 96   # from the photos

Trains the CAM-able classifier (models/classifier.py) on the species in the file name (capital
initial = cat, lowercase = dog), then, for test photos, draws side by side: the photo (titled
with the predicted species and confidence, green >= 90 %, red below), the saliency map
max_c |d y / d x_c| (Simonyan et al.), SmoothGrad (the gradient averaged over noisy copies) and
Grad-CAM on the last conv block.

saliency_course.png shows the saliency of the DeepLearning.AI course "Advanced Computer Vision with
TensorFlow" beside ours, both over the photo: the course differentiates the cross-entropy of the
*true* class, sums |.| over the colour channels, min-max scales to 0..255 and blends a HOT colour
map 50/50 with the photo; ours differentiates the predicted class's logit and takes max |.|.

Are the maps any good? Eight explanations (saliency, the course's saliency, SmoothGrad,
gradient x input, Integrated Gradients, Grad-CAM, CAM, occlusion) and a random map are scored
three ways. Against the pet masks (the trimaps' pet and border): the energy-based pointing game
(share of the map's positive mass on the pet) and the hit rate (is its maximum on the pet),
against a uniform map, which scores the pet's area share. Deletion (pixels replaced by 0, most
important first: the probability should fall fast, low AUC is good) and insertion (pixels pasted
onto a blurred copy: it should rise fast, high AUC is good). And the model-randomisation sanity
check (Adebayo et al.): maps of a model whose layers are re-initialised should no longer resemble
the trained model's.

The --out folder receives saliency.png, saliency_course.png, perturbation_curves.png,
sanity_check_*.png, curves.png, checkpoint.npz and metrics.json (test accuracy, pointing game and
AUCs per method, correlations after randomisation).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import numpy as np
from common import (add_run_folder_options, check_size_for_bundled_sample, hold_run_folders, non_negative_float,
                    positive_float, positive_int, seed, training_settings)
from tqdm import tqdm

import minidl
import minidl.functional as F
from minidl import optim
from minidl.data import DataLoader, OxfordPets, RandomHorizontalFlip
from minidl.explain import (class_activation_map, cross_entropy_saliency, deletion_curve, grad_cam,
                            gradient_x_input, insertion_curve, integrated_gradients, model_randomization, normalize,
                            occlusion, pointing_game, reduce_channels, saliency, smooth_grad)
from minidl.explain.gradients import logits_of
from minidl.io import save_json, settings_for_json
from minidl.metrics import accuracy
from minidl.train import METRICS_NAME, evaluate, fit
from minidl.viz.explanations import plot_attribution_table, plot_perturbation_curves, plot_randomization
from models.classifier import CAMClassifier

WIDTHS = (16, 32, 64, 128)  # channels of the classifier's conv blocks, a 2x2 max-pool between two
SANITY_IMAGES = 8
# flags that change only the explanations, not the trained model (they may change on --resume)
EXPLANATION_FLAGS = ("show", "evaluate", "steps", "smoothgrad_samples", "noise")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train a cat-vs-dog CNN on Oxford-IIIT Pet photos and compare saliency, SmoothGrad, Grad-CAM.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=None,
                        help="folder with the official images/ and annotations/; default: the 64x64 sample "
                             "bundled with minidl")
    parser.add_argument("--size", type=positive_int, default=64,
                        help="image height and width (64 for the bundled sample)")
    parser.add_argument("--epochs", type=positive_int, default=15, help="training epochs")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="training mini-batch size")
    parser.add_argument("--lr", type=positive_float, default=2e-3,
                        help="initial learning rate of Adam, annealed to 0 by a cosine schedule")
    parser.add_argument("--seed", type=seed, default=0, help="seed of initialisation, shuffling, flips, noise")
    parser.add_argument("--show", type=positive_int, default=6,
                        help="test photos in saliency.png (half cats, half dogs)")
    parser.add_argument("--evaluate", type=positive_int, default=48,
                        help="test photos (spread evenly over the test split) for the pointing game and the "
                             "deletion/insertion curves")
    parser.add_argument("--steps", type=positive_int, default=32, help="points on the deletion/insertion curves")
    parser.add_argument("--smoothgrad-samples", type=positive_int, default=25, help="noisy copies per SmoothGrad map")
    parser.add_argument("--noise", type=non_negative_float, default=0.15,
                        help="SmoothGrad sigma as a fraction of the image range")
    add_run_folder_options(parser, "runs/saliency_cats_dogs")
    args = parser.parse_args(argv)
    check_size_for_bundled_sample(parser, args)
    smallest = 2 ** (len(WIDTHS) - 1)
    if args.size < smallest:
        parser.error(f"argument --size: the classifier halves the image {len(WIDTHS) - 1} times, so it needs "
                     f"at least {smallest} pixels, got {args.size}")
    return args


def course_saliency(model, images, truth) -> np.ndarray:
    """The course's saliency map: sum_c |d CE(true class) / d x_c|, min-max scaled to 0..255, uint8."""
    return (255 * normalize(cross_entropy_saliency(model, images, truth))).astype(np.uint8)


def explanation_methods(model, args) -> dict:
    """name -> function(images, predicted class, true class) -> maps (N, H, W), positive = for the class.

    Every method explains the predicted class but the course's saliency, which explains the true one
    as the course does. Signed attributions (gradient x input, IG) are summed over channels; the random
    map is the baseline to beat.
    """
    rng = np.random.default_rng(args.seed)
    return {
        "saliency": lambda x, t, _: saliency(model, x, t),
        "saliency (course)": lambda x, _, truth: course_saliency(model, x, truth),
        "SmoothGrad": lambda x, t, _: reduce_channels(
            smooth_grad(model, x, t, n_samples=args.smoothgrad_samples, noise_level=args.noise, seed=args.seed)),
        "gradient x input": lambda x, t, _: reduce_channels(gradient_x_input(model, x, t), "sum"),
        "Integrated Gradients": lambda x, t, _: reduce_channels(integrated_gradients(model, x, t).attributions, "sum"),
        "Grad-CAM": lambda x, t, _: grad_cam(model.features, model.head, x, t),
        "CAM": lambda x, t, _: class_activation_map(model.features, model.linear, x, t),
        "occlusion": lambda x, t, _: occlusion(model, x, t, patch=max(1, args.size // 8),
                                               stride=max(1, args.size // 16)),
        "random": lambda x, t, _: rng.random((len(x), *x.shape[2:])).astype(x.dtype),
    }


def shown_photos(test_set, count: int) -> np.ndarray:
    """Indices of the first count // 2 cats and the first count - count // 2 dogs of the test split."""
    cats, dogs = np.flatnonzero(test_set.targets == 0), np.flatnonzero(test_set.targets == 1)
    return np.concatenate([cats[:count // 2], dogs[:count - count // 2]])


def train_classifier(args, train_set, test_set) -> tuple:
    """Train the CAM-able classifier on the species; return (model, history, test loss and accuracy)."""
    progress = not args.no_progress
    minidl.manual_seed(args.seed)
    train_loader = DataLoader(train_set, args.batch_size, shuffle=True, seed=args.seed,
                              transform=RandomHorizontalFlip(seed=args.seed + 1))
    model = CAMClassifier(in_channels=3, num_classes=2, widths=WIDTHS)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    print(f"model: CAMClassifier with {sum(p.data.size for p in model.parameters()):,} parameters; "
          f"{args.epochs} epochs")
    metrics = {"accuracy": accuracy}
    history = fit(model, optimizer, F.cross_entropy, train_loader, args.epochs, metrics=metrics,
                  scheduler=scheduler, run_dir=args.out, resume=args.resume,
                  settings=training_settings(args, *EXPLANATION_FLAGS), verbose=1 if progress else 2)
    test = evaluate(model, DataLoader(test_set, batch_size=100), F.cross_entropy, metrics, progress=progress,
                    description="test")
    return model.eval(), history, test


def draw_saliency_figures(model, test_set, methods: dict, args) -> None:
    """saliency.png (saliency, SmoothGrad, Grad-CAM) and saliency_course.png (the course's saliency beside
    ours) for ``args.show`` test photos, half cats, half dogs."""
    chosen = shown_photos(test_set, args.show)
    shown, truth = test_set.images[chosen], test_set.targets[chosen]
    probabilities = F.softmax(minidl.Tensor(logits_of(model, shown)), dim=1).data
    predicted = probabilities.argmax(axis=1)
    columns = {name: methods[name](shown, predicted, truth) for name in ("saliency", "SmoothGrad", "Grad-CAM")}
    labels = [test_set.classes[p] if p == t else f"{test_set.classes[p]} (is {test_set.classes[t]})"
              for p, t in zip(predicted, truth)]
    plot_attribution_table(shown, columns, labels,
                           probabilities[np.arange(len(shown)), predicted], args.out / "saliency.png",
                           overlaid={"Grad-CAM"}, title="Where does the cat-vs-dog classifier look?")
    course_title, ours_title = "course:\nsum_c |dCE(true)/dx_c|", "ours:\nmax_c |d logit(pred)/dx_c|"
    plot_attribution_table(shown, {course_title: course_saliency(model, shown, truth), ours_title: columns["saliency"]},
                           labels, probabilities[np.arange(len(shown)), predicted], args.out / "saliency_course.png",
                           overlaid={ours_title}, course_blended={course_title},
                           title="Saliency: the course's (0..255, HOT blended 50/50) and ours (jet overlay)")


def score_maps(model, methods, test_set, args) -> tuple[dict, dict]:
    """Pointing game against the pet masks, deletion and insertion curves (perturbation_curves.png) of every
    method on ``--evaluate`` test photos spread over the split; returns (pointing scores, curves by kind and name)."""
    spread = np.linspace(0, len(test_set) - 1, min(args.evaluate, len(test_set))).round().astype(int)
    evaluated, evaluated_truth = test_set.images[spread], test_set.targets[spread]  # every breed, not the first
    target = logits_of(model, evaluated).argmax(axis=1)
    curves = {"deletion": {}, "insertion": {}}
    pointing = {}
    for name, method in tqdm(methods.items(), desc="pointing game, deletion/insertion", disable=args.no_progress):
        maps = method(evaluated, target, evaluated_truth)
        pointing[name] = pointing_game(maps, test_set.pet_masks[spread]).summary()
        curves["deletion"][name] = deletion_curve(model, evaluated, maps, target, steps=args.steps)
        curves["insertion"][name] = insertion_curve(model, evaluated, maps, target, steps=args.steps)
    plot_perturbation_curves(curves, args.out / "perturbation_curves.png",
                             title=f"p(predicted species) as pixels move ({len(evaluated)} test photos)")
    return pointing, curves


def sanity_checks(model, methods, test_set, args) -> dict:
    """Model randomisation for saliency and Grad-CAM (sanity_check_<method>.png); returns the results."""
    images = test_set.images[:SANITY_IMAGES]
    sanity = {name: model_randomization(model, lambda _, x, t, method=methods[name]: method(x, t, None), images,
                                        seed=args.seed)
              for name in ("saliency", "Grad-CAM")}
    for name, result in sanity.items():
        plot_randomization(result, images[0], args.out / f"sanity_check_{name.lower()}.png",
                           title=f"model randomisation: {name}")
    return sanity


def main(argv=None) -> dict:
    args = parse_args(argv)
    with contextlib.ExitStack() as run:
        hold_run_folders(run, args)
        train_set = OxfordPets(args.data_root, "trainval", size=args.size, target="species")
        test_set = OxfordPets(args.data_root, "test", size=args.size, target="species")
        print(f"data: {len(train_set)} train / {len(test_set)} test photos ({np.mean(test_set.targets == 0):.0%} "
              f"cats in test) from {test_set.source}")
        model, history, test = train_classifier(args, train_set, test_set)
        majority = max(np.mean(test_set.targets == 0), np.mean(test_set.targets == 1))
        print(f"test accuracy {test['accuracy']:.2%} (loss {test['loss']:.4f}; always guessing the majority "
              f"species gives {majority:.2%})")

        started = time.perf_counter()
        methods = explanation_methods(model, args)
        draw_saliency_figures(model, test_set, methods, args)
        pointing, curves = score_maps(model, methods, test_set, args)
        sanity = sanity_checks(model, methods, test_set, args)
        summary = {
            "status": "ok",
            "test_accuracy": test["accuracy"],
            "test_loss": test["loss"],
            "majority_class_accuracy": majority,
            "pointing_game": pointing,
            "pointing_game_note": "energy: share of the map's positive mass on the pet (trimap pet or border), mean "
                                  "over the maps with positive mass ('undefined' counts the others); hit_rate: share "
                                  "of maps whose maximum lies on the pet; uniform: the pet's area share, the score "
                                  "of a constant map",
            "deletion_auc": {name: float(curve.auc.mean()) for name, curve in curves["deletion"].items()},
            "insertion_auc": {name: float(curve.auc.mean()) for name, curve in curves["insertion"].items()},
            "randomization_spearman": {name: dict(zip(result.layers, result.correlations.mean(axis=1).tolist()))
                                       for name, result in sanity.items()},
            "epochs": len(history),
            "train_seconds": sum(history["seconds"]),
            "explain_seconds": time.perf_counter() - started,
            "parameters": sum(p.data.size for p in model.parameters()),
            "data": {"source": test_set.source, "train": len(train_set), "test": len(test_set)},
            "settings": settings_for_json(args),
            "history": history.to_dict(),
        }
        save_json(args.out / METRICS_NAME, summary)
    print_summary(summary, args.out, evaluated=min(args.evaluate, len(test_set)))
    return summary


def print_summary(summary: dict, out: Path, evaluated: int) -> None:
    pointing = summary["pointing_game"]
    print(f"pointing game on {evaluated} test photos (uniform map = pet area share "
          f"{next(iter(pointing.values()))['uniform']:.3f}):")
    for name, scores in pointing.items():
        undefined = f" ({scores['undefined']} maps without positive mass)" if scores["undefined"] else ""
        print(f"  {name:22s} energy {scores['energy']:.3f}  hit rate {scores['hit_rate']:.3f}{undefined}")
    for kind in ("deletion", "insertion"):
        aucs = "  ".join(f"{name} {auc:.3f}" for name, auc in summary[f"{kind}_auc"].items())
        print(f"{kind} AUC ({'lower' if kind == 'deletion' else 'higher'} is better): {aucs}")
    for name, rows in summary["randomization_spearman"].items():
        print(f"{name}: Spearman correlation with the trained model's maps after randomising all layers "
              f"{list(rows.values())[-1]:.3f}")
    for path in ("saliency.png", "saliency_course.png", "perturbation_curves.png",
                 *(f"sanity_check_{name.lower()}.png" for name in summary["randomization_spearman"]),
                 METRICS_NAME, "curves.png", "checkpoint.npz"):
        print(f"wrote {out / path}")


if __name__ == "__main__":
    main()
