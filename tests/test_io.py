"""Checkpoints and run files: exact round trips, all-or-nothing writes, clear load errors."""

import argparse
import json
import os

import numpy as np
import pytest

import minidl
from minidl import io, nn, optim
from minidl.io import atomic_write, load_checkpoint, save_checkpoint, save_json, settings_for_json


def build(seed=0):
    """A model with parameters and buffers, an optimizer with state, a scheduler: fresh objects."""
    minidl.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    return model, optimizer, scheduler


def train_a_little(model, optimizer, scheduler, steps=2):
    """Change parameters, BatchNorm running stats, momentum buffers and the scheduler's counter."""
    rng = np.random.default_rng(1)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        x = minidl.Tensor(rng.standard_normal((4, 1, 6, 6)).astype(np.float32))
        loss = (model(x) ** 2).mean()
        loss.backward()
        optimizer.step()
        scheduler.step()


def assert_states_equal(a: dict, b: dict):
    assert a.keys() == b.keys()
    for name in a:
        assert np.asarray(a[name]).dtype == np.asarray(b[name]).dtype, name
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_round_trip_restores_every_state_exactly(tmp_path):
    model, optimizer, scheduler = build(seed=0)
    train_a_little(model, optimizer, scheduler)
    generator = np.random.default_rng(7)
    generator.random(3)  # move it away from its seeded start
    history = {"epoch": np.array([1, 2]), "train_loss": np.array([0.9, 0.7])}
    path = save_checkpoint(tmp_path / "run" / "checkpoint.npz", model, optimizer, scheduler,
                           epoch=2, rngs={"shuffle": generator}, history=history)

    fresh_model, fresh_optimizer, fresh_scheduler = build(seed=1)
    fresh_generator = np.random.default_rng(123)
    saved = load_checkpoint(path, fresh_model, fresh_optimizer, fresh_scheduler, rngs={"shuffle": fresh_generator})

    assert saved.epoch == 2
    assert_states_equal(saved.history, history)
    assert_states_equal(fresh_model.state_dict(), model.state_dict())
    assert_states_equal(fresh_optimizer.state_dict(), optimizer.state_dict())
    assert_states_equal(fresh_scheduler.state_dict(), scheduler.state_dict())
    assert optimizer.param_groups[0]["lr"] == fresh_optimizer.param_groups[0]["lr"]
    scheduler.step()
    fresh_scheduler.step()  # the resumed schedule goes on from the saved epoch
    assert fresh_optimizer.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]
    np.testing.assert_array_equal(fresh_generator.random(5), generator.random(5))


def test_checkpoint_is_a_flat_npz_without_pickle(tmp_path):
    model, optimizer, scheduler = build()
    path = save_checkpoint(tmp_path / "c.npz", model, optimizer, scheduler, epoch=3,
                           rngs={"g": np.random.default_rng(0)})
    with np.load(path, allow_pickle=False) as archive:
        names = set(archive.files)
        assert int(archive["meta/epoch"]) == 3
        assert all(archive[name].dtype != object for name in names)
    assert {"meta/format", "meta/epoch", "rng/g"} <= names
    assert {f"model/{name}" for name in model.state_dict()} <= names
    assert any(name.startswith("optimizer/") for name in names)
    assert any(name.startswith("scheduler/") for name in names)
    assert sorted(os.listdir(tmp_path)) == ["c.npz"]  # no temporary file left behind
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # the usual permissions, not a temp file's 0600


def test_atomic_write_failure_leaves_no_file(tmp_path):
    target = tmp_path / "out.bin"

    def failing_writer(file):
        file.write(b"half of the data")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, failing_writer)
    assert os.listdir(tmp_path) == []


def test_failed_checkpoint_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model, optimizer, scheduler = build()
    path = save_checkpoint(tmp_path / "checkpoint.npz", model, optimizer, scheduler, epoch=1)
    before = path.read_bytes()

    def savez_that_dies_halfway(file, **arrays):
        file.write(b"PK\x03\x04 a truncated zip")
        raise KeyboardInterrupt  # e.g. the user presses Ctrl-C in the middle of the write

    monkeypatch.setattr(io.np, "savez", savez_that_dies_halfway)
    train_a_little(model, optimizer, scheduler)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model, optimizer, scheduler, epoch=2)
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["checkpoint.npz"]
    assert load_checkpoint(path, *build()).epoch == 1


def test_load_errors_are_clear(tmp_path):
    model, optimizer, scheduler = build()
    with pytest.raises(FileNotFoundError, match="no checkpoint file at .*missing.npz"):
        load_checkpoint(tmp_path / "missing.npz", model)

    text_file = tmp_path / "notes.npz"
    text_file.write_text("not an archive")
    with pytest.raises(ValueError, match="notes.npz is not a minidl checkpoint"):
        load_checkpoint(text_file, model)

    single_array = tmp_path / "array.npy"
    np.save(single_array, np.zeros(3))
    with pytest.raises(ValueError, match="single array"):
        load_checkpoint(single_array, model)

    other_npz = tmp_path / "other.npz"
    np.savez(other_npz, weights=np.zeros(3))
    with pytest.raises(ValueError, match="'meta/format' is missing"):
        load_checkpoint(other_npz, model)

    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{"meta/format": np.array(io.CHECKPOINT_FORMAT), "x": np.array([{}], dtype=object)})
    with pytest.raises(ValueError, match="pickled.npz is not a minidl checkpoint"):
        load_checkpoint(pickled, model)


def test_load_errors_name_what_is_missing(tmp_path):
    model, optimizer, scheduler = build()
    model_only = save_checkpoint(tmp_path / "model_only.npz", model, epoch=1)
    with pytest.raises(ValueError, match="holds no optimizer state"):
        load_checkpoint(model_only, model, optimizer)
    with pytest.raises(ValueError, match=r"no random state 'rng/shuffle'"):
        load_checkpoint(model_only, model, rngs={"shuffle": np.random.default_rng()})

    bigger_model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(),
                                 nn.Linear(2 * 4 * 4, 3), nn.Linear(3, 3))
    expected = r"(?s)the model does not fit the checkpoint .*model_only.npz.*missing key\(s\): 5\.weight, 5\.bias"
    with pytest.raises(ValueError, match=expected):
        load_checkpoint(model_only, bigger_model)


def test_save_json_writes_numpy_values_atomically(tmp_path):
    path = save_json(tmp_path / "metrics.json", {"accuracy": np.float32(0.5), "epochs": np.int64(3),
                                                 "curve": np.array([1.0, 2.0])})
    assert json.loads(path.read_text()) == {"accuracy": 0.5, "epochs": 3, "curve": [1.0, 2.0]}
    with pytest.raises(TypeError, match="save_json: cannot write object"):
        save_json(tmp_path / "bad.json", {"x": object()})
    assert sorted(os.listdir(tmp_path)) == ["metrics.json"]


def test_settings_for_json_turns_paths_into_strings(tmp_path):
    args = argparse.Namespace(out=tmp_path / "run", data_root=None, lr=0.01, seed=3)
    settings = settings_for_json(args)
    assert settings == {"out": str(tmp_path / "run"), "data_root": None, "lr": 0.01, "seed": 3}
    assert json.loads(save_json(tmp_path / "s.json", settings).read_text()) == settings
