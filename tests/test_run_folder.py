"""Run folders never lose a run: no silent overwrite, one writer at a time, no NaN checkpoint, honest resume,
interrupted and failed runs say so, and a bad folder fails before any training."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import minidl.io
import minidl.functional as F
from minidl import nn, optim
from minidl.data import ArrayDataset, DataLoader
from minidl.io import RunFolderError, atomic_write, load_checkpoint, run_folder
from minidl.train import NonFiniteLossError, NonFiniteParameterError, fit

fcntl = pytest.importorskip("fcntl")  # the lock is POSIX's flock
ROOT = Path(__file__).resolve().parents[1]


def tiny_run(lr=0.1, seed=0):
    """A linear classifier on 8 points in one batch: an epoch is a single update."""
    rng = np.random.default_rng(seed)
    model = nn.Linear(3, 2)
    model.weight.data[...] = rng.standard_normal((2, 3)).astype(np.float32)
    data = ArrayDataset(rng.standard_normal((8, 3)).astype(np.float32), rng.integers(0, 2, 8))
    optimizer = optim.SGD(model.parameters(), lr=lr)
    return model, optimizer, DataLoader(data, batch_size=8, shuffle=True, seed=seed)


class CountingLoss:
    """Cross-entropy that counts its calls: a check that fails before training leaves it at 0."""

    def __init__(self):
        self.calls = 0

    def __call__(self, logits, target):
        self.calls += 1
        return F.cross_entropy(logits, target)


def train(run_dir, epochs=1, loss=F.cross_entropy, **options):
    model, optimizer, loader = tiny_run(lr=options.pop("lr", 0.1))
    return fit(model, optimizer, loss, loader, epochs, run_dir=run_dir, verbose=0, **options)


def saved_epoch(run_dir):
    model, *_ = tiny_run()
    return load_checkpoint(run_dir / "checkpoint.npz", model).epoch


def metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def test_a_folder_holding_a_run_is_refused_unless_resumed_or_overwritten(tmp_path):
    train(tmp_path, epochs=3)
    loss = CountingLoss()
    with pytest.raises(RunFolderError) as refused:
        train(tmp_path, epochs=1, loss=loss)
    message = str(refused.value)
    assert str(tmp_path) in message and "resume=True" in message and "overwrite=True" in message
    assert "checkpoint after epoch 3" in message and "status ok" in message
    assert loss.calls == 0 and saved_epoch(tmp_path) == 3  # the finished run is intact

    train(tmp_path, epochs=1, overwrite=True)
    assert saved_epoch(tmp_path) == 1 and metrics(tmp_path)["history"]["epoch"] == [1]
    # a finished run without a checkpoint (e.g. only metrics.json) is protected too
    (tmp_path / "checkpoint.npz").unlink()
    with pytest.raises(RunFolderError, match="status ok"):
        train(tmp_path)
    with pytest.raises(ValueError, match="exclude each other"):
        train(tmp_path, resume=True, overwrite=True)


def test_a_run_that_stopped_before_its_first_checkpoint_can_be_started_again(tmp_path):
    with pytest.raises(NonFiniteLossError):
        train(tmp_path, lr=float("inf"), epochs=2)
    assert metrics(tmp_path)["status"] == "failed" and not (tmp_path / "checkpoint.npz").exists()
    train(tmp_path, epochs=1)  # nothing to lose: no overwrite needed
    assert metrics(tmp_path)["status"] == "ok"


def test_a_folder_another_run_writes_into_is_refused_and_freed_afterwards(tmp_path):
    other = os.open(tmp_path, os.O_RDONLY)  # a second open file description: as another process would hold it
    try:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        loss = CountingLoss()
        with pytest.raises(RunFolderError, match=f"run folder {tmp_path} is in use"):
            train(tmp_path, loss=loss)
        assert loss.calls == 0 and not (tmp_path / "metrics.json").exists()
    finally:
        os.close(other)
    with run_folder(tmp_path):  # the lock is held during the block ...
        probe = os.open(tmp_path, os.O_RDONLY)
        with pytest.raises(BlockingIOError):
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(probe)
        train(tmp_path)  # ... and nesting (an example around fit) does not lock itself out
    probe = os.open(tmp_path, os.O_RDONLY)  # ... and released after it
    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(probe)


def test_nan_parameters_are_never_checkpointed(tmp_path):
    """lr = nan: the one batch of epoch 1 has a finite loss, then the update makes every weight NaN."""
    model, optimizer, loader = tiny_run()
    optimizer.param_groups[0]["lr"] = float("nan")  # e.g. a schedule gone wrong (the constructor refuses nan)
    with pytest.raises(NonFiniteParameterError, match=r"weight has 6 NaN or infinite values after epoch 1/2"):
        fit(model, optimizer, F.cross_entropy, loader, 2, run_dir=tmp_path, verbose=0)
    assert not (tmp_path / "checkpoint.npz").exists()
    saved = metrics(tmp_path)
    assert saved["status"] == "failed" and "NaN or infinite" in saved["reason"]
    assert "no epoch completed, so there is no checkpoint" in saved["reason"]


def test_nan_after_good_epochs_keeps_the_last_good_checkpoint(tmp_path):
    train(tmp_path, epochs=2)
    model, optimizer, loader = tiny_run()

    def poisoning_loss(logits, target):  # finite loss, but a weight turns NaN during the epoch
        loss = F.cross_entropy(logits, target)
        model.weight.data[0, 0] = np.nan
        return loss

    with pytest.raises(NonFiniteParameterError, match="end of epoch 2"):
        fit(model, optimizer, poisoning_loss, loader, 3, run_dir=tmp_path, verbose=0, resume=True)
    assert saved_epoch(tmp_path) == 2
    assert metrics(tmp_path)["status"] == "failed" and metrics(tmp_path)["history"]["epoch"] == [1, 2]


def test_resume_refuses_other_settings_and_says_when_nothing_is_left(tmp_path, capsys):
    settings = {"seed": 0, "lr": 0.1, "epochs": 2, "sizes": (8, 3)}
    train(tmp_path, epochs=2, settings=settings)
    assert metrics(tmp_path)["settings"] == {**settings, "sizes": [8, 3]}
    before = (tmp_path / "checkpoint.npz").stat().st_mtime_ns

    with pytest.raises(ValueError, match=r"other settings: lr 0.5 \(the checkpoint has 0.1\); seed 1 "
                                         r"\(the checkpoint has 0\)\. Only the number of epochs"):
        train(tmp_path, epochs=3, resume=True, settings={**settings, "seed": 1, "lr": 0.5})
    with pytest.raises(ValueError, match="cannot resume to epoch 1: .* has already completed 2 epochs"):
        train(tmp_path, epochs=1, resume=True, settings=settings)
    model, optimizer, loader = tiny_run()
    history = fit(model, optimizer, CountingLoss(), loader, 2, run_dir=tmp_path, resume=True, settings=settings)
    assert "nothing left to train" in capsys.readouterr().out and history["epoch"] == [1, 2]
    assert (tmp_path / "checkpoint.npz").stat().st_mtime_ns == before and metrics(tmp_path)["status"] == "ok"

    history = train(tmp_path, epochs=3, resume=True, settings={**settings, "epochs": 3})
    assert history["epoch"] == [1, 2, 3] and metrics(tmp_path)["settings"]["epochs"] == 3


def test_ctrl_c_leaves_status_interrupted_and_stale_temporary_files_go(tmp_path):
    train(tmp_path, epochs=1)
    stale = tmp_path / ".checkpoint.npz.4242.deadbeef.tmp"  # left by a write killed with SIGKILL
    stale.write_bytes(b"half a checkpoint")

    def interrupt_in_epoch_2(logits, target):
        if interrupt_in_epoch_2.calls == 1:
            raise KeyboardInterrupt
        interrupt_in_epoch_2.calls += 1
        return F.cross_entropy(logits, target)
    interrupt_in_epoch_2.calls = 0

    with pytest.raises(KeyboardInterrupt):
        train(tmp_path, epochs=3, resume=True, loss=interrupt_in_epoch_2)
    assert not stale.exists()
    saved = metrics(tmp_path)
    assert saved["status"] == "interrupted" and saved["reason"] == "interrupted by Ctrl-C"
    assert saved_epoch(tmp_path) == 2 and saved["history"]["epoch"] == [1, 2]


def test_sigterm_leaves_status_interrupted(tmp_path):
    """A real process, killed with SIGTERM in the middle of its second epoch."""
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(Path(__file__).parent)!r})
        import minidl.functional as F
        from test_run_folder import train
        def slow(logits, target):
            slow.calls += 1
            if slow.calls == 2:
                print("epoch 2", flush=True)
                time.sleep(60)
            return F.cross_entropy(logits, target)
        slow.calls = 0
        train({str(tmp_path)!r}, epochs=3, loss=slow)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline() == "epoch 2\n"
    process.send_signal(signal.SIGTERM)
    _, errors = process.communicate(timeout=60)
    assert process.returncode != 0 and "KeyboardInterrupt: SIGTERM" in errors
    saved = metrics(tmp_path)
    assert saved["status"] == "interrupted" and saved["reason"] == "interrupted by SIGTERM"
    assert saved_epoch(tmp_path) == 1


def test_a_bad_run_folder_fails_before_training_with_the_original_cause(tmp_path, monkeypatch):
    loss = CountingLoss()
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    with pytest.raises(NotADirectoryError, match=f"run folder {a_file} is not a folder"):
        train(a_file, loss=loss)
    (tmp_path / "run" / "checkpoint.npz").mkdir(parents=True)
    with pytest.raises(IsADirectoryError, match="checkpoint.npz is not a file"):
        train(tmp_path / "run", loss=loss)

    def read_only(path, mode="r", *args, **kwargs):  # a read-only folder (tests may run as root, so no chmod)
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(minidl.io, "open", read_only, raising=False)
    monkeypatch.setattr(Path, "unlink", lambda *a, **k: (_ for _ in ()).throw(OSError(30, "Read-only file system")))
    with pytest.raises(PermissionError, match="Permission denied"):
        train(tmp_path / "ro", loss=loss)
    with pytest.raises(PermissionError, match="Permission denied"):  # not the clean-up's secondary error
        atomic_write(tmp_path / "ro" / "x.json", lambda file: file.write(b"{}"))
    assert loss.calls == 0
