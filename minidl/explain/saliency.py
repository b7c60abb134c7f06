"""Input-gradient explanations: saliency, gradient x input, SmoothGrad.

With y = logit of the target class and grad = d y / d x (same shape as the image x):

    saliency (Simonyan et al., 2014):   M[i, j] = max_c |grad[c, i, j]|     (channel reduction selectable)
    gradient x input (Shrikumar et al.): A = x * grad                        (first-order Taylor term)
    SmoothGrad (Smilkov et al., 2017):  A = (1/n) sum_s grad(x + eps_s),   eps_s ~ N(0, sigma^2),
                                        sigma = noise_level * (max x - min x)  per image

SmoothGrad averages away the high-frequency jitter of a ReLU network's gradient; with
sigma = 0 it is the plain gradient.

The DeepLearning.AI course "Advanced Computer Vision with TensorFlow" (week 4, saliency on cats vs
dogs) differentiates the *loss* instead of a logit: the cross-entropy CE = -log softmax(y)[t] of the
true class t, whose gradient dCE/dy = softmax(y) - onehot(t) gives

    dCE/dx = sum_k (p_k - [k = t]) dy_k/dx        two classes: -(1 - p_t) d(y_t - y_other)/dx

i.e. the gradient of the logit *difference*, scaled by how far p_t is from 1 (a scale the course's
min-max normalisation removes again), reduced over channels by sum_c |.|.
"""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..tensor import Tensor
from .gradients import as_array, check_eval_mode, logit_gradient, logits_of, resolve_target
from .maps import reduce_channels


def saliency(model, x, target=None, channel_reduction: str | None = "max_abs") -> np.ndarray:
    """Simonyan saliency map ``max_c |d y_target / d x_c|``: ``(N, H, W)``.

    model: callable x (N, C, H, W) -> logits (N, K);  target: None (predicted class), int, or N ints;
    channel_reduction: "max_abs" (Simonyan), "sum_abs", "sum", or None for the raw gradient (N, C, H, W).
    """
    _, _, grad = logit_gradient(model, x, target)
    return reduce_channels(grad, channel_reduction)


def cross_entropy_saliency(model, x, target=None, channel_reduction: str | None = "sum_abs") -> np.ndarray:
    """The course's saliency ``sum_c |d CE(y, target) / d x_c|``: ``(N, H, W)`` (module docstring).

    target: the class whose cross-entropy is differentiated, the true label in the course (None: the
    predicted class);  channel_reduction as in ``saliency`` ("sum_abs" is the course's).
    An image the model gets right with p_t = 1 in floating point has dCE/dx = 0: an all-zero map.
    """
    check_eval_mode(model)
    x = Tensor(np.array(as_array(x)), requires_grad=True)  # a private copy: the caller's array is never touched
    logits = model(x)
    target = resolve_target(logits.data, target)
    # summed over the batch: image n's loss depends only on image n, so x.grad[n] is its own gradient
    F.cross_entropy(logits, target, reduction="sum").backward()
    return reduce_channels(x.grad, channel_reduction)


def gradient_x_input(model, x, target=None) -> np.ndarray:
    """Attribution ``x * d y_target / d x``: ``(N, C, H, W)``, signed."""
    _, _, grad = logit_gradient(model, x, target)
    return as_array(x) * grad


def smooth_grad(model, x, target=None, n_samples: int = 25, noise_level: float = 0.15, seed: int = 0) -> np.ndarray:
    """SmoothGrad: the target-logit gradient averaged over ``n_samples`` noisy copies: ``(N, C, H, W)``.

    Noise eps ~ N(0, sigma^2) with sigma = noise_level * (max - min of each image), drawn from
    ``np.random.default_rng(seed)``. The target is fixed on the clean image (None: its predicted
    class), so every noisy copy explains the same class. Reduce channels for display with
    ``maps.reduce_channels`` (e.g. "max_abs" for a SmoothGrad saliency map).
    """
    x = as_array(x)
    if n_samples < 1 or noise_level < 0:
        raise ValueError(f"smooth_grad: need n_samples >= 1 and noise_level >= 0, got {n_samples}, {noise_level}")
    target = resolve_target(logits_of(model, x), target)
    axes = tuple(range(1, x.ndim))
    sigma = noise_level * (x.max(axis=axes, keepdims=True) - x.min(axis=axes, keepdims=True))
    rng = np.random.default_rng(seed)
    total = np.zeros_like(x)
    for _ in range(n_samples):
        noisy = x + (sigma * rng.standard_normal(x.shape)).astype(x.dtype)
        total += logit_gradient(model, noisy, target)[2]
    return total / np.asarray(n_samples, dtype=x.dtype)
