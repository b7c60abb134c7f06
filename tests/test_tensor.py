"""The engine: Tensor construction, backward (accumulation, graph freeing, deep graphs), no_grad, dtypes."""

import numpy as np
import pytest

from minidl import Function, Tensor, is_grad_enabled, no_grad


def leaf(shape=(2, 3), dtype=np.float64, seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype), requires_grad=True)


# ----------------------------------------------------------------------------- construction
def test_python_numbers_and_lists_become_float32_like_pytorch():
    assert Tensor(1.5).dtype == np.float32
    assert Tensor([[1.0, 2.0]]).dtype == np.float32


def test_numpy_arrays_and_scalars_keep_their_dtype():
    assert Tensor(np.zeros(3)).dtype == np.float64
    assert Tensor(np.zeros(3, np.float32)).dtype == np.float32
    assert Tensor(np.float64(2.0)).dtype == np.float64
    assert Tensor(np.arange(3)).dtype == np.int64  # labels and indices stay integer


def test_explicit_dtype_converts_without_rounding_through_float32():
    assert Tensor([0.1], dtype=np.float64).data[0] == 0.1


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(ValueError, match="floating-point"):
        Tensor(np.arange(3), requires_grad=True)


def test_item_numpy_detach():
    x = leaf((1,))
    assert x.item() == x.data[0]
    with pytest.raises(ValueError, match=r"item: .*\(2, 3\)"):
        leaf().item()
    assert leaf().numpy().dtype == np.float64
    x = leaf()
    assert x.numpy() is x.data  # shared, as torch.Tensor.numpy
    d = (x * 2).detach()
    assert d.is_leaf and not d.requires_grad
    np.testing.assert_array_equal(d.data, x.data * 2)


# ----------------------------------------------------------------------------- backward
def test_scalar_backward_defaults_to_one_and_matches_closed_form():
    x = leaf()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data)


def test_backward_on_non_scalar_without_grad_names_the_shape():
    with pytest.raises(RuntimeError, match=r"one-element.*\(2, 3\)"):
        (leaf() * 2).backward()


def test_backward_with_explicit_grad_and_wrong_shape():
    x = leaf()
    g = np.arange(6.0).reshape(2, 3)
    (x * 3).backward(g)
    np.testing.assert_allclose(x.grad, 3 * g)
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(2, 3\)"):
        (x * 3).backward(g.T)


def test_backward_on_tensor_without_graph_is_an_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor(np.ones(())).backward()


def test_grad_accumulates_over_backward_calls_until_reset():
    x = leaf()
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad, np.full(x.shape, 5.0))
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad, np.full(x.shape, 3.0))


def test_node_used_twice_accumulates():
    x = leaf()
    y = x * x  # x feeds both inputs of one op
    z = (y * y + y).sum()  # y feeds three places
    z.backward()
    # z = x^4 + x^2  =>  dz/dx = 4 x^3 + 2 x
    np.testing.assert_allclose(x.grad, 4 * x.data ** 3 + 2 * x.data)


def test_diamond_graph_with_shared_subexpression():
    x = leaf((3,))
    a, b = x.exp(), x * 2
    (a * b + a - b).sum().backward()
    e = np.exp(x.data)
    # d/dx [2 x e^x + e^x - 2 x] = 2 e^x + 2 x e^x + e^x - 2
    np.testing.assert_allclose(x.grad, 3 * e + 2 * x.data * e - 2)


def test_deep_chain_of_10000_ops_has_no_recursion_limit():
    x = Tensor(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad, 1.0001 ** 10_000, rtol=1e-9)


def test_graph_is_freed_after_backward_and_second_backward_raises():
    x = leaf()
    y = (x * 2).sum()
    y.backward()
    assert vars(y._ctx) == {"parents": None}  # inputs and saved arrays released
    with pytest.raises(RuntimeError, match="second time.*retain_graph"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = leaf()
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, 4 * x.data)


def test_retain_grad_keeps_the_gradient_of_a_non_leaf():
    x = leaf()
    h = (x * 2).retain_grad()
    other = x * 3
    (h * h + other).sum().backward()
    np.testing.assert_allclose(h.grad, 2 * h.data)
    assert other.grad is None  # non-leaves keep no .grad by default


def test_upstream_grad_and_inputs_are_not_mutated():
    x = leaf()
    before = x.data.copy()
    g = np.ones((2, 3))
    y = x.reshape(3, 2).reshape(2, 3)  # views all the way: the gradient reaching x *is* g reshaped
    y.backward(g)
    x.grad += 1  # editing .grad must not reach the caller's g
    np.testing.assert_array_equal(g, np.ones((2, 3)))
    np.testing.assert_array_equal(x.data, before)


def test_every_grad_has_memory_of_its_own():
    """Every .grad is an array of its own, although add hands g itself to both inputs, reshape a view
    of it, and a retained non-leaf would keep g as its .grad."""
    a, b, c = leaf(seed=1), leaf(seed=2), leaf(seed=3)
    h = (a + b).retain_grad()
    g = np.random.default_rng(4).standard_normal((2, 3))
    (h.reshape(3, 2).reshape(2, 3) + c * 2).backward(g)
    grads = [g, h.grad, a.grad, b.grad, c.grad]
    for i, first in enumerate(grads):
        for second in grads[i + 1:]:
            assert not np.shares_memory(first, second)
    for t in (h, a, b):
        np.testing.assert_array_equal(t.grad, g)
    np.testing.assert_array_equal(c.grad, 2 * g)
    assert all(t.grad.flags.writeable for t in (h, a, b, c))


def test_zero_dim_grads_from_two_paths_are_arrays_and_kept_arrays_are_copied():
    x = Tensor(np.float64(2.0), requires_grad=True)
    y = (x * 3).retain_grad()
    (y * y + x * x).backward()  # two contributions reach x and y: 0-d sums
    assert isinstance(x.grad, np.ndarray) and isinstance(y.grad, np.ndarray)
    np.testing.assert_allclose([x.grad, y.grad], [2 * 3 * 6 + 4, 12])

    class KeepsItsGradient(Function):  # returns an array it keeps: the leaf must get a copy
        def forward(self, a):
            self.kept = np.ones_like(a)
            return a.copy()

        def backward(self, g):
            return self.kept

    a = leaf()
    out = KeepsItsGradient.apply(a)
    kept = out._ctx.kept
    out.backward(np.ones((2, 3)))
    assert a.grad is not kept and not np.shares_memory(a.grad, kept)


def test_inputs_without_requires_grad_get_no_gradient():
    x, c = leaf(), Tensor(np.ones((2, 3)))
    (x * c).sum().backward()
    assert c.grad is None and x.grad is not None


# ----------------------------------------------------------------------------- no_grad
def test_no_grad_records_nothing_and_restores_state():
    x = leaf()
    with no_grad():
        assert not is_grad_enabled()
        y = (x * 2).exp().sum()
    assert is_grad_enabled()
    assert not y.requires_grad and y._ctx is None


def test_no_grad_restores_state_after_an_exception_and_works_as_decorator():
    with pytest.raises(ZeroDivisionError), no_grad():
        1 / 0
    assert is_grad_enabled()

    @no_grad()
    def double(t):
        return t * 2

    assert not double(leaf()).requires_grad


# ----------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved_through_forward_and_backward(dtype):
    x, w = leaf((2, 3), dtype), leaf((3, 4), dtype, seed=1)
    y = ((x @ w).relu() * 0.5 + 1.0).sigmoid()
    loss = (y.softmax(1).log() ** 2).mean() - y.var() + y.max() + y[:, 1:].sum() / 3
    assert loss.dtype == dtype
    loss.backward()
    assert x.grad.dtype == dtype and w.grad.dtype == dtype


def test_float_and_double_stay_in_the_graph():
    x = leaf(dtype=np.float32)
    y = x.double()
    assert y.dtype == np.float64 and not y.is_leaf
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad, 2 * x.data, rtol=1e-6)


def test_ops_on_different_dtypes_name_the_op_and_shapes():
    with pytest.raises(ValueError, match=r"mul: .*float32 and float64.*\(2, 3\) and \(2, 3\)"):
        leaf(dtype=np.float32) * leaf()


class Axpy(Function):
    """y = a x + b (a test op with three inputs)."""

    def forward(self, a, x, b):
        self.a, self.x = a, x
        return a * x + b

    def backward(self, g):
        return g * self.x, g * self.a, g


def test_engine_refuses_mixed_float_dtypes_for_any_function():
    with pytest.raises(ValueError, match=r"Axpy: .*float64 \(2, 3\).*float32 \(2, 3\)"):
        Axpy.apply(leaf(), leaf(), leaf(dtype=np.float32))


class WrongBackward(Function):
    """y = x, with a backward that breaks the contract in a chosen way."""

    def forward(self, x, mistake):
        self.mistake = mistake
        return x.copy()

    def backward(self, g):
        return {"shape": (g.T,), "dtype": (g.astype(np.float32),), "count": (g, g)}[self.mistake]


@pytest.mark.parametrize("mistake, message", [
    ("shape", r"WrongBackward.backward returned a float64 gradient of shape \(3, 2\) "
              r"for a float64 input of shape \(2, 3\)"),
    ("dtype", r"returned a float32 gradient .* for a float64 input"),
    ("count", r"returned 2 gradients for 1 inputs"),
])
def test_engine_checks_what_backward_returns(mistake, message):
    with pytest.raises(RuntimeError, match=message):
        WrongBackward.apply(leaf(), mistake=mistake).backward(np.ones((2, 3)))


def test_zero_dim_gradients_are_arrays():
    x = Tensor(np.float64(2.0), requires_grad=True)
    (x * x).backward()
    (x * x).backward()
    assert isinstance(x.grad, np.ndarray) and x.grad.shape == () and x.grad == 8.0


# ----------------------------------------------------------------------------- operators
def test_operator_overloads_match_numpy():
    a, b = leaf(seed=1), Tensor(np.random.default_rng(2).uniform(0.5, 2.0, (2, 3)))
    x, y = a.data, b.data
    cases = {
        "a + b": (a + b, x + y), "2 + a": (2 + a, 2 + x), "a - 1": (a - 1, x - 1), "1 - a": (1 - a, 1 - x),
        "a * b": (a * b, x * y), "3 * a": (3 * a, 3 * x), "a / b": (a / b, x / y), "1 / b": (1 / b, 1 / y),
        "b ** 2": (b ** 2, y ** 2), "2 ** a": (2 ** a, 2 ** x), "-a": (-a, -x), "abs(a)": (abs(a), np.abs(x)),
        "a @ b.T": (a @ b.T, x @ y.T), "ndarray + a": (y + a, y + x), "a[0]": (a[0], x[0]), "a.T": (a.T, x.T),
    }
    for name, (got, expected) in cases.items():
        assert isinstance(got, Tensor), name
        np.testing.assert_allclose(got.data, expected, rtol=1e-12, err_msg=name)


def test_comparisons_give_boolean_tensors_outside_the_graph():
    x = leaf()
    mask = x > 0
    assert mask.dtype == np.bool_ and not mask.requires_grad
    np.testing.assert_array_equal((x <= 0).data, ~mask.data)
