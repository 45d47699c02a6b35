"""Measuring cost: honest wall-clock timings on any device, and counts of work.

Taught in ``notebooks/00_welcome.ipynb`` (C0.2: what a GPU buys); used by
``benchmarks/`` and notebook 03 (the price of a Hessian). GPU work is
asynchronous, so every timing synchronises the device before reading the clock,
and reports the median (or the best) of several repeats after warm-up runs.

A timing depends on the machine and on what else it is doing; a count of
floating-point operations (:func:`count_flops`) does not, so a claim about how
cost *grows* is asserted on counts, and timings are printed beside them.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator

import torch


def synchronize(device: torch.device | str) -> None:
    """Wait until all queued work on ``device`` has finished (a no-op on the CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@contextlib.contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """Run the block with torch using ``n`` CPU threads, then restore the previous number.

    One thread compares like with like against single-threaded Python, and is
    immune to the stalls several threads suffer when another program holds a core.
    """
    if n < 1:
        raise ValueError(f"need at least one thread, got {n}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _matrix_vector_flops(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * a_shape[0] * a_shape[1]  # one multiply and one add per matrix entry


def _dot_flops(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * a_shape[0]


def count_flops(fn: Callable[[], object]) -> int:
    """Floating-point operations in the matrix products that ``fn()`` runs, backward included.

    Counted by torch's ``FlopCounterMode`` (matrix-matrix products, convolutions,
    attention), with matrix-vector and dot products added, which it leaves out. Elementwise
    work is not counted: matrix products dominate the cost of the models here. The count is
    the same on every machine, however busy.
    """
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    extra = {aten.mv: _matrix_vector_flops, aten.dot: _dot_flops}
    with FlopCounterMode(display=False, custom_mapping=extra) as counter:
        fn()
    return int(counter.get_total_flops())


def time_call(
    fn: Callable[[], object],
    device: torch.device | str,
    *,
    repeats: int = 5,
    warmup: int = 2,
    stat: str = "median",
) -> float:
    """Wall time of ``fn()`` in seconds over ``repeats`` runs after ``warmup`` runs.

    ``stat='median'`` is the typical time; ``stat='min'`` the best, which is
    what a program gets when nothing else competes for the CPU (use it for
    assertions that must hold on a busy machine).
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats=} and {warmup=}")
    if stat not in ("median", "min"):
        raise ValueError(f"stat must be 'median' or 'min', got {stat!r}")
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times) if stat == "median" else min(times)


def matmul_gflops(
    device: torch.device | str,
    n: int = 1024,
    *,
    dtype: torch.dtype = torch.float32,
    repeats: int = 5,
) -> float:
    """Throughput of an ``n x n`` matrix product on ``device``, in GFLOP/s (``2 n^3`` flops).

    The matrices are drawn on the CPU with a fixed seed and then moved, so every
    device multiplies the same numbers. The time is the best of ``repeats``: the
    device's throughput when nothing else competes for it.
    """
    if n < 1:
        raise ValueError(f"matrix size n must be positive, got {n}")
    device = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen, dtype=dtype).to(device)  # (n, n)
    b = torch.randn(n, n, generator=gen, dtype=dtype).to(device)  # (n, n)
    seconds = time_call(lambda: a @ b, device, repeats=repeats, stat="min")
    return 2 * n**3 / seconds / 1e9
