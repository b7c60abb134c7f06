"""The fit loop: exact resume after a kill, seeded determinism, NaN stop, run-folder files, curves."""

import json
import os

import numpy as np
import pytest
from helpers import assert_figure

import minidl
import minidl.functional as F
from minidl import nn, optim
from minidl.data import ArrayDataset, DataLoader, RandomHorizontalFlip
from minidl.io import load_checkpoint
from minidl.metrics import accuracy
from minidl.train import History, NonFiniteLossError, evaluate, fit, training_generators
from minidl.viz import plot_training_curves

EPOCHS = 4
TRAIN_BATCHES, VAL_BATCHES = 5, 2  # 46 training images in batches of 10 (the last has 6), 20 validation images


def make_data(count, seed):
    """Three classes of 8x8 images: a bright row, a bright column or a bright diagonal, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=count)
    images = 0.3 * rng.standard_normal((count, 1, 8, 8))
    for image, label in zip(images, labels):
        position = rng.integers(1, 7)
        if label == 0:
            image[0, position, :] += 1.0
        elif label == 1:
            image[0, :, position] += 1.0
        else:
            image[0] += np.eye(8)
    return ArrayDataset(images.astype(np.float32), labels.astype(np.int64))


def make_run(seed):
    """Fresh model, optimizer, scheduler and loaders, as a new process would build them.

    Dropout, BatchNorm, shuffling, random flips, momentum and a learning-rate schedule: every kind
    of state that an exact resume has to carry over.
    """
    minidl.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 4, kernel_size=3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.3), nn.Linear(4 * 4 * 4, 3))
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    train_loader = DataLoader(make_data(46, seed=1), batch_size=10, shuffle=True, seed=seed,
                              transform=RandomHorizontalFlip(seed=seed + 1))
    val_loader = DataLoader(make_data(20, seed=2), batch_size=10)
    return dict(model=model, optimizer=optimizer, scheduler=scheduler, train_loader=train_loader,
                val_loader=val_loader)


def run_fit(run, epochs=EPOCHS, loss_fn=F.cross_entropy, **options):
    return fit(run["model"], run["optimizer"], loss_fn, run["train_loader"], epochs,
               val_loader=run["val_loader"], metrics={"accuracy": accuracy}, scheduler=run["scheduler"],
               verbose=0, **options)


def reproducible(history: History) -> dict:
    """All columns but the wall-clock seconds."""
    return {name: values for name, values in history.to_dict().items() if name != "seconds"}


def assert_same_arrays(a: dict, b: dict):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


class FailAtCall:
    """A loss function that behaves like cross-entropy until call number ``at``, then fails."""

    def __init__(self, at: int, failure):
        self.at, self.calls, self.failure = at, 0, failure

    def __call__(self, logits, target):
        self.calls += 1
        loss = F.cross_entropy(logits, target)
        return self.failure(loss) if self.calls == self.at else loss


def kill(loss):
    raise KeyboardInterrupt("killed")


def nan(loss):
    return loss * float("nan")


def calls_before_epoch(epoch, batch):
    """The loss call that handles training batch ``batch`` of ``epoch`` (both from 1)."""
    return (epoch - 1) * (TRAIN_BATCHES + VAL_BATCHES) + batch


def test_killed_and_resumed_run_ends_with_the_same_weights(tmp_path):
    uninterrupted = make_run(seed=0)
    expected = run_fit(uninterrupted, run_dir=tmp_path / "uninterrupted")

    killed = make_run(seed=0)
    with pytest.raises(KeyboardInterrupt):  # dies in the middle of epoch 3, after some updates
        run_fit(killed, loss_fn=FailAtCall(calls_before_epoch(3, batch=3), kill), run_dir=tmp_path / "run")
    assert load_checkpoint(tmp_path / "run" / "checkpoint.npz", make_run(seed=5)["model"]).epoch == 2
    stopped = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert stopped["status"] == "interrupted" and stopped["history"]["epoch"] == [1, 2]

    resumed = make_run(seed=123)  # a new process: other seeds, so only the checkpoint can make it match
    history = run_fit(resumed, run_dir=tmp_path / "run", resume=True)

    assert_same_arrays(resumed["model"].state_dict(), uninterrupted["model"].state_dict())
    assert_same_arrays(resumed["optimizer"].state_dict(), uninterrupted["optimizer"].state_dict())
    assert reproducible(history) == reproducible(expected)
    assert history["epoch"] == [1, 2, 3, 4]
    for name, generator in training_generators(resumed["train_loader"], resumed["model"]).items():
        reference = training_generators(uninterrupted["train_loader"], uninterrupted["model"])[name]
        assert generator.bit_generator.state == reference.bit_generator.state, name


def test_same_seed_gives_the_same_history_and_weights():
    # Each run is built right before it trains: dropout draws from minidl's one global generator.
    first = make_run(seed=0)
    first_history = run_fit(first, epochs=2)
    second = make_run(seed=0)
    second_history = run_fit(second, epochs=2)
    other_history = run_fit(make_run(seed=1), epochs=2)
    assert reproducible(first_history) == reproducible(second_history)
    assert_same_arrays(first["model"].state_dict(), second["model"].state_dict())
    assert first_history["train_loss"] != other_history["train_loss"]


def test_training_learns_the_toy_task():
    history = run_fit(make_run(seed=0), epochs=6)
    assert history["val_loss"][-1] < 0.5 * history["val_loss"][0]
    assert history["val_accuracy"][-1] >= 0.9 > history["val_accuracy"][0]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    clean = make_run(seed=0)
    run_fit(clean, epochs=2)

    run = make_run(seed=0)
    with pytest.raises(NonFiniteLossError) as stop:
        run_fit(run, loss_fn=FailAtCall(calls_before_epoch(3, batch=2), nan), run_dir=tmp_path)
    message = str(stop.value)
    assert "loss is nan at batch 2 of epoch 3/4 train" in message
    assert f"end of epoch 2) is kept at {tmp_path / 'checkpoint.npz'}" in message

    survivor = make_run(seed=9)
    saved = load_checkpoint(tmp_path / "checkpoint.npz", survivor["model"], survivor["optimizer"])
    assert saved.epoch == 2
    assert_same_arrays(survivor["model"].state_dict(), clean["model"].state_dict())
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "failed" and metrics["reason"] == f"NonFiniteLossError: {message}"
    assert metrics["history"]["epoch"] == [1, 2]


def test_nan_in_the_first_epoch_says_there_is_no_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLossError, match="no epoch completed, so there is no checkpoint"):
        run_fit(make_run(seed=0), loss_fn=FailAtCall(1, nan), run_dir=tmp_path)
    assert not (tmp_path / "checkpoint.npz").exists()


def test_fit_writes_the_run_folder(tmp_path):
    history = run_fit(make_run(seed=0), epochs=2, run_dir=tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz", "curves.png", "metrics.json"]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics == {"status": "ok", "history": history.to_dict()}
    assert set(history.columns) == {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                                    "lr", "seconds"}
    assert history["lr"] == [0.1, 0.1]  # StepLR(step_size=2) halves it only after epoch 2


def test_validation_every_k_epochs_and_after_the_last(tmp_path):
    """val_every=2 over 5 epochs validates after epochs 2, 4 and 5; the others hold NaN, written as null."""
    every = run_fit(make_run(seed=0), epochs=5, run_dir=tmp_path, val_every=2)
    each = run_fit(make_run(seed=0), epochs=5)
    assert [value is None for value in every.to_dict()["val_loss"]] == [True, False, True, False, False]
    assert [np.isnan(value) for value in every["val_accuracy"]] == [True, False, True, False, False]
    measured = [1, 3, 4]
    assert [every["val_loss"][i] for i in measured] == [each["val_loss"][i] for i in measured]
    assert every["train_loss"] == each["train_loss"]  # skipping validation changes no training step
    text = (tmp_path / "metrics.json").read_text()
    assert "NaN" not in text and json.loads(text)["history"]["val_loss"][0] is None
    with pytest.raises(ValueError, match="val_every must be a positive int, got 0"):
        run_fit(make_run(seed=0), val_every=0)


def test_resume_needs_a_run_dir_and_a_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="resume=True needs the run_dir"):
        run_fit(make_run(seed=0), resume=True)
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        run_fit(make_run(seed=0), resume=True, run_dir=tmp_path)


def test_evaluate_averages_over_samples_not_batches():
    """Batches of 7, 7 and 6 images: the size-weighted mean equals the loss of all 20 at once."""
    run = make_run(seed=0)
    data = make_data(20, seed=3)
    model = run["model"].eval()
    with minidl.no_grad():
        logits = model(minidl.Tensor(data.images))
        whole = F.cross_entropy(logits, data.targets).item()
    result = evaluate(model, DataLoader(data, batch_size=7), F.cross_entropy, {"accuracy": accuracy},
                      progress=False)
    np.testing.assert_allclose(result["loss"], whole, rtol=1e-6)
    assert result["accuracy"] == accuracy(logits, data.targets)


def test_history_rows_must_match_its_columns():
    history = History()
    history.append(epoch=1, train_loss=np.float32(0.5))
    assert history.to_dict() == {"epoch": [1], "train_loss": [0.5]} and len(history) == 1
    with pytest.raises(ValueError, match="History.append: row has columns"):
        history.append(epoch=2)


def test_training_curves_png(tmp_path):
    history = {"epoch": [1, 2, 3], "train_loss": [1.0, 0.7, 0.5], "val_loss": [0.9, 0.8, 0.7],
               "train_accuracy": [0.5, 0.7, 0.8], "val_accuracy": [0.55, 0.6, 0.7], "lr": [0.1] * 3}
    path = plot_training_curves(history, tmp_path / "curves.png", title="toy run")
    width, height = assert_figure(path)
    assert width > 2 * height  # two panels side by side
    with pytest.raises(ValueError, match="needs an 'epoch' column"):
        plot_training_curves({"train_loss": [1.0]}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="no 'train_<quantity>' or 'val_<quantity>' column"):
        plot_training_curves({"epoch": [1], "lr": [0.1]}, tmp_path / "x.png")
    assert os.listdir(tmp_path) == ["curves.png"]
