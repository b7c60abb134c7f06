"""Initialisation: PyTorch's default layer init, kaiming/xavier spreads, gains, seeding, and the FCN bilinear kernel."""

import math

import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from minidl import Tensor
from minidl.nn import init

TORCH_REASON = "PyTorch is the reference for init gains and bounds"


def assert_uniform(values, bound):
    """All values in [-bound, bound], reaching close to both ends, with the uniform's std bound / sqrt(3)."""
    assert np.abs(values).max() <= bound
    assert values.max() > 0.95 * bound and values.min() < -0.95 * bound
    assert values.std() == pytest.approx(bound / math.sqrt(3), rel=0.05)


@pytest.mark.parametrize("make, fan_in", [
    (lambda: nn.Linear(300, 200), 300),
    (lambda: nn.Conv2d(30, 200, 3), 30 * 9),
    (lambda: nn.ConvTranspose2d(200, 30, (3, 2)), 30 * 6),  # PyTorch's fan_in of (C_in, C_out, kH, kW): C_out*kH*kW
])
def test_default_layer_init_is_pytorchs(make, fan_in):
    minidl.manual_seed(0)
    layer = make()
    bound = 1 / math.sqrt(fan_in)
    assert_uniform(layer.weight.data, bound)
    assert np.abs(layer.bias.data).max() <= bound
    assert layer.weight.dtype == layer.bias.dtype == np.float32


def test_default_bounds_agree_with_pytorch_layers():
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    torch.manual_seed(0)
    for theirs, ours in [(torch.nn.Linear(300, 200), nn.Linear(300, 200)),
                         (torch.nn.Conv2d(30, 200, 3), nn.Conv2d(30, 200, 3)),
                         (torch.nn.ConvTranspose2d(200, 30, 3), nn.ConvTranspose2d(200, 30, 3))]:
        their_weight = theirs.weight.detach().numpy()
        ours_bound, _ = init.fan_in_and_fan_out(ours.weight)
        assert_uniform(their_weight, 1 / math.sqrt(ours_bound))
        assert their_weight.shape == ours.weight.shape


def test_kaiming_and_xavier_spreads():
    weight = Tensor(np.empty((128, 64, 3, 3), dtype=np.float32))
    fan_in, fan_out = 64 * 9, 128 * 9
    generator = np.random.default_rng(0)
    assert init.kaiming_uniform_(weight, nonlinearity="relu", generator=generator) is weight
    assert_uniform(weight.data, math.sqrt(6 / fan_in))
    init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu", generator=generator)
    assert weight.data.std() == pytest.approx(math.sqrt(2 / fan_out), rel=0.02)
    assert abs(weight.data.mean()) < 0.02 * weight.data.std()  # 5 standard errors of the mean
    init.xavier_uniform_(weight, gain=2.0, generator=generator)
    assert_uniform(weight.data, 2.0 * math.sqrt(6 / (fan_in + fan_out)))
    init.xavier_normal_(weight, generator=generator)
    assert weight.data.std() == pytest.approx(math.sqrt(2 / (fan_in + fan_out)), rel=0.02)
    assert weight.dtype == np.float32


def test_trunc_normal_stays_inside_and_has_the_truncated_spread():
    """N(0, 1) conditioned on [-2, 2] has standard deviation 0.8796 (the factor Keras' he_normal divides by);
    on [0, 3] the mean of N(1, 1) truncated there is 1 + (phi(-1) - phi(2)) / (Phi(2) - Phi(-1))."""
    w = init.trunc_normal_(Tensor(np.zeros((1000, 500))), generator=np.random.default_rng(0)).data
    assert w.min() >= -2 and w.max() <= 2 and w.max() > 1.99
    assert np.isclose(w.std(), 0.87962566103423978, rtol=0.005)
    shifted = init.trunc_normal_(Tensor(np.zeros(400_000)), mean=1.0, a=0.0, b=3.0,
                                 generator=np.random.default_rng(1)).data
    phi = lambda t: math.exp(-t * t / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda t: 0.5 * (1 + math.erf(t / math.sqrt(2)))  # noqa: E731
    assert shifted.min() >= 0 and shifted.max() <= 3
    assert np.isclose(shifted.mean(), 1 + (phi(-1) - phi(2)) / (cdf(2) - cdf(-1)), atol=0.005)
    with pytest.raises(ValueError, match="need a < b"):
        init.trunc_normal_(Tensor(np.zeros(3)), a=1.0, b=1.0)


def test_calculate_gain_matches_pytorch():
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    for nonlinearity, param in [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None),
                                ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None)]:
        assert init.calculate_gain(nonlinearity, param) == pytest.approx(
            torch.nn.init.calculate_gain(nonlinearity, param), rel=1e-15)
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")


def test_constant_fills_keep_dtype_and_identity():
    tensor = Tensor(np.empty((2, 3), dtype=np.float32))
    assert init.ones_(tensor) is tensor and np.all(tensor.data == 1) and tensor.dtype == np.float32
    assert np.all(init.zeros_(tensor).data == 0)
    assert np.all(init.constant_(tensor, 0.5).data == 0.5)


def test_manual_seed_reproduces_initialisation():
    minidl.manual_seed(42)
    first = nn.Conv2d(3, 4, 3).state_dict()
    minidl.manual_seed(42)
    second = nn.Conv2d(3, 4, 3).state_dict()
    third = nn.Conv2d(3, 4, 3).state_dict()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])
        assert not np.array_equal(first[name], third[name])


def test_fan_needs_two_dims_and_kaiming_needs_a_known_mode():
    with pytest.raises(ValueError, match=r"at least 2 dims, got shape \(3,\)"):
        init.xavier_uniform_(Tensor(np.empty(3)))
    with pytest.raises(ValueError, match="mode must be 'fan_in' or 'fan_out'"):
        init.kaiming_normal_(Tensor(np.empty((2, 2))), mode="fan_avg")


def test_bilinear_kernels_closed_form():
    np.testing.assert_allclose(init.bilinear_kernel(4), np.outer([0.25, 0.75, 0.75, 0.25], [0.25, 0.75, 0.75, 0.25]))
    np.testing.assert_allclose(init.bilinear_kernel(3), np.outer([0.5, 1, 0.5], [0.5, 1, 0.5]))
    np.testing.assert_allclose(init.bilinear_kernel(1), [[1.0]])


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_bilinear_transposed_conv_upsamples_like_interpolate_away_from_the_border(factor):
    """FCN's upsampling: kernel 2f - f % 2, stride f, padding ceil((f - 1) / 2) is bilinear interpolation
    (align_corners=False) on every output pixel at least f pixels from the border."""
    classes, kernel = 3, 2 * factor - factor % 2
    layer = nn.ConvTranspose2d(classes, classes, kernel, stride=factor, padding=math.ceil((factor - 1) / 2),
                               bias=False).double()
    init.bilinear_(layer.weight)
    assert np.all(layer.weight.data[0, 1] == 0) and np.all(layer.weight.data[2, 2] == init.bilinear_kernel(kernel))
    x = Tensor(np.random.default_rng(0).standard_normal((2, classes, 5, 7)))
    upsampled = layer(x).data
    expected = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False).data
    assert upsampled.shape == expected.shape == (2, classes, 5 * factor, 7 * factor)
    inner = (slice(None), slice(None), slice(factor, -factor), slice(factor, -factor))
    np.testing.assert_allclose(upsampled[inner], expected[inner], rtol=1e-12, atol=1e-12)


def test_bilinear_needs_square_per_class_weight():
    with pytest.raises(ValueError, match=r"bilinear_: weight must be \(C, C, k, k\).*got shape \(3, 2, 4, 4\)"):
        init.bilinear_(nn.ConvTranspose2d(3, 2, 4).weight)
