"""Containers: ``Sequential`` chains modules, ``ModuleList`` holds a list of them."""

from __future__ import annotations

import numbers
from collections import OrderedDict

from .module import Module


class _ModuleSequence(Module):
    """Modules named "0", "1", ...: ``len``, iteration, indexing (a slice gives a new container), ``append``."""

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        items = list(self._modules.items())
        if isinstance(index, slice):
            return self._from_items(items[index])
        if not isinstance(index, numbers.Integral) or not -len(items) <= index < len(items):
            raise IndexError(f"{type(self).__name__}: index {index!r} is out of range for {len(items)} modules")
        return items[index][1]

    def _from_items(self, items: list):
        raise NotImplementedError

    def append(self, module: Module):
        self.add_module(str(len(self)), module)
        return self


class Sequential(_ModuleSequence):
    """``Sequential(m0, m1, ...)`` (named "0", "1", ...) or ``Sequential(OrderedDict(name=module))``.

    forward(x) = ... m1(m0(x)): each module's output is the next one's input.
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            named = modules[0].items()
        else:
            named = ((str(i), module) for i, module in enumerate(modules))
        for name, module in named:
            self.add_module(name, module)

    def _from_items(self, items: list) -> Sequential:
        return Sequential(OrderedDict(items))  # a slice keeps the names, as in PyTorch

    def forward(self, input):
        for module in self:
            input = module(input)
        return input


class ModuleList(_ModuleSequence):
    """A list of modules whose parameters belong to the owner (a plain Python list would hide them).

    ``ModuleList([m0, m1])``; supports ``len``, iteration, indexing, ``append`` and ``extend``.
    It has no forward: the owner decides how to call its items.
    """

    def __init__(self, modules=None):
        super().__init__()
        self.extend(modules or [])

    def _from_items(self, items: list) -> ModuleList:
        return ModuleList(module for _, module in items)

    def extend(self, modules) -> ModuleList:
        for module in modules:
            self.append(module)
        return self
