"""Dropout: inverted scaling, identity in eval, whole-channel masks, reproducible masks, gradient with a fixed mask."""

from unittest import mock

import numpy as np
import pytest
from helpers import arrays, check_fast_path_matches, check_gradients, shapes
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
import minidl.functional as F
import minidl.kernels.dropout
import minidl.nn as nn
from minidl import Tensor

SETTINGS = settings(max_examples=20, deadline=None)


@SETTINGS
@given(shape=shapes(min_dims=1), p=st.sampled_from([0.2, 0.5, 0.9]), seed=st.integers(0, 2 ** 16), data=st.data())
def test_dropout_gradient_with_a_fixed_mask(shape, p, seed, data):
    x = data.draw(arrays(shape))
    # a fresh generator with the same seed on every call: every forward pass draws the same mask
    check_gradients(lambda t: F.dropout(t, p, generator=np.random.default_rng(seed)), [x])


@SETTINGS
@given(shape=st.tuples(*[st.integers(1, 3)] * 4), p=st.sampled_from([0.3, 0.7]), seed=st.integers(0, 2 ** 16),
       data=st.data())
def test_dropout2d_gradient_with_a_fixed_mask(shape, p, seed, data):
    x = data.draw(arrays(shape))
    check_gradients(lambda t: F.dropout2d(t, p, generator=np.random.default_rng(seed)), [x])


@pytest.mark.parametrize("parallel_size", [0, None], ids=["numba loop", "numpy below the threshold"])
@SETTINGS
@given(shape=shapes(min_dims=1, max_dims=4), p=st.sampled_from([0.0, 0.3, 0.5, 1.0]), transposed=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2 ** 16), data=st.data())
def test_fused_dropout_matches_the_plain_numpy_op(parallel_size, shape, p, transposed, dtype, seed, data):
    """The fast path (FusedDropout, what F.dropout runs, so the gradient check above tests it) against the
    lesson (Dropout) with the same draws: the same output and gradient bit for bit, NaN kept where
    dropped (x * 0), for a transposed input too; neither input nor upstream gradient is modified.
    Both branches of the fast path: the Numba loop (threshold 0) and NumPy for small arrays."""
    from minidl.kernels import activation
    from minidl.ops.dropout import Dropout, FusedDropout

    x = data.draw(arrays(shape, dtype=dtype))
    x = x.T if transposed else x
    x.flat[0] = np.nan
    keep = np.random.default_rng(seed).random(x.shape, dtype=np.float32) >= p
    scale = 0 if p == 1 else 1 / (1 - p)
    upstream = np.random.default_rng(0).standard_normal(x.shape).astype(dtype)
    assert isinstance(F.dropout(Tensor(x, requires_grad=True), 0.5)._ctx, FusedDropout)
    threshold = activation.PARALLEL_SIZE if parallel_size is None else parallel_size
    with mock.patch.object(minidl.kernels.dropout, "PARALLEL_SIZE", threshold):
        check_fast_path_matches(lambda t: Dropout.apply(t, mask=np.multiply(keep, scale, dtype=dtype)),
                                lambda t: FusedDropout.apply(t, keep=keep, scale=scale), x, upstream)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_survivors_are_scaled_so_the_expectation_is_kept(p):
    x = np.full((200, 500), 3.0, dtype=np.float32)
    y = F.dropout(Tensor(x), p, generator=np.random.default_rng(0)).data
    assert y.dtype == np.float32
    kept = y != 0
    np.testing.assert_allclose(y[kept], 3.0 / (1 - p), rtol=1e-6)
    spread = 5 * np.sqrt(p * (1 - p) / x.size)  # five standard deviations of the kept fraction
    assert abs(kept.mean() - (1 - p)) < spread
    assert abs(y.mean() - 3.0) < 3.0 * spread / (1 - p)


def test_dropout2d_drops_whole_channels():
    x = np.ones((8, 16, 5, 4))
    y = F.dropout2d(Tensor(x), 0.5, generator=np.random.default_rng(0)).data
    per_channel = y.reshape(8, 16, -1)
    assert np.all(per_channel.min(axis=2) == per_channel.max(axis=2))  # each map all 0 or all 2
    assert set(np.unique(per_channel)) == {0.0, 2.0}


def test_identity_in_eval_mode_and_for_p_zero_and_zeros_for_p_one():
    x = Tensor(np.random.default_rng(0).standard_normal((3, 4, 2, 2)))
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0).data, np.zeros(x.shape))
    for layer in (nn.Dropout(0.5), nn.Dropout2d(0.5)):
        layer.eval()
        assert layer(x) is x


def test_manual_seed_makes_masks_reproducible():
    x = Tensor(np.ones((4, 6, 3, 3), dtype=np.float32))
    layer = nn.Dropout(0.5)
    minidl.manual_seed(7)
    first = layer(x).data
    minidl.manual_seed(7)
    np.testing.assert_array_equal(layer(x).data, first)
    assert not np.array_equal(layer(x).data, first)  # the stream moves on
    own = nn.Dropout2d(0.5, generator=np.random.default_rng(3))
    np.testing.assert_array_equal(own(x).data, F.dropout2d(x, 0.5, generator=np.random.default_rng(3)).data)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match=r"dropout: p must be in \[0, 1\], got 1.5"):
        F.dropout(Tensor(np.ones(3)), 1.5)
    with pytest.raises(ValueError, match=r"dropout2d: input must be \(N, C, H, W\), got shape \(3,\)"):
        F.dropout2d(Tensor(np.ones(3)))
    with pytest.raises(ValueError, match=r"Dropout: p must be in \[0, 1\], got -0.1"):
        nn.Dropout(-0.1)
