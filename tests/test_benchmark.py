"""dlcourse.benchmark: timing helpers. No timing is asserted (that would flake); behaviour is."""

from __future__ import annotations

import pytest
import torch

from dlcourse import benchmark


class _FakeClock:
    """``time.perf_counter`` for the tests: the call ``fn`` makes advances it by the next of
    ``durations``, so the time each repeat took is known exactly."""

    def __init__(self, durations: list[float]) -> None:
        self.now, self.durations, self.calls = 100.0, list(durations), 0

    def __call__(self) -> float:
        return self.now

    def work(self) -> None:
        self.calls += 1
        self.now += self.durations.pop(0)


@pytest.mark.parametrize(("stat", "expected"), [("median", 0.3), ("min", 0.1)])
def test_time_call_warms_up_then_reports_the_statistic_of_the_repeats(
    stat: str, expected: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 3 warm-up calls (their durations, 9 s each, must not count), then 5 timed repeats
    clock = _FakeClock([9.0, 9.0, 9.0, 0.5, 0.1, 0.3, 0.2, 0.4])
    monkeypatch.setattr(benchmark.time, "perf_counter", clock)
    seconds = benchmark.time_call(clock.work, "cpu", repeats=5, warmup=3, stat=stat)
    assert clock.calls == 8 and not clock.durations
    assert seconds == pytest.approx(expected)


def test_matmul_gflops_is_2n_cubed_over_the_best_time(monkeypatch: pytest.MonkeyPatch) -> None:
    times = iter([0.0, 0.004, 1.0, 1.002, 2.0, 2.003])  # (start, end) of each timed product
    monkeypatch.setattr(benchmark.time, "perf_counter", lambda: next(times))
    gflops = benchmark.matmul_gflops("cpu", 100, repeats=3)
    assert gflops == pytest.approx(2 * 100**3 / 0.002 / 1e9)  # the best of 4, 2 and 3 ms


def test_cpu_threads_restores_the_count() -> None:
    before = torch.get_num_threads()
    with benchmark.cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="thread"), benchmark.cpu_threads(0):
        pass


def test_time_call_rejects_an_unknown_statistic() -> None:
    with pytest.raises(ValueError, match="stat must be 'median' or 'min', got 'mean'"):
        benchmark.time_call(lambda: None, torch.device("cpu"), stat="mean")


@pytest.mark.parametrize(("repeats", "warmup"), [(0, 1), (1, -1)])
def test_time_call_rejects_bad_counts(repeats: int, warmup: int) -> None:
    with pytest.raises(ValueError, match="repeats"):
        benchmark.time_call(lambda: None, torch.device("cpu"), repeats=repeats, warmup=warmup)


def test_matmul_gflops_measures_a_real_product_on_every_device(device: torch.device) -> None:
    gflops = benchmark.matmul_gflops(device, 64, repeats=2)
    assert 1e-3 < gflops < 1e7  # a real, finite rate (any machine lies far inside this range)


def test_matmul_gflops_rejects_bad_size() -> None:
    with pytest.raises(ValueError, match="positive"):
        benchmark.matmul_gflops("cpu", 0)


def test_synchronize_waits_for_the_devices_queued_work(
    device: torch.device, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timing is only honest if the clock is read after the device has finished: on a GPU,
    synchronize must call the device's own synchronize (the CPU has no queue)."""
    waited = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda d=None: waited.append(("cuda", d)))
    monkeypatch.setattr(torch.mps, "synchronize", lambda: waited.append(("mps", None)))
    for where in (device, str(device)):  # a device or its name
        benchmark.synchronize(where)
    expected = {"cpu": 0}.get(device.type, 2)
    assert len(waited) == expected and all(kind == device.type for kind, _ in waited)
    benchmark.synchronize("cuda:0")  # on any machine: the CUDA path calls torch's
    assert waited[-1] == ("cuda", torch.device("cuda:0"))
    with pytest.raises(RuntimeError):
        benchmark.synchronize("no-such-device")


def test_time_call_synchronizes_before_reading_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    events = []
    monkeypatch.setattr(benchmark, "synchronize", lambda d: events.append("sync"))
    monkeypatch.setattr(benchmark.time, "perf_counter", lambda: events.append("clock") or 0.0)
    benchmark.time_call(lambda: events.append("fn"), "cpu", repeats=2, warmup=1)
    # warm-up, wait; then per repeat: clock, run, wait, clock
    assert events == ["fn", "sync", *(["clock", "fn", "sync", "clock"] * 2)]


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
