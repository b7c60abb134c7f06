"""Losses: cross-entropy (weights, ignore_index, 2-D and 4-D), binary cross-entropy with logits, soft Dice."""

import numpy as np
import pytest
from helpers import arrays, check_gradients
from hypothesis import example, given, settings
from hypothesis import strategies as st

import minidl.functional as F
import minidl.nn as nn
from minidl import Tensor

TORCH_REASON = "PyTorch is the reference for loss parity"
SETTINGS = settings(max_examples=20, deadline=None)
REDUCTIONS = ["mean", "sum", "none"]


@st.composite
def classification_case(draw, spatial_dims=None):
    """Logits (N, C, *) with 0 or 2 spatial dims, targets (N, *) with some ignored (-100), class weights."""
    spatial_dims = draw(st.sampled_from([0, 2])) if spatial_dims is None else spatial_dims
    batch, classes = draw(st.integers(1, 3)), draw(st.integers(2, 4))
    spatial = tuple(draw(st.lists(st.integers(1, 3), min_size=spatial_dims, max_size=spatial_dims)))
    logits = draw(arrays((batch, classes) + spatial, low=-3, high=3))
    target = np.asarray(draw(st.lists(st.integers(-1, classes - 1), min_size=int(np.prod((batch,) + spatial)),
                                      max_size=int(np.prod((batch,) + spatial))))).reshape((batch,) + spatial)
    target[target == -1] = -100
    target.reshape(-1)[0] = 0  # at least one counted target, so the weighted mean is defined
    weight = draw(arrays((classes,), low=0.1, high=2.0))
    return logits, target, weight


@SETTINGS
@given(case=classification_case(), reduction=st.sampled_from(REDUCTIONS), weighted=st.booleans())
def test_cross_entropy_gradients(case, reduction, weighted):
    logits, target, weight = case
    weight = weight if weighted else None
    check_gradients(lambda x: F.cross_entropy(x, target, weight, reduction=reduction), [logits])


# an ignored target under "mean": its weight must not count in the divisor (nor class 0's in its place)
IGNORED_TARGET_CASE = (np.array([[0.5, -1.0, 2.0], [1.0, 0.25, -0.5]]), np.array([2, -100]), np.array([0.5, 1.5, 2.0]))


@SETTINGS
@given(case=classification_case(), reduction=st.sampled_from(REDUCTIONS))
@example(case=IGNORED_TARGET_CASE, reduction="mean")
def test_cross_entropy_matches_its_definition(case, reduction):
    """l_i = -w[t_i] log softmax(x_i)[t_i]; mean = sum l / sum w[t_i] over counted i; ignored l_i = 0."""
    logits, target, weight = case
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    counted = target != -100
    safe = np.where(counted, target, 0)
    picked = np.take_along_axis(log_probs, safe[:, None], axis=1)[:, 0]
    losses = np.where(counted, -weight[safe] * picked, 0)
    expected = {"none": losses, "sum": losses.sum(), "mean": losses.sum() / weight[safe][counted].sum()}[reduction]
    got = F.cross_entropy(Tensor(logits), target, weight, reduction=reduction).data
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4, 5)])
@pytest.mark.parametrize("ignored_every", [3, 1])  # 1: every target ignored (mean = 0/0 = nan, gradient 0)
def test_cross_entropy_matches_pytorch(shape, reduction, dtype, ignored_every):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    from helpers import check_op

    rng = np.random.default_rng(0)
    logits = (rng.standard_normal(shape) * 3).astype(dtype)
    target = rng.integers(0, shape[1], (shape[0],) + shape[2:])
    target.reshape(-1)[::ignored_every] = 255
    weight = rng.uniform(0.1, 2.0, shape[1]).astype(dtype)
    check_op(lambda x: F.cross_entropy(x, target, weight, ignore_index=255, reduction=reduction),
             lambda x: torch.nn.functional.cross_entropy(x, torch.tensor(target), torch.tensor(weight),
                                                         ignore_index=255, reduction=reduction), [logits])


def test_cross_entropy_is_stable_for_huge_logits():
    logits = Tensor(np.array([[1e4, -1e4, 0.0], [0.0, 1e4, -1e4]], dtype=np.float32), requires_grad=True)
    loss = F.cross_entropy(logits, np.array([1, 1]))
    loss.backward()
    np.testing.assert_allclose(loss.item(), 1e4, rtol=1e-6)  # (2e4 + 0) / 2
    np.testing.assert_allclose(logits.grad, [[0.5, -0.5, 0.0], [0.0, 0.0, 0.0]], atol=1e-6)


def test_cross_entropy_with_every_target_ignored_is_nan_like_pytorch():
    with np.errstate(invalid="ignore"):
        loss = F.cross_entropy(Tensor(np.zeros((2, 3))), np.array([-100, -100]))
    assert np.isnan(loss.item())


def test_cross_entropy_errors_name_argument_and_shapes():
    logits = Tensor(np.zeros((2, 3, 4, 4)))
    with pytest.raises(ValueError, match=r"cross_entropy: target must have shape \(2, 4, 4\) .* got \(2, 4\)"):
        F.cross_entropy(logits, np.zeros((2, 4), dtype=np.int64))
    out_of_range = np.zeros((2, 4, 4), dtype=np.int64)
    out_of_range[1, 2, 3] = 3
    with pytest.raises(ValueError, match=r"values must be in \[0, 3\) or ignore_index=-100, found values in \[0, 3\]"):
        F.cross_entropy(logits, out_of_range)
    out_of_range[1, 2, 3] = -1
    with pytest.raises(ValueError, match=r"found values in \[-1, 0\]"):
        F.cross_entropy(logits, out_of_range)
    with pytest.raises(TypeError, match="target must hold integer class indices, got dtype float64"):
        F.cross_entropy(logits, np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\), got \(2,\)"):
        F.cross_entropy(logits, np.zeros((2, 4, 4), dtype=np.int64), np.ones(2))
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.cross_entropy(logits, np.zeros((2, 4, 4), dtype=np.int64), reduction="average")


@SETTINGS
@given(case=classification_case(), reduction=st.sampled_from(REDUCTIONS), weighted=st.booleans())
@example(case=IGNORED_TARGET_CASE, reduction="mean", weighted=True)
def test_nll_loss_gradients(case, reduction, weighted):
    """nll_loss on its own (any real input, not only log-probabilities): dL/dx = -w[t_i] at (i, t_i), / sum w for mean."""
    logits, target, weight = case
    check_gradients(lambda x: F.nll_loss(x, target, weight if weighted else None, reduction=reduction), [logits])


def fused_and_composed(logits, target, weight, reduction):
    """(loss, dL/dlogits) of F.cross_entropy (the fast path, FusedCrossEntropy) and of the lesson's
    composition nll_loss(log_softmax(x, 1)), for the same random upstream gradient."""
    results = []
    for loss_of in (lambda x: F.cross_entropy(x, target, weight, reduction=reduction),
                    lambda x: F.nll_loss(F.log_softmax(x, 1), target, weight, reduction=reduction)):
        x = Tensor(logits.copy(), requires_grad=True)
        loss = loss_of(x)
        loss.backward(np.random.default_rng(0).standard_normal(loss.shape).astype(logits.dtype))
        results.append((loss.data, x.grad))
    return results


@SETTINGS
@given(case=classification_case(), reduction=st.sampled_from(REDUCTIONS), weighted=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_fused_cross_entropy_matches_the_composition(case, reduction, weighted, dtype):
    logits, target, weight = case
    fused, composed = fused_and_composed(logits.astype(dtype), target, weight.astype(dtype) if weighted else None,
                                         reduction)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    for ours, lesson in zip(fused, composed, strict=True):
        assert ours.dtype == dtype and ours.shape == lesson.shape
        np.testing.assert_allclose(ours, lesson, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_cross_entropy_on_a_segmentation_batch_with_a_zero_class_weight(dtype):
    """Images of 5 x 7 pixels, a non-contiguous batch, ignored pixels and a class of weight 0: its pixels
    and the ignored ones get exactly zero gradient, even where the upstream gradient is NaN."""
    rng = np.random.default_rng(1)
    logits = (rng.standard_normal((3, 5, 7, 2)) * 4).astype(dtype).transpose(0, 3, 1, 2)  # (3, 2, 5, 7)
    logits = np.concatenate([logits, logits[:, :1] + 1], axis=1)[:, ::-1]  # (3, 3, 5, 7), reversed classes
    target = rng.integers(0, 3, (3, 5, 7))
    target[:, 0] = -100
    weight = np.array([0.0, 1.0, 2.5], dtype)
    fused, composed = fused_and_composed(np.asarray(logits), target, weight, "none")
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    for ours, lesson in zip(fused, composed, strict=True):
        np.testing.assert_allclose(ours, lesson, rtol=tolerance, atol=tolerance)
    x = Tensor(logits.copy(), requires_grad=True)
    upstream = np.full(target.shape, np.nan, dtype)
    F.cross_entropy(x, target, weight, reduction="none").backward(upstream)
    silent = (target == -100) | (target == 0)
    assert np.all(x.grad.transpose(0, 2, 3, 1)[silent] == 0) and np.isnan(x.grad.transpose(0, 2, 3, 1)[~silent]).all()


def test_nll_loss_on_log_softmax_equals_cross_entropy():
    rng = np.random.default_rng(0)
    logits, target = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    np.testing.assert_allclose(F.nll_loss(F.log_softmax(Tensor(logits), 1), target).data,
                               F.cross_entropy(Tensor(logits), target).data, rtol=1e-14)


@st.composite
def binary_case(draw):
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    logits = draw(arrays(shape, low=-4, high=4))
    target = draw(arrays(shape, low=0, high=1))  # soft targets in [0, 1]
    weight = draw(arrays(shape[1:], low=0.1, high=2))
    pos_weight = draw(arrays((shape[1], 1, 1), low=0.1, high=3))
    return logits, target, weight, pos_weight


@SETTINGS
@given(case=binary_case(), reduction=st.sampled_from(REDUCTIONS))
def test_binary_cross_entropy_with_logits_gradients_wrt_input_and_target(case, reduction):
    logits, target, weight, pos_weight = case
    check_gradients(lambda x, y: F.binary_cross_entropy_with_logits(x, y, weight, reduction=reduction,
                                                                     pos_weight=pos_weight), [logits, target])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_with_logits_matches_pytorch(reduction, dtype):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    from helpers import check_op

    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((2, 3, 4, 5)) * 5).astype(dtype)
    target = rng.uniform(0, 1, logits.shape).astype(dtype)
    weight = rng.uniform(0.1, 2, (4, 5)).astype(dtype)
    pos_weight = rng.uniform(0.1, 3, (3, 1, 1)).astype(dtype)
    check_op(lambda x, y: F.binary_cross_entropy_with_logits(x, y, weight, reduction=reduction,
                                                             pos_weight=pos_weight),
             lambda x, y: torch.nn.functional.binary_cross_entropy_with_logits(
                 x, y, torch.tensor(weight), reduction=reduction, pos_weight=torch.tensor(pos_weight)),
             [logits, target])


def test_binary_cross_entropy_with_logits_is_stable_and_takes_integer_masks():
    logits = Tensor(np.array([1e4, -1e4, 1e4, -1e4], dtype=np.float32), requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(logits, np.array([1, 0, 0, 1], dtype=np.uint8), reduction="none")
    loss.backward(np.ones(4, dtype=np.float32))
    np.testing.assert_array_equal(loss.data, [0, 0, 1e4, 1e4])
    np.testing.assert_array_equal(logits.grad, [0, 0, 1, -1])
    assert loss.dtype == np.float32
    with pytest.raises(ValueError, match=r"target must have the input's shape \(4,\), got \(3,\)"):
        F.binary_cross_entropy_with_logits(logits, np.zeros(3))
    with pytest.raises(ValueError, match=r"pos_weight of shape \(3,\) does not broadcast against input \(4,\)"):
        F.binary_cross_entropy_with_logits(logits, np.zeros(4), pos_weight=np.ones(3))


@SETTINGS
@given(case=classification_case(spatial_dims=2), smooth=st.sampled_from([1.0, 0.1]))
def test_dice_loss_gradients(case, smooth):
    logits, target, _ = case
    check_gradients(lambda x: F.dice_loss(x, target, smooth=smooth), [logits])


def test_dice_loss_matches_its_formula():
    rng = np.random.default_rng(0)
    logits, target = rng.standard_normal((2, 3, 4, 5)), rng.integers(0, 3, (2, 4, 5))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    one_hot = np.stack([target == c for c in range(3)], axis=1)
    p, t = probabilities.swapaxes(0, 1).reshape(3, -1), one_hot.swapaxes(0, 1).reshape(3, -1)  # (class, pixel)
    dice = (2 * (p * t).sum(axis=1) + 1) / (p.sum(axis=1) + t.sum(axis=1) + 1)
    np.testing.assert_allclose(F.dice_loss(Tensor(logits), target).item(), 1 - np.mean(dice), rtol=1e-12)


def test_dice_loss_is_zero_for_a_confident_perfect_prediction_and_ignores_ignored_pixels():
    target = np.array([[[0, 1], [2, -100]]])
    logits = np.where(np.arange(3).reshape(1, 3, 1, 1) == np.maximum(target, 0)[:, None], 50.0, -50.0)
    assert F.dice_loss(Tensor(logits), target).item() == pytest.approx(0, abs=1e-12)
    changed = logits.copy()
    changed[0, :, 1, 1] = [-9.0, 3.0, 7.0]  # logits at the ignored pixel do not matter
    assert F.dice_loss(Tensor(changed), target).item() == pytest.approx(0, abs=1e-12)


def test_loss_modules_call_the_functions_with_their_settings():
    rng = np.random.default_rng(0)
    logits, target = Tensor(rng.standard_normal((2, 3, 4, 4))), rng.integers(0, 3, (2, 4, 4))
    weight = np.array([0.25, 1.0, 3.0])  # exact in float32, the buffer's dtype after a list
    module = nn.CrossEntropyLoss(list(weight), ignore_index=1, reduction="sum").double()
    np.testing.assert_array_equal(module(logits, target).data,
                                  F.cross_entropy(logits, target, weight, ignore_index=1, reduction="sum").data)
    assert list(module.state_dict()) == ["weight"]
    masks = (rng.uniform(size=(2, 3, 4, 4)) > 0.5).astype(np.float64)
    bce = nn.BCEWithLogitsLoss(pos_weight=np.full((3, 1, 1), 2.0)).double()
    np.testing.assert_array_equal(bce(logits, masks).data, F.binary_cross_entropy_with_logits(
        logits, masks, pos_weight=np.full((3, 1, 1), 2.0)).data)
    np.testing.assert_array_equal(nn.DiceLoss(smooth=0.5)(logits, target).data,
                                  F.dice_loss(logits, target, smooth=0.5).data)
