"""What an epoch of ``examples/segment_pets.py`` costs besides its training steps, part by part.

    python3 benchmarks/bench_epoch_overheads.py [--rounds 3] [--model unet]

Times, in this process and in turn (``--rounds`` rounds, median per part): one training epoch on
the default training split (270 images, batch 16), evaluating the 298 test images in batches of 16
(what the example did after every epoch before it had a validation split), evaluating the 30
validation images in batches of 64 (now every ``--val-every`` = 5 epochs), drawing ``curves.png``
(before: every epoch; now: with each validation) and writing the checkpoint (every epoch). Then it
prints each part as a share of a training epoch, and the seconds of an epoch with both schedules.
Nothing is asserted; on a shared machine only the ratios mean something.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "examples")]

import segment_pets  # noqa: E402  (puts minidl and models on the path too)

from minidl import optim  # noqa: E402
from minidl.data import DataLoader, RandomHorizontalFlip  # noqa: E402
from minidl.io import save_checkpoint  # noqa: E402
from minidl.random import manual_seed  # noqa: E402
from minidl.train import evaluate, run_epoch  # noqa: E402
from minidl.viz.curves import plot_training_curves  # noqa: E402
from models import build_segmenter  # noqa: E402

VAL_EVERY = 5


def main(argv=None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (each part once per round)")
    parser.add_argument("--model", choices=list(segment_pets.SEGMENTERS), default="unet")
    args = parser.parse_args(argv)
    options = segment_pets.parse_args(["--model", args.model])
    train, val, test = segment_pets.load_splits(options)
    settings = segment_pets.recipe(options, args.model)
    manual_seed(0)
    model = build_segmenter(args.model, in_channels=3, num_classes=2)
    optimizer = optim.Adam(model.parameters(), lr=settings["lr"])
    loader = DataLoader(train, batch_size=settings["batch_size"], shuffle=True, seed=0,
                        transform=RandomHorizontalFlip(seed=1))
    loss, metrics = segment_pets.segmentation_loss, {"pixel_accuracy": segment_pets.pixel_accuracy}
    history = {"epoch": list(range(1, 41)), "train_loss": list(np.linspace(1, 0.2, 40)),
               "val_loss": list(np.linspace(1, 0.3, 40))}
    folder = Path(tempfile.mkdtemp())
    parts = {
        f"training epoch ({len(train)} images)": lambda: run_epoch(model, loader, loss, metrics, optimizer,
                                                                   progress=False),
        f"test evaluation ({len(test)} images, batch 16)": lambda: evaluate(model, DataLoader(test, 16), loss,
                                                                           metrics, progress=False),
        f"validation ({len(val)} images, batch 64)": lambda: evaluate(model, DataLoader(val, 64), loss, metrics,
                                                                     progress=False),
        "curves.png": lambda: plot_training_curves(history, folder / "curves.png"),
        "checkpoint": lambda: save_checkpoint(folder / "checkpoint.npz", model, optimizer, None, epoch=1, rngs={},
                                              history={}),
    }
    for part in parts.values():
        part()  # warm up: Numba compilation, matplotlib import
    seconds = {name: [] for name in parts}
    for _ in range(args.rounds):
        for name, part in parts.items():
            started = time.perf_counter()
            part()
            seconds[name].append(time.perf_counter() - started)
    median = {name: float(np.median(values)) for name, values in seconds.items()}
    training, test_eval, validation, curves, checkpoint = median.values()
    for name, value in median.items():
        print(f"{name:40s} {value:8.3f} s  {value / training:7.1%} of a training epoch")
    per_image = training / len(train)
    before = per_image * (len(train) + len(val)) + test_eval + curves + checkpoint
    after = training + (validation + curves) / VAL_EVERY + checkpoint
    print(f"epoch before: {before:.2f} s (training on all {len(train) + len(val)} trainval images, "
          f"test evaluation and curves every epoch)")
    print(f"epoch now:    {after:.2f} s (validation and curves every {VAL_EVERY} epochs), {after / before:.2f}x")
    return median


if __name__ == "__main__":
    main()
