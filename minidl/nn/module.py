"""``Module`` and ``Parameter``: the base of every layer and model, as in PyTorch.

A Module owns three kinds of state, registered automatically when assigned as attributes:

- parameters (``self.weight = Parameter(...)``): learnable tensors, returned by ``parameters()``
  and updated by an optimiser;
- buffers (``self.register_buffer("running_mean", Tensor(...))``): state that is saved but not
  learned, such as BatchNorm's running statistics;
- submodules (``self.conv1 = Conv2d(...)``): their parameters and buffers belong to this module
  too, under dotted names such as ``"conv1.weight"``.

``state_dict()`` flattens all of it into ``{dotted name: ndarray}``, which ``np.savez`` can write
without pickle; ``load_state_dict`` puts it back.
"""

from __future__ import annotations

from collections import namedtuple
from itertools import chain

import numpy as np

from ..tensor import Tensor, no_grad


class Parameter(Tensor):
    """A Tensor that a Module treats as learnable: ``Parameter(array, requires_grad=True)``."""

    def __init__(self, data, requires_grad: bool = True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class RemovableHandle:
    """Returned by ``register_forward_hook``: ``handle.remove()`` unregisters the hook."""

    _next_id = 0

    def __init__(self, hooks: dict):
        self.hooks, self.id = hooks, RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self) -> None:
        self.hooks.pop(self.id, None)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


class Module:
    """Base class of layers and models: subclasses set attributes in ``__init__`` and define ``forward``.

    ``module(x)`` runs ``forward(x)`` and then any forward hooks. ``training`` (set by ``train()`` /
    ``eval()`` on the whole tree) switches layers such as Dropout and BatchNorm between modes.
    """

    def __init__(self):
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_forward_hooks", {})

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            replaced = hook(self, args, output)
            if replaced is not None:
                output = replaced
        return output

    def register_forward_hook(self, hook) -> RemovableHandle:
        """Call ``hook(module, inputs, output)`` after every forward; a non-None result replaces the output."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    # ----------------------------------------------------------------- registration
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        if isinstance(value, Parameter):
            self._forget(name)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._forget(name)
            self._modules[name] = value
        elif name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"{type(self).__name__}: buffer '{name}' must be a Tensor or None, "
                                f"got {type(value).__name__}")
            self._buffers[name] = value
        elif name in self._parameters or name in self._modules:
            if value is not None:
                kind = "Parameter" if name in self._parameters else "Module"
                raise TypeError(f"{type(self).__name__}: cannot assign {type(value).__name__} to '{name}' "
                                f"(a registered {kind}); assign a {kind} or None")
            (self._parameters if name in self._parameters else self._modules)[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # Only called when normal lookup fails, i.e. for registered parameters, buffers and modules.
        for store in ("_parameters", "_buffers", "_modules"):
            members = self.__dict__.get(store, {})
            if name in members:
                return members[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        if name in self._parameters or name in self._buffers or name in self._modules:
            self._forget(name)
        else:
            object.__delattr__(self, name)

    def _forget(self, name: str) -> None:
        for members in (self.__dict__, self._parameters, self._buffers, self._modules):
            members.pop(name, None)
        self._non_persistent_buffers.discard(name)

    def _check_new_name(self, name: str, kind: str) -> None:
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"{type(self).__name__}: {kind} name must be a non-empty string without '.', got {name!r}")
        if name in self.__dict__ or hasattr(type(self), name):
            raise ValueError(f"{type(self).__name__}: attribute '{name}' already exists")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (or None, e.g. an absent bias) under ``name``."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: '{name}' must be a Parameter or None, got {type(param).__name__}")
        self._check_new_name(name, "parameter")
        self._forget(name)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Register non-learned state; persistent buffers are part of ``state_dict()``."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: '{name}' must be a Tensor or None, got {type(tensor).__name__}")
        self._check_new_name(name, "buffer")
        self._forget(name)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: '{name}' must be a Module or None, got {type(module).__name__}")
        self._check_new_name(name, "module")
        self._forget(name)
        self._modules[name] = module

    # ----------------------------------------------------------------- traversal
    def named_modules(self, prefix: str = ""):
        """(dotted name, module) for this module ("" by default) and every descendant, each once."""
        seen = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            stack.extend(reversed([(_join(name, child_name), child)
                                   for child_name, child in module._modules.items() if child is not None]))

    def modules(self):
        return (module for _, module in self.named_modules())

    def named_children(self):
        return ((name, module) for name, module in self._modules.items() if module is not None)

    def children(self):
        return (module for _, module in self.named_children())

    def _named_members(self, members_of, prefix: str, recurse: bool):
        seen = set()
        owners = self.named_modules(prefix) if recurse else [(prefix, self)]
        for owner_name, owner in owners:
            for name, value in members_of(owner):
                if value is not None and id(value) not in seen:
                    seen.add(id(value))
                    yield _join(owner_name, name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        """(dotted name, Parameter) pairs; a parameter shared by two layers is listed once."""
        return self._named_members(lambda module: module._parameters.items(), prefix, recurse)

    def parameters(self, recurse: bool = True):
        return (param for _, param in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix: str = "", recurse: bool = True):
        return self._named_members(lambda module: module._buffers.items(), prefix, recurse)

    def buffers(self, recurse: bool = True):
        return (buffer for _, buffer in self.named_buffers(recurse=recurse))

    def apply(self, fn) -> Module:
        """Call ``fn(module)`` on every descendant, children first, then on this module (as PyTorch)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ----------------------------------------------------------------- modes, gradients, dtype
    def train(self, mode: bool = True) -> Module:
        for module in self.modules():
            module.training = bool(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self) -> None:
        """Reset every parameter's ``.grad`` to None (PyTorch's default ``set_to_none=True``)."""
        for param in self.parameters():
            param.grad = None

    def float(self) -> Module:
        """Cast floating-point parameters and buffers to float32, in place."""
        return self._cast_floats(np.float32)

    def double(self) -> Module:
        """Cast floating-point parameters and buffers to float64, in place (used by gradient checks)."""
        return self._cast_floats(np.float64)

    def _cast_floats(self, dtype) -> Module:
        for tensor in chain(self.parameters(), self.buffers()):
            if np.issubdtype(tensor.dtype, np.floating):
                tensor.data = tensor.data.astype(dtype)
                if tensor.grad is not None:
                    tensor.grad = tensor.grad.astype(dtype)
        return self

    # ----------------------------------------------------------------- state
    def _state_tensors(self) -> dict:
        """{dotted name: Tensor} of all parameters and persistent buffers, in registration order."""
        state = {}
        for prefix, module in self.named_modules():
            buffers = ((name, buffer) for name, buffer in module._buffers.items()
                       if name not in module._non_persistent_buffers)
            for name, tensor in chain(module._parameters.items(), buffers):
                if tensor is not None:
                    state[_join(prefix, name)] = tensor
        return state

    def state_dict(self) -> dict:
        """Parameters and persistent buffers as ``{dotted name: ndarray}``, e.g. ``{"0.weight": ...}``.

        The arrays are copies (PyTorch returns views), so a saved state does not drift while
        training continues. The flat dict can be written with ``np.savez`` and no pickle.
        """
        return {name: tensor.data.copy() for name, tensor in self._state_tensors().items()}

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> IncompatibleKeys:
        """Copy arrays from ``state_dict`` into the parameters and buffers, in place (dtypes are kept).

        All or nothing: every entry is checked and converted before any is written, so a failure
        leaves the model as it was. A shape mismatch or a non-numeric array is always an error. With ``strict`` (the default), so are keys the model
        has but the dict lacks (missing) and keys the dict has but the model lacks (unexpected);
        otherwise those are skipped and returned as ``(missing_keys, unexpected_keys)``.
        """
        own = self._state_tensors()
        missing = [name for name in own if name not in state_dict]
        unexpected = [name for name in state_dict if name not in own]
        problems = [f"size mismatch for {name}: checkpoint has shape {np.shape(state_dict[name])}, "
                    f"the model has {own[name].shape}"
                    for name in own if name in state_dict and np.shape(state_dict[name]) != own[name].shape]
        if strict:
            problems += [f"missing key(s): {', '.join(missing)}"] if missing else []
            problems += [f"unexpected key(s): {', '.join(unexpected)}"] if unexpected else []
        values = {}  # every entry converted before any is written: a failure leaves the model as it was
        for name in own:
            if name in state_dict:
                value = np.asarray(state_dict[name])
                if value.dtype.kind not in "biuf":
                    problems.append(f"{name} holds {value.dtype} values, not numbers")
                else:
                    values[name] = value.astype(own[name].dtype, copy=False)
        if problems:
            raise ValueError(f"load_state_dict: cannot load into {type(self).__name__}:\n  " + "\n  ".join(problems))
        for name, value in values.items():
            own[name].data[...] = value
        return IncompatibleKeys(missing, unexpected)

    # ----------------------------------------------------------------- printing
    def extra_repr(self) -> str:
        """The constructor arguments shown inside ``LayerName(...)``; layers override it."""
        return ""

    def __repr__(self):
        extra = self.extra_repr().split("\n") if self.extra_repr() else []
        children = [f"({name}): " + repr(module).replace("\n", "\n  ") for name, module in self._modules.items()]
        if not children and len(extra) <= 1:
            return f"{type(self).__name__}({''.join(extra)})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(extra + children) + "\n)"

    def summary(self, input_shape: tuple, dtype=np.float32) -> str:
        """Print and return a table of every submodule's output shape and parameter count.

        Runs one forward pass on zeros of ``input_shape`` (including the batch dim, e.g.
        ``(1, 3, 64, 64)``) in eval mode without a graph; training flags are restored afterwards,
        so BatchNorm running statistics are not touched. Rows follow the module tree (indented by
        depth); a row's parameter count includes its children.
        """
        named = list(self.named_modules())
        output_shapes = {}

        def record(module, inputs, output):
            output_shapes.setdefault(id(module), []).append(_shape_text(output))

        output = self.forward_with_hooks(Tensor(np.zeros(input_shape, dtype=dtype)), record)
        rows = [("Layer (type)", "Output shape", "Param #")]
        for name, module in named[1:]:
            shapes = output_shapes.get(id(module), [])
            shape = "-" if not shapes else shapes[0] if len(shapes) == 1 else f"{shapes[0]} ({len(shapes)} calls)"
            count = sum(param.size for param in module.parameters())
            rows.append(("  " * name.count(".") + f"{name} ({type(module).__name__})", shape, f"{count:,}"))
        total = sum(param.size for param in self.parameters())
        trainable = sum(param.size for param in self.parameters() if param.requires_grad)
        text = "\n".join([f"{type(self).__name__} summary", *_table(rows), f"Input shape: {tuple(input_shape)}",
                          f"Output shape: {_shape_text(output)}", f"Total params: {total:,}",
                          f"Trainable params: {trainable:,}"])
        print(text)
        return text

    def forward_with_hooks(self, input: Tensor, hook, modules=None) -> Tensor:
        """``self(input)`` once, in eval mode and without a graph, with the forward hook ``hook`` on
        every module (or on ``modules``); afterwards the hooks are removed and every module's
        training flag is what it was (so BatchNorm running statistics are not touched)."""
        modules = list(self.modules()) if modules is None else list(modules)
        handles = [module.register_forward_hook(hook) for module in modules]
        modes = {id(module): (module, module.training) for module in [*self.modules(), *modules]}
        try:
            self.eval()
            with no_grad():
                return self(input)
        finally:
            for handle in handles:
                handle.remove()
            for module, mode in modes.values():
                module.training = mode


def _table(rows: list) -> list:
    """Lines of a text table: the first row is the header; the last column is right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(width) if i == len(row) - 1 else cell.ljust(width)
                       for i, (cell, width) in enumerate(zip(row, widths))) for row in rows]
    rule = "-" * len(lines[0])
    return [rule, lines[0], rule, *lines[1:], rule]


def _shape_text(output) -> str:
    """'(1, 8, 32, 32)' for a Tensor; shapes joined by ', ' for a tuple or list of outputs."""
    if isinstance(output, (tuple, list)):
        return ", ".join(_shape_text(item) for item in output)
    return str(tuple(output.shape))
