"""The optimiser base class: parameter groups, per-parameter state, ``step``, and a flat state dict."""

from __future__ import annotations

import numpy as np

from ..tensor import Tensor


class Optimizer:
    """Updates parameters in place from their ``.grad``; subclasses write ``update_parameter``.

    ``params`` is an iterable of Parameters, or of dicts ``{"params": [...], "lr": ...}`` (parameter
    groups, each overriding some of the defaults, e.g. a smaller lr for a pretrained encoder).
    ``self.state[param]`` holds what an update remembers between steps (momentum, moment
    estimates, step counts). ``step()`` skips parameters whose ``.grad`` is None.
    """

    def __init__(self, params, defaults: dict):
        self.defaults = _python_numbers(defaults)
        self.state = {}
        self.param_groups = []
        params = [params] if isinstance(params, Tensor) else list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        for group in params if isinstance(params[0], dict) else [{"params": params}]:
            self.add_param_group(group)

    def add_param_group(self, group: dict) -> None:
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for other in self.param_groups for p in other["params"]}
        for param in params:
            if not isinstance(param, Tensor) or not param.is_leaf:
                raise TypeError(f"{type(self).__name__}: can only optimise leaf Tensors (Parameters), "
                                f"got {type(param).__name__}")
            if id(param) in seen:
                raise ValueError(f"{type(self).__name__}: a parameter appears in more than one group or twice")
            seen.add(id(param))
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown option(s) {sorted(unknown)} in a parameter group")
        self.param_groups.append({**self.defaults, **_python_numbers(group), "params": params})

    def zero_grad(self) -> None:
        """Reset every parameter's ``.grad`` to None (PyTorch's default ``set_to_none=True``)."""
        for group in self.param_groups:
            for param in group["params"]:
                param.grad = None

    def step(self) -> None:
        """Apply one update to every parameter that has a gradient."""
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    self.update_parameter(param, param.grad, self.state.setdefault(param, {}), group)

    def update_parameter(self, param: Tensor, grad: np.ndarray, state: dict, group: dict) -> None:
        """Update ``param.data`` in place from ``grad``; ``state`` persists between steps (empty at first)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- state dict
    def _indexed_params(self):
        """(index, param) over all groups in order: the index names a parameter in the state dict."""
        return enumerate(p for group in self.param_groups for p in group["params"])

    def state_dict(self) -> dict:
        """Flat ``{name: ndarray}``, e.g. ``"param_groups.0.lr"``, ``"state.3.exp_avg"``, ``"state.3.step"``.

        Parameters are named by their position across the groups (as PyTorch does), so the dict
        loads into an optimiser built the same way over a freshly built model. Arrays are copies.
        """
        state = {}
        for g, group in enumerate(self.param_groups):
            for key, value in group.items():
                if key != "params":
                    state[f"param_groups.{g}.{key}"] = np.asarray(value)
        for i, param in self._indexed_params():
            for key, value in self.state.get(param, {}).items():
                state[f"state.{i}.{key}"] = np.array(value)
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyperparameters and per-parameter state saved by ``state_dict`` (exact resume).

        Every hyperparameter of every group must be present; state entries must name existing
        parameters and (except the integer ``step``) have their shape. Arrays take the parameter's dtype.
        """
        name = f"{type(self).__name__}.load_state_dict"
        params = dict(self._indexed_params())
        expected = {f"param_groups.{g}.{key}" for g, group in enumerate(self.param_groups) for key in group
                    if key != "params"}
        # a scheduler adds "initial_lr"; a checkpoint may have it before this run's scheduler exists
        expected |= {f"param_groups.{g}.initial_lr" for g in range(len(self.param_groups))} & set(state_dict)
        entries = {}  # "state.<i>.<entry>" -> (i, entry)
        for key in state_dict:
            parts = key.split(".", 2)
            if len(parts) == 3 and parts[0] == "state" and parts[1].isdigit() and int(parts[1]) in params:
                entries[key] = int(parts[1]), parts[2]
        missing = sorted(expected - set(state_dict))
        unexpected = sorted(set(state_dict) - expected - set(entries))
        if missing or unexpected:
            raise ValueError(f"{name}: missing keys {missing}, unexpected keys {unexpected} "
                             "(was the optimiser built over the same parameters and groups?)")
        new_state = {}
        for key, (i, entry) in entries.items():
            value, param = state_dict[key], params[i]
            if entry == "step":
                value = int(value)
            elif np.shape(value) != param.shape:
                raise ValueError(f"{name}: {key} has shape {np.shape(value)} but parameter {i} has {param.shape}")
            else:
                value = np.array(value, dtype=param.dtype)
            new_state.setdefault(param, {})[entry] = value
        for key in expected:
            _, g, option = key.split(".", 2)
            group = self.param_groups[int(g)]
            group[option] = _hyperparameter(state_dict[key])
        self.state = new_state


def _python_numbers(options: dict) -> dict:
    """NumPy scalars as Python numbers: an np.float64 lr would upcast float32 updates (NEP 50)."""
    return {key: value.item() if isinstance(value, np.generic) else value for key, value in options.items()}


def _hyperparameter(value: np.ndarray):
    """A saved hyperparameter as a Python value: 0-d arrays as float/int/bool, 1-d ones (betas) as tuples."""
    value = np.asarray(value)
    return value.item() if value.ndim == 0 else tuple(value.tolist())
