"""Exercise 3: the gradient of broadcasting.

y = a + b with a (3, 1) and b (2, 1, 4) gives y (2, 3, 4): NumPy added a leading axis to a and
stretched every size-1 axis. Each a[i, 0] was used 2 * 4 times, so its gradient is the sum of g
over those copies. In general, to bring g (the output's shape) back to an input's ``shape``:

    1. sum over the leading axes broadcasting added (g.ndim - len(shape) of them);
    2. sum over every axis where ``shape`` has 1 but g does not, keeping the axis (keepdims=True).

Every elementwise op of minidl calls this (``minidl/ops/elementwise.py``).
Check:  python -m minidl.exercises check unbroadcast
"""

import numpy as np


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape`` (a tuple that broadcasts to grad.shape); returns an array of ``shape``."""
    raise NotImplementedError
