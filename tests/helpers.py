"""Shared test helpers: hypothesis strategies for shapes and data, a gradient check, a PyTorch parity check.

Data are drawn on a grid (multiples of 0.01, shifted by ``offset``) so tests can keep them away
from kinks and ties by construction instead of loosening tolerances: ``nonzero=True`` keeps
|x| >= 0.01 (abs, relu, clamp at an off-grid bound), ``distinct=True`` makes every value unique
(max), and two arrays with offsets 0 and 0.005 never tie (maximum). Central differences use
eps = 1e-6, far smaller than any of these gaps.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from minidl import Tensor, no_grad
from minidl.gradcheck import gradcheck
from minidl.io import load_checkpoint


def shapes(min_dims=0, max_dims=3, min_side=1, max_side=4):
    """Array shapes, including size-1 and odd sides (small: gradcheck costs 2 forwards per element)."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4):
    """Shapes that broadcast together, e.g. ((3, 1), (2, 1, 4)); ``.input_shapes`` holds them."""
    return hnp.mutually_broadcastable_shapes(num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims,
                                             max_side=max_side)


@st.composite
def arrays(draw, shape, low=-2.0, high=2.0, nonzero=False, distinct=False, offset=0.0, dtype=np.float64):
    """A float array of ``shape`` with values ``offset + 0.01 k`` in [low, high] (see module docstring)."""
    steps = st.integers(int(np.ceil((low - offset) * 100)), int(np.floor((high - offset) * 100)))
    if nonzero:
        steps = steps.filter(lambda k: k != 0)
    grid = draw(hnp.arrays(np.int64, shape, elements=steps, unique=distinct))
    return np.asarray(offset + grid / 100, dtype=dtype)


def check_gradients(fn, inputs):
    """``gradcheck`` (float64, random upstream gradient), then check that neither the inputs nor
    the upstream gradient were modified by a forward and backward pass."""
    gradcheck(fn, inputs)
    leaves = [Tensor(x.copy(), requires_grad=True) if _is_float(x) else x for x in inputs]
    out = fn(*leaves)
    upstream = np.random.default_rng(1).standard_normal(out.shape)
    upstream_before = upstream.copy()
    out.backward(upstream)
    for before, leaf in zip(inputs, leaves):
        if isinstance(leaf, Tensor):
            np.testing.assert_array_equal(leaf.data, before, err_msg="the op modified its input")
    np.testing.assert_array_equal(upstream, upstream_before, err_msg="backward modified the upstream gradient")


def check_fast_path_matches(plain, fast, x, upstream):
    """A fast path against the lesson: ``plain`` and ``fast`` each map a leaf Tensor of ``x`` to an output;
    both must give the same output and gradient (for ``upstream``), bit for bit, with the same dtype,
    and leave ``x`` and ``upstream`` unmodified."""
    results = []
    for apply in (plain, fast):
        leaf, before = Tensor(x, requires_grad=True), (x.copy(), upstream.copy())
        y = apply(leaf)
        y.backward(upstream)
        np.testing.assert_array_equal(x, before[0], err_msg="the op modified its input")
        np.testing.assert_array_equal(upstream, before[1], err_msg="backward modified the upstream gradient")
        results.append((y.data, leaf.grad))
    for expected, got in zip(*results, strict=True):
        assert got.dtype == expected.dtype and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)


def check_directional_derivatives(fn, inputs, directions=2, eps=1e-6, rtol=1e-6, seed=0):
    """A gradient check for inputs too large for one central difference per element: along random
    directions v of each float input x_i (float64, random upstream gradient g),

        <dL/dx_i, v>  ~=  <g, f(.., x_i + eps v, ..) - f(.., x_i - eps v, ..)> / (2 eps),   L = <g, f>

    with error O(eps^2) (none for an op linear in x_i, e.g. conv in x or in w). A gradient wrong in
    any block of entries changes <dL/dx_i, v> for almost every random v. Costs 2 forwards per direction.
    """
    rng = np.random.default_rng(seed)
    arrays = [np.array(x, dtype=np.float64) if _is_float(x) else x for x in inputs]
    leaves = [Tensor(a.copy(), requires_grad=True) if _is_float(a) else a for a in arrays]
    out = fn(*leaves)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    for i, leaf in enumerate(leaves):
        if not isinstance(leaf, Tensor):
            continue
        for _ in range(directions):
            v = rng.standard_normal(leaf.shape)
            shifted = [[Tensor(a + sign * eps * v) if j == i else Tensor(a) if _is_float(a) else a
                        for j, a in enumerate(arrays)] for sign in (1, -1)]
            numeric = np.sum(g * (fn(*shifted[0]).data - fn(*shifted[1]).data)) / (2 * eps)
            analytic = np.sum(leaf.grad * v)
            assert abs(analytic - numeric) <= rtol * abs(numeric), (
                f"input {i}: <gradient, direction> {analytic:.12g} but central differences give {numeric:.12g}")


def check_op(minidl_fn, torch_fn, inputs, atol=None, rtol=None, seed=0):
    """Run an op in minidl and in PyTorch on the same inputs and upstream gradient; compare the
    outputs and the gradients of every float input (tinygrad's ``helper_test_op``).

    inputs: float arrays (they require grad); other arrays (labels, indices) and values pass as they are.
    Tolerances default by dtype (float32 / float64).
    Also checks that minidl returns outputs and gradients in the inputs' dtype.
    """
    import torch

    dtype = next(x.dtype for x in inputs if _is_float(x))
    tolerance = 1e-5 if dtype == np.float32 else 1e-10
    atol, rtol = atol if atol is not None else tolerance, rtol if rtol is not None else tolerance
    ours = [Tensor(x, requires_grad=True) if _is_float(x) else x for x in inputs]
    theirs = [torch.tensor(x, requires_grad=True) if _is_float(x)
              else torch.from_numpy(x) if isinstance(x, np.ndarray) else x for x in inputs]
    out, expected = minidl_fn(*ours), torch_fn(*theirs)
    assert out.dtype == dtype, f"output dtype {out.dtype}, inputs {dtype}"
    np.testing.assert_allclose(out.data, expected.detach().numpy(), atol=atol, rtol=rtol, err_msg="forward")

    upstream = np.random.default_rng(seed).standard_normal(out.shape).astype(dtype)
    out.backward(upstream)
    expected.backward(torch.tensor(upstream))
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if isinstance(a, Tensor):
            assert a.grad is not None and a.grad.dtype == dtype, f"input {i}: gradient {a.grad!r}"
            np.testing.assert_allclose(a.grad, b.grad.numpy(), atol=atol, rtol=rtol, err_msg=f"grad of input {i}")


def _is_float(x) -> bool:
    return isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating)


def assert_figure(path, min_size=(300, 200)) -> tuple:
    """``path`` is a PNG of at least ``min_size`` (width, height) pixels whose pixels are not all the same
    (a figure saved before anything was drawn on it is one flat colour). Returns its (width, height)."""
    with Image.open(path) as image:
        assert image.format == "PNG", f"{path}: {image.format}, not PNG"
        size, pixels = image.size, np.asarray(image.convert("RGB"))
    assert size[0] >= min_size[0] and size[1] >= min_size[1], f"{path}: {size} pixels, expected at least {min_size}"
    assert (pixels != pixels[0, 0]).any(), f"{path}: every pixel is {pixels[0, 0]}"
    return size


def saved_model_predictions(model, checkpoint, images, batch_size=500) -> np.ndarray:
    """Class per image (or per pixel) of ``model`` with the weights of ``checkpoint``, in eval mode:
    argmax over axis 1 of its logits, computed batch by batch. For recomputing an example's reported
    numbers from the files it saved."""
    load_checkpoint(checkpoint, model)
    model.eval()
    with no_grad():
        return np.concatenate([model(Tensor(images[i:i + batch_size])).data.argmax(axis=1)
                               for i in range(0, len(images), batch_size)])


def idx_bytes(magic: int, array: np.ndarray) -> bytes:
    """The IDX encoding: big-endian uint32 magic, one uint32 per dimension, then the bytes."""
    header = magic.to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_split(folder: Path, prefix: str, pixels: np.ndarray, labels: np.ndarray, compress: bool = True):
    """Write ``<prefix>-images-idx3-ubyte[.gz]`` and ``<prefix>-labels-idx1-ubyte[.gz]`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, magic, array in ((f"{prefix}-images-idx3-ubyte", 2051, pixels),
                               (f"{prefix}-labels-idx1-ubyte", 2049, labels)):
        data = idx_bytes(magic, array)
        if compress:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)


def tiny_fashion_mnist(root: Path, seed: int = 0) -> Path:
    """A Fashion-MNIST folder in the official format: 40 train and 20 test random images, labels 0..9 in turn."""
    rng = np.random.default_rng(seed)
    for prefix, count in (("train", 40), ("t10k", 20)):
        write_split(root, prefix, rng.integers(0, 256, (count, 28, 28)), np.arange(count) % 10)
    return root
