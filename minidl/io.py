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

    meta/settings      JSON text of the run's settings (e.g. its command-line flags), if given

Saving all of these is what makes a resumed run continue exactly as if it had never stopped.

A run folder (``run_folder``) is held by one run at a time: it is checked before anything trains
(a folder, writable, not already holding a run unless resuming or overwriting), locked with an
OS-level lock for as long as the run writes there, cleared of the temporary files a killed write
left behind, and its ``metrics.json`` says ``interrupted`` or ``failed`` when a run stops early.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import threading
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

try:
    import fcntl  # POSIX only; elsewhere run folders are checked but not locked
except ImportError:  # pragma: no cover - Windows
    fcntl = None

CHECKPOINT_FORMAT = "minidl-checkpoint-1"
CHECKPOINT_NAME = "checkpoint.npz"
METRICS_NAME = "metrics.json"


def atomic_write(path, write: Callable[[BinaryIO], None]) -> Path:
    """Create or replace the file ``path`` with what ``write(file)`` writes, all or nothing.

    ``write`` receives a binary file opened in ``path``'s folder. If it raises, the temporary
    file is deleted, ``path`` keeps its previous content (or stays absent), and the error propagates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name, opened with "x" (fail if it exists) and the usual permissions (umask), unlike mkstemp's 0600.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    file = open(temporary, "xb")  # an unwritable folder fails here, with nothing to clean up
    try:
        with file:
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
    settings: dict | None = None


def save_checkpoint(path, model, optimizer=None, scheduler=None, *, epoch: int,
                    rngs: Mapping[str, np.random.Generator] | None = None,
                    history: Mapping[str, np.ndarray] | None = None, settings: Mapping | None = None) -> Path:
    """Save everything needed to resume training into one ``.npz`` file, atomically.

    ``model``, ``optimizer`` and ``scheduler`` are saved through their ``state_dict()``;
    ``epoch`` is the number of completed epochs; ``rngs`` maps a name to each random generator
    the run draws from (data shuffling, dropout); ``history`` maps column names to per-epoch values;
    ``settings`` (JSON-able, e.g. the command-line flags) lets a resumed run check it continues the same run.
    """
    arrays = {"meta/format": np.array(CHECKPOINT_FORMAT), "meta/epoch": np.array(epoch, dtype=np.int64)}
    sections = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    for section, owner in sections.items():
        if owner is not None:
            arrays.update(_prefixed(section, owner.state_dict()))
    for name, generator in (rngs or {}).items():
        arrays[f"rng/{name}"] = np.array(json.dumps(generator.bit_generator.state))
    arrays.update(_prefixed("history", history or {}))
    if settings is not None:
        arrays["meta/settings"] = np.array(json.dumps(settings, default=_json_default))
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
    settings = json.loads(str(arrays["meta/settings"])) if "meta/settings" in arrays else None
    return Checkpoint(epoch=int(arrays["meta/epoch"]), history=_section(arrays, "history"), settings=settings)


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


# ----------------------------------------------------------------------------------------- run folders
class RunFolderError(Exception):
    """A run folder cannot be used as asked: it holds another run, another process writes there, ..."""


_held_run_folders: set[Path] = set()  # the run folders this process holds (resolved paths)


@contextlib.contextmanager
def run_folder(path, *, resume: bool = False, overwrite: bool = False,
               ways_on: tuple[str | None, str] = ("resume=True", "overwrite=True")) -> Iterator[Path]:
    """Hold the run folder ``path`` while the ``with`` block writes into it; yields it as a Path.

    Before the block, in this order (each failure raises before anything is written):

    - the folder is created if needed; a path that is a file, a folder that cannot be written
      (the original OSError is raised) or a ``checkpoint.npz`` / ``metrics.json`` that is not a file fail;
    - the folder is locked (``flock`` on the folder itself, released when the block ends or the
      process dies): a second run into the same folder raises RunFolderError instead of mixing files;
    - temporary files of killed atomic writes (``.*.tmp``) are removed;
    - a folder that holds a run (a checkpoint, or ``metrics.json`` with status ``ok``) is refused
      unless ``resume`` (a checkpoint must then exist) or ``overwrite`` (its checkpoint and
      ``metrics.json`` are deleted). ``ways_on`` names these two options in the message (None: the
      caller cannot resume).

    If the block stops with an exception after it wrote ``metrics.json``, that file's ``status``
    becomes ``interrupted`` (Ctrl-C, or SIGTERM, which raises KeyboardInterrupt inside the block)
    or ``failed``, with the ``reason``. Nested use on a folder this process already holds (an
    example around ``fit``) yields it without checking again.
    """
    path = Path(path)
    key = path.resolve()
    if key in _held_run_folders:
        yield path
        return
    if resume and overwrite:
        raise ValueError(f"run_folder: {ways_on[0]} and {ways_on[1]} exclude each other")
    lock = _prepare_run_folder(path)
    _held_run_folders.add(key)
    try:
        _remove_stale_temporary_files(path)
        _check_previous_run(path, resume, overwrite, ways_on)
        metrics_before = _identity(path / METRICS_NAME)
        with _sigterm_raises_keyboard_interrupt():
            try:
                yield path
            except BaseException as error:
                if _identity(path / METRICS_NAME) != metrics_before and isinstance(error, (Exception,
                                                                                            KeyboardInterrupt)):
                    _record_stop(path / METRICS_NAME, error)
                raise
    finally:
        _held_run_folders.discard(key)
        if lock is not None:
            os.close(lock)  # closing the descriptor releases the flock


def _prepare_run_folder(path: Path) -> int | None:
    """Create and check the folder, then take its lock; returns the locked descriptor."""
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"run folder {path} is not a folder (it is a file)")
    path.mkdir(parents=True, exist_ok=True)
    for name in (CHECKPOINT_NAME, METRICS_NAME):
        if (path / name).exists() and not (path / name).is_file():
            raise IsADirectoryError(f"run folder {path}: {path / name} is not a file, so it cannot be written")
    probe = path / f".write-test.{os.getpid()}.tmp"
    with open(probe, "xb"):  # raises the original PermissionError / OSError of an unwritable folder
        pass
    probe.unlink()
    if fcntl is None:
        return None
    descriptor = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise RunFolderError(f"run folder {path} is in use: another run is writing into it right now; "
                             f"wait for it to end or choose another folder") from None
    return descriptor


def _remove_stale_temporary_files(path: Path) -> None:
    """Delete the ``.*.tmp`` files that ``atomic_write`` leaves when its process is killed mid-write."""
    for stale in path.glob(".*.tmp"):
        stale.unlink(missing_ok=True)


def _check_previous_run(path: Path, resume: bool, overwrite: bool, ways_on: tuple[str, str]) -> None:
    checkpoint, metrics = path / CHECKPOINT_NAME, path / METRICS_NAME
    if resume:
        if not checkpoint.is_file():
            raise FileNotFoundError(f"run folder {path}: no checkpoint file at {checkpoint} to resume from")
        return
    status = _read_status(metrics)
    if not checkpoint.exists() and status != "ok":
        return  # empty, or only the traces of a run that stopped before its first checkpoint
    if overwrite:
        checkpoint.unlink(missing_ok=True)
        metrics.unlink(missing_ok=True)
        return
    epoch = _checkpoint_epoch(checkpoint)
    held = ", ".join(filter(None, [None if status is None else f"status {status}",
                                   None if epoch is None else f"a checkpoint after epoch {epoch}"]))
    continue_it = "" if ways_on[0] is None else f"continue it with {ways_on[0]} or "
    raise RunFolderError(f"run folder {path} already holds a run ({held}); {continue_it}replace it with "
                         f"{ways_on[1]}, or choose another folder")


def _read_status(metrics: Path) -> str | None:
    try:
        return str(json.loads(metrics.read_text()).get("status"))
    except (OSError, ValueError, AttributeError):
        return None


def _checkpoint_epoch(checkpoint: Path) -> int | None:
    try:
        with np.load(checkpoint, allow_pickle=False) as archive:
            return int(archive["meta/epoch"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def _identity(path: Path) -> tuple | None:
    """(inode, modification time) of a file, or None: changes whenever ``atomic_write`` replaces it."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def _record_stop(metrics: Path, error: BaseException) -> None:
    """Set ``status`` (interrupted or failed) and ``reason`` in the run's metrics.json, keeping the rest."""
    try:
        content = json.loads(metrics.read_text())
    except (OSError, ValueError):
        content = {}
    if isinstance(error, KeyboardInterrupt):
        status, reason = "interrupted", f"interrupted by {error.args[0] if error.args else 'Ctrl-C'}"
    else:
        status, reason = "failed", f"{type(error).__name__}: {error}"
    save_json(metrics, {**content, "status": status, "reason": reason})


@contextlib.contextmanager
def _sigterm_raises_keyboard_interrupt():
    """Turn SIGTERM (``kill``, a scheduler's stop) into KeyboardInterrupt("SIGTERM") inside the block,
    so that the run stops the way Ctrl-C stops it; only in the main thread and if SIGTERM had its default."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
