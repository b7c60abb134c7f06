"""The training loop: epochs of mini-batch gradient descent, with history, checkpoints and figures.

One training step on a batch (x, y) is the whole idea::

    optimizer.zero_grad()            # forget the previous batch's gradients
    loss = loss_fn(model(x), y)      # forward: a scalar, e.g. mean cross-entropy over the batch
    loss.backward()                  # backward: dL/dw for every parameter w
    optimizer.step()                 # update, e.g. SGD: w <- w - lr * dL/dw

``run_epoch`` repeats it over a data loader (or, without an optimizer, only evaluates), ``fit``
repeats epochs and after each one records the numbers (``History``), saves a checkpoint, writes
``metrics.json`` and redraws ``curves.png`` in the run folder (held with ``minidl.io.run_folder``: locked,
never silently overwritten, its status ``running``, ``ok``, ``interrupted`` or ``failed``). Everything random (initialisation,
shuffling, dropout) comes from seeded generators whose states go into the checkpoint, so the same
seed gives the same numbers and a resumed run continues exactly where the saved one stopped.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .io import CHECKPOINT_NAME, METRICS_NAME, load_checkpoint, run_folder, save_checkpoint, save_json
from .random import default_generator
from .tensor import Tensor, no_grad
from .viz.curves import plot_training_curves

CURVES_NAME = "curves.png"

# metric(output, target) -> the batch's mean value, e.g. accuracy = mean(argmax(output) == target)
Metric = Callable[[np.ndarray, np.ndarray], float]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite, so training cannot go on (learning rate too high, bad data...)."""


class NonFiniteParameterError(NonFiniteLossError):
    """A parameter or buffer became NaN or infinite during an epoch (possible while the loss of every
    batch was still finite, e.g. after the last update of the epoch), so it must not be saved."""


class ResumeError(ValueError):
    """A resume that would train nothing sensible or continue a different run (other settings)."""


class History:
    """The numbers of a run, one named column per quantity and one row per epoch.

    ``history["val_loss"][i]`` belongs to epoch ``history["epoch"][i]``. Columns written by ``fit``:
    ``epoch``, ``train_loss``, ``train_<metric>``, ``val_loss``, ``val_<metric>`` (with a validation
    loader), ``lr`` and ``seconds`` (wall time of the epoch, the only column that is not reproducible).
    A value not measured at an epoch (validation skipped) is NaN here and None in ``to_dict()``,
    which is what JSON (no NaN) and the curves (no point drawn) need.
    """

    def __init__(self, columns: Mapping[str, Sequence] | None = None):
        self.columns = {name: [_number(v) for v in values] for name, values in (columns or {}).items()}

    def append(self, **row: float) -> None:
        """Add one epoch's row; it must name the same columns as the rows before it."""
        if self.columns and set(row) != set(self.columns):
            raise ValueError(f"History.append: row has columns {sorted(row)}, history has {sorted(self.columns)}")
        for name, value in row.items():
            self.columns.setdefault(name, []).append(_number(value))

    def __getitem__(self, name: str) -> list:
        return self.columns[name]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()), []))

    def to_dict(self) -> dict[str, list]:
        return {name: [None if value != value else value for value in values]  # NaN != NaN
                for name, values in self.columns.items()}


def _number(value):
    """A Python int or float (JSON- and comparison-friendly) from any NumPy or Python scalar."""
    value = np.asarray(value).item()
    return value if isinstance(value, int) else float(value)


def run_epoch(model, loader, loss_fn, metrics: Mapping[str, Metric] | None = None, optimizer=None,
              description: str = "epoch", progress: bool = True) -> dict[str, float]:
    """One pass over ``loader``: train if an ``optimizer`` is given, otherwise evaluate without a graph.

    Returns the mean loss and metrics over all samples: each batch's value weighted by its size b,
    ``mean = sum_batches(b * value) / sum_batches(b)`` (exact for a mean-reduced loss and accuracy).
    Raises NonFiniteLossError as soon as a batch loss is NaN or infinite.
    """
    metrics = metrics or {}
    training = optimizer is not None
    model.train(training)
    totals = dict.fromkeys(["loss", *metrics], 0.0)
    seen = 0
    bar = tqdm(loader, desc=description, unit="batch", leave=False, disable=not progress, dynamic_ncols=True)
    with contextlib.nullcontext() if training else no_grad():
        for batch_index, (inputs, targets) in enumerate(bar):
            inputs = inputs if isinstance(inputs, Tensor) else Tensor(inputs)
            targets_array = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
            if training:
                optimizer.zero_grad()
            outputs = model(inputs)
            loss = loss_fn(outputs, targets)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise NonFiniteLossError(f"loss is {loss_value} at batch {batch_index + 1} of {description}")
            if training:
                loss.backward()
                optimizer.step()
            size = len(targets_array)
            seen += size
            totals["loss"] += loss_value * size
            for name, metric in metrics.items():
                totals[name] += float(metric(outputs.data, targets_array)) * size
            bar.set_postfix({name: f"{total / seen:.4f}" for name, total in totals.items()}, refresh=False)
    bar.close()
    if seen == 0:
        raise ValueError(f"run_epoch: the loader yielded no batches ({description})")
    return {name: total / seen for name, total in totals.items()}


def evaluate(model, loader, loss_fn, metrics: Mapping[str, Metric] | None = None,
             progress: bool = True, description: str = "evaluate") -> dict[str, float]:
    """Mean loss and metrics of ``model`` (in eval mode, no graph) over ``loader``."""
    return run_epoch(model, loader, loss_fn, metrics, optimizer=None, description=description, progress=progress)


def training_generators(loader, model=None) -> dict[str, np.random.Generator]:
    """Every random generator a training epoch over ``loader`` (and through ``model``) draws from, by name.

    minidl's global generator (initialisation, and dropout unless a layer has its own), the
    loader's shuffling generator, the generator of each random transform of the loader (one
    transform or a ``Compose`` of them) and any layer's private ``generator``.
    """
    generators = {"minidl": default_generator, "loader": loader.generator}
    transform = loader.transform
    for index, step in enumerate(getattr(transform, "transforms", [transform])):
        if getattr(step, "generator", None) is not None:
            generators[f"transform{index}_{type(step).__name__}"] = step.generator
    for name, module in ([] if model is None else model.named_modules()):
        if getattr(module, "generator", None) is not None:
            generators[f"model.{name}".rstrip(".")] = module.generator
    return generators


def fit(model, optimizer, loss_fn, train_loader, epochs: int, *, val_loader=None,
        metrics: Mapping[str, Metric] | None = None, scheduler=None, run_dir=None,
        rngs: Mapping[str, np.random.Generator] | None = None, resume: bool = False,
        overwrite: bool = False, settings: Mapping | None = None, curves_title: str | None = None,
        verbose: int = 1, val_every: int = 1) -> History:
    """Train ``model`` until ``epochs`` epochs are complete; return the per-epoch ``History``.

    After every epoch: validate (if ``val_loader``), step the ``scheduler`` (once per epoch, like
    PyTorch's StepLR/CosineAnnealingLR), and, if ``run_dir`` is given, write into it
    ``checkpoint.npz`` (model, optimizer, scheduler, epoch, the states of the generators in ``rngs``,
    history), ``metrics.json`` (the history) and ``curves.png`` (loss and metrics, train vs val, titled
    ``curves_title``). ``record_results`` adds a run's final numbers (e.g. test scores) to ``metrics.json``.

    ``val_every=k`` validates only after every k-th epoch and after the last one (a validation pass
    costs about a third of a training pass per image); the other epochs' ``val_*`` are NaN, and
    ``curves.png`` (about half a second to draw) is redrawn only after a validation.

    ``rngs`` names every generator the run draws from after setup (shuffling, augmentation,
    dropout); their saved states are what makes a resumed run exact. The default,
    ``training_generators(train_loader, model)``, finds them for minidl's own loader and layers.
    ``resume=True`` loads ``run_dir/checkpoint.npz`` into the given (freshly built) objects and
    continues from the epoch after the saved one; ``epochs`` below the saved epoch is an error, equal
    to it trains nothing (and says so). A ``run_dir`` that already holds a run is refused unless
    ``resume`` or ``overwrite`` (see ``minidl.io.run_folder``).

    ``settings`` (JSON-able, e.g. the command-line flags) go into the checkpoint and ``metrics.json``;
    on resume each must equal the saved value (a run cannot change its model, seed, data or
    learning rate half-way), except ``epochs``.

    A NaN or infinite loss, or a parameter or buffer that is not finite at the end of an epoch, stops
    training with NonFiniteLossError before that epoch is saved; the checkpoint on disk is then still
    the one of the last complete epoch, and ``metrics.json`` says ``status: failed`` and why.

    The ``train_*`` numbers are running means over the epoch in training mode (dropout on, weights
    still moving), the ``val_*`` numbers come from the model at the end of the epoch in eval mode.

    ``verbose``: 0 prints nothing, 1 shows progress bars (loss, metrics, batches/s) and a line per
    epoch, 2 only the line per epoch (for log files).
    """
    if not isinstance(val_every, (int, np.integer)) or val_every < 1:
        raise ValueError(f"fit: val_every must be a positive int, got {val_every!r}")
    if resume and run_dir is None:
        raise ValueError("fit: resume=True needs the run_dir that holds the checkpoint")
    held = contextlib.nullcontext() if run_dir is None else run_folder(run_dir, resume=resume, overwrite=overwrite)
    with held as run_dir:
        return _train(model, optimizer, loss_fn, train_loader, epochs, val_loader, metrics, scheduler, run_dir,
                      rngs, resume, settings, curves_title, verbose, val_every)


def _train(model, optimizer, loss_fn, train_loader, epochs, val_loader, metrics, scheduler, run_dir, rngs,
           resume, settings, curves_title, verbose, val_every) -> History:
    """``fit`` once the run folder (if any) is held."""
    rngs = training_generators(train_loader, model) if rngs is None else rngs
    history, start_epoch = History(), 0
    if resume:
        saved = load_checkpoint(run_dir / CHECKPOINT_NAME, model, optimizer, scheduler, rngs=rngs)
        _check_resume(run_dir, saved.epoch, epochs, saved.settings, settings)
        history, start_epoch = History(saved.history), saved.epoch
        if start_epoch == epochs:
            if verbose:
                tqdm.write(f"nothing left to train: {run_dir / CHECKPOINT_NAME} already holds all {epochs} epochs "
                           f"(ask for more epochs to continue)")
            return history
    extra = {} if settings is None else {"settings": dict(settings)}
    if run_dir is not None:
        save_json(run_dir / METRICS_NAME, {"status": "running", **extra, "history": history.to_dict()})

    for epoch in range(start_epoch + 1, epochs + 1):
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        validate = val_loader is not None and (epoch % val_every == 0 or epoch == epochs)
        try:
            train = run_epoch(model, train_loader, loss_fn, metrics, optimizer,
                              description=f"epoch {epoch}/{epochs} train", progress=verbose == 1)
            _check_finite_state(model, optimizer, epoch, epochs)
            if validate:
                val = evaluate(model, val_loader, loss_fn, metrics, verbose == 1,
                               description=f"epoch {epoch}/{epochs} val")
            else:
                val = {} if val_loader is None else dict.fromkeys(["loss", *(metrics or {})], math.nan)
        except NonFiniteLossError as error:
            _stop_on_non_finite(error, run_dir, last_good_epoch=epoch - 1)
        if scheduler is not None:
            scheduler.step()
        history.append(epoch=epoch, **_prefixed("train", train), **_prefixed("val", val),
                       lr=lr, seconds=time.perf_counter() - started)
        if verbose:
            tqdm.write(_summary(history, epochs))
        if run_dir is not None:
            save_checkpoint(run_dir / CHECKPOINT_NAME, model, optimizer, scheduler, epoch=epoch, rngs=rngs,
                            history={name: np.asarray(values) for name, values in history.columns.items()},
                            settings=settings)
            status = "ok" if epoch == epochs else "running"
            save_json(run_dir / METRICS_NAME, {"status": status, **extra, "history": history.to_dict()})
            if validate or val_loader is None:
                plot_training_curves(history.to_dict(), run_dir / CURVES_NAME, title=curves_title)
    return history


def record_results(run_dir, results: Mapping) -> dict:
    """Add ``results`` (e.g. test scores, JSON-able) to the ``metrics.json`` that ``fit`` wrote in
    ``run_dir``, keeping its status, settings and history; returns the whole content."""
    path = Path(run_dir) / METRICS_NAME
    content = {**json.loads(path.read_text()), **results}
    save_json(path, content)
    return content


def _check_resume(run_dir: Path, saved_epoch: int, epochs: int, saved_settings, settings) -> None:
    """Refuse a resume that would train nothing sensible or continue a different run."""
    if epochs < saved_epoch:
        raise ResumeError(f"fit: cannot resume to epoch {epochs}: {run_dir / CHECKPOINT_NAME} has already "
                         f"completed {saved_epoch} epochs (ask for more than {saved_epoch} to continue)")
    if saved_settings is None or settings is None:
        return
    changed = [f"{name} {settings.get(name)!r} (the checkpoint has {saved_settings.get(name)!r})"
               for name in sorted(set(saved_settings) | set(settings))
               if name != "epochs" and _as_json(settings.get(name)) != saved_settings.get(name)]
    if changed:
        raise ResumeError(f"fit: cannot resume {run_dir} with other settings: {'; '.join(changed)}. Only the "
                         f"number of epochs may change on resume; start a new run for the others")


def _as_json(value):
    """``value`` as it reads back from JSON (tuples become lists, NumPy scalars numbers)."""
    return json.loads(json.dumps(value, default=lambda v: v.tolist()))


def _check_finite_state(model, optimizer, epoch: int, epochs: int) -> None:
    """Raise NonFiniteParameterError if a parameter or buffer of ``model`` holds NaN or infinity."""
    for name, value in model.state_dict().items():
        value = np.asarray(value)
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            bad = int(np.size(value) - np.isfinite(value).sum())
            raise NonFiniteParameterError(f"{name} has {bad} NaN or infinite values after epoch {epoch}/{epochs} "
                                          f"(learning rate {optimizer.param_groups[0]['lr']})")


def _prefixed(phase: str, values: Mapping[str, float]) -> dict[str, float]:
    return {f"{phase}_{name}": value for name, value in values.items()}


def _summary(history: History, epochs: int) -> str:
    """One line per epoch, e.g. ``epoch 2/5  train_loss 0.4123  val_loss 0.4410  lr 0.01  31.2 s``."""
    numbers = "  ".join(f"{name} {values[-1]:.4g}" for name, values in history.columns.items()
                        if name not in ("epoch", "seconds") and values[-1] == values[-1])  # NaN: not measured
    return f"epoch {history['epoch'][-1]}/{epochs}  {numbers}  {history['seconds'][-1]:.1f} s"


def _stop_on_non_finite(error: NonFiniteLossError, run_dir: Path | None, last_good_epoch: int):
    """Raise again, pointing at the last good checkpoint (``run_folder`` records it in metrics.json)."""
    if run_dir is None:
        where = "no checkpoint is written without a run_dir"
    elif last_good_epoch == 0:
        where = "no epoch completed, so there is no checkpoint"
    else:
        where = f"the last good checkpoint (end of epoch {last_good_epoch}) is kept at {run_dir / CHECKPOINT_NAME}"
    message = f"fit: training stopped, {error}; {where}. Try a smaller learning rate or check the data."
    raise type(error)(message) from error
