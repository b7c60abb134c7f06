"""Fully connected layer."""

from __future__ import annotations

import numpy as np

from ..ops.arguments import positive_sizes
from ..tensor import Tensor
from . import init
from .module import Module, Parameter


class Linear(Module):
    """y = x W^T + b  for x: (*, in_features), W: (out_features, in_features), b: (out_features,).

    Gradients (by the engine's matmul and add): dL/dx = g W,  dL/dW = g^T x,  dL/db = sum of g over
    the leading dims. Initialised as PyTorch: W and b ~ U(-1/sqrt(in_features), 1/sqrt(in_features)).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        positive_sizes("Linear", in_features=in_features, out_features=out_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.empty((out_features, in_features), dtype=np.float32))
        self.register_parameter("bias", Parameter(np.empty(out_features, dtype=np.float32)) if bias else None)
        init.default_layer_init_(self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim < 1 or input.shape[-1] != self.in_features:
            raise ValueError(f"Linear: input must be (*, {self.in_features}), got shape {input.shape}")
        output = input @ self.weight.T
        return output if self.bias is None else output + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
