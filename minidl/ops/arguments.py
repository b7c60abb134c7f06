"""Checking op arguments: ``dim`` (negative dims count from the end, as in PyTorch), (h, w) pairs, dtypes."""

from __future__ import annotations

import numbers

import numpy as np


def positive_sizes(layer: str, **sizes) -> None:
    """Raise a ValueError naming ``layer`` unless every size (channels, features) is an integer >= 1."""
    bad = {name: value for name, value in sizes.items() if not (isinstance(value, numbers.Integral) and value >= 1)}
    if bad:
        raise ValueError(f"{layer}: {' and '.join(sizes)} must be integers >= 1, got "
                         + ", ".join(f"{name}={value!r}" for name, value in sizes.items()))


def require_floating(x, op: str) -> None:
    """Raise a TypeError naming ``op`` if the tensor ``x`` is not floating point (PyTorch refuses too)."""
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{op}: needs a floating-point tensor, got dtype {x.dtype} (shape {x.shape}); "
                        f"convert it with .float() first")


def normalize_dim(dim: int, ndim: int, op: str) -> int:
    """``dim`` in [-ndim, ndim) as a non-negative axis; anything else is a ValueError naming ``op``."""
    if not isinstance(dim, numbers.Integral) or not -ndim <= dim < ndim:
        raise ValueError(f"{op}: dim {dim!r} is out of range for a tensor with {ndim} dims")
    return int(dim) % ndim


def normalize_dims(dim, ndim: int, op: str) -> tuple:
    """``dim`` (None = all, an int, or a tuple) as a sorted tuple of non-negative axes.

    A 0-d tensor accepts dim 0 and -1 and reduces over nothing, as in PyTorch.
    """
    dims = range(ndim) if dim is None else (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
    axes = {normalize_dim(d, ndim or 1, op) for d in dims}
    return tuple(sorted(axes)) if ndim else ()


def pair(op: str, name: str, value, minimum: int) -> tuple:
    """An int or a pair of ints (PyTorch's ``_pair``) -> (h, w), each at least ``minimum``."""
    def is_int(v):
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    both = (value, value) if is_int(value) else value
    if not (isinstance(both, (tuple, list)) and len(both) == 2 and all(is_int(v) for v in both)):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if min(both) < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value!r}")
    return int(both[0]), int(both[1])
