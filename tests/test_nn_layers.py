"""Layers: forward and backward against PyTorch with the same weights, gradient checks, argument errors."""

import numpy as np
import pytest
from helpers import arrays, check_gradients
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl.functional as F
import minidl.nn as nn
from minidl import Tensor
from minidl.gradcheck import gradcheck

TORCH_REASON = "PyTorch is the reference for layer parity"
SETTINGS = settings(max_examples=15, deadline=None)


def with_parameters(module):
    """``fn(x, *params)`` running ``module`` with gradcheck's tensors in place of its own parameters.

    gradcheck builds fresh input tensors for every evaluation; putting them into ``_parameters``
    makes the module's forward read them, so gradients flow to gradcheck's tensors.
    """
    names = [name for name, _ in module.named_parameters(recurse=False)]

    def fn(x, *params):
        module._parameters.update(zip(names, params))
        return module(x)

    return fn, [param.data.copy() for param in module.parameters()]


@SETTINGS
@given(batch=st.integers(1, 3), features=st.tuples(st.integers(1, 4), st.integers(1, 4)), bias=st.booleans(),
       extra_dim=st.booleans(), data=st.data())
def test_linear_gradients_wrt_input_weight_and_bias(batch, features, bias, extra_dim, data):
    layer = nn.Linear(*features, bias=bias).double()
    x = data.draw(arrays((batch,) + ((2,) if extra_dim else ()) + (features[0],)))
    fn, params = with_parameters(layer)
    check_gradients(fn, [x, *params])


@SETTINGS
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 7), st.integers(1, 7)),
       output_size=st.tuples(st.integers(1, 4), st.integers(1, 4)), data=st.data())
def test_adaptive_avg_pool2d_gradients(shape, output_size, data):
    check_gradients(lambda x: F.adaptive_avg_pool2d(x, output_size), [data.draw(arrays(shape))])


def test_global_average_pooling_is_the_spatial_mean():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 4))
    np.testing.assert_allclose(nn.AdaptiveAvgPool2d(1)(Tensor(x)).data, x.mean(axis=(2, 3), keepdims=True),
                               rtol=1e-14)


def compare_with_torch(ours, theirs, x, *args, atol=1e-10):
    """Load the torch module's weights into ours; compare outputs, input gradients and parameter gradients."""
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    theirs = theirs.double()
    ours.load_state_dict({name: value.numpy() for name, value in theirs.state_dict().items()})
    ours = ours.double()
    x_ours, x_theirs = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y_ours, y_theirs = ours(x_ours, *args), theirs(x_theirs, *args)
    y_ours, y_theirs = (y_ours[0], y_theirs[0]) if isinstance(y_ours, tuple) else (y_ours, y_theirs)
    np.testing.assert_allclose(y_ours.data, y_theirs.detach().numpy(), rtol=1e-10, atol=atol, err_msg="forward")
    upstream = np.random.default_rng(1).standard_normal(y_ours.shape)
    y_ours.backward(upstream)
    y_theirs.backward(torch.tensor(upstream))
    np.testing.assert_allclose(x_ours.grad, x_theirs.grad.numpy(), rtol=1e-10, atol=atol, err_msg="input grad")
    their_params = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        np.testing.assert_allclose(param.grad, their_params[name].grad.numpy(), rtol=1e-10, atol=atol,
                                   err_msg=f"grad of {name}")


def image(*shape):
    return np.random.default_rng(0).standard_normal(shape)


def test_linear_matches_pytorch():
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    compare_with_torch(nn.Linear(5, 3), torch.nn.Linear(5, 3), image(4, 2, 5))
    compare_with_torch(nn.Linear(5, 3, bias=False), torch.nn.Linear(5, 3, bias=False), image(4, 5))


@pytest.mark.parametrize("args, kwargs", [((3, 4, 3), {}), ((3, 4, (3, 2)), dict(stride=2, padding=(1, 2))),
                                          ((3, 2, 3), dict(dilation=2, bias=False)), ((3, 4, 1), dict(stride=(2, 1)))])
def test_conv2d_matches_pytorch(args, kwargs):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    compare_with_torch(nn.Conv2d(*args, **kwargs), torch.nn.Conv2d(*args, **kwargs), image(2, 3, 9, 8))


@pytest.mark.parametrize("args, kwargs", [((3, 4, 3), {}), ((3, 2, 4), dict(stride=2, padding=1)),
                                          ((3, 4, (3, 2)), dict(stride=(2, 3), output_padding=(1, 2), bias=False)),
                                          ((3, 2, 3), dict(stride=2, dilation=2, output_padding=1))])
def test_conv_transpose2d_matches_pytorch(args, kwargs):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    compare_with_torch(nn.ConvTranspose2d(*args, **kwargs), torch.nn.ConvTranspose2d(*args, **kwargs),
                       image(2, 3, 5, 4))


@pytest.mark.parametrize("output_size", [(9, 7), (10, 8), (1, 3, 10, 7)])
def test_conv_transpose2d_output_size_picks_output_padding_like_pytorch(output_size):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    ours, theirs = nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1), torch.nn.ConvTranspose2d(3, 2, 3, stride=2,
                                                                                               padding=1)
    compare_with_torch(ours, theirs, image(1, 3, 5, 4), output_size)
    assert ours(Tensor(image(1, 3, 5, 4)), output_size).shape[2:] == tuple(output_size[-2:])


def test_conv_transpose2d_unreachable_output_size_is_a_clear_error():
    layer = nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1)
    with pytest.raises(ValueError, match=r"output_size \(11, 7\) is not reachable .* dim 0 must be in \[9, 10\]"):
        layer(Tensor(image(1, 3, 5, 4).astype(np.float32)), (11, 7))


def test_max_pool_indices_feed_max_unpool_like_pytorch():
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    x = image(2, 3, 7, 6)
    pool, their_pool = nn.MaxPool2d(2, return_indices=True), torch.nn.MaxPool2d(2, return_indices=True)
    compare_with_torch(pool, their_pool, x)
    pooled, indices = pool(Tensor(x))
    their_pooled, their_indices = their_pool(torch.tensor(x))
    np.testing.assert_array_equal(indices.data, their_indices.numpy())
    unpool, their_unpool = nn.MaxUnpool2d(2), torch.nn.MaxUnpool2d(2)
    compare_with_torch(unpool, their_unpool, pooled.data, their_indices, x.shape)
    np.testing.assert_array_equal(unpool(pooled, indices, x.shape).data,
                                  their_unpool(their_pooled, their_indices, x.shape).numpy())


@pytest.mark.parametrize("kwargs", [dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=(2, 3), ceil_mode=True),
                                    dict(kernel_size=2, dilation=2)])
def test_max_pool2d_settings_match_pytorch(kwargs):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    compare_with_torch(nn.MaxPool2d(**kwargs), torch.nn.MaxPool2d(**kwargs), image(2, 2, 9, 8))


@pytest.mark.parametrize("output_size", [1, (3, 2), (5, 7)])
def test_adaptive_avg_pool2d_matches_pytorch(output_size):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    compare_with_torch(nn.AdaptiveAvgPool2d(output_size), torch.nn.AdaptiveAvgPool2d(output_size), image(2, 3, 7, 9))


@pytest.mark.parametrize("kwargs", [dict(scale_factor=2), dict(size=(5, 9), mode="bilinear"),
                                    dict(scale_factor=3, mode="bilinear", align_corners=True)])
def test_upsample_matches_pytorch(kwargs):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    compare_with_torch(nn.Upsample(**kwargs), torch.nn.Upsample(**kwargs), image(2, 3, 4, 3))


def test_activations_and_flatten_match_pytorch():
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    x = image(2, 3, 4, 5)
    compare_with_torch(nn.ReLU(), torch.nn.ReLU(), x)
    compare_with_torch(nn.Sigmoid(), torch.nn.Sigmoid(), x)
    compare_with_torch(nn.Flatten(), torch.nn.Flatten(), x)
    compare_with_torch(nn.Flatten(0, 2), torch.nn.Flatten(0, 2), x)


def test_small_network_matches_pytorch_end_to_end():
    torch = pytest.importorskip("torch", reason=TORCH_REASON)

    def build(lib):
        return lib.Sequential(lib.Conv2d(3, 4, 3, padding=1), lib.BatchNorm2d(4), lib.ReLU(), lib.MaxPool2d(2),
                              lib.ConvTranspose2d(4, 4, 2, stride=2), lib.Conv2d(4, 2, 1), lib.AdaptiveAvgPool2d(1),
                              lib.Flatten(), lib.Linear(2, 5))

    compare_with_torch(build(nn), build(torch.nn), image(2, 3, 6, 8))


def test_layers_keep_float32():
    x = Tensor(image(1, 3, 8, 8).astype(np.float32))
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.ConvTranspose2d(4, 2, 2, 2),
                          nn.Upsample(scale_factor=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3))
    assert model(x).dtype == np.float32


def test_linear_wrong_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"Linear: input must be \(\*, 4\), got shape \(2, 3\)"):
        nn.Linear(4, 2)(Tensor(np.ones((2, 3), dtype=np.float32)))


def test_adaptive_avg_pool2d_errors():
    with pytest.raises(ValueError, match=r"output_size must be a positive int or \(h, w\), got \(0, 2\)"):
        F.adaptive_avg_pool2d(Tensor(np.ones((1, 1, 4, 4))), (0, 2))
    with pytest.raises(ValueError, match=r"input must be \(N, C, H, W\), got shape \(4, 4\)"):
        F.adaptive_avg_pool2d(Tensor(np.ones((4, 4))), 1)


def test_gradcheck_of_a_conv_block_through_its_parameters():
    """Conv2d -> BatchNorm2d (training mode) as one function of the input and the conv weight and bias."""
    block = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.BatchNorm2d(3)).double()
    fn, params = with_parameters(block[0])
    x = image(2, 2, 5, 6)
    assert gradcheck(lambda x, w, b: block[1](fn(x, w, b)), [x, *params])
