"""dlcourse.activations against torch: functions, hand-written derivatives and backward passes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from dlcourse import activations as A

NAMES = list(A.ACTIVATIONS)
# ordinary values, exact zero, and values large enough to saturate (or overflow a naive exp)
SPECIAL = torch.tensor([-800.0, -50.0, -20.0, -1.0, -1e-8, 0.0, 1e-8, 1.0, 20.0, 50.0, 800.0])


def _inputs(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(200, generator=gen, dtype=torch.float64) * 4, SPECIAL.double()])
    return x.to(dtype).to(device)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_function_matches_torch(name: str, dtype: torch.dtype, device: torch.device) -> None:
    act = A.get(name)
    x = _inputs(dtype, device)
    torch.testing.assert_close(act.fn(x), act.torch_fn(x))
    assert torch.isfinite(act.fn(x)).all()


@pytest.mark.parametrize("name", NAMES)
def test_derivative_matches_autograd(name: str, device: torch.device) -> None:
    act = A.get(name)
    x = _inputs(torch.float64, device).requires_grad_(True)
    (expected,) = torch.autograd.grad(act.torch_fn(x).sum(), x)
    torch.testing.assert_close(act.derivative(x.detach()), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_max_slope(name: str) -> None:
    act = A.get(name)
    x = torch.linspace(-10, 10, 200_001, dtype=torch.float64)
    assert act.derivative(x).max().item() == pytest.approx(act.max_slope, abs=1e-4)


@given(st.floats(-1e3, 1e3, allow_nan=False))
def test_sigmoid_slope_is_at_most_a_quarter(v: float) -> None:
    x = torch.tensor(v, dtype=torch.float64)
    assert 0 <= A.sigmoid_derivative(x).item() <= 0.25
    assert A.sigmoid_derivative(torch.tensor(0.0)).item() == 0.25


@given(st.floats(-30, 30, allow_nan=False), st.floats(0, 0.5))
def test_leaky_relu_properties(v: float, slope: float) -> None:
    x = torch.tensor(v, dtype=torch.float64)
    out = A.leaky_relu(x, slope).item()
    assert out == (v if v > 0 else slope * v)
    assert A.leaky_relu_derivative(x, slope).item() == (1.0 if v > 0 else slope)


@pytest.mark.parametrize(
    ("module", "reference"),
    [
        (A.Sigmoid, nn.Sigmoid),
        (A.Tanh, nn.Tanh),
        (A.ReLU, nn.ReLU),
        (lambda: A.LeakyReLU(0.2), lambda: nn.LeakyReLU(0.2)),
    ],
)
def test_hand_written_backward_matches_torch(module, reference, device: torch.device) -> None:
    x = _inputs(torch.float64, device).reshape(-1, 1)[:200].reshape(10, 20)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    g = torch.randn(10, 20, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    g = g.to(device)
    y1, y2 = module()(x1), reference()(x2)
    torch.testing.assert_close(y1, y2)
    y1.backward(g)
    y2.backward(g)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "fn",
    [
        A.SigmoidFunction.apply,
        A.TanhFunction.apply,
        A.ReLUFunction.apply,
        lambda x: A.LeakyReLUFunction.apply(x, 0.1),
    ],
)
def test_gradcheck_in_float64(fn) -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    x = (x + 0.1 * x.sign()).requires_grad_(True)  # keep away from the kink at 0
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_relu_gradient_at_zero_is_zero_like_torch() -> None:
    x = torch.zeros(3, requires_grad=True)
    A.ReLU()(x).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]
    assert A.relu_derivative(torch.zeros(1)).item() == 0.0


def test_forward_leaves_the_input_alone_and_relu_saves_only_a_mask() -> None:
    x = torch.randn(50, requires_grad=True)
    before = x.detach().clone()
    y = A.ReLU()(x)
    assert torch.equal(x.detach(), before)
    saved = y.grad_fn.saved_tensors
    assert len(saved) == 1 and saved[0].dtype == torch.bool


def test_bad_names_and_hyperparameters() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        A.get("swish")
    with pytest.raises(ValueError, match="negative_slope"):
        A.LeakyReLU(-0.1)


def test_deep_mlp_moved_to_models_and_says_so() -> None:
    with pytest.raises(ImportError, match=r"moved to dlcourse\.models"):
        from dlcourse.activations import deep_mlp  # noqa: F401
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        A.nope  # noqa: B018
