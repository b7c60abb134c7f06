"""Edge cases where PyTorch is the reference and minidl used to give a silent wrong answer or an unclear
error (issue 17): each test names the case, what minidl gives now, and (where torch runs) what torch gives."""

import re

import numpy as np
import pytest
from PIL import Image

import minidl.functional as F
from minidl import Tensor, nn, optim
from minidl.data import OxfordPets
from minidl.detection.boxes import batched_nms, nms

from test_data_oxford_pets import TRIMAP, make_pets

torch = pytest.importorskip("torch")
NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_with_every_target_ignored_has_a_zero_gradient(reduction):
    logits = np.random.default_rng(0).standard_normal((3, 4, 2)).astype(np.float32)
    target = np.full((3, 2), -100)
    x = Tensor(logits, requires_grad=True)
    loss = F.cross_entropy(x, target, reduction=reduction)
    loss.backward(np.ones(loss.shape, np.float32))
    reference = torch.tensor(logits, requires_grad=True)
    torch_loss = torch.nn.functional.cross_entropy(reference, torch.tensor(target), reduction=reduction)
    torch_loss.backward(torch.ones(torch_loss.shape))
    np.testing.assert_array_equal(loss.data, torch_loss.detach().numpy())  # mean: nan (0/0), as torch
    np.testing.assert_array_equal(x.grad, np.zeros_like(logits))
    np.testing.assert_array_equal(x.grad, reference.grad.numpy())


def test_cross_entropy_gradient_is_unchanged_where_some_targets_count():
    logits = np.random.default_rng(1).standard_normal((4, 3))
    target = np.array([2, -100, 0, -100])
    x = Tensor(logits, requires_grad=True)
    F.cross_entropy(x, target).backward()
    reference = torch.tensor(logits, requires_grad=True)
    torch.nn.functional.cross_entropy(reference, torch.tensor(target)).backward()
    np.testing.assert_allclose(x.grad, reference.grad.numpy(), rtol=1e-12)


def test_gradient_of_power_with_respect_to_the_exponent_at_zero_base():
    base, exponent = np.array([0.0, 0.0, 0.5, 2.0]), np.array([2.0, 0.5, 3.0, 1.5])
    upstream = np.array([0.3, -1.2, 0.7, 2.0])
    b, e = Tensor(base, requires_grad=True), Tensor(exponent, requires_grad=True)
    (b ** e).backward(upstream)
    tb, te = torch.tensor(base, requires_grad=True), torch.tensor(exponent, requires_grad=True)
    (tb ** te).backward(torch.tensor(upstream))
    assert e.grad[0] == 0 and e.grad[1] == 0  # y * log(x) -> 0 as x -> 0, not 0 * -inf = NaN
    np.testing.assert_allclose(e.grad, te.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(b.grad, tb.grad.numpy(), rtol=1e-12)  # inf at (0, 0.5) in both


def test_setting_a_gradient_of_the_wrong_shape_raises():
    weight = Tensor(np.zeros((2, 3), np.float32), requires_grad=True)
    for wrong in (np.ones(3, np.float32), np.ones((3, 2), np.float32), np.float32(1.0)):
        with pytest.raises(ValueError, match=r"Tensor.grad: the assigned gradient has shape .* tensor has shape \(2, 3\)"):
            weight.grad = wrong
        assert weight.grad is None
    weight.grad = np.ones((2, 3), np.float32)  # the right shape, and None, are fine
    weight.grad = None


@pytest.mark.parametrize("make, message", [
    (lambda p: optim.SGD(p, lr=NAN), "lr=nan"),
    (lambda p: optim.SGD(p, lr=-0.1), "lr=-0.1"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=NAN), "momentum=nan"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=NAN), "weight_decay=nan"),
    (lambda p: optim.Adam(p, lr=NAN), "lr=nan"),
    (lambda p: optim.Adam(p, lr=-1e-3), "lr=-0.001"),
    (lambda p: optim.Adam(p, eps=NAN), "eps=nan"),
    (lambda p: optim.Adam(p, eps=-1e-8), "eps=-1e-08"),
    (lambda p: optim.Adam(p, weight_decay=NAN), "weight_decay=nan"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), r"betas must be two numbers in \[0, 1\)"),
    (lambda p: optim.Adam(p, betas=(0.9, NAN)), r"betas must be two numbers in \[0, 1\)"),
    (lambda p: optim.Adam(p, betas=(-0.1, 0.999)), r"betas must be two numbers in \[0, 1\)"),
    (lambda p: optim.AdamW(p, lr=NAN), "lr=nan"),
])
def test_optimisers_refuse_nan_and_out_of_range_settings(make, message):
    with pytest.raises(ValueError, match=message):
        make([Tensor(np.zeros(3, np.float32), requires_grad=True)])


def test_load_state_dict_is_all_or_nothing():
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))
    before = {name: value.copy() for name, value in model.state_dict().items()}
    good = {name: value + 1 for name, value in before.items()}
    for name, broken in [("1.bias", np.array(["a", "b"])), ("0.bias", np.zeros(5, np.float32))]:
        with pytest.raises(ValueError, match=f"load_state_dict: cannot load into Sequential:\n  .*{name}"):
            model.load_state_dict({**good, name: broken})
        for key, value in model.state_dict().items():  # not one entry was written
            np.testing.assert_array_equal(value, before[key], err_msg=key)
    model.load_state_dict(good)
    np.testing.assert_array_equal(model.state_dict()["0.weight"], good["0.weight"])


@pytest.mark.parametrize("make, message", [
    (lambda: nn.Conv2d(0, 3, 3), "Conv2d: in_channels and out_channels must be integers >= 1, got in_channels=0"),
    (lambda: nn.Conv2d(3, 0, 3), "Conv2d: .* got in_channels=3, out_channels=0"),
    (lambda: nn.Conv2d(3.0, 4, 3), r"Conv2d: .* got in_channels=3\.0"),
    (lambda: nn.ConvTranspose2d(0, 3, 3), "ConvTranspose2d: in_channels and out_channels must be integers >= 1"),
    (lambda: nn.Linear(0, 3), "Linear: in_features and out_features must be integers >= 1, got in_features=0"),
    (lambda: nn.Linear(4, -1), "Linear: .* out_features=-1"),
])
def test_zero_sized_layers_are_refused_clearly(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("threshold", [NAN, INF, -INF])
def test_nms_refuses_a_threshold_that_is_not_a_number(threshold):
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10]], np.float32)
    with pytest.raises(ValueError, match=f"nms: iou_threshold must be a finite number, got {threshold}"):
        nms(boxes, np.array([0.9, 0.8]), threshold)
    with pytest.raises(ValueError, match="nms: iou_threshold must be a finite number"):
        batched_nms(boxes, np.array([0.9, 0.8]), np.array([1, 1]), threshold)


def test_integer_tensors_follow_pytorch_dtype_rules():
    values = np.array([[1, 2, 3], [4, 5, 7]], np.int64)
    ints, torch_ints = Tensor(values), torch.tensor(values)
    for name, op, torch_op in [("exp", lambda t: t.exp(), torch.exp),
                               ("true division", lambda t: t / Tensor(np.full(3, 2, np.int64)),
                                lambda t: t / torch.full((3,), 2)),
                               ("division by a number", lambda t: t / 2, lambda t: t / 2)]:
        result, expected = op(ints), torch_op(torch_ints)
        assert result.dtype == np.float32 and expected.dtype == torch.float32, name
        np.testing.assert_allclose(result.data, expected.numpy(), rtol=1e-6, err_msg=name)
    for name, op in [("mean", lambda t: t.mean()), ("mean", lambda t: t.mean(dim=1)),
                     ("softmax", lambda t: F.softmax(t, dim=1)), ("log_softmax", lambda t: F.log_softmax(t, dim=1))]:
        with pytest.raises(TypeError, match=f"{name}: needs a floating-point tensor, got dtype int64"):
            op(ints)
    with pytest.raises(RuntimeError):  # torch refuses the mean of an integer tensor too
        torch_ints.mean()


def test_writing_into_data_between_forward_and_backward_is_documented():
    """Not caught (as in PyTorch without in-place ops): the docstring of .data must say so."""
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).sum()
    x.data[...] = 10.0
    y.backward()
    assert x.grad.tolist() == [20.0, 20.0]  # d(x^2)/dx read from the overwritten array: not 2, 4
    assert "silently gives a wrong gradient" in Tensor.__doc__ and "version counter" in Tensor.__doc__


def test_oxford_pets_checks_trimap_codes_before_resizing(tmp_path):
    pets = make_pets(tmp_path / "pets")
    stray = TRIMAP.copy()
    stray[13, 13] = 7  # one pixel a nearest-neighbour resize to 8x8 never samples
    assert not (np.asarray(Image.fromarray(stray).resize((8, 8), Image.NEAREST)) == 7).any()
    Image.fromarray(stray).save(pets / "annotations" / "trimaps" / "Bengal_3.png")
    with pytest.raises(ValueError, match=r"Bengal_3\.png must be one 8-bit channel of codes 1, 2, 3; .*7"):
        OxfordPets(pets, split="test", size=8)


@pytest.mark.parametrize("name", ["../../../etc/passwd", "sub/Abyssinian_1", "..", "..\\outside"])
def test_oxford_pets_refuses_split_names_that_leave_the_data_root(tmp_path, name):
    pets = make_pets(tmp_path / "pets")
    (pets / "annotations" / "test.txt").write_text(f"Abyssinian_2 1 1 1\n{name} 1 1 1\n")
    with pytest.raises(ValueError, match=r"line 2 of .*test\.txt names " + re.escape(repr(name))):
        OxfordPets(pets, split="test", size=8)
