"""Module and containers: registration, traversal, modes, state_dict round trips and errors, repr, summary, hooks."""

from collections import OrderedDict

import numpy as np
import pytest

import minidl
import minidl.nn as nn
from minidl import Tensor

TORCH_REASON = "PyTorch is the reference for repr and state_dict key parity"


class Block(nn.Module):
    """conv -> batch norm -> relu, plus a shared scale parameter and a non-persistent buffer."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.norm = nn.BatchNorm2d(3)
        self.act = nn.ReLU()
        self.scale = nn.Parameter(np.ones(1, dtype=np.float32))
        self.register_buffer("cache", Tensor(np.zeros(2, dtype=np.float32)), persistent=False)

    def forward(self, x):
        return self.act(self.norm(self.conv(x))) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(3, 4))

    def forward(self, x):
        return self.head(self.pool(self.block(x)))


def test_parameters_buffers_and_modules_register_by_assignment():
    net = Net()
    names = [name for name, _ in net.named_parameters()]
    assert names == ["block.scale", "block.conv.weight", "block.conv.bias", "block.norm.weight", "block.norm.bias",
                     "head.1.weight", "head.1.bias"]
    assert [name for name, _ in net.named_buffers()] == [
        "block.cache", "block.norm.running_mean", "block.norm.running_var", "block.norm.num_batches_tracked"]
    assert [name for name, _ in net.named_modules()] == ["", "block", "block.conv", "block.norm", "block.act",
                                                         "pool", "head", "head.0", "head.1"]
    assert [type(m).__name__ for m in net.children()] == ["Block", "AdaptiveAvgPool2d", "Sequential"]
    assert all(p.requires_grad for p in net.parameters())
    assert [name for name, _ in net.block.named_parameters(recurse=False)] == ["scale"]


def test_shared_parameter_is_listed_once():
    net = nn.Module()
    net.a = nn.Linear(2, 2)
    net.b = nn.Linear(2, 2)
    net.b.weight = net.a.weight
    assert len(list(net.parameters())) == 3
    assert sum(p is net.a.weight for p in net.parameters()) == 1


def test_reassignment_and_deletion_update_registration():
    layer = nn.Linear(2, 3)
    layer.bias = None
    assert [name for name, _ in layer.named_parameters()] == ["weight"]
    layer.bias = nn.Parameter(np.zeros(3, dtype=np.float32))
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    del layer.bias
    assert not hasattr(layer, "bias")
    with pytest.raises(TypeError, match="cannot assign Tensor to 'weight'"):
        layer.weight = Tensor(np.zeros((3, 2), dtype=np.float32))


def test_forgetting_super_init_is_a_clear_error():
    class Broken(nn.Module):
        def __init__(self):
            self.weight = nn.Parameter(np.zeros(1))

    with pytest.raises(AttributeError, match=r"call super\(\).__init__\(\)"):
        Broken()


def test_unknown_attribute_error_names_the_class():
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'nope'"):
        nn.Linear(1, 1).nope


def test_train_eval_propagate_and_zero_grad_sets_none():
    net = Net()
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net(Tensor(np.random.default_rng(0).standard_normal((2, 2, 4, 4)).astype(np.float32))).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_double_casts_parameters_and_float_buffers_only():
    net = Net().double()
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert net.block.norm.running_var.dtype == np.float64
    assert net.block.norm.num_batches_tracked.dtype == np.int64
    assert net(Tensor(np.ones((2, 2, 3, 3)))).dtype == np.float64
    assert all(p.dtype == np.float32 for p in net.float().parameters())


def test_apply_visits_children_before_parents():
    net = Net()
    visited = []
    assert net.apply(lambda m: visited.append(type(m).__name__)) is net
    assert visited == ["Conv2d", "BatchNorm2d", "ReLU", "Block", "AdaptiveAvgPool2d", "Flatten", "Linear",
                       "Sequential", "Net"]


def test_state_dict_is_flat_arrays_with_buffers_and_without_non_persistent_ones():
    state = Net().state_dict()
    assert list(state) == ["block.scale", "block.conv.weight", "block.conv.bias", "block.norm.weight",
                           "block.norm.bias", "block.norm.running_mean", "block.norm.running_var",
                           "block.norm.num_batches_tracked", "head.1.weight", "head.1.bias"]
    assert all(isinstance(v, np.ndarray) for v in state.values())
    assert state["block.norm.num_batches_tracked"].dtype == np.int64


def test_state_dict_returns_copies():
    net = Net()
    state = net.state_dict()
    state["head.1.bias"][...] = 123.0
    net.head[1].bias.data += 1.0
    assert not np.any(net.head[1].bias.data == 123.0)
    assert np.all(state["head.1.bias"] == 123.0)


def test_state_dict_round_trip_through_npz_restores_outputs(tmp_path):
    minidl.manual_seed(0)
    trained = Net()
    x = Tensor(np.random.default_rng(1).standard_normal((3, 2, 5, 5)).astype(np.float32))
    trained(x)  # training mode: updates the BatchNorm running statistics
    trained.eval()
    np.savez(tmp_path / "net.npz", **trained.state_dict())
    with np.load(tmp_path / "net.npz", allow_pickle=False) as saved:
        state = dict(saved)
    fresh = Net()
    assert not np.array_equal(fresh.head[1].weight.data, trained.head[1].weight.data)
    result = fresh.load_state_dict(state)
    assert result.missing_keys == [] and result.unexpected_keys == []
    fresh.eval()
    np.testing.assert_array_equal(fresh(x).data, trained(x).data)
    assert fresh.block.norm.num_batches_tracked.item() == 1
    assert fresh.head[1].weight.dtype == np.float32


def test_load_state_dict_keeps_the_model_dtype():
    layer = nn.Linear(2, 2)
    layer.load_state_dict({k: v.astype(np.float64) for k, v in nn.Linear(2, 2).state_dict().items()})
    assert layer.weight.dtype == np.float32


def test_load_state_dict_strict_errors_name_the_keys():
    net = Net()
    state = net.state_dict()
    del state["head.1.bias"]
    state["head.2.weight"] = np.zeros(1)
    with pytest.raises(ValueError, match=r"missing key\(s\): head.1.bias") as error:
        net.load_state_dict(state)
    assert "unexpected key(s): head.2.weight" in str(error.value)
    result = net.load_state_dict(state, strict=False)
    assert result.missing_keys == ["head.1.bias"] and result.unexpected_keys == ["head.2.weight"]


def test_load_state_dict_shape_mismatch_is_an_error_even_when_not_strict():
    net = Net()
    state = net.state_dict()
    state["head.1.weight"] = np.zeros((5, 3), dtype=np.float32)
    before = net.state_dict()
    for strict in (True, False):
        with pytest.raises(ValueError, match=r"size mismatch for head.1.weight: checkpoint has shape \(5, 3\), "
                                             r"the model has \(4, 3\)"):
            net.load_state_dict(state, strict=strict)
    for name, value in net.state_dict().items():  # nothing was half-loaded
        np.testing.assert_array_equal(value, before[name])


def test_state_dict_keys_and_shapes_match_pytorch():
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    ours = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.ConvTranspose2d(4, 2, 2, stride=2),
                         nn.Flatten(), nn.Linear(2 * 4 * 4, 5))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                 torch.nn.ConvTranspose2d(4, 2, 2, stride=2), torch.nn.Flatten(),
                                 torch.nn.Linear(2 * 4 * 4, 5))
    ours_state, their_state = ours.state_dict(), theirs.state_dict()
    assert list(ours_state) == list(their_state)
    assert all(ours_state[k].shape == tuple(their_state[k].shape) for k in ours_state)
    ours.load_state_dict({k: v.numpy() for k, v in their_state.items()})
    np.testing.assert_array_equal(ours[5].weight.data, theirs[5].weight.detach().numpy())


def test_repr_matches_pytorch():
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    ours = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Sequential(nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1),
                                                        nn.Sigmoid()),
                         nn.Upsample(scale_factor=2.0, mode="nearest"), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 2), nn.CrossEntropyLoss())
    theirs = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1, bias=False), torch.nn.BatchNorm2d(8),
                                 torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                 torch.nn.Sequential(torch.nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1),
                                                     torch.nn.Sigmoid()),
                                 torch.nn.Upsample(scale_factor=2.0, mode="nearest"), torch.nn.AdaptiveAvgPool2d(1),
                                 torch.nn.Flatten(), torch.nn.Linear(4, 2), torch.nn.CrossEntropyLoss())
    assert repr(ours) == repr(theirs)


def test_repr_of_dropout_and_custom_module():
    assert repr(nn.Dropout(0.25)) == "Dropout(p=0.25)"
    assert repr(Block()).splitlines() == [
        "Block(",
        "  (conv): Conv2d(2, 3, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))",
        "  (norm): BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)",
        "  (act): ReLU()",
        ")",
    ]


def test_summary_lists_output_shapes_and_parameter_counts(capsys):
    net = Net()
    running_mean = net.block.norm.running_mean.data.copy()
    text = net.summary((2, 2, 6, 5))
    assert capsys.readouterr().out.strip() == text.strip()
    lines = text.splitlines()
    row = {line.split()[0]: line for line in lines if line.startswith(("block", "  ", "pool", "head"))}
    assert "(2, 3, 6, 5)" in row["block.conv"] and row["block.conv"].endswith(f"{2 * 3 * 9 + 3:,}")
    assert "(2, 3, 1, 1)" in row["pool"]
    assert "(2, 3)" in row["head.0"] and row["head.0"].endswith(" 0")
    assert "(2, 4)" in row["head.1"] and row["head.1"].endswith(f"{3 * 4 + 4:,}")
    assert row["block"].endswith(f"{1 + 57 + 6:,}")  # a block's count includes its children
    total = sum(p.size for p in net.parameters())
    assert f"Total params: {total:,}" in lines and "Output shape: (2, 4)" in lines
    assert all(m.training for m in net.modules())  # modes restored
    np.testing.assert_array_equal(net.block.norm.running_mean.data, running_mean)  # eval mode: stats untouched
    assert all(not m._forward_hooks for m in net.modules())


def test_summary_counts_repeated_calls():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(self.act(x)[:, :1])

    text = Twice().summary((1, 3, 2, 2))
    assert "(1, 3, 2, 2) (2 calls)" in text


def test_forward_hook_sees_output_can_replace_it_and_can_be_removed():
    layer = nn.ReLU()
    seen = []
    handle = layer.register_forward_hook(lambda module, inputs, output: seen.append((module, inputs, output)))
    x = Tensor(np.array([-1.0, 2.0]))
    y = layer(x)
    assert seen[0][0] is layer and seen[0][1][0] is x and seen[0][2] is y
    handle.remove()
    layer(x)
    assert len(seen) == 1
    layer.register_forward_hook(lambda module, inputs, output: output * 2)
    np.testing.assert_array_equal(layer(x).data, [0.0, 4.0])


def test_sequential_indexing_slicing_and_append():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear) and seq[1] is list(seq)[1]
    head = seq[1:]
    assert isinstance(head, nn.Sequential) and [name for name, _ in head.named_children()] == ["1", "2"]
    seq.append(nn.Sigmoid())
    assert [name for name, _ in seq.named_children()] == ["0", "1", "2", "3"]
    with pytest.raises(IndexError, match="Sequential: index 4 is out of range for 4 modules"):
        seq[4]
    named = nn.Sequential(OrderedDict(encoder=nn.Linear(2, 2), act=nn.ReLU()))
    assert [name for name, _ in named.named_parameters()] == ["encoder.weight", "encoder.bias"]
    x = Tensor(np.ones((4, 2), dtype=np.float32))
    np.testing.assert_array_equal(named(x).data, named.act(named.encoder(x)).data)


def test_module_list_registers_items():
    blocks = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
    blocks.append(nn.Linear(2, 1)).extend([nn.ReLU()])
    owner = nn.Module()
    owner.blocks = blocks
    assert len(list(owner.parameters())) == 6
    assert [name for name, _ in owner.named_parameters()][:2] == ["blocks.0.weight", "blocks.0.bias"]
    assert isinstance(blocks[1:], nn.ModuleList) and len(blocks[1:]) == 3
    with pytest.raises(NotImplementedError, match="ModuleList does not define forward"):
        blocks(Tensor(np.ones(2)))


def test_register_rejects_bad_names_and_types():
    module = nn.Module()
    with pytest.raises(ValueError, match="without '.'"):
        module.register_buffer("a.b", Tensor(np.zeros(1)))
    with pytest.raises(TypeError, match="must be a Tensor or None"):
        module.register_buffer("stats", np.zeros(1))
    with pytest.raises(ValueError, match="attribute 'train' already exists"):
        module.register_parameter("train", nn.Parameter(np.zeros(1)))
