"""Elementwise ops with NumPy broadcasting.

When an input was broadcast in the forward pass (a (3, 1) bias added to a (3, 4) matrix), its
gradient is the upstream gradient summed over the broadcast axes: ``unbroadcast`` does that.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..tensor import Function, Tensor


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``grad`` down to ``shape``: over leading axes NumPy added and over axes that were size 1."""
    if grad.shape == shape:
        return grad
    grad = grad.sum(axis=tuple(range(grad.ndim - len(shape))))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


def _operands(op: str, a, b):
    """Make Tensors of both operands; a number takes the other operand's dtype (so float32 stays float32)."""
    if isinstance(a, numbers.Number) and not isinstance(b, numbers.Number):
        b = b if isinstance(b, Tensor) else Tensor(b)
        a = _number_as(op, a, b)
    elif isinstance(b, numbers.Number) and not isinstance(a, numbers.Number):
        a = a if isinstance(a, Tensor) else Tensor(a)
        b = _number_as(op, b, a)
    a = a if isinstance(a, Tensor) else Tensor(a)
    b = b if isinstance(b, Tensor) else Tensor(b)
    if a.dtype != b.dtype:
        raise ValueError(f"{op}: operands have different dtypes {a.dtype} and {b.dtype} "
                         f"(shapes {a.shape} and {b.shape}); convert one with .float() or .double()")
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together") from None
    return a, b


def _number_as(op: str, number, other: Tensor) -> Tensor:
    """``number`` as a 0-d tensor of ``other``'s dtype; refuses to round 0.5 to an integer dtype."""
    value = np.asarray(number, dtype=other.dtype)
    if not np.issubdtype(other.dtype, np.floating) and value != number:
        raise ValueError(f"{op}: the number {number!r} does not fit the {other.dtype} tensor of shape "
                         f"{other.shape}; convert the tensor with .float() first")
    return Tensor(value)


class Add(Function):
    """y = a + b;  dL/da = g,  dL/db = g  (each summed over its broadcast axes)"""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, g):
        return unbroadcast(g, self.shapes[0]), unbroadcast(g, self.shapes[1])


class Sub(Function):
    """y = a - b;  dL/da = g,  dL/db = -g"""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, g):
        return unbroadcast(g, self.shapes[0]), unbroadcast(-g, self.shapes[1])


class Mul(Function):
    """y = a * b;  dL/da = g * b,  dL/db = g * a"""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        return unbroadcast(g * self.b, self.a.shape), unbroadcast(g * self.a, self.b.shape)


class Div(Function):
    """y = a / b;  dL/da = g / b,  dL/db = -g * a / b^2"""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        return unbroadcast(g / self.b, self.a.shape), unbroadcast(-g * self.a / (self.b * self.b), self.b.shape)


class Pow(Function):
    """y = a ** b;  dL/da = g * b * a^(b-1),  dL/db = g * y * log(a)  (a > 0 where b needs a gradient;
    at a = 0, y * log(a) is taken as its limit 0, as PyTorch does, not 0 * -inf = NaN)"""

    def forward(self, a, b):
        self.a, self.b = a, b
        self.y = a ** b
        return self.y

    def backward(self, g):
        grad_a = grad_b = None
        if self.needs_input_grad[0]:
            grad_a = unbroadcast(g * self.b * self.a ** (self.b - 1), self.a.shape)
        if self.needs_input_grad[1]:
            log_a = np.log(np.where(self.a == 0, 1, self.a))  # 0 at a = 0, where y * log(a) -> 0
            grad_b = unbroadcast(g * self.y * log_a, self.b.shape)
        return grad_a, grad_b


def add(a, b) -> Tensor:
    return Add.apply(*_operands("add", a, b))


def sub(a, b) -> Tensor:
    return Sub.apply(*_operands("sub", a, b))


def mul(a, b) -> Tensor:
    return Mul.apply(*_operands("mul", a, b))


def div(a, b) -> Tensor:
    """True division; two integer tensors give float32, as in PyTorch (not a floor division)."""
    a, b = _operands("div", a, b)
    if not np.issubdtype(a.dtype, np.floating):
        a, b = a.float(), b.float()
    return Div.apply(a, b)


def pow(a, b) -> Tensor:
    return Pow.apply(*_operands("pow", a, b))


class Unary(Function):
    """Base for y = f(x) with dL/dx = g * f'(x): subclasses give ``f(x)`` and ``derivative(x, y)`` = f'(x)."""

    def forward(self, x):
        self.x = x
        self.y = self.f(x)
        return self.y

    def backward(self, g):
        return g * self.derivative(self.x, self.y)


class Neg(Unary):
    """y = -x;  dL/dx = -g"""
    f = staticmethod(np.negative)
    derivative = staticmethod(lambda x, y: -1)


class Exp(Unary):
    """y = exp(x);  dL/dx = g * y"""
    f = staticmethod(np.exp)
    derivative = staticmethod(lambda x, y: y)


class Log(Unary):
    """y = log(x);  dL/dx = g / x"""
    f = staticmethod(np.log)
    derivative = staticmethod(lambda x, y: 1 / x)


class Sqrt(Unary):
    """y = sqrt(x);  dL/dx = g / (2 y)"""
    f = staticmethod(np.sqrt)
    derivative = staticmethod(lambda x, y: 0.5 / y)


class Abs(Unary):
    """y = |x|;  dL/dx = g * sign(x)  (0 at x = 0, as PyTorch)"""
    f = staticmethod(np.abs)
    derivative = staticmethod(lambda x, y: np.sign(x))


def neg(x) -> Tensor:
    return Neg.apply(x)


def exp(x) -> Tensor:
    """e^x; an integer tensor gives float32, as in PyTorch."""
    return Exp.apply(x.float() if isinstance(x, Tensor) and not np.issubdtype(x.dtype, np.floating) else x)


def log(x) -> Tensor:
    return Log.apply(x)


def sqrt(x) -> Tensor:
    return Sqrt.apply(x)


def abs(x) -> Tensor:
    return Abs.apply(x)


class Cast(Function):
    """y = x converted to another float dtype;  dL/dx = g converted back to x's dtype"""

    def forward(self, x, dtype):
        self.dtype = x.dtype
        return x.astype(dtype)

    def backward(self, g):
        return g.astype(self.dtype)


def cast(x, dtype) -> Tensor:
    """``x`` as ``dtype`` (``Tensor.float()``, ``Tensor.double()``), differentiable for float dtypes."""
    return Cast.apply(x, dtype=np.dtype(dtype))


class Clamp(Function):
    """y = min(max(x, lo), hi);  dL/dx = g where lo <= x <= hi, else 0"""

    def forward(self, x, lo, hi):
        self.inside = np.ones(x.shape, dtype=bool)
        if lo is not None:
            self.inside &= x >= lo
        if hi is not None:
            self.inside &= x <= hi
        return np.clip(x, lo, hi).astype(x.dtype, copy=False)  # a NumPy float64 bound must not upcast

    def backward(self, g):
        return g * self.inside


def clamp(x, min=None, max=None) -> Tensor:
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    return Clamp.apply(x, lo=min, hi=max)


class Where(Function):
    """y = a where condition else b;  dL/da = g * condition,  dL/db = g * (1 - condition)"""

    def forward(self, a, b, condition):
        self.condition, self.shapes = condition, (a.shape, b.shape)
        return np.where(condition, a, b)

    def backward(self, g):
        zero = np.zeros((), dtype=g.dtype)
        return (unbroadcast(np.where(self.condition, g, zero), self.shapes[0]),
                unbroadcast(np.where(self.condition, zero, g), self.shapes[1]))


def where(condition, a, b) -> Tensor:
    """Like ``torch.where(condition, a, b)``; condition is a boolean array or Tensor (no gradient)."""
    condition = np.asarray(condition.data if isinstance(condition, Tensor) else condition, dtype=bool)
    a, b = _operands("where", a, b)
    try:
        np.broadcast_shapes(condition.shape, a.shape, b.shape)
    except ValueError:
        raise ValueError(f"where: condition {condition.shape}, a {a.shape} and b {b.shape} "
                         "cannot be broadcast together") from None
    return Where.apply(a, b, condition=condition)


def maximum(a, b) -> Tensor:
    """y = max(a, b) elementwise; the gradient goes to a where a >= b (PyTorch splits ties; draw no ties)."""
    a, b = _operands("maximum", a, b)
    return Where.apply(a, b, condition=a.data >= b.data)
