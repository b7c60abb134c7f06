"""Training curves: one panel per quantity (loss, accuracy, ...), train and validation per epoch.

Drawn with matplotlib's object-oriented API on a standalone ``Figure`` (rendered by the Agg
backend, no window, no pyplot global state) and saved as a PNG atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..io import atomic_write

PHASES = {"train": dict(linestyle="-", marker="o"), "val": dict(linestyle="--", marker="s")}


def plot_training_curves(history: Mapping[str, Sequence[float]], path, title: str | None = None) -> Path:
    """Save a PNG of the per-epoch curves in ``history`` to ``path``; return the path.

    ``history`` has an ``epoch`` column and columns named ``<phase>_<quantity>`` with phase
    ``train`` or ``val`` (e.g. ``train_loss``, ``val_accuracy``), as ``minidl.train.History`` writes.
    Each quantity gets one panel with a line per phase; other columns (``lr``, ``seconds``) are ignored.
    """
    if "epoch" not in history:
        raise ValueError(f"plot_training_curves: history needs an 'epoch' column, got columns {sorted(history)}")
    quantities = _quantities(history)
    if not quantities:
        raise ValueError("plot_training_curves: history has no 'train_<quantity>' or 'val_<quantity>' column "
                         f"to plot, got columns {sorted(history)}")
    figure = Figure(figsize=(5 * len(quantities), 4), layout="constrained")
    for axes, quantity in zip(figure.subplots(1, len(quantities), squeeze=False)[0], quantities):
        for phase, style in PHASES.items():
            column = f"{phase}_{quantity}"
            if column in history:  # epochs without a value (None or NaN: not measured) get no point
                points = [(epoch, value) for epoch, value in zip(history["epoch"], history[column])
                          if value is not None and value == value]
                if points:
                    axes.plot(*zip(*points), label=phase, **style)
        axes.set_title(f"{_label(quantity)} per epoch")
        axes.set_xlabel("epoch")
        axes.set_ylabel(_label(quantity))
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        axes.legend()
    if title:
        figure.suptitle(title)
    return atomic_write(path, lambda file: figure.savefig(file, format="png", dpi=120))


def _quantities(history: Mapping[str, Sequence[float]]) -> list[str]:
    """``loss`` first, then the other quantities in column order, each once."""
    names = [column.split("_", 1)[1] for column in history if column.split("_", 1)[0] in PHASES]
    return sorted(dict.fromkeys(names), key=lambda name: name != "loss")


def _label(quantity: str) -> str:
    return quantity.replace("_", " ").capitalize()
