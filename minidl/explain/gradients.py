"""The one primitive behind every gradient-based explanation: d logit_target / d input.

An explanation looks at one class score per image, the *logit* ``y[n, t_n]`` of a chosen class
``t_n`` (before softmax, as Simonyan et al. and Selvaraju et al. do). Seeding ``backward`` with the
one-hot matrix ``e[n, t_n] = 1`` gives, for every image of the batch at once,

    grad[n] = d y[n, t_n] / d x[n]

because image n's logits depend only on image n. That holds in eval mode only (BatchNorm in
training mode mixes the batch), so a model in training mode is refused: call ``model.eval()``.
``x`` may be the image or any intermediate activation: Grad-CAM calls this with the feature maps
and the head of the network.
"""

from __future__ import annotations

import numpy as np

from ..tensor import Tensor, no_grad


def as_array(x) -> np.ndarray:
    """The ndarray inside a Tensor, or ``x`` itself; explanations work on plain arrays."""
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def resolve_target(logits: np.ndarray, target) -> np.ndarray:
    """The class index to explain for each image: ``(N,)`` ints.

    target: None (the predicted class, argmax of the logits), one int for every image,
    or a sequence of N ints.
    """
    n, num_classes = logits.shape
    if target is None:
        return logits.argmax(axis=1)
    target = np.broadcast_to(np.asarray(target), (n,)) if np.ndim(target) == 0 else np.asarray(target)
    if target.shape != (n,) or not np.issubdtype(target.dtype, np.integer):
        raise ValueError(f"explain: target must be None, an int or {n} ints, got {target!r}")
    if target.min() < 0 or target.max() >= num_classes:
        raise ValueError(f"explain: target {target} is out of range for {num_classes} classes")
    return target.astype(np.int64)


def check_eval_mode(model) -> None:
    """Refuse a Module (or a bound method of one, like ``model.head``) that is in training mode.

    In training mode BatchNorm normalises with the batch's statistics (one image's explanation
    would depend on the others) and updates its running statistics (explaining would change the
    model); dropout would make every call random.
    """
    module = getattr(model, "__self__", model)
    layers = module.modules() if hasattr(module, "modules") else []
    # the layers decide (a container's own flag does not matter: a Sequential slice starts in training mode)
    if any(layer.training for layer in layers if next(layer.children(), None) is None):
        raise ValueError(f"explain: {type(module).__name__} has layers in training mode; call model.eval() first")


def logits_of(model, x) -> np.ndarray:
    """``model(x)`` as an array, without recording a graph: ``(N, num_classes)``."""
    check_eval_mode(model)
    with no_grad():
        return model(Tensor(as_array(x))).data


def logit_gradient(model, x, target=None):
    """Logits, explained classes and the gradient of each image's target logit w.r.t. its input.

    model: callable Tensor (N, ...) -> logits (N, num_classes);  x: (N, ...) array or Tensor.
    Returns ``(logits (N, K), target (N,), grad)`` with ``grad[n] = d logits[n, target[n]] / d x[n]``,
    grad of x's shape and dtype.
    """
    check_eval_mode(model)
    x = Tensor(np.array(as_array(x)), requires_grad=True)  # a private copy: the caller's array is never touched
    logits = model(x)
    if logits.ndim != 2 or logits.shape[0] != x.shape[0]:
        raise ValueError(f"explain: the model must return logits of shape (N, num_classes) = "
                         f"({x.shape[0]}, K) for input {x.shape}, got {logits.shape}")
    target = resolve_target(logits.data, target)
    one_hot = np.zeros_like(logits.data)
    one_hot[np.arange(len(target)), target] = 1
    if logits.requires_grad:  # otherwise the logits do not depend on x at all
        logits.backward(one_hot)
    grad = x.grad if x.grad is not None else np.zeros_like(x.data)
    return logits.data, target, grad
