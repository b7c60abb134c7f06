"""Exercise 1: the backward rule of an elementwise op.

Every op in minidl is a ``Function`` with a ``forward`` on arrays and a ``backward`` that turns
g = dL/dy into dL/dx (read ``minidl/tensor.py``, then ``minidl/ops/activation.py``). For an
elementwise y = f(x), each y[i] depends only on x[i], so the chain rule is one product:

    dL/dx = g * f'(x)

Write the two backward rules below, then run:  python -m minidl.exercises check activations
"""

import numpy as np


def relu_backward(x, g):
    """dL/dx for y = relu(x) = max(x, 0).

    relu'(x) = 1 where x > 0, else 0, so  dL/dx = g * (x > 0).
    x, g: arrays of the same shape (any number of dims) -> dL/dx, same shape.
    """
    raise NotImplementedError


def sigmoid_backward(x, g):
    """dL/dx for y = sigmoid(x) = 1 / (1 + exp(-x)).

    With s = sigmoid(x):  sigmoid'(x) = s * (1 - s),  so  dL/dx = g * s * (1 - s).
    x, g: arrays of the same shape -> dL/dx, same shape.
    """
    raise NotImplementedError
