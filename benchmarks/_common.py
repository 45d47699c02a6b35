"""Shared by the benchmark scripts: median timing and the ratio line they print."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable


def paired_seconds(
    ours: Callable[[], object], reference: Callable[[], object], *, repeats: int, warmup: int = 1
) -> tuple[float, float]:
    """Median wall times of ``ours()`` and ``reference()``, run alternately.

    Alternating puts both under the same conditions (clock speed, caches, other
    load), which matters more than the number of repeats on a shared machine.
    """
    for _ in range(warmup):
        ours()
        reference()
    t_ours, t_ref = [], []
    for _ in range(repeats):
        for fn, times in ((ours, t_ours), (reference, t_ref)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(t_ours), statistics.median(t_ref)


def report(name: str, ours: float, reference: float, *, target: str) -> None:
    """One line: both medians, the ratio, and the target it is measured against."""
    print(
        f"{name}: ours {ours * 1e3:.2f} ms, reference {reference * 1e3:.2f} ms, "
        f"ratio {reference / ours:.2f}x faster ({ours / reference:.2f}x the time); target {target}"
    )


def run_on_every_device(run: Callable[..., None], description: str, repeats: int = 30) -> None:
    """A script's command line: ``--repeats`` (or ``--quick``: two, a smoke test, as
    ``run.py --quick``), then ``run(repeats, device)`` on the CPU and on CUDA when there is a
    GPU."""
    import torch

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--quick", action="store_true", help="two repeats: the numbers are noisy")
    args = parser.parse_args()
    repeats = 2 if args.quick else args.repeats
    run(repeats, torch.device("cpu"))
    if torch.cuda.is_available():
        run(repeats, torch.device("cuda"))
