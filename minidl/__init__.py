"""minidl: a small deep-learning library in NumPy and Numba, written to be read."""

from . import nn, optim
from .gradcheck import gradcheck
from .random import manual_seed
from .tensor import Function, Tensor, is_grad_enabled, no_grad

__version__ = "0.1.0"
__all__ = ["Tensor", "Function", "no_grad", "is_grad_enabled", "gradcheck", "manual_seed", "nn", "optim"]
