"""Checking ``dim`` arguments: negative dims count from the end, as in PyTorch."""

from __future__ import annotations

import numbers


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
