"""Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay (PyTorch's update)."""

from __future__ import annotations

from .optimizer import Optimizer


class SGD(Optimizer):
    """SGD, exactly as ``torch.optim.SGD``. For each parameter p with gradient g, per step:

        g <- g + weight_decay * p                              (L2 penalty, if weight_decay)
        b <- g on the first step, else momentum * b + (1 - dampening) * g     (if momentum)
        g <- g + momentum * b if nesterov else b                              (if momentum)
        p <- p - lr * g
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False):
        if not (lr >= 0 and momentum >= 0 and weight_decay >= 0):  # "not >=" refuses NaN too, as PyTorch does
            raise ValueError(f"SGD: lr, momentum and weight_decay must be >= 0, got lr={lr}, momentum={momentum}, "
                             f"weight_decay={weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(f"SGD: nesterov needs momentum > 0 and dampening = 0, got momentum={momentum}, "
                             f"dampening={dampening}")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov))

    def update_parameter(self, param, grad, state, group):
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * param.data
        momentum = group["momentum"]
        if momentum:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = grad.copy()
            else:
                state["momentum_buffer"] *= momentum
                state["momentum_buffer"] += (1 - group["dampening"]) * grad
            buffer = state["momentum_buffer"]
            grad = grad + momentum * buffer if group["nesterov"] else buffer
        param.data -= group["lr"] * grad
