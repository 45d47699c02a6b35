"""dlcourse.benchmark: timing helpers. No timing is asserted (that would flake); behaviour is."""

from __future__ import annotations

import pytest
import torch

from dlcourse import benchmark


def test_time_call_runs_warmup_then_repeats() -> None:
    calls = []
    seconds = benchmark.time_call(lambda: calls.append(1), torch.device("cpu"), repeats=4, warmup=3)
    assert len(calls) == 7
    assert seconds >= 0


def test_cpu_threads_restores_the_count() -> None:
    before = torch.get_num_threads()
    with benchmark.cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="thread"), benchmark.cpu_threads(0):
        pass


def test_time_call_min_is_at_most_the_median() -> None:
    cpu = torch.device("cpu")
    x = torch.randn(64, 64)
    fastest = benchmark.time_call(lambda: x @ x, cpu, repeats=9, stat="min")
    assert fastest > 0
    with pytest.raises(ValueError, match="stat"):
        benchmark.time_call(lambda: None, cpu, stat="mean")


@pytest.mark.parametrize(("repeats", "warmup"), [(0, 1), (1, -1)])
def test_time_call_rejects_bad_counts(repeats: int, warmup: int) -> None:
    with pytest.raises(ValueError, match="repeats"):
        benchmark.time_call(lambda: None, torch.device("cpu"), repeats=repeats, warmup=warmup)


def test_matmul_gflops_on_every_device(device: torch.device) -> None:
    assert benchmark.matmul_gflops(device, 64, repeats=2) > 0


def test_matmul_gflops_rejects_bad_size() -> None:
    with pytest.raises(ValueError, match="positive"):
        benchmark.matmul_gflops("cpu", 0)


def test_synchronize_is_safe_on_every_device(device: torch.device) -> None:
    torch.ones(4, device=device).sum()
    benchmark.synchronize(device)


def test_time_call_takes_a_device_name() -> None:
    assert benchmark.time_call(lambda: None, "cpu", repeats=2, warmup=0) >= 0
    benchmark.synchronize("cpu")


def test_count_flops_counts_matrix_products_forward_and_backward(device: torch.device) -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(30, 20, generator=gen).to(device)
    b = torch.randn(20, 10, generator=gen).to(device)
    v = torch.randn(20, generator=gen).to(device)
    assert benchmark.count_flops(lambda: a @ b) == 2 * 30 * 20 * 10
    assert benchmark.count_flops(lambda: a @ v) == 2 * 30 * 20  # matrix-vector, torch omits it
    assert benchmark.count_flops(lambda: v @ v) == 2 * 20
    assert benchmark.count_flops(lambda: a + 1) == 0  # elementwise work is not counted
    w = v.clone().requires_grad_(True)
    # forward a @ w, backward a.T @ grad: two matrix-vector products
    assert benchmark.count_flops(lambda: (a @ w).sum().backward()) == 2 * (2 * 30 * 20)


def test_a_hessian_costs_n_gradients() -> None:
    """What notebook 03 asserts: the full Hessian's work grows like n**2, a gradient's like n."""
    from dlcourse import second_order

    gen = torch.Generator().manual_seed(0)
    for n in (5, 40):
        a = torch.randn(100, n, generator=gen, dtype=torch.float64)

        def f(w, a=a):
            return torch.nn.functional.softplus(a @ w).mean()

        w = torch.zeros(n, dtype=torch.float64)
        grad = benchmark.count_flops(lambda f=f, w=w: second_order.gradient(f, w))
        hess = benchmark.count_flops(lambda f=f, w=w: second_order.hessian(f, w))
        assert grad == 2 * (2 * 100 * n) and hess == (n + 1) * grad
