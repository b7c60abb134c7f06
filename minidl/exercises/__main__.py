"""Command line of the exercises: ``python -m minidl.exercises {list,start,check} ...`` (see ``--help``)."""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

DEFAULT_DIR = Path("minidl_exercises")
TEMPLATES = Path(__file__).parent / "templates"
SOLVED_FILE = ".solved.json"  # name -> sha256 of the file that passed, so an edit after passing shows


def _catalogue():
    from . import catalogue

    return catalogue


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _solved(folder: Path) -> dict:
    path = folder / SOLVED_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def _exercise(name: str):
    catalogue = _catalogue()
    try:
        return catalogue.find(name)
    except KeyError:
        names = ", ".join(e.name for e in catalogue.EXERCISES)
        raise SystemExit(f"no exercise named {name!r}; the exercises are: {names}") from None


def list_exercises(folder: Path) -> None:
    solved = _solved(folder)
    print(f"exercises (your files in {folder}/):")
    for number, exercise in enumerate(_catalogue().EXERCISES, 1):
        path = folder / f"{exercise.name}.py"
        if not path.exists():
            status = "-"
        elif solved.get(exercise.name) == _digest(path):
            status = "solved"
        elif exercise.name in solved:
            status = "edited"  # passed once, changed since: check again
        else:
            status = "started"
        print(f"{number:3d}  {exercise.name:22s} {status:8s} {exercise.teaches}")
    print("start one with: python -m minidl.exercises start NAME")


def start(name: str, folder: Path) -> int:
    exercise = _exercise(name)
    path = folder / f"{exercise.name}.py"
    if path.exists():
        print(f"{path} already exists (your work): not overwriting it. Delete it to start again.")
        return 1
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TEMPLATES / f"{exercise.name}.py", path)
    print(f"wrote {path}: implement {', '.join(exercise.functions)}, then run\n"
          f"  python -m minidl.exercises check {exercise.name}{_dir_flag(folder)}")
    return 0


def _dir_flag(folder: Path) -> str:
    return "" if folder == DEFAULT_DIR else f" --dir {folder}"


def load(path: Path, functions):
    """Import the learner's file as a module (a fresh one each time) and check it defines ``functions``."""
    spec = importlib.util.spec_from_file_location(f"minidl_exercise_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    missing = [f for f in functions if not callable(getattr(module, f, None))]
    if missing:
        raise SystemExit(f"{path} does not define {', '.join(missing)}")
    return module


def check(name: str, folder: Path, examples: int) -> int:
    from .checking import ExerciseFailure, NotImplementedYet, run_checks

    exercise = _exercise(name)
    path = folder / f"{exercise.name}.py"
    if not path.exists():
        print(f"{path} does not exist; create it with: python -m minidl.exercises start {exercise.name}{_dir_flag(folder)}")
        return 1
    module = load(path, exercise.functions)
    try:
        count = run_checks(lambda case: exercise.check_case(module, case), exercise.first_cases(),
                           exercise.strategy, examples)
    except NotImplementedYet as error:
        print(f"{exercise.name}: {error}. Edit {path}.")
        return 1
    except ExerciseFailure as error:
        print(f"{exercise.name}: FAILED\n  {error}")
        return 1
    solved = _solved(folder)
    solved[exercise.name] = _digest(path)
    (folder / SOLVED_FILE).write_text(json.dumps(solved, indent=1, sort_keys=True))
    print(f"{exercise.name}: passed ({count} cases: {exercise.teaches})")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minidl.exercises", description=(
        "Exercises that walk minidl's own path: write a piece of the library, check it like the library is."))
    commands = parser.add_subparsers(dest="command", required=True)
    for command, text in (("list", "show the exercises in order, with what each teaches and your status"),
                          ("start", "copy an exercise's template into your folder (never overwrites)"),
                          ("check", "check your implementation of an exercise")):
        sub = commands.add_parser(command, help=text, description=text)
        if command != "list":
            sub.add_argument("name", help="the exercise's name (see list)")
        sub.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="your exercises folder (default: %(default)s)")
        if command == "check":
            sub.add_argument("--examples", type=int, default=100,
                             help="cases drawn by hypothesis after the hand-picked ones (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.command == "list":
        list_exercises(args.dir)
        return 0
    if args.command == "start":
        return start(args.name, args.dir)
    if args.examples < 0:
        parser.error(f"--examples must be >= 0, got {args.examples}")
    return check(args.name, args.dir, args.examples)


def run() -> int:
    """``main`` for the command line: output piped into a reader that stops early (``| head``) ends the
    command quietly, as for other command-line tools, instead of with a BrokenPipeError traceback."""
    try:
        status = main()
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        # Python flushes stdout again at exit: point it at /dev/null so that flush cannot fail too
        # (the recipe of Python's documentation, "Note on SIGPIPE" in the signal module)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(run())
