"""dlcourse.second_order: Hessians and Hessian-vector products against torch; Newton and CG on
quadratics whose answers are known."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd.functional import hessian as torch_hessian
from torch.autograd.functional import hvp as torch_hvp

from dlcourse import second_order as so


def _spd(n: int, seed: int, cond: float = 10.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    eig = torch.logspace(0, torch.log10(torch.tensor(cond)).item(), n, dtype=torch.float64)
    return q @ torch.diag(eig) @ q.T


def _logistic(n: int = 5, seed: int = 0, device: torch.device | str = "cpu"):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(40, n, generator=gen, dtype=torch.float64).to(device)
    y = (torch.rand(40, generator=gen, dtype=torch.float64) < 0.5).to(torch.float64).to(device)

    def f(w: torch.Tensor) -> torch.Tensor:
        z = a @ w
        return torch.nn.functional.binary_cross_entropy_with_logits(z, y) + 0.01 * (w @ w)

    return f, torch.randn(n, generator=gen, dtype=torch.float64)


def test_hessian_and_hvp_match_torch(device: torch.device) -> None:
    if device.type == "mps":
        pytest.skip("MPS has no float64")
    f, w = _logistic(device=device)
    w = w.to(device)
    torch.testing.assert_close(so.hessian(f, w), torch_hessian(f, w))
    v = torch.randn(5, generator=torch.Generator().manual_seed(3), dtype=torch.float64).to(device)
    torch.testing.assert_close(so.hvp(f, w, v), torch_hvp(f, w, v)[1])
    torch.testing.assert_close(so.hvp(f, w, v), so.hessian(f, w) @ v)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 12), st.integers(0, 1000))
def test_newton_solves_a_quadratic_in_one_step(n: int, seed: int) -> None:
    a = _spd(n, seed)
    b = torch.randn(n, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    x_star = torch.linalg.solve(a, b)

    def f(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x @ a @ x - b @ x

    x0 = torch.zeros(n, dtype=torch.float64)
    torch.testing.assert_close(x0 + so.newton_step(f, x0), x_star)
    torch.testing.assert_close(x0 + so.newton_step(f, x0, method="cg"), x_star)
    torch.testing.assert_close(so.hessian(f, x0), a)


def test_conjugate_gradient_takes_at_most_n_steps_and_fewer_with_few_eigenvalues() -> None:
    a = _spd(30, 0, cond=100.0)
    b = torch.ones(30, dtype=torch.float64)
    result = so.conjugate_gradient(lambda v: a @ v, b)
    assert result.converged and result.iterations <= 45  # n = 30, plus a little for rounding
    assert not so.conjugate_gradient(lambda v: a @ v, b, max_iter=5).converged
    torch.testing.assert_close(result.x, torch.linalg.solve(a, b))
    # three distinct eigenvalues: CG finishes in three steps
    gen = torch.Generator().manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(30, 30, generator=gen, dtype=torch.float64))
    eig = torch.tensor([1.0, 5.0, 20.0], dtype=torch.float64).repeat_interleave(10)
    three = q @ torch.diag(eig) @ q.T
    assert so.conjugate_gradient(lambda v: three @ v, b).iterations == 3


def test_newton_converges_quadratically_on_logistic_regression() -> None:
    f, w = _logistic()
    errors = []
    x_star = w.clone()
    for _ in range(12):
        x_star = x_star + so.newton_step(f, x_star)
    for _ in range(6):
        errors.append((w - x_star).norm().item())
        w = w + so.newton_step(f, w)
    assert errors[-1] < 1e-12
    # quadratic: each error is at most a constant times the previous one squared
    assert errors[4] < 10 * errors[3] ** 2 and errors[3] < 10 * errors[2] ** 2


def test_damping_shortens_the_step_and_bad_input_is_refused() -> None:
    f, w = _logistic()
    plain, damped = so.newton_step(f, w), so.newton_step(f, w, damping=10.0)
    assert damped.norm() < plain.norm()
    with pytest.raises(ValueError, match="one flat vector"):
        so.hessian(f, w.reshape(5, 1))
    with pytest.raises(ValueError, match="damping"):
        so.newton_step(f, w, damping=-1.0)
    with pytest.raises(ValueError, match="'solve' or 'cg'"):
        so.newton_step(f, w, method="lbfgs")
    with pytest.raises(ValueError, match="shape of x"):
        so.hvp(f, w, torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="positive-definite"):
        so.conjugate_gradient(lambda v: -v, torch.ones(3, dtype=torch.float64))
