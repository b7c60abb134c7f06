"""Exact identities of the explanation methods, on randomly initialised small models in float64.

    CAM:        mean_ij CAM_c[i, j] + b_c == logit_c                    (conv -> GAP -> linear)
    Grad-CAM:   before its ReLU, Grad-CAM == CAM / (h w)                (GAP + linear head)
    Grad-CAM++: weight_k == h w ReLU(g_k) / (2 + g_k sum_ij A_k[i, j]), g_k = w_ck / (h w)   (same head)
    IG:         bias-free ReLU net f (positively homogeneous: f(a x) = a f(x), a > 0), baseline 0,
                any quadrature rule that does not evaluate a = 0 (midpoint, right Riemann), any steps:
                IG == x * grad f(x) == gradient x input, and sum IG == f(x) == f(x) - f(0)
    IG:         on a smooth (tanh) model the trapezoid completeness error falls like 1/steps^2
    SmoothGrad: sigma = 0 gives exactly the plain gradient
    Occlusion:  1x1 patch, stride 1, on a linear model == sum_c grad_c * (x_c - baseline)
    Saliency:   the per-image gradient of a batch matches central differences of each image's logit
    Course's saliency: d CE_t / d x == sum_k (softmax_k - [k = t]) d y_k / d x, per image
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
import minidl.functional as F
from minidl import Tensor, nn
from minidl.explain import (class_activation_map, cross_entropy_saliency, grad_cam, grad_cam_plus_plus,
                            gradient_x_input, integrated_gradients, logit_gradient, normalize, occlusion,
                            reduce_channels, saliency, smooth_grad, upsample)
from minidl.explain.gradients import logits_of
from minidl.random import manual_seed
from models.classifier import CAMClassifier

SETTINGS = settings(max_examples=8, deadline=None)


def cam_model(in_channels: int, num_classes: int, seed: int) -> CAMClassifier:
    """A float64 CAMClassifier in eval mode, with non-trivial BatchNorm statistics and affine."""
    manual_seed(seed)
    model = CAMClassifier(in_channels, num_classes, widths=(4, 5)).double().eval()
    rng = np.random.default_rng(seed)
    for name, tensor in [*model.named_buffers(), *model.named_parameters()]:
        if name.endswith(("running_mean", "bias")) and tensor.ndim == 1:
            tensor.data[...] = rng.normal(0, 0.3, tensor.shape)
        elif name.endswith(("running_var", "weight")) and tensor.ndim == 1:
            tensor.data[...] = rng.uniform(0.5, 1.5, tensor.shape)
    return model


class BiasFreeReLUNet(nn.Module):
    """conv -> ReLU -> max-pool -> conv -> ReLU -> global average pool -> linear, no biases anywhere:
    f(a x) = a f(x) for a > 0."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 4, kernel_size=3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4, 5, kernel_size=3, padding=1, bias=False), nn.ReLU())
        self.linear = nn.Linear(5, num_classes, bias=False)

    def forward(self, x):
        return self.linear(self.features(x).mean(dim=(2, 3)))


def images(seed: int, n: int, channels: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.5, 0.5, (n, channels, height, width))


image_shapes = st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(5, 11), st.integers(5, 11))


# ----------------------------------------------------------------------------- CAM and Grad-CAM
@SETTINGS
@given(shape=image_shapes, num_classes=st.integers(2, 4), seed=st.integers(0, 2 ** 16))
def test_cam_mean_plus_bias_is_the_logit(shape, num_classes, seed):
    model = cam_model(shape[1], num_classes, seed)
    x = images(seed, *shape)
    logits = logits_of(model, x)
    for c in range(num_classes):
        cam = class_activation_map(model.features, model.linear, x, target=c, upsample=False)
        np.testing.assert_allclose(cam.mean(axis=(1, 2)) + model.linear.bias.data[c], logits[:, c],
                                   rtol=1e-12, atol=1e-12)


@SETTINGS
@given(shape=image_shapes, num_classes=st.integers(2, 4), seed=st.integers(0, 2 ** 16))
def test_grad_cam_before_relu_is_cam_over_hw(shape, num_classes, seed):
    model = cam_model(shape[1], num_classes, seed)
    x = images(seed, *shape)
    for target in [None, num_classes - 1]:
        cam = class_activation_map(model.features, model.linear, x, target, upsample=False)
        gradcam = grad_cam(model.features, model.head, x, target, relu=False, upsample=False)
        h, w = cam.shape[1:]
        np.testing.assert_allclose(gradcam, cam / (h * w), rtol=1e-10, atol=1e-13)
        relu_map = grad_cam(model.features, model.head, x, target, upsample=False)
        np.testing.assert_array_equal(relu_map, np.maximum(gradcam, 0))


def test_grad_cam_plus_plus_closed_form_on_gap_linear_head():
    model = cam_model(2, 3, seed=3)
    x = images(3, 2, 2, 9, 7)
    target = np.array([0, 2])
    with minidl.no_grad():
        activations = model.features(Tensor(x)).data
    h, w = activations.shape[2:]
    g = model.linear.weight.data[target] / (h * w)  # (N, K): d y_c / d A_k[i, j], the same at every (i, j)
    weights = h * w * np.maximum(g, 0) / (2 + g * activations.sum(axis=(2, 3)))
    expected = np.maximum(np.einsum("nk,nkhw->nhw", weights, activations), 0)
    np.testing.assert_allclose(grad_cam_plus_plus(model.features, model.head, x, target, upsample=False),
                               expected, rtol=1e-10, atol=1e-13)


def test_grad_cam_at_an_inner_layer_matches_the_gradient_kept_by_retain_grad():
    """Splitting a Sequential at layer k gives the same d logit / d A_k as one pass through the whole
    model with ``A_k.retain_grad()`` (caught by a forward hook)."""
    model = cam_model(2, 3, seed=4)
    x = images(4, 2, 2, 8, 6)
    target = np.array([1, 2])
    features, rest = model.features[:2], model.features[2:]
    split = grad_cam(features, lambda a: model.head(rest(a)), x, target, relu=False, upsample=False)

    kept = []
    handle = features[-1].register_forward_hook(lambda module, inputs, output: kept.append(output.retain_grad()))
    logits = model(Tensor(x))
    handle.remove()
    one_hot = np.zeros(logits.shape)
    one_hot[np.arange(2), target] = 1
    logits.backward(one_hot)
    activations = kept[0]
    alpha = activations.grad.mean(axis=(2, 3))
    np.testing.assert_allclose(split, np.einsum("nk,nkhw->nhw", alpha, activations.data), rtol=1e-12, atol=1e-14)


def test_maps_are_upsampled_to_the_image_and_normalised():
    model = cam_model(1, 3, seed=1)
    x = images(1, 2, 1, 10, 8)
    for maps in (class_activation_map(model.features, model.linear, x),
                 grad_cam(model.features, model.head, x), grad_cam_plus_plus(model.features, model.head, x)):
        assert maps.shape == (2, 10, 8)
        unit = normalize(maps)
        assert unit.min() >= 0 and unit.max() <= 1
        np.testing.assert_allclose(unit.reshape(2, -1).max(axis=1), [1, 1])
    raw = class_activation_map(model.features, model.linear, x, upsample=False)
    np.testing.assert_allclose(upsample(raw, (10, 8)), class_activation_map(model.features, model.linear, x))


# ----------------------------------------------------------------------------- Integrated Gradients
@SETTINGS
@given(shape=image_shapes, steps=st.integers(1, 6), method=st.sampled_from(["midpoint", "riemann_right"]),
       seed=st.integers(0, 2 ** 16))
def test_integrated_gradients_of_a_homogeneous_relu_net_is_gradient_times_input(shape, steps, method, seed):
    manual_seed(seed)
    model = BiasFreeReLUNet(shape[1], 3).double().eval()
    x = images(seed, *shape)
    target = np.arange(shape[0]) % 3
    ig = integrated_gradients(model, x, target, steps=steps, method=method)
    np.testing.assert_allclose(ig.attributions, gradient_x_input(model, x, target), rtol=1e-9, atol=1e-13)
    logits = logits_of(model, x)[np.arange(shape[0]), target]
    assert np.all(logits_of(model, np.zeros_like(x)) == 0)  # f(0) = 0
    np.testing.assert_allclose(ig.attributions.sum(axis=(1, 2, 3)), logits, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ig.completeness_error, 0, atol=1e-11)


def test_integrated_gradients_trapezoid_error_falls_like_one_over_steps_squared():
    rng = np.random.default_rng(0)
    weight, bias, head = rng.normal(0, 0.7, (3, 2, 3, 3)), rng.normal(0, 0.3, 3), rng.normal(0, 1, (3, 2))

    def smooth_model(x):
        maps = F.tanh(F.conv2d(x, Tensor(weight), Tensor(bias), padding=1))
        return maps.mean(dim=(2, 3)) @ Tensor(head)

    x = rng.normal(0, 1, (2, 2, 6, 6))
    baseline = rng.normal(0, 0.5, x.shape)
    errors = [np.abs(integrated_gradients(smooth_model, x, 1, baseline, steps=m).completeness_error)
              for m in (4, 16)]
    assert np.all(errors[0] > 1e-6)  # the model is non-linear enough for the test to mean something
    assert np.all(errors[1] < errors[0] / 10)  # 1/m^2: a factor 16 expected, 10 demanded


def test_integrated_gradients_rejects_unknown_rules_and_steps():
    model = BiasFreeReLUNet(1, 2).double().eval()
    x = images(0, 1, 1, 6, 6)
    with pytest.raises(ValueError, match="method"):
        integrated_gradients(model, x, method="simpson")
    with pytest.raises(ValueError, match="steps"):
        integrated_gradients(model, x, steps=0)


# ----------------------------------------------------------------------------- gradients
def test_smooth_grad_without_noise_is_the_gradient():
    model = cam_model(3, 4, seed=5)
    x = images(5, 3, 3, 8, 9)
    _, target, gradient = logit_gradient(model, x)
    np.testing.assert_allclose(smooth_grad(model, x, target, n_samples=3, noise_level=0.0), gradient,
                               rtol=1e-14, atol=0)
    noisy = smooth_grad(model, x, target, n_samples=3, noise_level=0.2, seed=1)
    np.testing.assert_array_equal(noisy, smooth_grad(model, x, target, n_samples=3, noise_level=0.2, seed=1))
    assert not np.allclose(noisy, gradient)


def test_saliency_is_each_images_own_gradient():
    """One backward for the whole batch gives every image the gradient of *its* target logit."""
    model = cam_model(2, 3, seed=7)
    x = images(7, 2, 2, 6, 5)
    target = np.array([2, 0])
    raw = saliency(model, x, target, channel_reduction=None)
    eps = 1e-6
    for n in range(len(x)):
        numeric = np.zeros_like(x[n])
        for index in np.ndindex(x[n].shape):
            shifted = [x.copy(), x.copy()]
            shifted[0][(n, *index)] += eps
            shifted[1][(n, *index)] -= eps
            plus, minus = (logits_of(model, s)[n, target[n]] for s in shifted)
            numeric[index] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(raw[n], numeric, rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(saliency(model, x, target), np.abs(raw).max(axis=1))
    np.testing.assert_array_equal(reduce_channels(raw, "sum"), raw.sum(axis=1))


@SETTINGS
@given(shape=image_shapes, num_classes=st.integers(2, 4), seed=st.integers(0, 2 ** 16))
def test_cross_entropy_saliency_is_the_softmax_weighted_sum_of_logit_gradients(shape, num_classes, seed):
    model = cam_model(shape[1], num_classes, seed)
    x = images(seed, *shape)
    target = np.random.default_rng(seed).integers(0, num_classes, len(x))
    before = x.copy()
    raw = cross_entropy_saliency(model, x, target, channel_reduction=None)
    logits = logits_of(model, x)
    weights = F.softmax(Tensor(logits), dim=1).data - np.eye(num_classes)[target]  # dCE/dy, (N, K)
    expected = sum(weights[:, k, None, None, None] * logit_gradient(model, x, k)[2] for k in range(num_classes))
    np.testing.assert_allclose(raw, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(cross_entropy_saliency(model, x, target), np.abs(raw).sum(axis=1))
    np.testing.assert_array_equal(x, before)


# ----------------------------------------------------------------------------- occlusion
@SETTINGS
@given(shape=image_shapes, baseline=st.floats(-1, 1), seed=st.integers(0, 2 ** 16))
def test_occlusion_of_a_linear_model_is_gradient_times_input_minus_baseline(shape, baseline, seed):
    rng = np.random.default_rng(seed)
    n, c, h, w = shape
    weight, bias = rng.normal(size=(3, c * h * w)), rng.normal(size=3)

    def linear_model(x):
        return x.reshape(len(x), -1) @ Tensor(weight.T) + Tensor(bias)

    x = images(seed, *shape)
    _, target, gradient = logit_gradient(linear_model, x)
    expected = (gradient * (x - baseline)).sum(axis=1)
    np.testing.assert_allclose(occlusion(linear_model, x, target, patch=1, stride=1, baseline=baseline,
                                         batch_size=7), expected, rtol=1e-9, atol=1e-11)


def test_occlusion_averages_overlapping_patches():
    """A 2x2 patch with stride 1 on a linear model: each pixel gets the mean over the windows covering it
    of the window's summed contribution."""
    rng = np.random.default_rng(2)
    weight = rng.normal(size=(2, 1 * 4 * 5))

    def linear_model(x):
        return x.reshape(len(x), -1) @ Tensor(weight.T)

    x = images(2, 1, 1, 4, 5)
    contribution = (weight[1] * x.reshape(-1)).reshape(4, 5)
    total, count = np.zeros((4, 5)), np.zeros((4, 5))
    for i in range(3):
        for j in range(4):
            total[i:i + 2, j:j + 2] += contribution[i:i + 2, j:j + 2].sum()
            count[i:i + 2, j:j + 2] += 1
    np.testing.assert_allclose(occlusion(linear_model, x, 1, patch=2, stride=1)[0], total / count, rtol=1e-10)


# ----------------------------------------------------------------------------- contract
def test_methods_keep_float32_and_leave_inputs_untouched():
    manual_seed(0)
    model = CAMClassifier(3, 2, widths=(4, 5)).eval()
    x = images(0, 2, 3, 8, 8).astype(np.float32)
    before = x.copy()
    outputs = {
        "cam": class_activation_map(model.features, model.linear, x),
        "grad_cam": grad_cam(model.features, model.head, x),
        "grad_cam_plus_plus": grad_cam_plus_plus(model.features, model.head, x),
        "saliency": saliency(model, x),
        "gradient_x_input": gradient_x_input(model, x),
        "smooth_grad": smooth_grad(model, Tensor(x), n_samples=2),
        "integrated_gradients": integrated_gradients(model, x, steps=3).attributions,
        "occlusion": occlusion(model, x, patch=4, stride=4),
    }
    for name, result in outputs.items():
        assert result.dtype == np.float32, name
        assert result.shape[-2:] == (8, 8), name
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("target, message", [(5, "out of range"), ([0, 1, 1], "target must be"),
                                             (0.5, "target must be")])
def test_bad_targets_are_rejected_with_a_clear_message(target, message):
    model = CAMClassifier(1, 3, widths=(4,)).eval()
    x = images(0, 2, 1, 5, 5).astype(np.float32)
    with pytest.raises(ValueError, match=message):
        saliency(model, x, target)


def test_cam_rejects_features_that_do_not_match_the_linear_layer():
    model = CAMClassifier(1, 3, widths=(4, 6)).eval()
    with pytest.raises(ValueError, match="in_features"):
        class_activation_map(model.features[0], model.linear, images(0, 1, 1, 6, 6).astype(np.float32))


def test_a_model_in_training_mode_is_refused_before_it_can_change():
    """In training mode BatchNorm would mix the batch and update its running statistics."""
    model = CAMClassifier(1, 3, widths=(4, 5))  # modules start in training mode, as in PyTorch
    x = images(0, 2, 1, 6, 6).astype(np.float32)
    before = model.state_dict()
    for explain in (lambda: saliency(model, x), lambda: grad_cam(model.features, model.head, x),
                    lambda: class_activation_map(model.features, model.linear, x), lambda: occlusion(model, x, 0, patch=2)):
        with pytest.raises(ValueError, match="training mode"):
            explain()
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
