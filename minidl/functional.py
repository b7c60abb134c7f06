"""``minidl.functional`` (import as ``F``): every differentiable op, with PyTorch's names and signatures.

Each op is defined in ``minidl/ops/<family>.py`` as a ``Function`` (forward on arrays + backward rule)
and a public function that validates its arguments. This file only lists them.
"""

from .ops.activation import log_softmax, softmax
from .ops.elementwise import (abs, add, clamp, div, exp, log, maximum, mul, neg, pow, relu, sigmoid,
                              sqrt, sub, tanh, where)
from .ops.linalg import matmul
from .ops.reduction import max, mean, sum, var
from .ops.shape import cat, flatten, getitem, pad, permute, reshape, stack, transpose

view = reshape
