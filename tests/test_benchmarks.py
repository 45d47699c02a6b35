"""The benchmarks still run (quick mode). Timings are printed, never asserted: they would flake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_benchmarks_run_in_quick_mode() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Batches vs DataLoader, one epoch:" in out
    assert "fit() vs bare loop" in out
    assert "Adam     vs torch" in out
    assert "BatchNorm2d vs nn.BatchNorm2d" in out
    assert "conv 16->32, 3x3, 14x14 vs F.conv2d" in out and "max_pool2d 2x2 vs F.max_pool2d" in out
    assert "LSTM vs nn.LSTM" in out
    assert out.count("ratio") >= 16


@pytest.mark.slow
def test_mnist1d_benchmark_runs_in_quick_mode() -> None:
    """Not in ``run.py`` (minutes at full scale): its quick mode, one epoch a run, on its own."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "mnist1d.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for kind, paper in (("logistic", "32.0"), ("mlp", "68.0"), ("cnn", "94.0"), ("gru", "91.0")):
        assert any(line.split()[:2] == [kind, paper] for line in out.splitlines()), kind
    assert out.count("x the time") == 4
    assert "paper's CNN" in out and "+ early stopping" in out and "paper's GRU" in out
    assert out.count("the paper (one run)") == 2
