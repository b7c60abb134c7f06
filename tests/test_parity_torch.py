"""Every engine op against PyTorch: forward values and gradients, in float32 and float64."""

import numpy as np
import pytest
from helpers import check_op

import minidl.functional as F

torch = pytest.importorskip(
    "torch", reason="optional torch extra not installed: parity tests need `pip install -e .[torch]`")

RNG = np.random.default_rng(0)


def normal(*shape):
    return RNG.standard_normal(shape)


def positive(*shape):
    return RNG.uniform(0.2, 2.0, shape)


def away_from_zero(*shape):
    return RNG.choice([-1.0, 1.0], shape) * RNG.uniform(0.1, 2.0, shape)


MASK = normal(3, 1) > 0
INDEX = np.array([2, 0, 2, 1])

CASES = {  # name: (minidl fn, torch fn, inputs)
    "add": (F.add, torch.add, [normal(2, 3, 1), normal(3, 4)]),
    "sub": (lambda a, b: a - b, lambda a, b: a - b, [normal(3, 1), normal(4)]),
    "mul": (F.mul, torch.mul, [normal(2, 1, 4), normal(3, 1)]),
    "div": (F.div, torch.div, [normal(2, 3), positive(3)]),
    "pow": (F.pow, torch.pow, [positive(2, 3), normal(2, 1)]),
    "pow scalar": (lambda a: a ** 3, lambda a: a ** 3, [normal(2, 3)]),
    "rsub scalar": (lambda a: 1 - a, lambda a: 1 - a, [normal(3)]),
    "neg": (F.neg, torch.neg, [normal(4)]),
    "exp": (F.exp, torch.exp, [normal(2, 3)]),
    "log": (F.log, torch.log, [positive(2, 3)]),
    "sqrt": (F.sqrt, torch.sqrt, [positive(2, 3)]),
    "abs": (F.abs, torch.abs, [away_from_zero(2, 3)]),
    "relu": (F.relu, torch.relu, [away_from_zero(2, 3)]),
    "sigmoid": (F.sigmoid, torch.sigmoid, [3 * normal(2, 3)]),
    "tanh": (F.tanh, torch.tanh, [normal(2, 3)]),
    "clamp": (lambda x: F.clamp(x, -0.5, 0.7), lambda x: torch.clamp(x, -0.5, 0.7), [away_from_zero(3, 4)]),
    "maximum": (F.maximum, torch.maximum, [normal(2, 3), normal(3)]),
    "where": (lambda a, b: F.where(MASK, a, b), lambda a, b: torch.where(torch.tensor(MASK), a, b),
              [normal(3, 4), normal(4)]),
    "sum": (lambda x: x.sum((0, 2), keepdim=True), lambda x: x.sum((0, 2), keepdim=True), [normal(2, 3, 4)]),
    "sum all": (F.sum, torch.sum, [normal(2, 3)]),
    "mean": (lambda x: F.mean(x, -1), lambda x: x.mean(-1), [normal(2, 3, 4)]),
    "amax dim": (lambda x: F.amax(x, 1), lambda x: torch.amax(x, 1), [normal(3, 5)]),
    "max all": (F.max, torch.max, [normal(3, 5)]),
    "var": (lambda x: F.var(x, 1, keepdim=True), lambda x: torch.var(x, 1, keepdim=True), [normal(3, 5)]),
    "var biased": (lambda x: x.var(unbiased=False), lambda x: x.var(unbiased=False), [normal(3, 5)]),
    "reshape": (lambda x: x.reshape(4, -1), lambda x: x.reshape(4, -1), [normal(2, 3, 2)]),
    "view": (lambda x: F.view(x, 3, 4), lambda x: x.view(3, 4), [normal(2, 6)]),
    "transpose": (lambda x: x.transpose(0, -1), lambda x: x.transpose(0, -1), [normal(2, 3, 4)]),
    "permute": (lambda x: x.permute(2, 0, 1), lambda x: x.permute(2, 0, 1), [normal(2, 3, 4)]),
    "flatten": (lambda x: F.flatten(x, 1), lambda x: torch.flatten(x, 1), [normal(2, 3, 4)]),
    "getitem basic": (lambda x: x[1:, None, ::2, -1], lambda x: x[1:, None, ::2, -1], [normal(3, 5, 2)]),
    "getitem repeated": (lambda x: x[:, INDEX], lambda x: x[:, torch.tensor(INDEX)], [normal(2, 3)]),
    "pad": (lambda x: F.pad(x, (1, 2, 0, 1), value=0.5),
            lambda x: torch.nn.functional.pad(x, (1, 2, 0, 1), value=0.5), [normal(2, 3, 4)]),
    "matmul batched": (F.matmul, torch.matmul, [normal(2, 1, 3, 4), normal(3, 4, 5)]),
    "matmul vector": (F.matmul, torch.matmul, [normal(4), normal(2, 4, 3)]),
    "matmul dot": (F.matmul, torch.matmul, [normal(4), normal(4)]),
    "softmax": (lambda x: F.softmax(x, 1), lambda x: torch.softmax(x, 1), [5 * normal(2, 4, 3)]),
    "log_softmax": (lambda x: F.log_softmax(x, -1), lambda x: torch.log_softmax(x, -1), [5 * normal(2, 4)]),
    "cat": (lambda a, b: F.cat([a, b], 1), lambda a, b: torch.cat([a, b], 1), [normal(2, 3), normal(2, 1)]),
    "stack": (lambda a, b: F.stack([a, b], -1), lambda a, b: torch.stack([a, b], -1), [normal(2, 3), normal(2, 3)]),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", CASES)
def test_matches_torch(name, dtype):
    minidl_fn, torch_fn, inputs = CASES[name]
    check_op(minidl_fn, torch_fn, [x.astype(dtype) for x in inputs])


def test_float_and_double_match_torch():
    x = normal(2, 3).astype(np.float32)
    check_op(lambda t: (t.double() * 3).float(), lambda t: (t.double() * 3).float(), [x])
