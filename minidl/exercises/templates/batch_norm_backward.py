"""Exercise 9: batch normalisation's backward with batch statistics (training mode).

Per channel c, over its M = N * H * W values:

    mean = average of x,  var = average of (x - mean)^2,  sigma = sqrt(var + eps)
    x_hat = (x - mean) / sigma,   y = weight[c] * x_hat + bias[c]

The mean and sigma depend on every x of the channel, so every value moves every output
(dx_hat_i / dx_j = (delta_ij - 1/M - x_hat_i * x_hat_j / M) / sigma). With means over the M values:

    dL/dbias[c]   = sum g
    dL/dweight[c] = sum g * x_hat
    dL/dx         = weight[c] / sigma * (g - mean(g) - x_hat * mean(g * x_hat))

Library: ``minidl/ops/normalization.py``.  Check:  python -m minidl.exercises check batch_norm_backward
"""

import numpy as np


def batch_norm_backward(x, weight, g, eps):
    """x, g = dL/dy: (N, C, H, W); weight: (C,); eps: float -> (dL/dx (N, C, H, W), dL/dweight (C,), dL/dbias (C,))."""
    raise NotImplementedError
