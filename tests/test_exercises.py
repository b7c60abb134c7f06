"""minidl.exercises: the checker passes the library's own implementations and fails wrong ones with
the right message; the command line starts, checks and lists without overwriting a learner's work.

The "solutions" are files a learner could write by calling the library (so nothing is duplicated
and the learner's view, the templates, has no answer in it). Few hypothesis examples keep this fast.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from minidl.exercises.__main__ import main
from minidl.exercises.catalogue import EXERCISES

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = 3  # hypothesis cases after the hand-picked ones (the command line's default is 100)

HEADER = """
import numpy as np
import minidl.functional as F
from minidl import Tensor
from minidl.exercises.catalogue import library_gradients
"""

SOLUTIONS = {
    "activations": """
        def relu_backward(x, g):
            return library_gradients(F.relu, [x], g)[0]

        def sigmoid_backward(x, g):
            return library_gradients(F.sigmoid, [x], g)[0]
        """,
    "matmul_backward": """
        def matmul_backward(a, b, g):
            return tuple(library_gradients(F.matmul, [a, b], g))
        """,
    "unbroadcast": """
        from minidl.ops.elementwise import unbroadcast
        """,
    "conv2d_forward": """
        from minidl.kernels.reference import conv

        def im2col(x, kernel_size, stride, padding):
            out = [(size + 2 * padding - k) // stride + 1 for size, k in zip(x.shape[2:], kernel_size)]
            return conv.im2col(x, kernel_size, (stride, stride), (padding, padding), (1, 1), out)

        def conv2d_forward(x, w, stride, padding):
            return F.conv2d(Tensor(x), Tensor(w), stride=stride, padding=padding).data
        """,
    "conv2d_backward": """
        def conv2d_backward(x, w, g, stride, padding):
            return tuple(library_gradients(lambda x, w: F.conv2d(x, w, stride=stride, padding=padding), [x, w], g))
        """,
    "max_pool2d": """
        from minidl.kernels.reference.pooling import scatter_at_indices

        def max_pool2d(x, kernel_size, stride):
            y, indices = F.max_pool2d(Tensor(x), kernel_size, stride, return_indices=True)
            return y.data, indices.data

        def max_pool2d_backward(g, indices, input_shape):
            n, c, h, w = input_shape
            planes = scatter_at_indices(g.reshape(n * c, -1), indices.reshape(n * c, -1), h * w, accumulate=True)
            return planes.reshape(input_shape)
        """,
    "max_unpool2d": """
        from minidl.kernels.reference.pooling import gather_at_indices, scatter_at_indices

        def max_unpool2d(x, indices, output_size):
            n, c = x.shape[:2]
            planes = scatter_at_indices(x.reshape(n * c, -1), indices.reshape(n * c, -1),
                                        output_size[0] * output_size[1], accumulate=False)
            return planes.reshape(n, c, *output_size)

        def max_unpool2d_backward(g, indices):
            n, c = g.shape[:2]
            return gather_at_indices(g.reshape(n * c, -1), indices.reshape(n * c, -1)).reshape(indices.shape)
        """,
    "conv_transpose2d": """
        def conv_transpose2d(x, w, stride, padding):
            return F.conv_transpose2d(Tensor(x), Tensor(w), stride=stride, padding=padding).data
        """,
    "batch_norm_backward": """
        def batch_norm_backward(x, weight, g, eps):
            def bn(x, w, b):
                return F.batch_norm(x, None, None, w, b, training=True, eps=eps)
            return tuple(library_gradients(bn, [x, weight, np.zeros_like(weight)], g))
        """,
    "decoder_block": """
        from models.unet import DecoderBlock

        def decoder_block(x, skip, params, padding):
            c_in, c_out = params["up.weight"].shape[:2]
            block = DecoderBlock(c_in, skip.shape[1], c_out, padding).double().eval()
            block.load_state_dict({name: value.data for name, value in params.items()})
            return block(x, skip)
        """,
    "crop_offset": """
        from models.fcn import CoordinateMap, crop_offset as library_crop_offset

        def _map(layers):
            result = CoordinateMap()
            for kind, kernel, stride, padding in layers:
                step = (CoordinateMap.of_transposed_conv(kernel, stride, padding) if kind == "transposed"
                        else CoordinateMap.of_conv(kernel, stride, padding))
                result = result.then(step)
            return result

        def coordinate_map(layers):
            result = _map(layers)
            return result.scale, result.shift

        def crop_offset(larger, target):
            return library_crop_offset(_map(larger), _map(target))
        """,
    "class_activation_map": """
        from minidl.explain.cam import class_activation_map as library_cam

        class Linear:
            def __init__(self, weight):
                self.weight, self.bias = weight, None

        def class_activation_map(features, weight, target):
            images = np.zeros((len(features), 1, 1, 1))
            return library_cam(lambda x: Tensor(features), Linear(weight), images, target, upsample=False)
        """,
    "integrated_gradients": """
        from minidl.explain.integrated_gradients import integrated_gradients as library_ig

        def integrated_gradients(model, x, target, baseline, steps):
            return library_ig(model, x, target, baseline, steps, method="trapezoid").attributions
        """,
}

# Each wrong version: (exercise, replacement source, text the failure must contain).
WRONG = {
    "conv2d_backward: transposed weight in dx": ("conv2d_backward", """
        def conv2d_backward(x, w, g, stride, padding):
            conv = lambda x, w: F.conv2d(x, w, stride=stride, padding=padding)
            dx = library_gradients(lambda x: conv(x, w.transpose(1, 0, 2, 3).copy()), [x], g)[0]
            return dx, library_gradients(conv, [x, w], g)[1]
        """, ["dx[", "central differences give", "w[o, c], not w[c, o]", "case: x (2, 3, 5, 6)"]),
    "conv2d_backward: no sum over the batch in dw": ("conv2d_backward", """
        def conv2d_backward(x, w, g, stride, padding):
            conv = lambda x, w: F.conv2d(x, w, stride=stride, padding=padding)
            dx = library_gradients(conv, [x, w], g)[0]
            return dx, library_gradients(conv, [x[:1], w], g[:1])[1]  # only the first image
        """, ["dw[", "over every image of the batch too"]),
    "conv2d_forward: off-by-one pad (an extra zero row and column at the top left)": ("conv2d_forward", """
        from minidl.kernels.reference import conv

        def im2col(x, kernel_size, stride, padding):
            out = [(size + 2 * padding - k) // stride + 1 for size, k in zip(x.shape[2:], kernel_size)]
            shifted = np.pad(x, ((0, 0), (0, 0), (1, 0), (1, 0)))
            return conv.im2col(shifted, kernel_size, (stride, stride), (padding, padding), (1, 1), out)

        def conv2d_forward(x, w, stride, padding):
            return w.reshape(len(w), -1) @ im2col(x, w.shape[2:], stride, padding)
        """, ["im2col(x, kernel_size=(3, 2), stride=2, padding=1)[", "pad x by 1 on every side"]),
    "conv2d_forward: output size without the + 1": ("conv2d_forward", """
        from minidl.kernels.reference import conv

        def im2col(x, kernel_size, stride, padding):
            out = [(size + 2 * padding - k) // stride for size, k in zip(x.shape[2:], kernel_size)]
            return conv.im2col(x, kernel_size, (stride, stride), (padding, padding), (1, 1), out)

        def conv2d_forward(x, w, stride, padding):
            raise NotImplementedError
        """, ["has shape (12, 12), expected (12, 24)", "H_out = (H + 2p - kH) // stride + 1 = 3"]),
    "max_pool2d: gradient routed to the wrong element (row and column from the plane's height)": ("max_pool2d", """
        def max_pool2d(x, kernel_size, stride):
            y, indices = F.max_pool2d(Tensor(x), kernel_size, stride, return_indices=True)
            return y.data, indices.data

        def max_pool2d_backward(g, indices, input_shape):
            n, c, h, w = input_shape
            dx = np.zeros(input_shape)
            for (i, j, oy, ox), index in np.ndenumerate(indices):
                row, col = divmod(index, h)  # should be divmod(index, w)
                dx[i, j, row, col] += g[i, j, oy, ox]
            return dx
        """, ["dx[", "central differences give", "x[n, c].flat[indices[n, c, oy, ox]]"]),
    "max_pool2d: index inside the window instead of the plane": ("max_pool2d", """
        def max_pool2d(x, kernel_size, stride):
            n, c, h, w = x.shape
            out_h, out_w = (h - kernel_size) // stride + 1, (w - kernel_size) // stride + 1
            y, indices = np.zeros((n, c, out_h, out_w)), np.zeros((n, c, out_h, out_w), dtype=np.int64)
            for i, j, oy, ox in np.ndindex(y.shape):
                window = x[i, j, oy * stride:oy * stride + kernel_size, ox * stride:ox * stride + kernel_size]
                indices[i, j, oy, ox] = window.argmax()
                y[i, j, oy, ox] = window.max()
            return y, indices

        def max_pool2d_backward(g, indices, input_shape):
            raise NotImplementedError
        """, ["indices[", "in the whole H x W input plane"]),
    "batch_norm_backward: the variance's term missing": ("batch_norm_backward", """
        def batch_norm_backward(x, weight, g, eps):
            axes = (0, 2, 3)
            mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
            x_hat = (x - mean) / np.sqrt(var + eps)
            dx = weight[None, :, None, None] / np.sqrt(var + eps) * (g - g.mean(axis=axes, keepdims=True))
            return dx, (g * x_hat).sum(axis=axes), g.sum(axis=axes)
        """, ["dx[", "x_hat * mean(g * x_hat)"]),
    "unbroadcast: only the leading axes summed": ("unbroadcast", """
        def unbroadcast(grad, shape):
            return grad.sum(axis=tuple(range(grad.ndim - len(shape))))
        """, ["unbroadcast(g, a.shape=(3, 1)) has shape (3, 4), expected (3, 1)"]),
    "matmul_backward: g @ b without the transpose": ("matmul_backward", """
        def matmul_backward(a, b, g):
            return g @ b, a.T @ g
        """, ["matmul_backward raised ValueError", "at matmul_backward.py:"]),
    "activations: sigmoid without (1 - s)": ("activations", """
        def relu_backward(x, g):
            return g * (x > 0)

        def sigmoid_backward(x, g):
            return g / (1 + np.exp(-x))
        """, ["dx[", "s * (1 - s)"]),
    "activations: relu_backward writes into g": ("activations", """
        def relu_backward(x, g):
            g[x <= 0] = 0
            return g

        def sigmoid_backward(x, g):
            raise NotImplementedError
        """, ["relu_backward modified its argument 2 in place"]),
    "conv_transpose2d: a flipped kernel": ("conv_transpose2d", """
        def conv_transpose2d(x, w, stride, padding):
            return F.conv_transpose2d(Tensor(x), Tensor(w[:, :, ::-1, ::-1].copy()), stride=stride, padding=padding).data
        """, ["the adjoint identity"]),
    "crop_offset: the padding forgotten": ("crop_offset", """
        from fractions import Fraction

        def coordinate_map(layers):
            scale, shift = Fraction(1), Fraction(0)
            for kind, k, s, p in layers:
                a, b = (Fraction(s), Fraction(k - 1, 2)) if kind == "transposed" else (Fraction(1, s), Fraction(-(k - 1), 2 * s))
                scale, shift = a * scale, a * shift + b
            return scale, shift

        def crop_offset(larger, target):
            raise NotImplementedError
        """, ["coordinate_map(layers): expected (scale, shift)"]),
    "class_activation_map: the first class for every image": ("class_activation_map", """
        def class_activation_map(features, weight, target):
            return np.einsum("k,nkhw->nhw", weight[0], features)
        """, ["CAM's identity", "one row of weight per image"]),
    "integrated_gradients: a left Riemann sum instead of the trapezoid": ("integrated_gradients", """
        from minidl.explain.integrated_gradients import integrated_gradients as library_ig

        def integrated_gradients(model, x, target, baseline, steps):
            return library_ig(model, x, target, baseline, steps, method="riemann_left").attributions
        """, ["integrated_gradients(...)[", "trapezoid weights", "Completeness"]),
}


def write(folder: Path, name: str, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(HEADER + textwrap.dedent(body))


def test_every_exercise_has_a_solution_and_a_template():
    assert sorted(SOLUTIONS) == sorted(e.name for e in EXERCISES)
    assert {name for name, _, _ in WRONG.values()} >= {"conv2d_backward", "conv2d_forward", "max_pool2d"}


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_library_implementation_passes(name, tmp_path, capsys):
    write(tmp_path, name, SOLUTIONS[name])
    assert main(["check", name, "--dir", str(tmp_path), "--examples", str(EXAMPLES)]) == 0, capsys.readouterr().out
    assert f"{name}: passed" in capsys.readouterr().out
    assert name in json.loads((tmp_path / ".solved.json").read_text())


def test_a_bug_only_hypothesis_finds_is_reported_on_its_smallest_case(tmp_path, capsys):
    """The hand-picked conv case has stride 2; a dw wrong only for stride 1 is found by the drawn cases."""
    write(tmp_path, "conv2d_backward", SOLUTIONS["conv2d_backward"].replace(
        "return tuple(", "dx, dw = (").replace("[x, w], g))", "[x, w], g))\n            return dx, dw * (1 + (stride == 1))"))
    assert main(["check", "conv2d_backward", "--dir", str(tmp_path), "--examples", "20"]) == 1
    out = capsys.readouterr().out
    assert "dw[0, 0, 0, 0]" in out and "stride 1, padding 0" in out and "x (1, 1, 1, 1)" in out, out


def test_start_never_overwrites_and_list_shows_progress(tmp_path, capsys):
    folder = tmp_path / "mine"
    assert main(["start", "max_pool2d", "--dir", str(folder)]) == 0
    path = folder / "max_pool2d.py"
    template = path.read_text()
    assert "raise NotImplementedError" in template and "def max_pool2d_backward(g, indices, input_shape)" in template
    path.write_text(template + "\n# my work\n")
    assert main(["start", "max_pool2d", "--dir", str(folder)]) == 1
    assert path.read_text().endswith("# my work\n")
    assert main(["check", "max_pool2d", "--dir", str(folder)]) == 1
    assert "max_pool2d is not implemented yet" in capsys.readouterr().out

    write(folder, "unbroadcast", SOLUTIONS["unbroadcast"])
    assert main(["check", "unbroadcast", "--dir", str(folder), "--examples", "2"]) == 0
    capsys.readouterr()
    main(["list", "--dir", str(folder)])
    rows = {line.split()[1]: line.split()[2] for line in capsys.readouterr().out.splitlines() if line[:3].strip().isdigit()}
    assert [rows["unbroadcast"], rows["max_pool2d"], rows["conv2d_forward"]] == ["solved", "started", "-"]
    (folder / "unbroadcast.py").write_text((folder / "unbroadcast.py").read_text() + "\n")
    main(["list", "--dir", str(folder)])
    assert "unbroadcast            edited" in capsys.readouterr().out


def test_every_template_is_unsolved_as_shipped(tmp_path, capsys):
    for exercise in EXERCISES:
        assert main(["start", exercise.name, "--dir", str(tmp_path)]) == 0
        assert main(["check", exercise.name, "--dir", str(tmp_path), "--examples", "0"]) == 1
        assert "is not implemented yet" in capsys.readouterr().out


def test_command_line_from_another_folder(tmp_path):
    """As a learner runs it: python -m from their own folder (the package found through the install or PYTHONPATH)."""
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    run = [sys.executable, "-m", "minidl.exercises"]
    listing = subprocess.run(run + ["list"], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert listing.stdout.splitlines()[1].split()[:2] == ["1", "activations"]
    subprocess.run(run + ["start", "activations"], cwd=tmp_path, env=env, capture_output=True, check=True)
    assert (tmp_path / "minidl_exercises" / "activations.py").exists()
    unknown = subprocess.run(run + ["check", "nope"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert unknown.returncode != 0 and "no exercise named 'nope'" in unknown.stderr


def test_list_piped_into_a_reader_that_stops_early_ends_quietly(tmp_path):
    """``python -m minidl.exercises list | head -1``: the reader closes the pipe after one line."""
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    lister = subprocess.Popen([sys.executable, "-m", "minidl.exercises", "list"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lister.stdout.close()  # as `head` does once it has what it wants: every write now fails with EPIPE
    stderr = lister.stderr.read().decode()
    lister.stderr.close()
    assert lister.wait() == 1
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


# Solutions written from the templates' docstrings alone, in plain NumPy, as a learner would: the
# conventions the templates state (im2col's row and column order, flat indices, trapezoid weights)
# must be enough, and the tolerances must accept a different but correct order of operations.
PLAIN = {
    "activations": """
        def relu_backward(x, g):
            return g * (x > 0)

        def sigmoid_backward(x, g):
            s = 1 / (1 + np.exp(-x))
            return g * s * (1 - s)
        """,
    "matmul_backward": """
        def matmul_backward(a, b, g):
            return g @ b.T, a.T @ g
        """,
    "unbroadcast": """
        def unbroadcast(grad, shape):
            grad = grad.sum(axis=tuple(range(grad.ndim - len(shape))))
            return grad.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True)
        """,
    "conv2d_forward": """
        def im2col(x, kernel_size, stride, padding):
            n, c, h, w = x.shape
            kh, kw = kernel_size
            xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
            oh, ow = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
            cols = np.zeros((c, kh, kw, n, oh, ow))
            for i in range(kh):
                for j in range(kw):
                    cols[:, i, j] = xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride].transpose(1, 0, 2, 3)
            return cols.reshape(c * kh * kw, -1)

        def conv2d_forward(x, w, stride, padding):
            n, (c_out, _, kh, kw) = len(x), w.shape
            oh = (x.shape[2] + 2 * padding - kh) // stride + 1
            y = w.reshape(c_out, -1) @ im2col(x, (kh, kw), stride, padding)
            return y.reshape(c_out, n, oh, -1).transpose(1, 0, 2, 3)
        """,
    "conv2d_backward": """
        def conv2d_backward(x, w, g, stride, padding):
            p, s = padding, stride
            xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
            dxp, dw = np.zeros_like(xp), np.zeros_like(w)
            oh, ow = g.shape[2:]
            for i in range(w.shape[2]):
                for j in range(w.shape[3]):
                    window = (slice(None), slice(None), slice(i, i + s * oh, s), slice(j, j + s * ow, s))
                    dw[:, :, i, j] = np.einsum("nohw,nchw->oc", g, xp[window])
                    dxp[window] += np.einsum("oc,nohw->nchw", w[:, :, i, j], g)
            return dxp[:, :, p:p + x.shape[2], p:p + x.shape[3]], dw
        """,
    "max_pool2d": """
        def max_pool2d(x, kernel_size, stride):
            n, c, h, w = x.shape
            k, s = kernel_size, stride
            shape = (n, c, (h - k) // s + 1, (w - k) // s + 1)
            y, indices = np.zeros(shape), np.zeros(shape, dtype=np.int64)
            for a, b, oy, ox in np.ndindex(shape):
                window = x[a, b, oy * s:oy * s + k, ox * s:ox * s + k]
                i, j = divmod(int(window.argmax()), k)
                y[a, b, oy, ox], indices[a, b, oy, ox] = window[i, j], (oy * s + i) * w + ox * s + j
            return y, indices

        def max_pool2d_backward(g, indices, input_shape):
            dx = np.zeros(input_shape)
            for (a, b, oy, ox), index in np.ndenumerate(indices):
                dx[a, b].flat[index] += g[a, b, oy, ox]
            return dx
        """,
    "max_unpool2d": """
        def max_unpool2d(x, indices, output_size):
            y = np.zeros((*x.shape[:2], *output_size))
            for (a, b, i, j), index in np.ndenumerate(indices):
                y[a, b].flat[index] = x[a, b, i, j]
            return y

        def max_unpool2d_backward(g, indices):
            return np.array([[g[a, b].flat[indices[a, b]] for b in range(g.shape[1])] for a in range(len(g))])
        """,
    "conv_transpose2d": """
        def conv_transpose2d(x, w, stride, padding):
            n, c_in, h, width = x.shape
            _, c_out, kh, kw = w.shape
            s, p = stride, padding
            y = np.zeros((n, c_out, (h - 1) * s + kh, (width - 1) * s + kw))
            for a, c, i, j in np.ndindex(n, c_in, h, width):
                y[a, :, i * s:i * s + kh, j * s:j * s + kw] += x[a, c, i, j] * w[c]
            return y[:, :, p:y.shape[2] - p, p:y.shape[3] - p]
        """,
    "batch_norm_backward": """
        def batch_norm_backward(x, weight, g, eps):
            axes = (0, 2, 3)
            sigma = np.sqrt(x.var(axis=axes, keepdims=True) + eps)
            x_hat = (x - x.mean(axis=axes, keepdims=True)) / sigma
            dx = weight[None, :, None, None] / sigma * (
                g - g.mean(axis=axes, keepdims=True) - x_hat * (g * x_hat).mean(axis=axes, keepdims=True))
            return dx, (g * x_hat).sum(axis=axes), g.sum(axis=axes)
        """,
    "decoder_block": """
        def decoder_block(x, skip, params, padding):
            pad = 1 if padding == "same" else 0
            up = F.conv_transpose2d(x, params["up.weight"], params["up.bias"], stride=2)
            joined = F.cat([up, F.center_crop(skip, up.shape[2:])], dim=1)
            for k in (0, 3):
                bn = f"block.{k + 1}."
                joined = F.relu(F.batch_norm(F.conv2d(joined, params[f"block.{k}.weight"], padding=pad),
                                             params[bn + "running_mean"], params[bn + "running_var"],
                                             params[bn + "weight"], params[bn + "bias"], training=False))
            return joined
        """,
    "crop_offset": """
        from fractions import Fraction

        def coordinate_map(layers):
            scale, shift = Fraction(1), Fraction(0)
            for kind, k, s, p in layers:
                if kind == "transposed":
                    a, b = Fraction(s), Fraction(k - 1, 2) - p
                else:
                    a, b = Fraction(1, s), (p - Fraction(k - 1, 2)) / s
                scale, shift = a * scale, a * shift + b
            return scale, shift

        def crop_offset(larger, target):
            (a1, b1), (a2, b2) = coordinate_map(larger), coordinate_map(target)
            # x_target = a2 X + b2, x_larger = a1 X + b1 for image coordinate X; same scale a1 = a2
            assert a1 == a2
            return int(b1 - b2)
        """,
    "class_activation_map": """
        def class_activation_map(features, weight, target):
            return np.einsum("nk,nkhw->nhw", weight[target], features)
        """,
    "integrated_gradients": """
        def integrated_gradients(model, x, target, baseline, steps):
            one_hot = np.eye(model(Tensor(x)).shape[1])[target]
            total = np.zeros_like(x)
            for s in range(steps + 1):
                point = Tensor(baseline + s / steps * (x - baseline), requires_grad=True)
                (model(point) * one_hot).sum().backward()
                total += point.grad * (0.5 if s in (0, steps) else 1) / steps
            return (x - baseline) * total
        """,
}

# The plain decoder block with the skip concatenated before the upsampled map instead of after it.
WRONG["decoder_block: skip before the upsampled map"] = ("decoder_block", PLAIN["decoder_block"].replace(
    "F.cat([up, F.center_crop(skip, up.shape[2:])]", "F.cat([F.center_crop(skip, up.shape[2:]), up]"),
    ["decoder_block(x, skip, params, padding)[", "up first"])


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_a_learners_plain_numpy_solution_passes(name, tmp_path, capsys):
    assert sorted(PLAIN) == sorted(SOLUTIONS)
    write(tmp_path, name, PLAIN[name])
    assert main(["check", name, "--dir", str(tmp_path), "--examples", "10"]) == 0, capsys.readouterr().out


@pytest.mark.parametrize("bug", sorted(WRONG))
def test_wrong_implementation_fails_with_its_message(bug, tmp_path, capsys):
    name, body, expected = WRONG[bug]
    write(tmp_path, name, body)
    assert main(["check", name, "--dir", str(tmp_path), "--examples", str(EXAMPLES)]) == 1
    out = capsys.readouterr().out
    assert f"{name}: FAILED" in out and "Traceback" not in out
    for text in expected:
        assert text in out, f"{text!r} not in:\n{out}"
    assert not (tmp_path / ".solved.json").exists()
