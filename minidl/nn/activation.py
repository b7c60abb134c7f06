"""Activation layers: Module wrappers of the elementwise functions in ``minidl.functional``."""

from __future__ import annotations

from .. import functional as F
from ..tensor import Tensor
from .module import Module


class ReLU(Module):
    """y = max(x, 0);  dL/dx = g * [x > 0]"""

    def forward(self, input: Tensor) -> Tensor:
        return F.relu(input)


class Sigmoid(Module):
    """y = 1 / (1 + exp(-x));  dL/dx = g * y * (1 - y)"""

    def forward(self, input: Tensor) -> Tensor:
        return F.sigmoid(input)
