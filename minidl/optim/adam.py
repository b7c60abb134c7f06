"""Adam and AdamW: per-parameter step sizes from running averages of the gradient and its square."""

from __future__ import annotations

import math

import numpy as np

from .optimizer import Optimizer


class Adam(Optimizer):
    """Adam, exactly as ``torch.optim.Adam``. For each parameter p with gradient g, at step t = 1, 2, ...:

        g <- g + weight_decay * p                  (L2 penalty; AdamW instead: p <- p * (1 - lr * weight_decay))
        m <- beta1 * m + (1 - beta1) * g           (first moment, m_0 = 0)
        v <- beta2 * v + (1 - beta2) * g^2         (second moment, v_0 = 0)
        v_hat <- max(v_hat, v) if amsgrad else v
        p <- p - lr / (1 - beta1^t) * m / (sqrt(v_hat) / sqrt(1 - beta2^t) + eps)

    The (1 - beta^t) factors undo the bias of m and v towards their zero start.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, decoupled_weight_decay: bool = False):
        if not (lr >= 0 and eps >= 0 and weight_decay >= 0):  # "not >=" refuses NaN too, as PyTorch does
            raise ValueError(f"{type(self).__name__}: lr, eps and weight_decay must be >= 0, got lr={lr}, "
                             f"eps={eps}, weight_decay={weight_decay}")
        if len(betas) != 2 or not all(0 <= beta < 1 for beta in betas):
            raise ValueError(f"{type(self).__name__}: betas must be two numbers in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, decoupled_weight_decay=decoupled_weight_decay))

    def update_parameter(self, param, grad, state, group):
        lr, (beta1, beta2), weight_decay = group["lr"], group["betas"], group["weight_decay"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(param.data)
            state["exp_avg_sq"] = np.zeros_like(param.data)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(param.data)
        state["step"] += 1
        step = state["step"]
        if weight_decay and group["decoupled_weight_decay"]:
            param.data *= 1 - lr * weight_decay
        elif weight_decay:
            grad = grad + weight_decay * param.data
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg *= beta1
        exp_avg += (1 - beta1) * grad
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad
        if group["amsgrad"]:
            np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            exp_avg_sq = state["max_exp_avg_sq"]
        denominator = np.sqrt(exp_avg_sq) / math.sqrt(1 - beta2 ** step) + group["eps"]
        param.data -= lr / (1 - beta1 ** step) * exp_avg / denominator


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as ``torch.optim.AdamW``:
    p <- p * (1 - lr * weight_decay) before the Adam step, instead of adding weight_decay * p to g.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, decoupled_weight_decay=True)
