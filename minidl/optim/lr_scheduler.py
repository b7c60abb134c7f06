"""Learning-rate schedules: set each parameter group's lr from its initial lr and the epoch count.

Call ``scheduler.step()`` once per epoch, after ``optimizer.step()``. Each schedule here is a
closed form lr(epoch) of the group's initial lr, so the state is just the epoch counter.
"""

from __future__ import annotations

import math

import numpy as np

from .optimizer import Optimizer


class LRScheduler:
    """Base: ``step()`` advances ``last_epoch`` and sets every group's lr to ``lr_at(initial_lr, last_epoch)``.

    Constructing a scheduler records each group's ``initial_lr`` and applies epoch 0, as PyTorch.
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        for i, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise ValueError(f"{type(self).__name__}: resuming at last_epoch={last_epoch} needs 'initial_lr' "
                                 f"in param group {i}")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def lr_at(self, base_lr: float, epoch: int) -> float:
        raise NotImplementedError

    def step(self) -> None:
        self.last_epoch += 1
        self._apply()

    def _apply(self) -> None:
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(base_lr, self.last_epoch)

    def get_last_lr(self) -> list:
        """The lr of every group as set by the latest ``step()``."""
        return [self.lr_at(base_lr, self.last_epoch) for base_lr in self.base_lrs]

    def state_dict(self) -> dict:
        """``{"last_epoch": int array, "base_lrs": float array}`` (the settings come from the constructor)."""
        return {"last_epoch": np.asarray(self.last_epoch), "base_lrs": np.asarray(self.base_lrs, dtype=np.float64)}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the epoch counter and initial lrs, and set the groups' lr for that epoch."""
        if set(state_dict) != {"last_epoch", "base_lrs"}:
            raise ValueError(f"{type(self).__name__}.load_state_dict: expected keys ['base_lrs', 'last_epoch'], "
                             f"got {sorted(state_dict)}")
        base_lrs = np.asarray(state_dict["base_lrs"]).reshape(-1)
        if len(base_lrs) != len(self.optimizer.param_groups):
            raise ValueError(f"{type(self).__name__}.load_state_dict: {len(base_lrs)} base_lrs for "
                             f"{len(self.optimizer.param_groups)} parameter groups")
        self.last_epoch = int(state_dict["last_epoch"])
        self.base_lrs = [float(lr) for lr in base_lrs]
        self._apply()


class StepLR(LRScheduler):
    """lr(epoch) = initial_lr * gamma ^ floor(epoch / step_size): decay by gamma every step_size epochs."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """lr(epoch) = eta_min + (initial_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2.

    Falls from initial_lr at epoch 0 to eta_min at epoch T_max along half a cosine (SGDR without
    restarts); past T_max it rises again, as PyTorch's schedule does.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):
        if T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be >= 1, got {T_max}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2
