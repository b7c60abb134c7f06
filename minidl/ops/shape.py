"""Ops that move elements without changing them: reshape, permute, indexing, padding, cat, stack.

Their backward moves the gradient back the same way: reshape it back, permute by the inverse
permutation, scatter-add into the indexed positions, crop the padding, split the concatenation.
"""

from __future__ import annotations

import numpy as np

from ..tensor import Function, Tensor
from .arguments import normalize_dim


class Reshape(Function):
    """y = x viewed with a new shape;  dL/dx = g reshaped to x's shape"""

    def forward(self, x, shape):
        self.shape = x.shape
        return x.reshape(shape)

    def backward(self, g):
        return g.reshape(self.shape)


def reshape(x: Tensor, *shape) -> Tensor:
    """``reshape(x, 2, -1)`` or ``reshape(x, (2, -1))``; one dimension may be -1."""
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    try:
        np.empty(x.shape, dtype=np.bool_).reshape(shape)  # let NumPy validate without copying data
    except ValueError:
        raise ValueError(f"reshape: cannot view a tensor of shape {x.shape} ({x.size} elements) "
                         f"as shape {shape}") from None
    return Reshape.apply(x, shape=shape)


def flatten(x: Tensor, start_dim=0, end_dim=-1) -> Tensor:
    """Merge dims start_dim..end_dim into one, as ``torch.flatten``."""
    if x.ndim == 0:
        return reshape(x, 1)
    start, end = normalize_dim(start_dim, x.ndim, "flatten"), normalize_dim(end_dim, x.ndim, "flatten")
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for shape {x.shape}")
    return reshape(x, *x.shape[:start], -1, *x.shape[end + 1:])


class Permute(Function):
    """y = x with axes reordered by ``dims``;  dL/dx = g permuted by the inverse order"""

    def forward(self, x, dims):
        self.inverse = tuple(np.argsort(dims))
        return np.transpose(x, dims)

    def backward(self, g):
        return np.transpose(g, self.inverse)


def permute(x: Tensor, *dims) -> Tensor:
    dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
    axes = tuple(normalize_dim(d, x.ndim, "permute") for d in dims)
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"permute: dims {dims} are not a permutation of the {x.ndim} dims of shape {x.shape}")
    return Permute.apply(x, dims=axes)


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    """Swap two dims (``x.T`` reverses all of them)."""
    dims = list(range(x.ndim))
    a, b = normalize_dim(dim0, x.ndim, "transpose"), normalize_dim(dim1, x.ndim, "transpose")
    dims[a], dims[b] = b, a
    return permute(x, *dims)


class GetItem(Function):
    """y = x[index];  dL/dx = zeros with g scatter-added at index (repeated indices accumulate)"""

    def forward(self, x, index):
        self.shape, self.index = x.shape, index
        parts = index if isinstance(index, tuple) else (index,)
        self.may_repeat = any(isinstance(i, (np.ndarray, list)) for i in parts)  # integer/boolean arrays
        return np.array(x[index])  # a copy, so later in-place edits of x cannot change y

    def backward(self, g):
        grad = np.zeros(self.shape, dtype=g.dtype)
        if self.may_repeat:
            np.add.at(grad, self.index, g)  # plain `grad[index] = g` would keep one of repeated indices
        else:
            grad[self.index] = g  # ints and slices select each element at most once
        return grad


def getitem(x: Tensor, index) -> Tensor:
    """Basic (ints, slices, None, Ellipsis) and integer/boolean-array indexing, as NumPy and PyTorch."""
    index = tuple(_index_part(i) for i in index) if isinstance(index, tuple) else _index_part(index)
    try:
        np.empty(x.shape, dtype=np.bool_)[index]
    except IndexError as error:
        raise IndexError(f"getitem: index {index!r} is invalid for shape {x.shape}: {error}") from None
    return GetItem.apply(x, index=index)


def _index_part(i):
    return i.data if isinstance(i, Tensor) else i


class Pad(Function):
    """y = x with ``widths`` of constant ``value`` around each axis;  dL/dx = g with the border cropped"""

    def forward(self, x, widths, value):
        self.crop = tuple(slice(before, n + before) for (before, _), n in zip(widths, x.shape))
        return np.pad(x, widths, constant_values=value)

    def backward(self, g):
        return g[self.crop].copy()


def pad(x: Tensor, pad: tuple, value: float = 0.0) -> Tensor:
    """Constant padding, PyTorch's order: ``pad=(left, right, top, bottom, ...)`` from the last dim back."""
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: expected an even number of widths for at most {x.ndim} dims, got {pad}")
    if any(p < 0 for p in pad):
        raise ValueError(f"pad: negative widths (cropping) are not supported, got {pad}")
    widths = [(0, 0)] * x.ndim
    for k in range(len(pad) // 2):
        widths[x.ndim - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    return Pad.apply(x, widths=tuple(widths), value=value)


class Cat(Function):
    """y = [x_1, ..., x_k] joined along ``dim``;  dL/dx_i = the slice of g where x_i sits"""

    def forward(self, *xs, dim):
        self.dim = dim
        self.bounds = np.cumsum([0] + [x.shape[dim] for x in xs])
        return np.concatenate(xs, axis=dim)

    def backward(self, g):
        return tuple(np.split(g, self.bounds[1:-1], axis=self.dim))


def _check_same(op: str, tensors, dim: int, allow_dim_differs: bool) -> None:
    first = tensors[0]
    for i, t in enumerate(tensors):
        if t.dtype != first.dtype:
            raise ValueError(f"{op}: tensor {i} has dtype {t.dtype} but tensor 0 has {first.dtype}")
        if t.ndim != first.ndim or any(a != b for k, (a, b) in enumerate(zip(t.shape, first.shape))
                                       if not (allow_dim_differs and k == dim)):
            which = f"all dims except dim {dim}" if allow_dim_differs else "all dims"
            raise ValueError(f"{op}: shapes must match in {which}; tensor 0 has shape {first.shape}, "
                             f"tensor {i} has shape {t.shape}")


def cat(tensors, dim: int = 0) -> Tensor:
    """Concatenate along an existing dim (UNet joins skip and upsampled features on dim 1)."""
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    dim = normalize_dim(dim, tensors[0].ndim, "cat")
    _check_same("cat", tensors, dim, allow_dim_differs=True)
    return Cat.apply(*tensors, dim=dim)


def stack(tensors, dim: int = 0) -> Tensor:
    """Join along a new dim: ``stack`` = unsqueeze each, then ``cat``."""
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    _check_same("stack", tensors, 0, allow_dim_differs=False)
    dim = normalize_dim(dim, tensors[0].ndim + 1, "stack")
    return cat([reshape(t, *t.shape[:dim], 1, *t.shape[dim:]) for t in tensors], dim=dim)
