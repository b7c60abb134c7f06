"""Batch normalisation: normalise each channel with batch (training) or running (eval) statistics."""

from __future__ import annotations

import numpy as np

from ..kernels import batch_norm as fast
from ..tensor import Function, Tensor


class BatchNorm(Function):
    """Per-channel normalisation and affine map, over every axis but the channel axis 1.

    Forward, per channel c over its M = N * H * W (* ...) values:
        x_hat = (x - mu) / sigma,   sigma = sqrt(var + eps),   y = w * x_hat + b
    where (mu, var) are the batch mean and biased variance when ``batch_stats`` (training), or the
    running estimates otherwise.

    Backward, with g = dL/dy and means over the M values of the channel:
        dL/db = sum(g),   dL/dw = sum(g * x_hat)
        batch statistics (mu and sigma depend on x, so every value feeds every output):
            dL/dx = (w / sigma) * (g - mean(g) - x_hat * mean(g * x_hat))
        running statistics (constants):
            dL/dx = (w / sigma) * g
    The first follows from dx_hat_i/dx_j = (delta_ij - 1/M - x_hat_i x_hat_j / M) / sigma.
    """

    def forward(self, x, weight, bias, mean, var, eps, batch_stats):
        self.axes = (0,) + tuple(range(2, x.ndim))
        self.batch_stats = batch_stats
        channel = (1, -1) + (1,) * (x.ndim - 2)  # (C,) statistics broadcast as (1, C, 1, 1)
        self.inv_std = (1 / np.sqrt(var.astype(x.dtype, copy=False) + eps)).reshape(channel)
        self.x_hat = (x - mean.astype(x.dtype, copy=False).reshape(channel)) * self.inv_std
        self.weight = None if weight is None else weight.reshape(channel)
        y = self.x_hat if weight is None else self.x_hat * self.weight
        return y if bias is None else y + bias.reshape(channel)

    def backward(self, g):
        sum_g = g.sum(axis=self.axes, keepdims=True)
        sum_g_x_hat = (g * self.x_hat).sum(axis=self.axes, keepdims=True)
        scale = self.inv_std if self.weight is None else self.inv_std * self.weight
        if self.batch_stats:
            count = g.size // g.shape[1]
            grad_x = scale * (g - (sum_g + self.x_hat * sum_g_x_hat) / count)
        else:
            grad_x = scale * g
        return grad_x, sum_g_x_hat.reshape(-1), sum_g.reshape(-1)


class FusedBatchNorm(BatchNorm):
    """The same op as ``BatchNorm`` (same arguments, same maths), computed by the Numba kernels of
    ``minidl.kernels.batch_norm``: one walk over each channel forward and two backward instead of
    about six NumPy passes over the whole tensor each way, and x itself kept for the backward
    instead of a new x_hat. ``batch_norm`` uses it; tests check it against ``BatchNorm``.
    """

    def forward(self, x, weight, bias, mean, var, eps, batch_stats):
        self.batch_stats = batch_stats
        self.x = np.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1)  # (N, C, M), a view when contiguous
        self.mean = mean.astype(np.float64)
        self.inv_std = 1 / np.sqrt(var.astype(np.float64) + eps)
        channels = x.shape[1]
        self.weight = np.ones(channels) if weight is None else weight.astype(np.float64)
        bias = np.zeros(channels) if bias is None else bias.astype(np.float64)
        y = fast.normalize(self.x, self.mean, self.inv_std, self.weight, bias, np.empty_like(self.x))
        return y.reshape(x.shape)

    def backward(self, g):
        grad_x, grad_weight, grad_bias = fast.normalize_backward(
            np.ascontiguousarray(g).reshape(self.x.shape), self.x, self.mean, self.inv_std, self.weight,
            self.batch_stats, np.empty(self.x.shape, dtype=g.dtype))
        return grad_x.reshape(g.shape), grad_weight, grad_bias


def _array(x):
    return x.data if isinstance(x, Tensor) else x


def batch_norm(input: Tensor, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5) -> Tensor:
    """Batch normalisation of ``input`` (N, C, *) per channel, as ``torch.nn.functional.batch_norm``.

    training=True: normalise with the batch mean and biased variance over (N, *), and, when
        running stats are given, update them in place (they are not differentiated):
            running_mean = (1 - momentum) * running_mean + momentum * mean
            running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)
        (the running variance is the unbiased estimate, M = values per channel, as PyTorch).
    training=False: normalise with ``running_mean`` and ``running_var``.
    running_mean, running_var, weight, bias: (C,) Tensors or arrays, or None.
    The batch statistics (in float64) and the op run in the Numba kernels of
    ``minidl.kernels.batch_norm`` (``FusedBatchNorm``); ``BatchNorm`` is the same op in plain NumPy.
    """
    name = "batch_norm"
    if input.ndim < 2:
        raise ValueError(f"{name}: input must be (N, C, *), got shape {input.shape}")
    channels = input.shape[1]
    for arg, value in (("running_mean", running_mean), ("running_var", running_var),
                       ("weight", weight), ("bias", bias)):
        if value is not None and _array(value).shape != (channels,):
            raise ValueError(f"{name}: {arg} must have shape ({channels},) for input {input.shape}, "
                             f"got {_array(value).shape}")
    for arg, value in (("weight", weight), ("bias", bias)):
        if value is not None and _array(value).dtype != input.dtype:
            raise ValueError(f"{name}: {arg} has dtype {_array(value).dtype} but input has {input.dtype}")
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{name}: give both running_mean and running_var, or neither")
    if training:
        count = input.size // channels
        if count < 2:
            raise ValueError(f"{name}: training needs more than 1 value per channel, got input {input.shape}")
        data = np.ascontiguousarray(input.data)
        # the plain NumPy of this line: x = data.astype(np.float64); x.mean(axis=(0, 2, ...)), x.var(axis=(0, 2, ...))
        mean, var = fast.channel_statistics(data.reshape(data.shape[0], channels, -1))
        if running_mean is not None:
            mean_buffer, var_buffer = _array(running_mean), _array(running_var)
            mean_buffer *= 1 - momentum
            mean_buffer += momentum * mean
            var_buffer *= 1 - momentum
            var_buffer += momentum * var * (count / (count - 1))
    else:
        if running_mean is None:
            raise ValueError(f"{name}: eval mode (training=False) needs running_mean and running_var")
        mean, var = _array(running_mean), _array(running_var)
    return FusedBatchNorm.apply(input, weight, bias, mean=mean, var=var, eps=eps, batch_stats=training)
