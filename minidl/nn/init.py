"""Weight initialisation, in place, with PyTorch's names and formulas (``torch.nn.init``).

Every function fills ``tensor.data`` in place (keeping its dtype) and returns the tensor. Random
draws use ``generator`` (a ``numpy.random.Generator``) or, when None, the global generator seeded
by ``minidl.manual_seed``.

Fan-in and fan-out of a weight (out, in, *kernel) are ``in * prod(kernel)`` and
``out * prod(kernel)``; the variance-preserving schemes scale the spread by them:

    xavier (Glorot):  std = gain * sqrt(2 / (fan_in + fan_out)),  uniform bound = sqrt(3) * std
    kaiming (He):     std = gain / sqrt(fan),                       uniform bound = sqrt(3) * std
"""

from __future__ import annotations

import math

import numpy as np

from ..random import resolve_generator
from ..tensor import Tensor


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor that keeps activations' variance steady through ``nonlinearity``.

    linear/conv/sigmoid: 1,  tanh: 5/3,  relu: sqrt(2),  leaky_relu: sqrt(2 / (1 + slope^2))
    (slope = ``param``, default 0.01), selu: 3/4.
    """
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                        "conv_transpose3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def fan_in_and_fan_out(tensor: Tensor) -> tuple:
    """(fan_in, fan_out) = (size(1) * receptive field, size(0) * receptive field), as PyTorch.

    For a transposed-conv weight (C_in, C_out, kH, kW) this gives fan_in = C_out * kH * kW, which
    is what PyTorch uses too.
    """
    if tensor.ndim < 2:
        raise ValueError(f"fan_in_and_fan_out: needs a tensor with at least 2 dims, got shape {tensor.shape}")
    receptive_field = int(np.prod(tensor.shape[2:]))
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


def _fill(tensor: Tensor, values) -> Tensor:
    tensor.data[...] = values
    return tensor


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    """Fill with draws from U(a, b)."""
    return _fill(tensor, resolve_generator(generator).uniform(a, b, tensor.shape))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    """Fill with draws from N(mean, std^2)."""
    return _fill(tensor, resolve_generator(generator).normal(mean, std, tensor.shape))


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                  generator=None) -> Tensor:
    """Fill with N(mean, std^2) conditioned on [a, b] (absolute bounds, as PyTorch): draws outside are redrawn."""
    if not a < b:
        raise ValueError(f"trunc_normal_: need a < b, got a={a}, b={b}")
    rng = resolve_generator(generator)
    values = rng.normal(mean, std, tensor.shape)
    outside = (values < a) | (values > b)
    while outside.any():
        values[outside] = rng.normal(mean, std, int(outside.sum()))
        outside = (values < a) | (values > b)
    return _fill(tensor, values)


def constant_(tensor: Tensor, val: float) -> Tensor:
    return _fill(tensor, val)


def zeros_(tensor: Tensor) -> Tensor:
    return _fill(tensor, 0)


def ones_(tensor: Tensor) -> Tensor:
    return _fill(tensor, 1)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """U(-bound, bound) with bound = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def _kaiming_std(tensor: Tensor, a: float, mode: str, nonlinearity: str, name: str) -> float:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{name}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     generator=None) -> Tensor:
    """U(-bound, bound) with bound = sqrt(3) * gain / sqrt(fan); gain from ``nonlinearity`` and slope ``a``."""
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_uniform_")
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    generator=None) -> Tensor:
    """N(0, std^2) with std = gain / sqrt(fan); gain from ``nonlinearity`` and slope ``a``."""
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_normal_"), generator)


def default_layer_init_(weight: Tensor, bias: Tensor | None = None, generator=None) -> None:
    """PyTorch's default for Linear, Conv2d and ConvTranspose2d (their ``reset_parameters``).

    weight: kaiming_uniform_(a=sqrt(5)), i.e. U(-b, b) with b = sqrt(3) * sqrt(2 / (1 + 5)) / sqrt(fan_in)
            = 1 / sqrt(fan_in);
    bias:   U(-1 / sqrt(fan_in), 1 / sqrt(fan_in)).
    """
    kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    if bias is not None:
        fan_in, _ = fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        uniform_(bias, -bound, bound, generator)


def bilinear_kernel(size: int) -> np.ndarray:
    """(size, size) kernel that, used by a transposed conv with stride f and size 2f - f % 2, interpolates bilinearly.

    k[i, j] = (1 - |i - c| / f) * (1 - |j - c| / f),  f = ceil(size / 2),  c = f - 1 (odd size)
    or f - 1/2 (even size): the tent function of bilinear interpolation, sampled (as in FCN).
    """
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    tent = 1 - np.abs(np.arange(size) - center) / factor
    return np.outer(tent, tent)


def bilinear_(weight: Tensor) -> Tensor:
    """Initialise a ConvTranspose2d weight (C, C, k, k) to per-channel bilinear upsampling (FCN).

    weight[i, i] = bilinear_kernel(k) for every channel i, and 0 between different channels, so
    with stride f, kernel 2f - f % 2 and padding ceil((f - 1) / 2) the layer upsamples each class
    map by f like bilinear interpolation (exactly so away from the border).
    """
    if weight.ndim != 4 or weight.shape[0] != weight.shape[1] or weight.shape[2] != weight.shape[3]:
        raise ValueError(f"bilinear_: weight must be (C, C, k, k) (same channels in and out, square kernel), "
                         f"got shape {weight.shape}")
    channels = np.arange(weight.shape[0])
    zeros_(weight)
    weight.data[channels, channels] = bilinear_kernel(weight.shape[2])
    return weight
