"""Checkpoints and run files, written so that a crash never leaves a half-written file.

Atomic write: the bytes go to a temporary file in the target's folder, are flushed to disk, and
only then ``os.replace`` renames the temporary file onto the target. A rename inside one folder is
atomic, so anyone reading the target sees either the old complete file or the new complete one;
if writing fails, the temporary file is removed and the old file is untouched.

A checkpoint is one ``.npz`` file (a zip of ``.npy`` arrays, read back with
``np.load(..., allow_pickle=False)``, so loading never runs code). Its keys are flat names::

    meta/format        "minidl-checkpoint-1"   (tells a checkpoint from any other .npz)
    meta/epoch         number of completed epochs (0-d int64)
    model/<name>       model.state_dict()       parameters and buffers (BatchNorm running stats)
    optimizer/<name>   optimizer.state_dict()   e.g. momentum buffers, Adam moments, step count
    scheduler/<name>   scheduler.state_dict()   e.g. the scheduler's epoch counter
    rng/<name>         JSON text of a NumPy Generator's bit-generator state (shuffling, dropout)
    history/<column>   per-epoch numbers so far, one 1-d array per column (see minidl.train.History)

Saving all of these is what makes a resumed run continue exactly as if it had never stopped.
"""

from __future__ import annotations

import json
import os
import secrets
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

CHECKPOINT_FORMAT = "minidl-checkpoint-1"


def atomic_write(path, write: Callable[[BinaryIO], None]) -> Path:
    """Create or replace the file ``path`` with what ``write(file)`` writes, all or nothing.

    ``write`` receives a binary file opened in ``path``'s folder. If it raises, the temporary
    file is deleted, ``path`` keeps its previous content (or stays absent), and the error propagates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name, opened with "x" (fail if it exists) and the usual permissions (umask), unlike mkstemp's 0600.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "xb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def save_json(path, obj) -> Path:
    """Write ``obj`` as indented JSON, atomically; NumPy scalars and arrays become numbers and lists."""
    text = json.dumps(obj, indent=2, default=_json_default) + "\n"
    return atomic_write(path, lambda file: file.write(text.encode("utf-8")))


def settings_for_json(args) -> dict:
    """The settings of an argparse run (``vars(args)``) ready for ``save_json``: paths become strings."""
    return {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}


def _json_default(value):
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"save_json: cannot write {type(value).__name__} as JSON")


@dataclass
class Checkpoint:
    """What ``load_checkpoint`` hands back besides the states it loaded into the objects."""

    epoch: int
    history: dict[str, np.ndarray] = field(default_factory=dict)


def save_checkpoint(path, model, optimizer=None, scheduler=None, *, epoch: int,
                    rngs: Mapping[str, np.random.Generator] | None = None,
                    history: Mapping[str, np.ndarray] | None = None) -> Path:
    """Save everything needed to resume training into one ``.npz`` file, atomically.

    ``model``, ``optimizer`` and ``scheduler`` are saved through their ``state_dict()``;
    ``epoch`` is the number of completed epochs; ``rngs`` maps a name to each random generator
    the run draws from (data shuffling, dropout); ``history`` maps column names to per-epoch values.
    """
    arrays = {"meta/format": np.array(CHECKPOINT_FORMAT), "meta/epoch": np.array(epoch, dtype=np.int64)}
    sections = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    for section, owner in sections.items():
        if owner is not None:
            arrays.update(_prefixed(section, owner.state_dict()))
    for name, generator in (rngs or {}).items():
        arrays[f"rng/{name}"] = np.array(json.dumps(generator.bit_generator.state))
    arrays.update(_prefixed("history", history or {}))
    return atomic_write(path, lambda file: np.savez(file, **arrays))


def _prefixed(section: str, state: Mapping) -> dict[str, np.ndarray]:
    return {f"{section}/{name}": np.asarray(value) for name, value in state.items()}


def load_checkpoint(path, model, optimizer=None, scheduler=None, *,
                    rngs: Mapping[str, np.random.Generator] | None = None) -> Checkpoint:
    """Load a checkpoint written by ``save_checkpoint`` into the given objects (in place).

    Each object passed must find its state in the file, and the model's state must match its
    parameters exactly (``load_state_dict(strict=True)``); each generator in ``rngs`` gets its saved
    state back. Returns the completed epoch count and the saved history.
    Raises FileNotFoundError if there is no file, ValueError if it is not a minidl checkpoint or
    lacks a state that was asked for.
    """
    arrays = _read_checkpoint(path)
    sections = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    for section, owner in sections.items():
        if owner is None:
            continue
        state = _section(arrays, section)
        if not state:
            raise ValueError(f"load_checkpoint: {path} holds no {section} state (no '{section}/...' keys), "
                             f"but a {section} was passed to load it into")
        try:
            owner.load_state_dict(state)
        except (KeyError, ValueError) as error:
            raise ValueError(f"load_checkpoint: the {section} does not fit the checkpoint {path}: {error}") from error
    for name, generator in (rngs or {}).items():
        if f"rng/{name}" not in arrays:
            saved = sorted(_section(arrays, "rng"))
            raise ValueError(f"load_checkpoint: {path} has no random state 'rng/{name}' (it has {saved})")
        generator.bit_generator.state = json.loads(str(arrays[f"rng/{name}"]))
    return Checkpoint(epoch=int(arrays["meta/epoch"]), history=_section(arrays, "history"))


def _read_checkpoint(path) -> dict[str, np.ndarray]:
    """All arrays of the file, after checking it is a minidl checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_checkpoint: no checkpoint file at {path}")
    not_a_checkpoint = f"load_checkpoint: {path} is not a minidl checkpoint (an .npz written by save_checkpoint)"
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array (.npy), not an archive of named arrays")
        with archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{not_a_checkpoint}: {error}") from error
    if "meta/format" not in arrays or str(arrays["meta/format"]) != CHECKPOINT_FORMAT:
        raise ValueError(f"{not_a_checkpoint}: its 'meta/format' is missing or not '{CHECKPOINT_FORMAT}'")
    return arrays


def _section(arrays: Mapping[str, np.ndarray], section: str) -> dict[str, np.ndarray]:
    """The arrays under ``section/``, with that prefix removed from their names."""
    prefix = f"{section}/"
    return {name[len(prefix):]: value for name, value in arrays.items() if name.startswith(prefix)}
