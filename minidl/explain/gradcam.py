"""Grad-CAM (Selvaraju et al., 2017) and Grad-CAM++ (Chattopadhay et al., 2018) for any layer.

Split the network at the layer to explain: ``A = features(x)`` (N, K, h, w) and
``logits = head(A)``. With ``g = d y_c / d A`` (the gradient of the target logit):

    Grad-CAM:    alpha_k = mean_ij g_k[i, j],            map = ReLU(sum_k alpha_k A_k)

For a head that is global average pooling then a linear layer, g_k[i, j] = w_ck / (h w) at every
location, so before the ReLU Grad-CAM is exactly CAM / (h w): Grad-CAM generalises CAM to any head.

    Grad-CAM++:  alpha_k[i, j] = g^2 / (2 g^2 + sum_ab A_k[a, b] g^3)   (0 where the denominator is 0)
                 weight_k = sum_ij alpha_k[i, j] ReLU(g_k[i, j]),        map = ReLU(sum_k weight_k A_k)

(the closed form of the paper for exp(y_c), with second and third derivatives of the head taken
as zero, exact for a piecewise-linear head). Any split works: for ``nn.Sequential`` layers
``features = net[:k]`` and ``head = net[k:]``, or two small lambdas.
"""

from __future__ import annotations

import numpy as np

from ..tensor import Tensor, no_grad
from .gradients import as_array, check_eval_mode, logit_gradient
from .maps import upsample as upsample_maps


def layer_gradient(features, head, x, target=None):
    """Feature maps ``A = features(x)`` (N, K, h, w) and ``d logit_target / d A`` (same shape)."""
    check_eval_mode(features)
    with no_grad():
        activations = features(Tensor(as_array(x))).data
    if activations.ndim != 4:
        raise ValueError(f"grad_cam: features must return feature maps (N, K, h, w), got {activations.shape}")
    _, _, grad = logit_gradient(head, activations, target)
    return activations, grad


def _weighted_sum(weights, activations, relu, upsample, size):
    """sum_k weights[n, k] A[n, k], then the optional ReLU and bilinear upsampling to ``size``."""
    maps = np.einsum("nk,nkhw->nhw", weights, activations)
    if relu:
        maps = np.maximum(maps, 0)
    return upsample_maps(maps, size) if upsample else maps


def grad_cam(features, head, x, target=None, relu: bool = True, upsample: bool = True) -> np.ndarray:
    """Grad-CAM map of the target class for each image: ``(N, H, W)`` (``(N, h, w)`` if not upsample).

    features: x (N, C, H, W) -> A (N, K, h, w);  head: A -> logits (N, num_classes);
    target: None (predicted class), an int, or N ints;  relu=False keeps negative evidence.
    """
    x = as_array(x)
    activations, grad = layer_gradient(features, head, x, target)
    return _weighted_sum(grad.mean(axis=(2, 3)), activations, relu, upsample, x.shape[-2:])


def grad_cam_plus_plus(features, head, x, target=None, upsample: bool = True) -> np.ndarray:
    """Grad-CAM++ map of the target class for each image: ``(N, H, W)`` (``(N, h, w)`` if not upsample)."""
    x = as_array(x)
    activations, grad = layer_gradient(features, head, x, target)
    denominator = 2 * grad ** 2 + activations.sum(axis=(2, 3), keepdims=True) * grad ** 3
    safe = np.where(denominator != 0, denominator, 1)
    alpha = np.where(denominator != 0, grad ** 2 / safe, 0)
    weights = (alpha * np.maximum(grad, 0)).sum(axis=(2, 3))
    return _weighted_sum(weights, activations, True, upsample, x.shape[-2:])
