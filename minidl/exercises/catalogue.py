"""The exercises, in the order the library is built, and how each one is checked.

Each ``Exercise`` names the functions the learner writes (in ``templates/<name>.py``), a few
hand-picked cases, a hypothesis strategy for more, and ``check_case(module, case)``, which raises
``ExerciseFailure`` on the first thing that is wrong. The references are the library's own ops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .. import functional as F
from ..kernels.reference import conv as reference_conv
from ..ops.elementwise import unbroadcast as library_unbroadcast
from ..tensor import Tensor
from .checking import (call, check_backward, expect_close, expect_equal, expect_shape, fail, unpack)

seeds = st.integers(0, 2**16)


@dataclass(frozen=True)
class Exercise:
    name: str
    teaches: str
    functions: tuple
    first_cases: object  # () -> list of hand-picked cases (built when checked)
    strategy: st.SearchStrategy | None
    check_case: object  # (module, case) -> None


def library_gradients(fn, arrays, g) -> list:
    """Gradients of ``sum(g * fn(*arrays))`` with respect to each array, by minidl's autograd."""
    leaves = [Tensor(a, requires_grad=True) for a in arrays]
    fn(*leaves).backward(g)
    return [leaf.grad for leaf in leaves]


def _away_from_zero(x):
    """Values at least 0.05 from 0, so a ReLU kink never sits within a finite difference step."""
    return np.where(x >= 0, x + 0.05, x - 0.05)


def _distinct(rng, shape):
    """Distinct values 0.1 apart, shuffled: no ties inside a pooling window."""
    size = int(np.prod(shape))
    return (rng.permutation(size).reshape(shape) - size / 2) * 0.1


# ---------------------------------------------------------------------------- 1. activations
@st.composite
def _activation_case(draw):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4))
    rng = np.random.default_rng(draw(seeds))
    return {"x": _away_from_zero(rng.standard_normal(shape)), "g": rng.standard_normal(shape)}


def _check_activations(module, case):
    x, g = case["x"], case["g"]
    for name, op, hint in (
            ("relu_backward", F.relu, "relu'(x) is 1 where x > 0 and 0 elsewhere, and the result is g * relu'(x)"),
            ("sigmoid_backward", F.sigmoid,
             "with s = 1 / (1 + exp(-x)), sigmoid'(x) = s * (1 - s); return g * s * (1 - s)")):
        fn = getattr(module, name)
        check_backward(["x"], lambda x, op=op: op(Tensor(x)).data,
                       lambda arrays, g, fn=fn: (call(fn, case, arrays[0], g),), [x], case, {"x": hint})
        expect_close(f"{name}(x, g)", call(fn, case, x, g), library_gradients(op, [x], g)[0], case, hint)


# ---------------------------------------------------------------------------- 2. matmul
@st.composite
def _matmul_case(draw):
    n, k, m = (draw(st.integers(1, 5)) for _ in range(3))
    rng = np.random.default_rng(draw(seeds))
    return {"a": rng.standard_normal((n, k)), "b": rng.standard_normal((k, m)), "g": rng.standard_normal((n, m))}


def _check_matmul(module, case):
    a, b, g = case["a"], case["b"], case["g"]
    hints = {"a": "y[i, j] = sum_k a[i, k] b[k, j], so dL/da[i, k] = sum_j g[i, j] b[k, j]: g @ b.T",
             "b": "dL/db[k, j] = sum_i a[i, k] g[i, j]: a.T @ g"}
    result = unpack("matmul_backward", call(module.matmul_backward, case, a, b, g), 2, case)
    for name, grad, array in zip("ab", result, (a, b)):
        expect_shape(f"d{name}", grad, array.shape, case, hints[name])
    check_backward(["a", "b"], lambda a, b: a @ b,
                   lambda arrays, g: unpack("matmul_backward", call(module.matmul_backward, case, *arrays, g), 2, case),
                   [a, b], case, hints)
    for name, grad, expected in zip("ab", result, library_gradients(F.matmul, [a, b], g)):
        expect_close(f"d{name}", grad, expected, case, hints[name])


# ---------------------------------------------------------------------------- 3. unbroadcast
@st.composite
def _unbroadcast_case(draw):
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4))
    rng = np.random.default_rng(draw(seeds))
    a, b = (rng.standard_normal(shape) for shape in shapes.input_shapes)
    return {"a": a, "b": b, "g": rng.standard_normal(shapes.result_shape)}


def _check_unbroadcast(module, case):
    hint = ("first sum over the leading axes broadcasting added (grad.ndim - len(shape) of them), then over "
            "every axis where shape has a 1 but grad does not, keeping that axis (keepdims=True)")
    for name in "ab":
        shape = case[name].shape
        expect_close(f"unbroadcast(g, {name}.shape={shape})", call(module.unbroadcast, case, case["g"], shape),
                     library_unbroadcast(case["g"], shape), case, hint)
    check_backward(["a", "b"], lambda a, b: a + b,
                   lambda arrays, g: tuple(call(module.unbroadcast, case, g, x.shape) for x in arrays),
                   [case["a"], case["b"]], case, {"a": hint, "b": hint})


# ---------------------------------------------------------------------------- conv cases
@st.composite
def _conv_case(draw, transposed=False):
    n, c_in, c_out = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, padding = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    if transposed:  # output (H - 1) s - 2p + k must be >= 1
        padding = min(padding, (kh - 1) // 2, (kw - 1) // 2)
        h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    else:
        h = draw(st.integers(max(1, kh - 2 * padding), kh - 2 * padding + 6))
        w = draw(st.integers(max(1, kw - 2 * padding), kw - 2 * padding + 6))
    rng = np.random.default_rng(draw(seeds))
    weight_shape = (c_in, c_out, kh, kw) if transposed else (c_out, c_in, kh, kw)
    return _with_upstream({"x": rng.standard_normal((n, c_in, h, w)), "w": rng.standard_normal(weight_shape),
                           "stride": stride, "padding": padding}, transposed, rng)


def _with_upstream(case, transposed, rng):
    """Add the upstream gradient g, shaped like the (transposed) convolution's output."""
    op = F.conv_transpose2d if transposed else F.conv2d
    y = op(Tensor(case["x"]), Tensor(case["w"]), stride=case["stride"], padding=case["padding"])
    return {**case, "g": rng.standard_normal(y.shape)}


def _fixed_conv_case(n, c_in, c_out, size, kernel, stride, padding, seed=0):
    rng = np.random.default_rng(seed)
    case = {"x": rng.standard_normal((n, c_in, *size)), "w": rng.standard_normal((c_out, c_in, *kernel)),
            "stride": stride, "padding": padding}
    return _with_upstream(case, False, rng)


def _conv2d(case):
    return lambda x, w: F.conv2d(Tensor(x), Tensor(w), stride=case["stride"], padding=case["padding"]).data


# ---------------------------------------------------------------------------- 4. conv2d forward
def _check_conv2d_forward(module, case):
    x, w, s, p = case["x"], case["w"], case["stride"], case["padding"]
    kernel = w.shape[2:]
    output_size = tuple((size + 2 * p - k) // s + 1 for size, k in zip(x.shape[2:], kernel))
    expected = reference_conv.im2col(x, kernel, (s, s), (p, p), (1, 1), output_size)
    expect_close(f"im2col(x, kernel_size={kernel}, stride={s}, padding={p})",
                 call(module.im2col, case, x, kernel, s, p), expected, case,
                 f"pad x by {p} on every side of H and W; H_out = (H + 2p - kH) // stride + 1 = {output_size[0]}; "
                 "row (c, i, j), column (n, oy, ox) holds x_padded[n, c, oy*stride + i, ox*stride + j]", atol=0, rtol=0)
    expect_close("conv2d_forward(x, w, stride, padding)", call(module.conv2d_forward, case, x, w, s, p),
                 _conv2d(case)(x, w), case,
                 "y = w.reshape(C_out, -1) @ cols has shape (C_out, N * H_out * W_out): reshape to "
                 "(C_out, N, H_out, W_out), then put N first")


# ---------------------------------------------------------------------------- 5. conv2d backward
CONV_BACKWARD_HINTS = {
    "x": "dx is the transposed convolution of g: each g[n, o, oy, ox] adds g * w[o, c, i, j] to "
         "x_padded[n, c, oy*stride + i, ox*stride + j] (sum over o, not over c: w[o, c], not w[c, o]); "
         "then cut the padding off",
    "w": "dw[o, c, i, j] = sum over n, oy, ox of g[n, o, oy, ox] * x_padded[n, c, oy*stride + i, ox*stride + j]: "
         "over every image of the batch too; with im2col, dw = (g as (C_out, N*H_out*W_out)) @ cols.T",
}


def _check_conv2d_backward(module, case):
    x, w, g, s, p = case["x"], case["w"], case["g"], case["stride"], case["padding"]

    def learner(arrays, g):
        return unpack("conv2d_backward", call(module.conv2d_backward, case, *arrays, g, s, p), 2, case)

    for name, grad, array in zip("xw", learner((x, w), g), (x, w)):
        expect_shape(f"d{name}", grad, array.shape, case, CONV_BACKWARD_HINTS[name])
    check_backward(["x", "w"], _conv2d(case), learner, [x, w], case, CONV_BACKWARD_HINTS)
    for name, grad, expected in zip("xw", learner((x, w), g), library_gradients(
            lambda x, w: F.conv2d(x, w, stride=s, padding=p), [x, w], g)):
        expect_close(f"d{name}", grad, expected, case, CONV_BACKWARD_HINTS[name])


# ---------------------------------------------------------------------------- 6. max pool
@st.composite
def _pool_case(draw):
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kernel, stride = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(kernel, kernel + 4)), draw(st.integers(kernel, kernel + 4))
    rng = np.random.default_rng(draw(seeds))
    return _pool_upstream({"x": _distinct(rng, (n, c, h, w)), "kernel_size": kernel, "stride": stride}, rng)


def _pool_upstream(case, rng):
    y = F.max_pool2d(Tensor(case["x"]), case["kernel_size"], case["stride"])
    return {**case, "g": rng.standard_normal(y.shape)}


def _library_pool(case, x):
    y, indices = F.max_pool2d(Tensor(x), case["kernel_size"], case["stride"], return_indices=True)
    return y.data, indices.data


def _check_max_pool2d(module, case):
    x, g, k, s = case["x"], case["g"], case["kernel_size"], case["stride"]
    expected_y, expected_indices = _library_pool(case, x)
    y, indices = unpack("max_pool2d", call(module.max_pool2d, case, x, k, s), 2, case)
    size_hint = f"H_out = (H - kernel_size) // stride + 1 = {expected_y.shape[2]}"
    expect_close("y", y, expected_y, case,
                 f"y[n, c, oy, ox] is the max of x[n, c, oy*s : oy*s + k, ox*s : ox*s + k]; {size_hint}")
    expect_equal("indices", indices, expected_indices, case,
                 "indices[n, c, oy, ox] = h * W + w, where (h, w) is the maximum's row and column in the whole "
                 "H x W input plane (not its position inside the window)")
    hint = ("dx starts at zeros; each g[n, c, oy, ox] is added (+=: overlapping windows can pick the same "
            "element) at x[n, c].flat[indices[n, c, oy, ox]]")
    backward = module.max_pool2d_backward
    check_backward(["x"], lambda x: _library_pool(case, x)[0],
                   lambda arrays, g: (call(backward, case, g, expected_indices, x.shape),), [x], case, {"x": hint})
    expect_close("max_pool2d_backward(g, indices, x.shape)", call(backward, case, g, expected_indices, x.shape),
                 library_gradients(lambda x: F.max_pool2d(x, k, s), [x], g)[0], case, hint)


# ---------------------------------------------------------------------------- 7. max unpool
@st.composite
def _unpool_case(draw):
    n, c, kernel = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 3))
    h, w = draw(st.integers(kernel, 3 * kernel + 2)), draw(st.integers(kernel, 3 * kernel + 2))
    rng = np.random.default_rng(draw(seeds))
    return _unpool_from(rng, (n, c, h, w), kernel)


def _unpool_from(rng, shape, kernel):
    """Pool a tie-free map (windows kernel x kernel, stride kernel) to get real indices, then fresh values."""
    _, indices = F.max_pool2d(Tensor(_distinct(rng, shape)), kernel, return_indices=True)
    return {"x": rng.standard_normal(indices.shape), "indices": indices.data, "output_size": shape[2:],
            "g": rng.standard_normal(shape), "_kernel": kernel}


def _check_max_unpool2d(module, case):
    x, indices, size, g, kernel = case["x"], case["indices"], case["output_size"], case["g"], case["_kernel"]

    def library(x):
        return F.max_unpool2d(Tensor(x), indices, kernel, output_size=size).data

    y = call(module.max_unpool2d, case, x, indices, size)
    expect_close("max_unpool2d(x, indices, output_size)", y, library(x), case,
                 "y = zeros (N, C, H, W); y[n, c].flat[indices[n, c, i, j]] = x[n, c, i, j]")
    hint = "dx[n, c, i, j] = g[n, c].flat[indices[n, c, i, j]]: the unpooling's gradient is a gather"
    backward = module.max_unpool2d_backward
    check_backward(["x"], library, lambda arrays, g: (call(backward, case, g, indices),), [x], case, {"x": hint})
    dx = call(backward, case, g, indices)
    expect_close("max_unpool2d_backward(g, indices)", dx, library_gradients(
        lambda x: F.max_unpool2d(x, indices, kernel, output_size=size), [x], g)[0], case, hint)
    expect_close("<unpool(x), g> - <x, unpool_backward(g)> (the adjoint identity)", np.vdot(y, g) - np.vdot(x, dx),
                 0.0, case, hint)


# ---------------------------------------------------------------------------- 8. transposed conv
def _check_conv_transpose2d(module, case):
    x, w, s, p = case["x"], case["w"], case["stride"], case["padding"]
    expected = F.conv_transpose2d(Tensor(x), Tensor(w), stride=s, padding=p).data
    hint = (f"H_out = (H - 1) * stride - 2 * padding + kH = {expected.shape[2]}; each x[n, c, h, w] adds "
            "x * w[c, o, :, :] to y_padded[n, o, h*stride : h*stride + kH, w*stride : w*stride + kW], "
            "then padding is cut off every side")
    y = expect_shape("conv_transpose2d(x, w, stride, padding)", call(module.conv_transpose2d, case, x, w, s, p),
                     expected.shape, case, hint)
    u = case["g"]  # a random input of y's shape for the adjoint identity
    expect_close("<conv2d(u, w), x> - <u, conv_transpose2d(x, w)> (the adjoint identity, u random)",
                 np.vdot(F.conv2d(Tensor(u), Tensor(w), stride=s, padding=p).data, x) - np.vdot(u, y), 0.0, case,
                 hint, atol=1e-9 * (1 + np.abs(u).sum() * np.abs(x).sum()))
    expect_close("conv_transpose2d(x, w, stride, padding)", y, expected, case, hint)


# ---------------------------------------------------------------------------- 9. batch norm backward
@st.composite
def _batch_norm_case(draw):
    n, c, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    if n * h * w < 2:
        n = 2
    rng = np.random.default_rng(draw(seeds))
    return {"x": rng.standard_normal((n, c, h, w)) * 2 + 1, "weight": rng.standard_normal(c),
            "g": rng.standard_normal((n, c, h, w)), "eps": 1e-5}


def _check_batch_norm(module, case):
    x, weight, g, eps = case["x"], case["weight"], case["g"], case["eps"]
    hints = {"x": "with x_hat = (x - mean) / sigma and means over (N, H, W) per channel: "
                  "dx = weight / sigma * (g - mean(g) - x_hat * mean(g * x_hat)); both means matter, since "
                  "every value moves the mean and the variance",
             "weight": "dweight[c] = sum over (N, H, W) of g * x_hat", "bias": "dbias[c] = sum over (N, H, W) of g"}

    def library(x, weight, bias):
        return F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)

    def learner(arrays, g):
        return unpack("batch_norm_backward", call(module.batch_norm_backward, case, arrays[0], arrays[1], g, eps), 3, case)

    inputs = [x, weight, np.zeros_like(weight)]
    for name, grad, array in zip(hints, learner(inputs, g), inputs):
        expect_shape(f"d{name}", grad, array.shape, case, hints[name])
    check_backward(list(hints), lambda *arrays: library(*(Tensor(a) for a in arrays)).data, learner, inputs, case, hints)
    for name, grad, expected in zip(hints, learner(inputs, g), library_gradients(library, inputs, g)):
        expect_close(f"d{name}", grad, expected, case, hints[name])


# ---------------------------------------------------------------------------- 10. UNet decoder block
@st.composite
def _decoder_case(draw):
    padding = draw(st.sampled_from(["same", "valid"]))
    out_channels, n = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    h, w = (draw(st.integers(1, 3) if padding == "same" else st.integers(3, 4)) for _ in range(2))
    extra = (0, 0) if padding == "same" else (draw(st.integers(0, 4)), draw(st.integers(0, 4)))
    return _decoder_from(draw(seeds), n, out_channels, (h, w), extra, padding)


def _decoder_from(seed, n, out_channels, size, extra, padding):
    """A DecoderBlock (C_in = 2 C_out, skip C_out channels) with random weights and running statistics."""
    from models.unet import DecoderBlock

    rng = np.random.default_rng(seed)
    block = DecoderBlock(2 * out_channels, out_channels, out_channels, padding).double().eval()
    state = {name: (rng.uniform(0.5, 2, value.shape) if name.endswith("running_var") else
                    rng.standard_normal(value.shape) if value.ndim else value)
             for name, value in block.state_dict().items()}
    block.load_state_dict(state)
    skip_size = tuple(2 * s + e for s, e in zip(size, extra))
    return {"x": rng.standard_normal((n, 2 * out_channels, *size)),
            "skip": rng.standard_normal((n, out_channels, *skip_size)), "padding": padding, "_block": block}


def _check_decoder_block(module, case):
    x, skip, padding, block = case["x"], case["skip"], case["padding"], case["_block"]
    params = {name: Tensor(value) for name, value in block.state_dict().items()}
    hint = ("up = conv_transpose2d(x, up.weight, up.bias, stride=2); cut the skip's centre to up's size "
            "(center_crop); joined = cat([up, skip], dim=1), up first; then twice conv2d (no bias, padding 1 "
            "for 'same', 0 for 'valid') -> batch_norm with the running statistics (training=False) -> relu")

    def learner(x, skip):
        return call(module.decoder_block, case, x, skip, params, padding)

    expected = block(Tensor(x), Tensor(skip))
    leaves = [Tensor(x, requires_grad=True), Tensor(skip, requires_grad=True)]
    out = learner(*leaves)
    if not isinstance(out, Tensor):
        fail(f"decoder_block should return a minidl Tensor, got {type(out).__name__}", case,
             "use minidl.functional's ops on Tensors so autograd records them")
    expect_close("decoder_block(x, skip, params, padding)", out.data, expected.data, case, hint)
    g = np.random.default_rng(0).standard_normal(out.shape)
    out.backward(g)
    for name, leaf, grad in zip(("x", "skip"), leaves, library_gradients(block, [x, skip], g)):
        if leaf.grad is None:
            fail(f"no gradient reached {name}", case,
                 "keep every step on Tensors (no .data, no NumPy) so backward can reach the inputs")
        expect_close(f"d{name} (by autograd through your block)", leaf.grad, grad, case, hint)


# ---------------------------------------------------------------------------- 11. FCN crop offset
LAYER_KINDS = ("conv", "pool", "transposed")


@st.composite
def _layers(draw):
    layers = []
    for _ in range(draw(st.integers(0, 4))):
        kind, kernel = draw(st.sampled_from(LAYER_KINDS)), draw(st.integers(1, 7))
        layers.append((kind, kernel, draw(st.integers(1, 4)), draw(st.integers(0, kernel))))
    return {"layers": layers}


def _library_map(layers):
    from models.fcn import CoordinateMap

    result = CoordinateMap()
    for kind, kernel, stride, padding in layers:
        result = result.then(CoordinateMap.of_transposed_conv(kernel, stride, padding) if kind == "transposed"
                             else CoordinateMap.of_conv(kernel, stride, padding))
    return result


def fcn_paper_cases():
    """The crops of the paper's FCN-32s/16s/8s (base_channels 1: only the geometry matters), as layer lists."""
    from models.fcn import FCN8s, FCN16s, FCN32s

    cases = []
    for net in (FCN32s, FCN16s, FCN8s):
        model = net(base_channels=1, geometry="paper")
        stages = [_layer_list(stage) for stage in model.stages]
        scores = sum(stages, []) + _layer_list(model.fc6) + _layer_list(model.fc7) + _layer_list(model.score_fr)
        pairs = []
        for stage, upsample in zip(model.skip_stages, model.upscore2):
            scores = scores + _layer_list(upsample)
            pairs.append((sum(stages[:stage + 1], []), scores))
        pairs.append((scores + _layer_list(model.upscore), []))
        for (larger, target), offset in zip(pairs, model.crop_offsets):
            cases.append({"net": net.__name__, "larger": larger, "target": target, "_offset": offset})
    return cases


def _layer_list(module) -> list:
    """A module's leaf conv / pool / transposed-conv layers as (kind, kernel, stride, padding)."""
    from minidl import nn

    children = list(module.children())
    if children:
        return sum((_layer_list(child) for child in children), [])
    kinds = {nn.ConvTranspose2d: "transposed", nn.Conv2d: "conv", nn.MaxPool2d: "pool"}
    kind = kinds.get(type(module))
    if kind is None:
        return []
    side = [v[0] if isinstance(v, tuple) else v for v in (module.kernel_size, module.stride, module.padding)]
    return [(kind, *side)]


def _check_crop_offset(module, case):
    map_hint = ("a conv or pool (kernel k, stride s, padding p) maps coordinate x to (x + p - (k-1)/2) / s; "
                "a transposed conv maps x to s * x + (k-1)/2 - p; compose them in order with Fractions")
    if "layers" in case:
        expected = _library_map(case["layers"])
        got = call(module.coordinate_map, case, case["layers"])
        if not (isinstance(got, tuple) and len(got) == 2 and got == (expected.scale, expected.shift)):
            fail(f"coordinate_map(layers): expected (scale, shift) = ({expected.scale}, {expected.shift}), got {got!r}",
                 case, map_hint)
        return
    got = call(module.crop_offset, case, case["larger"], case["target"])
    if got != case["_offset"]:
        fail(f"crop_offset(larger, target) for the paper's {case['net']}: expected {case['_offset']}, got {got!r}",
             {"larger": f"{len(case['larger'])} layers", "target": f"{len(case['target'])} layers"},
             "map a target pixel back to the image (inverse of target's map), then forward through larger's "
             "map: x_larger = x_target + offset, so offset = shift of that composition (its scale must be 1)")


# ---------------------------------------------------------------------------- 12. CAM
@st.composite
def _cam_case(draw):
    n, k, classes = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(seeds))
    return {"features": np.maximum(rng.standard_normal((n, k, h, w)), 0), "weight": rng.standard_normal((classes, k)),
            "target": rng.integers(0, classes, n)}


def _check_cam(module, case):
    from ..explain.cam import class_activation_map as library_cam

    features, weight, target = case["features"], case["weight"], case["target"]
    hint = "CAM_c[i, j] = sum_k weight[c, k] * features[n, k, i, j] with c = target[n]: one row of weight per image"
    cams = expect_shape("class_activation_map(features, weight, target)",
                        call(module.class_activation_map, case, features, weight, target),
                        (features.shape[0], *features.shape[2:]), case, hint)
    logits = features.mean(axis=(2, 3)) @ weight.T  # the linear layer on the global average pool, without bias
    expect_close("CAM mean - (GAP(features) @ weight.T)[n, target[n]] (CAM's identity: its mean is the class score)",
                 cams.mean(axis=(1, 2)) - logits[np.arange(len(target)), target], np.zeros(len(target)), case, hint)
    linear = type("Linear", (), {"weight": weight, "bias": None})
    expected = library_cam(lambda t: Tensor(features), linear, np.zeros((len(target), 1, 1, 1)), target, upsample=False)
    expect_close("class_activation_map(features, weight, target)", cams, expected, case, hint)


# ---------------------------------------------------------------------------- 13. Integrated Gradients
@st.composite
def _ig_case(draw):
    n, c, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    steps = draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(seeds))
    return _ig_from(rng, (n, c, h, w), steps, draw(st.booleans()))


def _ig_from(rng, shape, steps, zero_baseline):
    """A small tanh network on flattened images, random weights; baseline zeros or random."""
    classes, hidden = 3, 5
    w1, b1 = Tensor(rng.standard_normal((int(np.prod(shape[1:])), hidden))), Tensor(rng.standard_normal(hidden))
    w2 = Tensor(rng.standard_normal((hidden, classes)))

    def model(x):
        return F.matmul(F.tanh(F.matmul(F.reshape(x, x.shape[0], -1), w1) + b1), w2)

    x = rng.standard_normal(shape)
    return {"x": x, "target": rng.integers(0, classes, shape[0]),
            "baseline": np.zeros(shape) if zero_baseline else rng.standard_normal(shape) * 0.5,
            "steps": steps, "_model": model}


def _check_ig(module, case):
    from ..explain.integrated_gradients import integrated_gradients as library_ig

    x, target, baseline, steps, model = case["x"], case["target"], case["baseline"], case["steps"], case["_model"]
    expected = library_ig(model, x, target, baseline, steps, method="trapezoid")
    hint = ("points a_s = s / steps for s = 0..steps; gradient of logits[n, target[n]] at baseline + a_s (x - baseline) "
            "(one backward of (logits * one_hot).sum() for the whole batch); average with trapezoid weights "
            "(1/steps, halved at both ends); multiply by (x - baseline)")
    got = call(module.integrated_gradients, case, model, x, target, baseline, steps)
    got = expect_shape("integrated_gradients(...)", got, x.shape, case, hint)
    expect_close("integrated_gradients(...)", got, expected.attributions, case,
                 f"{hint}. Completeness: your attributions sum to {got.reshape(len(x), -1).sum(1)}, "
                 f"the logit changes by {expected.attributions.reshape(len(x), -1).sum(1) - expected.completeness_error}")


# ---------------------------------------------------------------------------- the list
def _fixed_pool_case():
    rng = np.random.default_rng(3)
    return _pool_upstream({"x": _distinct(rng, (2, 2, 5, 6)), "kernel_size": 2, "stride": 2}, rng)


def _fixed_transposed_case():
    rng = np.random.default_rng(4)
    return _with_upstream({"x": rng.standard_normal((2, 3, 3, 4)), "w": rng.standard_normal((3, 2, 3, 2)),
                           "stride": 2, "padding": 1}, True, rng)


def _fixed_cam_case():
    rng = np.random.default_rng(10)
    return {"features": np.maximum(rng.standard_normal((3, 4, 3, 5)), 0), "weight": rng.standard_normal((3, 4)),
            "target": np.array([2, 0, 1])}


def _fixed_batch_norm_case():
    rng = np.random.default_rng(5)
    return {"x": rng.standard_normal((2, 3, 2, 3)) * 2 + 1, "weight": rng.standard_normal(3),
            "g": rng.standard_normal((2, 3, 2, 3)), "eps": 1e-5}


EXERCISES = (
    Exercise("activations", "an elementwise op's backward: dL/dx = g * f'(x) (ReLU, sigmoid)",
             ("relu_backward", "sigmoid_backward"),
             lambda: [{"x": _away_from_zero(np.linspace(-1, 1, 6).reshape(2, 3)), "g": np.arange(6.0).reshape(2, 3) - 2}],
             _activation_case(), _check_activations),
    Exercise("matmul_backward", "the two gradients of y = a @ b: g @ b.T and a.T @ g", ("matmul_backward",),
             lambda: [{"a": np.arange(6.0).reshape(2, 3), "b": np.arange(12.0).reshape(3, 4) / 5,
                       "g": np.ones((2, 4)) - np.eye(2, 4)}],
             _matmul_case(), _check_matmul),
    Exercise("unbroadcast", "broadcasting's gradient: sum over the axes an input was stretched along", ("unbroadcast",),
             lambda: [{"a": np.ones((3, 1)), "b": np.ones((2, 1, 4)), "g": np.arange(24.0).reshape(2, 3, 4)}],
             _unbroadcast_case(), _check_unbroadcast),
    Exercise("conv2d_forward", "convolution as im2col + one matrix product", ("im2col", "conv2d_forward"),
             lambda: [_fixed_conv_case(2, 2, 3, (5, 6), (3, 2), 2, 1)], _conv_case(), _check_conv2d_forward),
    Exercise("conv2d_backward", "both gradients of a convolution (dx is a transposed convolution)", ("conv2d_backward",),
             lambda: [_fixed_conv_case(2, 3, 3, (5, 6), (3, 2), 2, 1)], _conv_case(), _check_conv2d_backward),
    Exercise("max_pool2d", "max pooling that remembers where each maximum was, and its backward",
             ("max_pool2d", "max_pool2d_backward"), lambda: [_fixed_pool_case()], _pool_case(), _check_max_pool2d),
    Exercise("max_unpool2d", "SegNet's upsampling: put values back at the pooling indices (and its gather gradient)",
             ("max_unpool2d", "max_unpool2d_backward"), lambda: [_unpool_from(np.random.default_rng(6), (2, 2, 4, 5), 2)],
             _unpool_case(), _check_max_unpool2d),
    Exercise("conv_transpose2d", "transposed convolution as the adjoint of conv2d (learned upsampling)",
             ("conv_transpose2d",), lambda: [_fixed_transposed_case()], _conv_case(transposed=True),
             _check_conv_transpose2d),
    Exercise("batch_norm_backward", "batch norm's backward with batch statistics (every value moves the mean)",
             ("batch_norm_backward",), lambda: [_fixed_batch_norm_case()], _batch_norm_case(), _check_batch_norm),
    Exercise("decoder_block", "the UNet decoder block: up-convolution, crop and concatenate the skip, conv block",
             ("decoder_block",), lambda: [_decoder_from(7, 2, 2, (2, 2), (0, 0), "same"),
                                          _decoder_from(8, 1, 2, (3, 3), (2, 2), "valid")],
             _decoder_case(), _check_decoder_block),
    Exercise("crop_offset", "FCN's crops: compose each layer's coordinate map, read the offset off",
             ("coordinate_map", "crop_offset"),
             lambda: [{"layers": [("conv", 3, 1, 100), ("pool", 2, 2, 0), ("transposed", 4, 2, 0)]}, *fcn_paper_cases()],
             _layers(), _check_crop_offset),
    Exercise("class_activation_map", "CAM from the last feature maps and the linear layer (its mean is the class score)",
             ("class_activation_map",), lambda: [_fixed_cam_case()], _cam_case(), _check_cam),
    Exercise("integrated_gradients", "Integrated Gradients: gradients along the path from a baseline, trapezoid rule",
             ("integrated_gradients",), lambda: [_ig_from(np.random.default_rng(9), (2, 1, 2, 3), 4, False)],
             _ig_case(), _check_ig),
)


def find(name: str) -> Exercise:
    for exercise in EXERCISES:
        if exercise.name == name:
            return exercise
    raise KeyError(name)
