"""How an exercise is checked: the library's own kinds of test, reporting for a learner.

A check runs the learner's function on a few hand-picked cases, then on cases drawn by hypothesis
(shapes, strides, paddings, seeds; shrunk to the smallest failing case), and compares with

- the library's implementation (``expect_close``, ``expect_equal``: the first element that differs),
- central differences in float64 against a random upstream gradient (``check_backward``, which
  wraps the learner's backward in a ``Function`` and runs ``minidl.gradcheck`` on it),
- exact identities (adjoints, CAM = logit, completeness), written in each exercise's check.

Every failure is an ``ExerciseFailure`` whose message says which case (the shapes and options),
which element, expected vs got, and a hint; the CLI prints it instead of a traceback.
"""

from __future__ import annotations

import traceback
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, Verbosity, given, settings

from ..gradcheck import worst_gradient_error
from ..tensor import Function, Tensor


class ExerciseFailure(AssertionError):
    """A failed check; ``str()`` is the message shown to the learner."""


class NotImplementedYet(ExerciseFailure):
    """The learner's function still raises NotImplementedError."""


def describe(case: dict) -> str:
    """``x (2, 3, 5, 4), stride 2`` : arrays by shape (and dtype when not float64), the rest by value."""
    parts = []
    for name, value in case.items():
        if isinstance(value, np.ndarray):
            dtype = "" if value.dtype == np.float64 else f" {value.dtype}"
            parts.append(f"{name} {value.shape}{dtype}")
        elif not name.startswith("_"):
            parts.append(f"{name} {value}" if isinstance(value, str) else f"{name} {value!r}")
    return ", ".join(parts)


def fail(message: str, case: dict, hint: str = "") -> None:
    text = f"{message}\n  case: {describe(case)}"
    raise ExerciseFailure(text + (f"\n  hint: {hint}" if hint else ""))


def call(fn, case: dict, *args):
    """``fn(*args)`` for a learner's function: exceptions become an ``ExerciseFailure`` naming the
    line of the learner's file where it happened, and an array argument changed in place fails."""
    before = [a.copy() if isinstance(a, np.ndarray) else None for a in args]
    try:
        result = fn(*args)
    except NotImplementedError:
        raise NotImplementedYet(f"{fn.__name__} is not implemented yet (it raises NotImplementedError)") from None
    except Exception as error:  # the learner's bug, reported as a message rather than a traceback
        where = [frame for frame in traceback.extract_tb(error.__traceback__)
                 if frame.filename == fn.__code__.co_filename]
        line = f"\n  at {Path(where[-1].filename).name}:{where[-1].lineno}: {where[-1].line}" if where else ""
        fail(f"{fn.__name__} raised {type(error).__name__}: {error}{line}", case)
    for index, (saved, arg) in enumerate(zip(before, args)):
        if saved is not None and not np.array_equal(saved, arg, equal_nan=True):
            fail(f"{fn.__name__} modified its argument {index + 1} in place", case,
                 "work on new arrays (x = x + 1, np.pad, .copy()), never write into an input")
    return result


def as_result(name: str, value, case: dict) -> np.ndarray:
    """The learner's return value as an array (a Tensor's data), or a failure if it is not one."""
    value = value.data if isinstance(value, Tensor) else value
    if not isinstance(value, (np.ndarray, np.generic, float, int)):
        fail(f"{name} should be a NumPy array, got {type(value).__name__}", case)
    return np.asarray(value)


def unpack(name: str, result, count: int, case: dict) -> tuple:
    if not isinstance(result, (tuple, list)) or len(result) != count:
        fail(f"{name} should return a tuple of {count} arrays, got {type(result).__name__}"
             f"{'' if not isinstance(result, (tuple, list)) else f' of length {len(result)}'}", case)
    return tuple(result)


def expect_shape(name: str, got, shape: tuple, case: dict, hint: str = "") -> np.ndarray:
    got = as_result(name, got, case)
    if got.shape != tuple(shape):
        fail(f"{name} has shape {got.shape}, expected {tuple(shape)}", case, hint)
    return got


def expect_close(name: str, got, expected, case: dict, hint: str = "", atol=1e-9, rtol=1e-7) -> None:
    """Shape, then the worst element: ``|got - expected| <= atol + rtol |expected|`` everywhere."""
    expected = np.asarray(expected)
    got = expect_shape(name, got, expected.shape, case, hint)
    if got.size == 0:
        return
    if not np.issubdtype(got.dtype, np.number) or np.iscomplexobj(got):
        fail(f"{name} has dtype {got.dtype}, expected real numbers", case, hint)
    excess = np.abs(got - expected) - rtol * np.abs(expected)
    excess = np.where(np.isnan(got), np.inf, excess)
    where = np.unravel_index(int(np.argmax(excess)), got.shape)
    if excess[where] > atol:
        element = f"[{', '.join(map(str, where))}]" if got.ndim else ""
        fail(f"{name}{element}: expected {expected[where]:.8g}, got {got[where]:.8g}", case, hint)


def expect_equal(name: str, got, expected, case: dict, hint: str = "") -> None:
    """Exactly equal (integer indices, offsets): the first element that differs."""
    expected = np.asarray(expected)
    got = expect_shape(name, got, expected.shape, case, hint)
    differs = np.argwhere(got != expected)
    if len(differs):
        where = tuple(int(k) for k in differs[0])
        fail(f"{name}[{', '.join(map(str, where))}]: expected {expected[where]}, got {got[where]}", case, hint)


def check_backward(names, forward, backward, inputs, case: dict, hints: dict, atol=1e-7) -> None:
    """Central differences of ``forward`` (the library's) against the learner's ``backward``, in float64.

    names: the inputs' names (for messages);  forward(*arrays) -> y;  backward(arrays, g) -> one
    gradient per input (the learner's, called through ``call``); hints: input name -> hint.
    ``minidl.gradcheck`` draws the random upstream gradient g and reports the worst element.
    """

    class LearnerBackward(Function):
        def forward(self, *arrays):
            self.arrays = arrays
            return forward(*arrays)

        def backward(self, g):
            grads = backward(self.arrays, g)
            return tuple(expect_shape(f"d{name}", grad, array.shape, case, hints.get(name, "")).astype(np.float64)
                         for name, grad, array in zip(names, grads, self.arrays))

    report = worst_gradient_error(lambda *tensors: LearnerBackward.apply(*tensors), inputs)
    if report.max_error > atol:
        name, element = names[report.input_index], ", ".join(map(str, report.element))
        fail(f"d{name}[{element}]: central differences give {report.numeric:.8g}, your backward gives "
             f"{report.analytic:.8g} (for L = sum(g * y) with a random upstream gradient g)", case, hints.get(name, ""))


def run_checks(check_case, first_cases: list, strategy, max_examples: int) -> int:
    """``check_case`` on each hand-picked case, then on ``max_examples`` cases hypothesis draws
    from ``strategy`` (deterministic; the failure reported is the smallest hypothesis finds).
    Returns the number of cases checked."""
    if not first_cases:
        raise ValueError("run_checks: every exercise needs at least one hand-picked case")
    for case in first_cases:
        check_case(case)
    if max_examples < 1 or strategy is None:
        return len(first_cases)
    count = 0

    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=True,
              verbosity=Verbosity.quiet, report_multiple_bugs=False, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def drawn(case):
        nonlocal count
        count += 1
        check_case(case)

    drawn()
    return len(first_cases) + count
