"""Batch normalisation's fast path: Numba kernels that make one or two passes over each channel.

The lesson is ``minidl.ops.normalization.BatchNorm`` (plain NumPy, the maths of the docstrings
there); these kernels compute the same numbers and are its fast twin (tests/test_nn_normalization.py
compares them). Written with NumPy, a training step's batch norm walks the whole tensor about six
times forward (mean, variance's own mean and squares, x - mean, x_hat, * weight, + bias) and again
six backward, each walk allocating a tensor-sized temporary. Here each kernel takes one channel at
a time, on Numba's threads (channels in parallel), and walks that channel's N x M values, which
stay in the core's cache between the walks (256 kB for the largest UNet layer of the example: 16
images x 64 x 64 float32):

    channel_statistics:   mean and biased variance (sums of shifted values, squares)  1 walk, no output
    normalize:            y = x * a + b with a = w / sigma, b = bias - mean * a       1 walk
    normalize_backward:   sums of g and g * x_hat, then dL/dx                         2 walks

Sums are accumulated in float64 whatever the input dtype. Arrays are (N, C, M): the op reshapes
(N, C, H, W) without copying. The outputs are allocated by the caller with NumPy, which asks the
kernel for 2 MB pages for arrays of 4 MB and more (Numba's own allocations do not): fewer page
faults on fresh memory (benchmarks/README.md).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# Let LLVM reorder the sums into SIMD lanes (5-10x faster channel sums than a strict left-to-right
# float64 chain); no other fast-math licence, so NaN and inf still propagate as in NumPy.
REORDER_SUMS = {"reassoc", "contract"}


@njit(cache=True, parallel=True, fastmath=REORDER_SUMS)
def channel_statistics(x):
    """Per-channel mean and biased variance of x (N, C, M) over N and M -> (mean (C,), var (C,)) float64.

    One walk per channel, summing d = x - K and d^2 for a shift K = the channel's first value:
    mean = K + S1/n, var = S2/n - (S1/n)^2. Without the shift (E[x^2] - E[x]^2) the two terms cancel
    when the mean is large against the spread, and their difference loses digits; K lies inside the
    data, so |S1/n| stays within a few standard deviations (``shifted data`` in Chan, Golub & LeVeque,
    "Algorithms for computing the sample variance", 1983). In float64 it matches NumPy's two-pass
    ``x.var()`` to ~1e-14 (tests); 1.3-1.8x faster than walking twice (benchmarks/README.md).
    """
    n_batch, channels, size = x.shape
    count = n_batch * size
    mean = np.empty(channels, dtype=np.float64)
    var = np.empty(channels, dtype=np.float64)
    for c in prange(channels):
        shift = np.float64(x[0, c, 0])  # the op asks only with at least 2 values per channel
        total = 0.0
        squares = 0.0
        for n in range(n_batch):
            for i in range(size):
                d = np.float64(x[n, c, i]) - shift
                total += d
                squares += d * d
        mu = total / count
        mean[c] = shift + mu
        var[c] = max(squares / count - mu * mu, 0.0)  # rounding may leave a constant channel at -1e-17
    return mean, var


@njit(cache=True, parallel=True, fastmath=REORDER_SUMS)
def normalize(x, mean, inv_std, weight, bias, y):
    """y = (x - mean) * inv_std * weight + bias per channel:  x (N, C, M), the others (C,); writes y (like x)."""
    n_batch, channels, size = x.shape
    for c in prange(channels):
        scale = inv_std[c] * weight[c]
        shift = bias[c] - mean[c] * scale
        for n in range(n_batch):
            for i in range(size):
                y[n, c, i] = x[n, c, i] * scale + shift
    return y


@njit(cache=True, parallel=True, fastmath=REORDER_SUMS)
def normalize_backward(g, x, mean, inv_std, weight, batch_stats, grad_x):
    """Gradients of ``normalize`` for g = dL/dy (N, C, M) -> (dL/dx written into grad_x (like g), dL/dweight (C,),
    dL/dbias (C,)).

        dL/dbias = sum(g),  dL/dweight = sum(g * x_hat),  x_hat = (x - mean) * inv_std
        dL/dx = weight * inv_std * (g - (sum(g) + x_hat * sum(g * x_hat)) / count)   (batch_stats)
        dL/dx = weight * inv_std * g                                                 (running statistics)
    """
    n_batch, channels, size = g.shape
    count = n_batch * size
    grad_weight = np.empty(channels, dtype=g.dtype)
    grad_bias = np.empty(channels, dtype=g.dtype)
    for c in prange(channels):
        mu, sigma_inv = mean[c], inv_std[c]
        sum_g = 0.0
        sum_g_x_hat = 0.0
        for n in range(n_batch):
            for i in range(size):
                sum_g += g[n, c, i]
                sum_g_x_hat += g[n, c, i] * (x[n, c, i] - mu)
        sum_g_x_hat *= sigma_inv
        grad_weight[c] = sum_g_x_hat
        grad_bias[c] = sum_g
        scale = weight[c] * sigma_inv
        if batch_stats:
            # dL/dx = scale * g - scale / count * (sum_g + x_hat * sum_g_x_hat), x_hat linear in x
            mean_g = sum_g / count
            slope = sum_g_x_hat * sigma_inv / count
            for n in range(n_batch):
                for i in range(size):
                    grad_x[n, c, i] = scale * (g[n, c, i] - mean_g - (x[n, c, i] - mu) * slope)
        else:
            for n in range(n_batch):
                for i in range(size):
                    grad_x[n, c, i] = scale * g[n, c, i]
    return grad_x, grad_weight, grad_bias
