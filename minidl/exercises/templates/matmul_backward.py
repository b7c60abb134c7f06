"""Exercise 2: the two gradients of a matrix product (every Linear layer is one).

y = a @ b, i.e. y[i, j] = sum_k a[i, k] * b[k, j]. Each a[i, k] meets every b[k, j] of row k of b,
and each b[k, j] every a[i, k] of column k of a:

    dL/da[i, k] = sum_j g[i, j] * b[k, j]      i.e.  dL/da = g @ b.T
    dL/db[k, j] = sum_i a[i, k] * g[i, j]      i.e.  dL/db = a.T @ g

A check on shapes alone finds the right formula: dL/da must have a's shape (n, k).
Library version: ``minidl/ops/linalg.py``.  Check:  python -m minidl.exercises check matmul_backward
"""

import numpy as np


def matmul_backward(a, b, g):
    """Gradients of y = a @ b.

    a: (n, k), b: (k, m), g = dL/dy: (n, m)  ->  (dL/da (n, k), dL/db (k, m)).
    """
    raise NotImplementedError
