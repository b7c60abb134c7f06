"""Losses for classification and segmentation: cross-entropy, binary cross-entropy, soft Dice.

Logits are (N, C) for classification or (N, C, H, W) (any number of trailing dims) for
segmentation, with integer class targets (N,) or (N, H, W). ``reduction`` is "mean", "sum" or
"none", as in PyTorch.
"""

from __future__ import annotations

import numpy as np

from ..kernels import cross_entropy as fast
from ..tensor import Function, Tensor
from .activation import log_softmax, softmax
from .activation import Sigmoid

_REDUCTIONS = ("mean", "sum", "none")


def _array(x):
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def _check_reduction(name: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _check_class_target(name: str, input: Tensor, target, weight, ignore_index: int) -> np.ndarray:
    """Validate (N, C, *) scores against (N, *) integer targets and a (C,) weight; return the targets."""
    target = _array(target)
    if input.ndim < 2:
        raise ValueError(f"{name}: input must be (N, C) or (N, C, H, W), got shape {input.shape}")
    expected = input.shape[:1] + input.shape[2:]
    if target.shape != expected:
        raise ValueError(f"{name}: target must have shape {expected} (input {input.shape} without the "
                         f"class dim), got {target.shape}")
    if not np.issubdtype(target.dtype, np.integer):
        raise TypeError(f"{name}: target must hold integer class indices, got dtype {target.dtype}")
    classes = input.shape[1]
    labels = target[target != ignore_index]
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"{name}: target values must be in [0, {classes}) or ignore_index={ignore_index}, "
                         f"found values in [{labels.min()}, {labels.max()}]")
    if weight is not None and _array(weight).shape != (classes,):
        raise ValueError(f"{name}: weight must have shape ({classes},), got {_array(weight).shape}")
    return target


class NLLLoss(Function):
    """Per-element negative log-likelihood of the target class, weighted by class.

    l_i = -w[t_i] * logp[i, t_i]   (l_i = 0 where t_i == ignore_index);  logp: (N, C, *), l: (N, *)
    dL/dlogp[i, c] = -w[t_i] * g_i if c == t_i else 0   (exactly 0 where w[t_i] = 0, even if g_i is NaN:
    a mean over targets that are all ignored is 0/0 = NaN, and PyTorch's gradient is then 0)
    """

    def forward(self, logp, target, class_weight, ignore_index):
        ignored = target == ignore_index
        self.index = np.expand_dims(np.where(ignored, 0, target), 1)  # (N, 1, *): where to pick
        self.shape = logp.shape
        self.weight = np.where(ignored, 0, class_weight[np.squeeze(self.index, 1)]).astype(logp.dtype)
        picked = np.squeeze(np.take_along_axis(logp, self.index, axis=1), 1)
        return -self.weight * picked

    def backward(self, g):
        grad = np.zeros(self.shape, dtype=g.dtype)
        np.put_along_axis(grad, self.index, np.expand_dims(np.where(self.weight == 0, 0, -self.weight * g), 1),
                          axis=1)
        return grad


class FusedCrossEntropy(Function):
    """The per-element losses of NLLLoss(log_softmax(x, dim=1)) (same maths, see ``cross_entropy``),
    computed by the Numba loops of ``minidl.kernels.cross_entropy``: one image at a time (its logits
    stay in cache) instead of about ten walks over the batch, and the softmax kept for the backward.
    ``cross_entropy`` uses it; tests check it against the composition.
    """

    def forward(self, x, target, class_weight, ignore_index):
        n, classes = x.shape[:2]
        self.input_shape = x.shape
        x = np.ascontiguousarray(x).reshape(n, classes, -1)  # (N, C, M), a view when contiguous
        self.target = np.ascontiguousarray(target, dtype=np.int64).reshape(n, -1)
        self.class_weight, self.ignore_index = class_weight, ignore_index
        losses, self.probabilities = np.empty(self.target.shape, x.dtype), np.empty(x.shape, x.dtype)
        fast.forward(x, self.target, class_weight, ignore_index, losses, self.probabilities)
        return losses.reshape(target.shape)

    def backward(self, g):
        grad = np.empty(self.probabilities.shape, dtype=g.dtype)
        fast.backward(self.target, self.class_weight, self.ignore_index, self.probabilities,
                      np.ascontiguousarray(g).reshape(self.target.shape), grad)
        return grad.reshape(self.input_shape)


def _class_weight(weight, classes: int, dtype) -> np.ndarray:
    """The (C,) class weights as an array of the logits' dtype (ones when weight is None)."""
    return np.ones(classes, dtype) if weight is None else _array(weight).astype(dtype)


def _reduce(losses: Tensor, target: np.ndarray, class_weight: np.ndarray, ignore_index: int, reduction: str) -> Tensor:
    """PyTorch's reductions of per-element losses; "mean" divides by the summed weight of the non-ignored targets."""
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    counted = target != ignore_index
    total_weight = class_weight[np.where(counted, target, 0)][counted].sum(dtype=losses.dtype)
    return losses.sum() / Tensor(total_weight)


def _weighted_nll(logp: Tensor, target: np.ndarray, weight, ignore_index: int, reduction: str) -> Tensor:
    """NLL with PyTorch's reductions (``_reduce``)."""
    class_weight = _class_weight(weight, logp.shape[1], logp.dtype)
    losses = NLLLoss.apply(logp, class_weight=class_weight, target=target, ignore_index=ignore_index)
    return _reduce(losses, target, class_weight, ignore_index, reduction)


def nll_loss(input: Tensor, target, weight=None, *, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood for log-probabilities ``input`` (N, C, *) and class targets (N, *).

    mean: L = sum_i -w[t_i] logp[i, t_i] / sum_i w[t_i], both sums over targets != ignore_index
    (NaN when every target is ignored, as PyTorch); sum: the numerator; none: per element (N, *).
    """
    _check_reduction("nll_loss", reduction)
    target = _check_class_target("nll_loss", input, target, weight, ignore_index)
    return _weighted_nll(input, target, weight, ignore_index, reduction)


def cross_entropy(input: Tensor, target, weight=None, *, ignore_index: int = -100,
                  reduction: str = "mean") -> Tensor:
    """Cross-entropy of logits ``input`` (N, C, *) against class targets (N, *), as PyTorch.

    L = nll_loss(log_softmax(input, dim=1), target): per element l_i = -w[t_i] log softmax(x_i)[t_i],
    averaged with weights (see ``nll_loss``). log_softmax subtracts the max first, so large logits
    do not overflow. Gradient per element: dl_i/dx_i = w[t_i] * (softmax(x_i) - onehot(t_i)).
    Float logits take the fast path ``FusedCrossEntropy`` (these losses, one image at a time in Numba);
    the composition is the lesson, and the tests compare the two.
    """
    _check_reduction("cross_entropy", reduction)
    target = _check_class_target("cross_entropy", input, target, weight, ignore_index)
    if input.dtype not in (np.float32, np.float64):
        return _weighted_nll(log_softmax(input, 1), target, weight, ignore_index, reduction)
    class_weight = _class_weight(weight, input.shape[1], input.dtype)
    losses = FusedCrossEntropy.apply(input, target=target, class_weight=class_weight, ignore_index=ignore_index)
    return _reduce(losses, target, class_weight, ignore_index, reduction)


def _softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(x)) without overflow: max(x, 0) + log(1 + exp(-|x|))."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


class BinaryCrossEntropyWithLogits(Function):
    """Per-element binary cross-entropy of logits x against targets y in [0, 1].

    With s = sigmoid, pw = pos_weight and w = weight (both broadcast, default 1):
        l = -w [pw y log s(x) + (1 - y) log(1 - s(x))] = w [(1 - y) x + (1 + (pw - 1) y) softplus(-x)]
        dl/dx = w [(1 - y) - (1 + (pw - 1) y) s(-x)]      (= w (s(x) - y) when pw = 1)
        dl/dy = w [(pw - 1) softplus(-x) - x]
    The right-hand form uses only softplus and sigmoid of any sign, so no exp overflows.
    """

    def forward(self, x, y, weight, pos_weight):
        self.x, self.y, self.weight, self.pos_weight = x, y, weight, pos_weight
        self.softplus_neg_x = _softplus(-x)
        return weight * ((1 - y) * x + (1 + (pos_weight - 1) * y) * self.softplus_neg_x)

    def backward(self, g):
        gw = g * self.weight
        grad_x = gw * ((1 - self.y) - (1 + (self.pos_weight - 1) * self.y) * Sigmoid.f(-self.x))
        grad_y = gw * ((self.pos_weight - 1) * self.softplus_neg_x - self.x) if self.needs_input_grad[1] else None
        return grad_x, grad_y


def binary_cross_entropy_with_logits(input: Tensor, target, weight=None, *, reduction: str = "mean",
                                     pos_weight=None) -> Tensor:
    """Binary cross-entropy on logits, as PyTorch (numerically stable; see the Function above).

    input: logits of any shape; target: same shape, values in [0, 1] (an array, e.g. an integer
    mask, is converted to input's dtype; a float Tensor must have that dtype and may require grad);
    weight: broadcastable to input, rescales each element;
    pos_weight: broadcastable to input (e.g. (C, 1, 1) for (N, C, H, W)), weighs the positive term.
    """
    name = "binary_cross_entropy_with_logits"
    _check_reduction(name, reduction)
    if not isinstance(target, Tensor) or not np.issubdtype(target.dtype, np.floating):
        target = Tensor(_array(target).astype(input.dtype))
    if target.shape != input.shape:
        raise ValueError(f"{name}: target must have the input's shape {input.shape}, got {target.shape}")
    factors = {}
    for arg, value in (("weight", weight), ("pos_weight", pos_weight)):
        factors[arg] = np.ones((), input.dtype) if value is None else _array(value).astype(input.dtype)
        try:
            np.broadcast_shapes(factors[arg].shape, input.shape)
        except ValueError:
            raise ValueError(f"{name}: {arg} of shape {factors[arg].shape} does not broadcast against "
                             f"input {input.shape}") from None
    losses = BinaryCrossEntropyWithLogits.apply(input, target, **factors)
    return losses if reduction == "none" else losses.sum() if reduction == "sum" else losses.mean()


def dice_loss(input: Tensor, target, *, smooth: float = 1.0, ignore_index: int = -100) -> Tensor:
    """Soft Dice loss of logits ``input`` (N, C, *) against class targets (N, *).

    p = softmax(input, dim=1), t = one-hot(target); with sums over the batch and every position
    (positions whose target is ignore_index drop out of all sums):
        dice_c = (2 sum(p_c t_c) + smooth) / (sum(p_c) + sum(t_c) + smooth)
        L = 1 - mean_c dice_c
    dice_c is 1 for a perfect prediction; ``smooth`` keeps classes absent from both prediction and
    target at dice_c ~ 1 and the gradient finite. Built from differentiable ops, so the gradient
    follows by the chain rule.
    """
    target = _check_class_target("dice_loss", input, target, None, ignore_index)
    classes = input.shape[1]
    valid = np.expand_dims(target != ignore_index, 1)
    class_ids = np.arange(classes).reshape((1, classes) + (1,) * (input.ndim - 2))
    one_hot = Tensor(((np.expand_dims(target, 1) == class_ids) & valid).astype(input.dtype))
    probabilities = softmax(input, 1) * Tensor(valid.astype(input.dtype))
    axes = (0,) + tuple(range(2, input.ndim))
    intersection = (probabilities * one_hot).sum(axes)
    dice = (2 * intersection + smooth) / (probabilities.sum(axes) + one_hot.sum(axes) + smooth)
    return 1 - dice.mean()
