"""Inverted dropout: zero random elements (or whole channels) in training, rescale the survivors.

Each element is kept with probability 1 - p and scaled by 1 / (1 - p), so E[y] = x and the layer is
the identity at evaluation time. Masks come from ``generator`` (a ``numpy.random.Generator``) or,
when it is None, from the global generator that ``minidl.manual_seed`` seeds.
"""

from __future__ import annotations

import numpy as np

from ..kernels import dropout as fast
from ..random import resolve_generator
from ..tensor import Function, Tensor


class Dropout(Function):
    """y = x * m,  m = keep / (1 - p) with keep ~ Bernoulli(1 - p);  dL/dx = g * m

    ``mask`` (m) broadcasts against x: the full shape of x for ``dropout``, (N, C, 1, 1) for
    ``dropout2d``, where one draw keeps or drops a whole feature map.
    """

    def forward(self, x, mask):
        self.mask = mask
        return x * mask

    def backward(self, g):
        return g * self.mask


class FusedDropout(Function):
    """The same op as ``Dropout`` for a mask of x's full shape, given as the boolean draws ``keep`` and
    the ``scale`` 1 / (1 - p) instead of m = keep * scale: ``minidl.kernels.dropout`` multiplies each
    value by scale or 0 on the fly, without building m. ``dropout`` uses it; tests check it against
    ``Dropout``.
    """

    def forward(self, x, keep, scale):
        self.keep, self.scale = keep.reshape(-1), x.dtype.type(scale)
        return fast.masked_scale(np.ascontiguousarray(x).reshape(-1), self.keep, self.scale).reshape(x.shape)

    def backward(self, g):
        return fast.masked_scale(np.ascontiguousarray(g).reshape(-1), self.keep, self.scale).reshape(g.shape)


def _dropout(name: str, x: Tensor, mask_shape: tuple, p: float, training: bool, generator) -> Tensor:
    if not 0 <= p <= 1:
        raise ValueError(f"{name}: p must be in [0, 1], got {p}")
    if not training or p == 0:
        return x
    # float32 uniforms (steps of 2^-24) are drawn about twice as fast as float64 ones, and the mask is
    # made in x's dtype directly: a UNet step spent ~10% of its time here with float64 draws and casts
    keep = resolve_generator(generator).random(mask_shape, dtype=np.float32) >= p
    scale = 0 if p == 1 else 1 / (1 - p)
    if mask_shape == x.shape and x.dtype in (np.float32, np.float64):
        return FusedDropout.apply(x, keep=keep, scale=scale)
    return Dropout.apply(x, mask=np.multiply(keep, scale, dtype=x.dtype))


def dropout(input: Tensor, p: float = 0.5, training: bool = True, *, generator=None) -> Tensor:
    """Zero each element with probability p and scale the rest by 1 / (1 - p); identity if not training."""
    return _dropout("dropout", input, input.shape, p, training, generator)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, *, generator=None) -> Tensor:
    """Zero whole channels of ``input`` (N, C, H, W) with probability p, scale the rest by 1 / (1 - p)."""
    if input.ndim != 4:
        raise ValueError(f"dropout2d: input must be (N, C, H, W), got shape {input.shape}")
    return _dropout("dropout2d", input, input.shape[:2] + (1, 1), p, training, generator)
