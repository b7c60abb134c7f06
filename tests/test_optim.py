"""Optimisers and LR schedules: PyTorch parity over 10 steps, exact resume from a saved state dict, errors."""

import math

import numpy as np
import pytest

import minidl.nn as nn
from minidl import Tensor
from minidl.optim import SGD, Adam, AdamW
from minidl.optim.lr_scheduler import CosineAnnealingLR, StepLR

TORCH_REASON = "PyTorch is the reference for optimiser and scheduler parity"
SHAPES = [(3, 4), (4,), ()]  # a 0-d parameter too
# Both libraries do the same float operations, so float64 agrees to rounding (measured gap < 1e-15);
# a formula slip such as eps inside the square root moves float64 by ~1e-9 and must not pass.
PARITY_TOLERANCE = {np.float32: 1e-6, np.float64: 1e-12}

SGD_OPTIONS = [dict(lr=0.1), dict(lr=0.1, momentum=0.9), dict(lr=0.05, momentum=0.9, dampening=0.3),
               dict(lr=0.1, momentum=0.8, nesterov=True), dict(lr=0.1, momentum=0.9, weight_decay=0.01),
               dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)]
ADAM_OPTIONS = [dict(), dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6), dict(lr=0.01, weight_decay=0.1),
                dict(lr=0.01, amsgrad=True, weight_decay=0.05)]
CASES = ([("SGD", SGD, options) for options in SGD_OPTIONS] + [("Adam", Adam, options) for options in ADAM_OPTIONS]
         + [("AdamW", AdamW, options) for options in ADAM_OPTIONS])


def make_parameters(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [nn.Parameter(rng.standard_normal(shape).astype(dtype)) for shape in SHAPES]


def gradients(step, dtype):
    """The same 'random' gradients for both libraries at each step (varying sign and size)."""
    rng = np.random.default_rng(100 + step)
    return [(rng.standard_normal(shape) * rng.uniform(0.1, 3)).astype(dtype) for shape in SHAPES]


def run(optimizer, params, steps, first_step=0, dtype=np.float32):
    for step in range(first_step, first_step + steps):
        for param, grad in zip(params, gradients(step, dtype)):
            param.grad = grad
        optimizer.step()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, cls, options", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_ten_steps_match_pytorch(name, cls, options, dtype):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    ours = make_parameters(dtype)
    theirs = [torch.tensor(p.data.copy(), requires_grad=True) for p in ours]
    optimizer, reference = cls(ours, **options), getattr(torch.optim, name)(theirs, **options)
    for step in range(10):
        for ours_param, their_param, grad in zip(ours, theirs, gradients(step, dtype)):
            ours_param.grad, their_param.grad = grad, torch.tensor(grad)
        optimizer.step()
        reference.step()
    for ours_param, their_param in zip(ours, theirs):
        assert ours_param.dtype == dtype
        tolerance = PARITY_TOLERANCE[dtype]
        np.testing.assert_allclose(ours_param.data, their_param.detach().numpy(), rtol=tolerance, atol=tolerance)


def test_sgd_step_is_the_textbook_formula():
    param = nn.Parameter(np.array([1.0, -2.0]))
    optimizer = SGD([param], lr=0.5, momentum=0.9, weight_decay=0.1)
    param.grad = np.array([0.2, 0.4])
    optimizer.step()  # buffer = g + 0.1 p = (0.3, 0.2)
    np.testing.assert_allclose(param.data, [1.0 - 0.5 * 0.3, -2.0 - 0.5 * 0.2], rtol=1e-15)
    param.grad = np.array([0.0, 0.0])
    optimizer.step()  # buffer = 0.9 * buffer + 0.1 p
    buffer = 0.9 * np.array([0.3, 0.2]) + 0.1 * np.array([0.85, -2.1])
    np.testing.assert_allclose(param.data, np.array([0.85, -2.1]) - 0.5 * buffer, rtol=1e-15)


def test_first_adam_step_moves_each_weight_by_about_lr():
    """At t = 1, m_hat = g and v_hat = g^2, so the step is exactly lr * g / (|g| + eps) ~ lr * sign(g).
    The small gradient makes eps matter: eps inside the square root would give lr * g / sqrt(g^2 + eps)."""
    param = nn.Parameter(np.zeros(3))
    optimizer = Adam([param], lr=0.01, eps=1e-6)
    grad = np.array([1e-5, -5.0, 2.0])
    param.grad = grad
    optimizer.step()
    np.testing.assert_allclose(param.data, -0.01 * grad / (np.abs(grad) + 1e-6), rtol=1e-12)


@pytest.mark.parametrize("cls, options", [(SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
                                          (Adam, dict(lr=0.01, amsgrad=True)), (AdamW, dict(lr=0.01))])
def test_state_dict_round_trip_resumes_exactly(cls, options, tmp_path):
    uninterrupted = make_parameters(np.float32)
    run(cls(uninterrupted, **options), uninterrupted, 10)

    first_half = make_parameters(np.float32)
    optimizer = cls(first_half, **options)
    run(optimizer, first_half, 5)
    np.savez(tmp_path / "optimizer.npz", **optimizer.state_dict())
    with np.load(tmp_path / "optimizer.npz", allow_pickle=False) as saved:
        state = dict(saved)
    resumed = [nn.Parameter(p.data.copy()) for p in first_half]
    fresh = cls(resumed, lr=123.0)  # hyperparameters come back from the state dict too
    fresh.load_state_dict(state)
    assert fresh.param_groups[0]["lr"] == options["lr"]
    run(fresh, resumed, 5, first_step=5)
    for a, b in zip(resumed, uninterrupted):
        np.testing.assert_array_equal(a.data, b.data)


def test_state_dict_is_flat_and_named_by_parameter_index():
    params = make_parameters(np.float32)
    optimizer = Adam(params, lr=0.01)
    run(optimizer, params, 2)
    state = optimizer.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    assert {"param_groups.0.lr", "param_groups.0.betas", "state.0.step", "state.0.exp_avg",
            "state.2.exp_avg_sq"} <= set(state)
    assert int(state["state.1.step"]) == 2 and state["state.0.exp_avg"].dtype == np.float32
    np.testing.assert_array_equal(state["param_groups.0.betas"], [0.9, 0.999])


def test_load_state_dict_errors():
    params = make_parameters(np.float32)
    optimizer = Adam(params)
    run(optimizer, params, 1)
    state = optimizer.state_dict()
    with pytest.raises(ValueError, match=r"missing keys \['param_groups.0.lr'\]"):
        Adam(make_parameters(np.float32)).load_state_dict({k: v for k, v in state.items() if k != "param_groups.0.lr"})
    with pytest.raises(ValueError, match=r"unexpected keys \['state.7.exp_avg'\]"):
        Adam(make_parameters(np.float32)).load_state_dict({**state, "state.7.exp_avg": np.zeros(1)})
    with pytest.raises(ValueError, match=r"state.0.exp_avg has shape \(2,\) but parameter 0 has \(3, 4\)"):
        Adam(make_parameters(np.float32)).load_state_dict({**state, "state.0.exp_avg": np.zeros(2)})


def test_parameter_groups_have_their_own_hyperparameters():
    encoder, head = make_parameters(np.float64)[:2]
    optimizer = SGD([{"params": [encoder], "lr": 0.01}, {"params": head}], lr=0.1)
    encoder.grad, head.grad = np.ones_like(encoder.data), np.ones_like(head.data)
    before = encoder.data.copy(), head.data.copy()
    optimizer.step()
    np.testing.assert_allclose(encoder.data, before[0] - 0.01)
    np.testing.assert_allclose(head.data, before[1] - 0.1)


def test_step_skips_parameters_without_gradients_and_zero_grad_resets():
    used, unused = make_parameters(np.float32)[:2]
    before = unused.data.copy()
    optimizer = Adam([used, unused], lr=0.1)
    used.grad = np.ones_like(used.data)
    optimizer.step()
    np.testing.assert_array_equal(unused.data, before)
    assert unused not in optimizer.state
    optimizer.zero_grad()
    assert used.grad is None


def test_optimises_a_model_in_place_and_does_not_touch_gradients():
    model = nn.Linear(3, 1)
    weight = model.weight
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    x = Tensor(np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32))
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = ((model(x) - 1) ** 2).mean()
        loss.backward()
        grad = weight.grad.copy()
        optimizer.step()
        np.testing.assert_array_equal(weight.grad, grad)
        losses.append(loss.item())
    assert model.weight is weight and weight.dtype == np.float32
    assert losses[-1] < 0.1 * losses[0]


def test_numpy_scalar_hyperparameters_do_not_upcast_float32_state():
    param = nn.Parameter(np.ones(3, dtype=np.float32))
    optimizer = SGD([param], lr=np.float64(0.1), momentum=np.float64(0.9), weight_decay=np.float64(0.1))
    param.grad = np.ones(3, dtype=np.float32)
    optimizer.step()
    assert param.dtype == optimizer.state[param]["momentum_buffer"].dtype == np.float32
    assert type(optimizer.param_groups[0]["lr"]) is float


def test_constructor_errors():
    with pytest.raises(ValueError, match="nesterov needs momentum > 0 and dampening = 0"):
        SGD(make_parameters(np.float32), lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="empty parameter list"):
        Adam([])
    with pytest.raises(ValueError, match=r"betas must be two numbers in \[0, 1\)"):
        Adam(make_parameters(np.float32), betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="more than one group or twice"):
        param = make_parameters(np.float32)[0]
        SGD([param, param])
    with pytest.raises(TypeError, match="can only optimise leaf Tensors"):
        SGD([Tensor(np.ones(2), requires_grad=True) * 2])


@pytest.mark.parametrize("name, cls, options", [("StepLR", StepLR, dict(step_size=3, gamma=0.5)),
                                                ("CosineAnnealingLR", CosineAnnealingLR, dict(T_max=7)),
                                                ("CosineAnnealingLR", CosineAnnealingLR, dict(T_max=5, eta_min=0.01))])
def test_schedules_match_pytorch(name, cls, options):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    ours = SGD([{"params": make_parameters(np.float32)[:1]}, {"params": make_parameters(np.float32)[1:], "lr": 0.5}],
               lr=0.1)
    theirs = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)]},
                              {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.5}], lr=0.1)
    scheduler, reference = cls(ours, **options), getattr(torch.optim.lr_scheduler, name)(theirs, **options)
    for _ in range(25):  # past T_max, where the cosine rises again
        np.testing.assert_allclose(scheduler.get_last_lr(), reference.get_last_lr(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose([g["lr"] for g in ours.param_groups], [g["lr"] for g in theirs.param_groups],
                                   rtol=1e-12, atol=1e-15)
        theirs.step()
        scheduler.step()
        reference.step()


def test_schedule_closed_forms():
    optimizer = SGD(make_parameters(np.float32), lr=1.0)
    step = StepLR(optimizer, step_size=2, gamma=0.1)
    lrs = []
    for _ in range(5):
        lrs.append(optimizer.param_groups[0]["lr"])
        step.step()
    np.testing.assert_allclose(lrs, [1, 1, 0.1, 0.1, 0.01])
    cosine = CosineAnnealingLR(SGD(make_parameters(np.float32), lr=1.0), T_max=4, eta_min=0.2)
    for _ in range(2):
        cosine.step()
    assert cosine.get_last_lr() == [pytest.approx(0.2 + 0.8 * (1 + math.cos(math.pi / 2)) / 2)]
    for _ in range(2):
        cosine.step()
    assert cosine.get_last_lr() == [pytest.approx(0.2)]


def test_scheduler_state_dict_resumes_the_schedule():
    optimizer = SGD(make_parameters(np.float32), lr=1.0)
    scheduler = CosineAnnealingLR(optimizer, T_max=10)
    for _ in range(4):
        scheduler.step()
    state = scheduler.state_dict()
    assert int(state["last_epoch"]) == 4 and all(isinstance(v, np.ndarray) for v in state.values())
    restarted = SGD(make_parameters(np.float32), lr=1.0)
    resumed = CosineAnnealingLR(restarted, T_max=10)
    resumed.load_state_dict(state)
    assert restarted.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]
    scheduler.step()
    resumed.step()
    assert resumed.get_last_lr() == scheduler.get_last_lr()
    with pytest.raises(ValueError, match="expected keys"):
        resumed.load_state_dict({"last_epoch": np.asarray(1)})


def test_optimizer_checkpoint_with_initial_lr_loads_before_the_scheduler_exists():
    params = make_parameters(np.float32)
    optimizer = SGD(params, lr=1.0)
    StepLR(optimizer, step_size=1, gamma=0.5).step()
    fresh = SGD(make_parameters(np.float32), lr=1.0)
    fresh.load_state_dict(optimizer.state_dict())
    assert fresh.param_groups[0]["initial_lr"] == 1.0 and fresh.param_groups[0]["lr"] == 0.5
    assert StepLR(fresh, step_size=1, gamma=0.5, last_epoch=0).get_last_lr() == [0.5]
