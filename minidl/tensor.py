"""The autograd engine: a Tensor, the Function pattern every op follows, and backward.

Read this file first. Everything else in minidl is built from three ideas that live here:

1. A ``Tensor`` wraps a NumPy array (``.data``) and, if it takes part in differentiation,
   remembers the ``Function`` that produced it (``._ctx``).
2. A ``Function`` computes its output from plain arrays in ``forward`` and maps the gradient of
   the loss with respect to that output, ``g = dL/dy``, to the gradients with respect to each
   input in ``backward``. It keeps whatever ``backward`` needs on ``self`` (the "context").
3. ``Tensor.backward`` walks the recorded graph in reverse topological order and applies the
   chain rule: each input's gradient is the sum of what every consumer sends back to it.

The op catalogue (add, conv2d, softmax, ...) lives in ``minidl.ops`` and is listed in
``minidl.functional``; each op is one small ``Function`` subclass.
"""

from __future__ import annotations

import contextlib

import numpy as np

_grad_enabled = True


@contextlib.contextmanager
def no_grad():
    """Context manager (like ``torch.no_grad``): ops inside it record no graph."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled() -> bool:
    return _grad_enabled


def _to_array(data, dtype=None) -> np.ndarray:
    """NumPy arrays and scalars keep their dtype; Python numbers and lists become float32 (PyTorch's default)."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.asarray(data, dtype=dtype)
    array = np.asarray(data)
    if array.dtype == np.float64 and not isinstance(data, (np.ndarray, np.generic)):
        array = array.astype(np.float32)
    return array


def _add_grads(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b as an ndarray (the sum of two 0-d arrays comes back a NumPy scalar)."""
    return np.asarray(a + b)


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    ``Tensor(array, requires_grad=False)``: float arrays keep their dtype (float32 or float64),
    Python numbers and lists become float32, integer arrays stay integer (class labels, indices).
    After ``loss.backward()`` every leaf tensor with ``requires_grad=True`` holds ``dL/dleaf`` in
    ``.grad`` (an ndarray of the same shape), summed over all backward calls until reset.

    ``.data`` is the array itself, not a copy. Writing into it between a forward pass and
    ``backward()`` silently gives a wrong gradient: the backward rules read the arrays saved in the
    forward pass, which may be that same array. (PyTorch catches this only for its in-place ops,
    through a version counter on each tensor; minidl has no in-place ops, so it has no counter
    either: if it ever gains some, it needs one too.) Optimisers write into ``.data`` after
    ``backward()``, which is safe.
    """

    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected operator

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self.data = _to_array(data, dtype)
        if requires_grad and not np.issubdtype(self.data.dtype, np.floating):
            raise ValueError(
                f"Tensor: only floating-point tensors can require gradients, got dtype {self.data.dtype}"
            )
        self.requires_grad = bool(requires_grad)
        self._grad = None
        self._ctx = None  # the Function that produced this tensor (None for leaves)
        self._retains_grad = False

    # ----------------------------------------------------------------- basic properties
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    is_leaf = property(lambda self: self._ctx is None)

    @property
    def grad(self) -> np.ndarray | None:
        """dL/dself after ``backward()``, an array of this tensor's shape, or None."""
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        """Setting ``.grad`` (e.g. to None, or a gradient computed elsewhere) checks the shape, as PyTorch
        does: a wrong shape would otherwise broadcast silently inside the optimiser's update."""
        if value is not None:
            value = np.asarray(value)
            if value.shape != self.data.shape:
                raise ValueError(f"Tensor.grad: the assigned gradient has shape {value.shape}, "
                                 f"but the tensor has shape {self.data.shape}")
        self._grad = value

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self.data, prefix="Tensor(", separator=", ")
        return f"Tensor({body}, dtype={self.dtype}{grad})"

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied), like ``torch.Tensor.numpy``."""
        return self.data

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item: only one-element tensors can be converted, got shape {self.shape}")
        return self.data.item()

    def detach(self) -> "Tensor":
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def retain_grad(self) -> "Tensor":
        """Keep ``.grad`` on this non-leaf tensor after backward (as ``torch.Tensor.retain_grad``)."""
        self._retains_grad = True
        return self

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and not np.issubdtype(self.data.dtype, np.floating):
            raise ValueError(f"requires_grad_: dtype {self.dtype} cannot require gradients")
        self.requires_grad = requires_grad
        return self

    def float(self) -> "Tensor":
        """A float32 copy, still in the graph (gradients flow back converted to this tensor's dtype)."""
        return _F().cast(self, np.float32)

    def double(self) -> "Tensor":
        """A float64 copy, still in the graph."""
        return _F().cast(self, np.float64)

    # ----------------------------------------------------------------- backward
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Accumulate ``d(self)/d(leaf) . grad`` into every leaf's ``.grad``.

        ``grad`` is dL/dself (same shape as self); it may be omitted only for a one-element
        tensor, where it defaults to 1. The graph is freed afterwards unless ``retain_graph``.
        """
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward: grad can be implicitly created only for one-element outputs; "
                    f"this output has shape {self.shape}, pass grad= of that shape"
                )
            grad = np.ones_like(self.data)
        grad = _to_array(grad, self.dtype)
        if grad.shape != self.shape:
            raise ValueError(f"backward: grad has shape {grad.shape} but the tensor has shape {self.shape}")

        grads = {id(self): grad}  # pending dL/dnode, by node
        for node in reversed(_topological_order(self)):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._ctx is None or node._retains_grad:  # a copy: g may be a view of an array held elsewhere
                node.grad = np.array(g) if node.grad is None else _add_grads(node.grad, g)
            if node._ctx is None:
                continue
            for parent, parent_grad in zip(node._ctx.parents, node._ctx.run_backward(g)):
                if parent is not None and parent_grad is not None and parent.requires_grad:
                    key = id(parent)
                    grads[key] = _add_grads(grads[key], parent_grad) if key in grads else parent_grad
            if not retain_graph:
                node._ctx.free()

    # ----------------------------------------------------------------- operators
    def __add__(self, other): return _F().add(self, other)
    def __radd__(self, other): return _F().add(other, self)
    def __sub__(self, other): return _F().sub(self, other)
    def __rsub__(self, other): return _F().sub(other, self)
    def __mul__(self, other): return _F().mul(self, other)
    def __rmul__(self, other): return _F().mul(other, self)
    def __truediv__(self, other): return _F().div(self, other)
    def __rtruediv__(self, other): return _F().div(other, self)
    def __pow__(self, exponent): return _F().pow(self, exponent)
    def __rpow__(self, base): return _F().pow(base, self)
    def __neg__(self): return _F().neg(self)
    def __abs__(self): return _F().abs(self)
    def __matmul__(self, other): return _F().matmul(self, other)
    def __rmatmul__(self, other): return _F().matmul(other, self)
    def __getitem__(self, index): return _F().getitem(self, index)

    # Comparisons return boolean tensors outside the graph (they have no gradient).
    def __lt__(self, other): return Tensor(self.data < _to_array(other))
    def __le__(self, other): return Tensor(self.data <= _to_array(other))
    def __gt__(self, other): return Tensor(self.data > _to_array(other))
    def __ge__(self, other): return Tensor(self.data >= _to_array(other))

    # ----------------------------------------------------------------- methods, as in PyTorch
    def exp(self): return _F().exp(self)
    def log(self): return _F().log(self)
    def sqrt(self): return _F().sqrt(self)
    def abs(self): return _F().abs(self)
    def relu(self): return _F().relu(self)
    def sigmoid(self): return _F().sigmoid(self)
    def tanh(self): return _F().tanh(self)
    def clamp(self, min=None, max=None): return _F().clamp(self, min, max)
    def sum(self, dim=None, keepdim=False): return _F().sum(self, dim, keepdim)
    def mean(self, dim=None, keepdim=False): return _F().mean(self, dim, keepdim)
    def max(self, dim=None, keepdim=False): return _F().max(self, dim, keepdim)
    def amax(self, dim=None, keepdim=False): return _F().amax(self, dim, keepdim)
    def var(self, dim=None, unbiased=True, keepdim=False): return _F().var(self, dim, unbiased, keepdim)
    def reshape(self, *shape): return _F().reshape(self, *shape)
    def view(self, *shape): return _F().reshape(self, *shape)
    def flatten(self, start_dim=0, end_dim=-1): return _F().flatten(self, start_dim, end_dim)
    def transpose(self, dim0, dim1): return _F().transpose(self, dim0, dim1)
    def permute(self, *dims): return _F().permute(self, *dims)
    def softmax(self, dim): return _F().softmax(self, dim)
    def log_softmax(self, dim): return _F().log_softmax(self, dim)
    def argmax(self, dim=None, keepdim=False):
        return Tensor(np.argmax(self.data, axis=dim, keepdims=keepdim))

    @property
    def T(self):
        return _F().permute(self, *reversed(range(self.ndim)))


def _F():
    """``minidl.functional``, imported late: the ops import this module, not the other way round."""
    from . import functional

    return functional


def _topological_order(root: Tensor) -> list:
    """Nodes of the graph below ``root``, each after all of its parents (iterative DFS, no recursion)."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if node._ctx is not None:
            if node._ctx.parents is None:
                raise RuntimeError(
                    f"backward: trying to backward through the graph a second time ({type(node._ctx).__name__} "
                    "already freed); call backward(retain_graph=True) the first time"
                )
            stack.extend((p, False) for p in node._ctx.parents if p is not None and id(p) not in visited)
    return order


class Function:
    """One differentiable op. Subclasses write two methods on plain ndarrays:

    ``forward(self, *arrays, **options) -> ndarray``: compute y; save on ``self`` what backward needs.
    ``backward(self, g) -> tuple``: given g = dL/dy, return dL/dx for each array input
    (``None`` where no gradient flows, e.g. integer indices).

    Call an op with ``MyOp.apply(*inputs, **options)``: inputs may be Tensors, arrays, numbers
    (made Tensors, so 2.0 is float32) or None (an absent optional input such as a bias); options
    are non-differentiable settings. Float inputs must share one dtype: nothing is silently upcast.
    ``self.needs_input_grad[i]`` (set before forward) says whether input i wants a gradient, so
    an op can skip work: backward may return None for inputs that do not. Every gradient must
    have its input's shape and dtype (``run_backward`` checks).
    """

    parents: list | None

    @classmethod
    def apply(cls, *inputs, **options) -> Tensor:
        tensors = [x if x is None or isinstance(x, Tensor) else Tensor(x) for x in inputs]
        present = [t for t in tensors if t is not None]
        if len({t.dtype for t in present if np.issubdtype(t.dtype, np.floating)}) > 1:
            inputs_seen = ", ".join(f"{t.dtype} {t.shape}" for t in present)
            raise ValueError(f"{cls.__name__}: inputs have different float dtypes ({inputs_seen}); "
                             "convert with .float() or .double()")
        ctx = cls()
        ctx.needs_input_grad = tuple(t is not None and t.requires_grad for t in tensors)
        out = Tensor(ctx.forward(*[None if t is None else t.data for t in tensors], **options))
        if _grad_enabled and any(ctx.needs_input_grad):
            out.requires_grad = True
            out._ctx = ctx
            ctx.parents = tensors
        return out

    def forward(self, *arrays, **options) -> np.ndarray:
        raise NotImplementedError

    def backward(self, g: np.ndarray) -> tuple:
        raise NotImplementedError

    def run_backward(self, g: np.ndarray) -> tuple:
        """``backward``, checked: one gradient per input, each with its input's shape and dtype."""
        grads = self.backward(g)
        grads = grads if isinstance(grads, tuple) else (grads,)
        name = type(self).__name__
        if len(grads) != len(self.parents):
            raise RuntimeError(f"{name}.backward returned {len(grads)} gradients for {len(self.parents)} inputs")
        grads = tuple(None if grad is None else np.asarray(grad) for grad in grads)
        for parent, grad in zip(self.parents, grads):
            if parent is not None and grad is not None and (grad.shape, grad.dtype) != (parent.shape, parent.dtype):
                raise RuntimeError(f"{name}.backward returned a {grad.dtype} gradient of shape {grad.shape} "
                                   f"for a {parent.dtype} input of shape {parent.shape}")
        return grads

    def free(self) -> None:
        """Drop the references to inputs and saved arrays so their memory can be reclaimed."""
        self.__dict__.clear()
        self.parents = None

