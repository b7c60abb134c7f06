"""Batch normalisation: F.batch_norm gradients and closed forms, BatchNorm2d running statistics against PyTorch."""

import numpy as np
import pytest
from helpers import arrays, check_gradients
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl.functional as F
import minidl.nn as nn
from minidl import Tensor

TORCH_REASON = "PyTorch is the reference for BatchNorm2d parity"
SETTINGS = settings(max_examples=20, deadline=None)


@st.composite
def batch_norm_inputs(draw, min_dims=2, max_dims=4):
    """x (N, C, *) with at least 2 values per channel, and (C,) weight and bias."""
    ndim = draw(st.integers(min_dims, max_dims))
    channels = draw(st.integers(1, 3))
    spatial = tuple(draw(st.lists(st.integers(1, 3), min_size=ndim - 2, max_size=ndim - 2)))
    batch = draw(st.integers(2 if not spatial or np.prod(spatial) == 1 else 1, 3))
    x = draw(arrays((batch, channels) + spatial, distinct=True))  # distinct: no zero-variance channel
    weight = draw(arrays((channels,), low=0.5, high=2.0))
    bias = draw(arrays((channels,)))
    return x, weight, bias


@SETTINGS
@given(inputs=batch_norm_inputs())
def test_batch_norm_training_gradients_wrt_input_weight_and_bias(inputs):
    check_gradients(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), list(inputs))


@SETTINGS
@given(inputs=batch_norm_inputs(), data=st.data())
def test_batch_norm_eval_gradients_use_running_statistics(inputs, data):
    x, weight, bias = inputs
    channels = x.shape[1]
    mean = data.draw(arrays((channels,)))
    var = data.draw(arrays((channels,), low=0.1, high=2.0))
    check_gradients(lambda x, w, b: F.batch_norm(x, mean, var, w, b, training=False), [x, weight, bias])
    y = F.batch_norm(Tensor(x), mean, var, weight, bias).data
    shape = (1, channels) + (1,) * (x.ndim - 2)
    expected = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + 1e-5) * weight.reshape(shape)
    np.testing.assert_allclose(y, expected + bias.reshape(shape), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(inputs=batch_norm_inputs())
def test_batch_norm_without_affine_gradients(inputs):
    check_gradients(lambda x: F.batch_norm(x, None, None, training=True), [inputs[0]])


@SETTINGS
@given(inputs=batch_norm_inputs(min_dims=4))
def test_training_output_is_standardised_per_channel(inputs):
    """Closed form: per channel, mean(y) = bias and var(y) = weight^2 * var / (var + eps)."""
    x, weight, bias = inputs
    y = F.batch_norm(Tensor(x), None, None, weight, bias, training=True).data
    var = x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), bias, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), weight ** 2 * var / (var + 1e-5), rtol=1e-10)


def test_running_statistics_update_in_place_with_unbiased_variance():
    x = np.random.default_rng(0).standard_normal((4, 2, 3, 5))
    running_mean, running_var = np.full(2, 0.5), np.full(2, 2.0)
    F.batch_norm(Tensor(x), running_mean, running_var, training=True, momentum=0.3)
    count = 4 * 3 * 5
    np.testing.assert_allclose(running_mean, 0.7 * 0.5 + 0.3 * x.mean(axis=(0, 2, 3)), rtol=1e-14)
    unbiased = x.var(axis=(0, 2, 3)) * count / (count - 1)
    np.testing.assert_allclose(running_var, 0.7 * 2.0 + 0.3 * unbiased, rtol=1e-14)


def test_float32_stays_float32():
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32), requires_grad=True)
    layer = nn.BatchNorm2d(3)
    y = layer(x)
    y.backward(np.ones(y.shape, dtype=np.float32))
    assert y.dtype == x.grad.dtype == layer.weight.grad.dtype == layer.running_var.dtype == np.float32


def test_batch_norm_errors_name_the_problem():
    x = Tensor(np.ones((2, 3, 4, 4)))
    with pytest.raises(ValueError, match=r"batch_norm: weight must have shape \(3,\) for input \(2, 3, 4, 4\), "
                                         r"got \(2,\)"):
        F.batch_norm(x, None, None, np.ones(2), training=True)
    with pytest.raises(ValueError, match="eval mode .* needs running_mean and running_var"):
        F.batch_norm(x, None, None)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(Tensor(np.ones((1, 3, 1, 1))), None, None, training=True)
    with pytest.raises(ValueError, match=r"BatchNorm2d: input must be \(N, 4, H, W\), got shape \(2, 3, 4, 4\)"):
        nn.BatchNorm2d(4)(x)
    with pytest.raises(ValueError, match="weight has dtype float32 but input has float64"):
        nn.BatchNorm2d(3)(x)


@pytest.mark.parametrize("options", [{}, {"momentum": None}, {"affine": False}, {"bias": False},
                                     {"track_running_stats": False}, {"momentum": 0.5, "eps": 1e-3}])
def test_batch_norm2d_matches_pytorch_over_training_steps_and_eval(options):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    rng = np.random.default_rng(0)
    ours, theirs = nn.BatchNorm2d(3, **options).double(), torch.nn.BatchNorm2d(3, **options).double()
    if ours.weight is not None:
        ours.weight.data[...] = rng.uniform(0.5, 2.0, 3)
        theirs.weight.data = torch.tensor(ours.weight.data)
    for _ in range(3):
        x = rng.standard_normal((4, 3, 5, 6)) * 3 + 1
        upstream = rng.standard_normal(x.shape)
        x_ours, x_theirs = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y_ours, y_theirs = ours(x_ours), theirs(x_theirs)
        y_ours.backward(upstream)
        y_theirs.backward(torch.tensor(upstream))
        np.testing.assert_allclose(y_ours.data, y_theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(x_ours.grad, x_theirs.grad.numpy(), rtol=1e-10, atol=1e-12)
        for name, param in ours.named_parameters():
            np.testing.assert_allclose(param.grad, getattr(theirs, name).grad.numpy(), rtol=1e-10, atol=1e-12)
            param.grad = getattr(theirs, name).grad = None
    their_state = {k: v.numpy() for k, v in theirs.state_dict().items()}
    assert list(ours.state_dict()) == list(their_state)
    for name, value in ours.state_dict().items():
        np.testing.assert_allclose(value, their_state[name], rtol=1e-12)
    x = rng.standard_normal((2, 3, 4, 4))
    np.testing.assert_allclose(ours.eval()(Tensor(x)).data, theirs.eval()(torch.tensor(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-12)


@SETTINGS
@given(inputs=batch_norm_inputs(), batch_stats=st.booleans(), affine=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), data=st.data())
def test_fused_batch_norm_matches_the_plain_numpy_op(inputs, batch_stats, affine, dtype, data):
    """The Numba fast path (FusedBatchNorm, what F.batch_norm runs) against the lesson (BatchNorm):
    output and all three gradients, for a random upstream gradient."""
    from minidl.kernels.batch_norm import channel_statistics
    from minidl.ops.normalization import BatchNorm, FusedBatchNorm

    x, weight, bias = (a.astype(dtype) for a in inputs)
    weight, bias = (weight, bias) if affine else (None, None)
    axes = (0,) + tuple(range(2, x.ndim))
    mean, var = channel_statistics(x.reshape(x.shape[0], x.shape[1], -1))
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(axis=axes), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(var, x.astype(np.float64).var(axis=axes), rtol=1e-6, atol=1e-12)
    if not batch_stats:
        mean, var = data.draw(arrays(mean.shape)), data.draw(arrays(var.shape, low=0.1, high=2.0))
    upstream = np.random.default_rng(0).standard_normal(x.shape).astype(dtype)
    results = []
    for op in (BatchNorm, FusedBatchNorm):
        leaves = [None if a is None else Tensor(a.copy(), requires_grad=True) for a in (x, weight, bias)]
        y = op.apply(*leaves, mean=mean, var=var, eps=1e-5, batch_stats=batch_stats)
        y.backward(upstream)
        results.append([y.data] + [leaf.grad for leaf in leaves if leaf is not None])
    tolerance = 1e-4 if dtype == np.float32 else 1e-10
    for plain, fused in zip(*results, strict=True):
        assert fused.dtype == dtype and fused.shape == plain.shape
        np.testing.assert_allclose(fused, plain, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_statistics_keep_their_digits_when_the_mean_dwarfs_the_spread(dtype):
    """Values 1e4 + N(0, 1): E[x^2] - E[x]^2 would cancel 1e8 against 1e8 (a relative error of ~1e-8 in
    float64); the one-walk statistics sum values shifted by one of them and keep ~1e-13."""
    from minidl.kernels.batch_norm import channel_statistics

    x = (1e4 + np.random.default_rng(0).standard_normal((8, 3, 500))).astype(dtype)
    x[:, 1] = x[0, 1, 0]  # a constant channel: variance exactly 0, never negative
    mean, var = channel_statistics(x)
    exact = x.astype(np.float64)
    np.testing.assert_allclose(mean, exact.mean(axis=(0, 2)), rtol=1e-14)
    np.testing.assert_allclose(var, exact.var(axis=(0, 2)), rtol=1e-12, atol=0)


def test_fused_batch_norm_gradients_on_a_non_contiguous_input():
    """A transposed (non-contiguous) input and upstream gradient take the same path as a contiguous one."""
    x = np.random.default_rng(1).standard_normal((3, 4, 2, 5)).transpose(0, 1, 3, 2)
    check_gradients(lambda x: F.batch_norm(x, None, None, training=True), [x])
