"""dlcourse.threads: the wait policy set before torch loads, the thread count setup chooses.

The policy is tested by its mechanism, not by a timing: GNU OpenMP (torch's, on Linux) prints
the spin count it will use when ``OMP_DISPLAY_ENV=VERBOSE`` is set, so a child process shows
whether the setting reached it. ``benchmarks/notebook_times.py`` measures what it is worth.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import dlcourse.env as env
from dlcourse import threads

ROOT = Path(__file__).resolve().parent.parent
_OURS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _child(code: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh Python with none of the thread variables, plus ``extra``."""
    environ = {k: v for k, v in os.environ.items() if k not in _OURS}
    environ.update(extra, OMP_DISPLAY_ENV="VERBOSE")
    return subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True,
        cwd=ROOT, timeout=120,
    )  # fmt: skip


def _spin_count(proc: subprocess.CompletedProcess[str]) -> str:
    """The spin count OpenMP reports (0: idle threads sleep at once; 300000: its default)."""
    if "OPENMP DISPLAY ENVIRONMENT" not in proc.stderr:
        pytest.skip("this torch's OpenMP is not GNU OpenMP: it does not report its settings")
    match = re.search(r"GOMP_SPINCOUNT = '(\d+)'", proc.stderr)
    assert match, proc.stderr
    return match.group(1)


def test_importing_dlcourse_first_makes_openmp_threads_sleep() -> None:
    proc = _child(
        "import os, sys, dlcourse\n"
        "assert 'torch' not in sys.modules\n"
        "print(os.environ['OMP_WAIT_POLICY'])\n"
        "import torch; torch.ones(1)\n"
        "print(dlcourse.threads.wait_policy())"
    )
    assert proc.stdout.splitlines()[0] == "PASSIVE"
    assert "origin='dlcourse'" in proc.stdout
    assert _spin_count(proc) == "0"


def test_torch_imported_first_keeps_openmps_default_and_setup_says_how_to_fix_it() -> None:
    proc = _child(
        "import os, torch, dlcourse as dl\n"
        "print(os.environ.get('OMP_WAIT_POLICY'))\n"
        "dl.setup(seed=0, threads=2)\n"
        "dl.setup(seed=0)"
    )
    out = proc.stdout.splitlines()
    assert out[0] == "None"  # not set: it could no longer reach OpenMP
    assert (
        "device=cpu (2 threads, OpenMP threads spin: torch was imported before dlcourse" in out[1]
    )
    assert "import dlcourse` first" in out[1]
    # one thread has no team to wait for: nothing to fix
    assert "device=cpu (1 thread, OpenMP default wait)" in out[2]
    assert _spin_count(proc) == "300000"


@pytest.mark.parametrize(
    ("variable", "value", "spins"),
    [("OMP_WAIT_POLICY", "ACTIVE", "30000000000"), ("GOMP_SPINCOUNT", "1000", "1000")],
)
def test_a_policy_you_set_is_left_alone(variable: str, value: str, spins: str) -> None:
    proc = _child(
        "import os, dlcourse as dl, torch\n"
        "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))\n"
        "dl.setup(seed=0, threads=2)",
        **{variable: value},
    )
    first, line = proc.stdout.splitlines()
    assert first == ("ACTIVE None" if variable == "OMP_WAIT_POLICY" else "None 1000")
    expected = "wait active" if variable == "OMP_WAIT_POLICY" else "GOMP_SPINCOUNT=1000"
    assert f"(2 threads, OpenMP {expected})" in line
    assert _spin_count(proc) == spins


def test_setup_uses_one_thread_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        torch.set_num_threads(2)
        env.setup(seed=0, verbose=False)
        assert torch.get_num_threads() == threads.DEFAULT_THREADS == 1
        env.setup(seed=0, threads=2, verbose=False)  # the argument wins
        assert torch.get_num_threads() == 2
        # OMP_NUM_THREADS, set by you, is what torch started with: setup keeps it
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        env.setup(seed=0, verbose=False)
        assert torch.get_num_threads() == 2
        env.setup(seed=0, threads=1, verbose=False)  # and the argument still wins over it
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
        env.set_deterministic(False)


def test_setup_line_names_the_threads_and_the_policy(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = torch.get_num_threads()
    monkeypatch.setattr(
        threads, "_policy", threads.WaitPolicy("OMP_WAIT_POLICY=PASSIVE", "dlcourse")
    )
    try:
        env.setup(seed=0, threads=2)
        env.setup(seed=0, threads=1)
    finally:
        torch.set_num_threads(before)
        env.set_deterministic(False)
    lines = capsys.readouterr().out.splitlines()
    assert "device=cpu (2 threads, OpenMP wait passive) " in lines[0]
    assert "device=cpu (1 thread, OpenMP wait passive) " in lines[1]


def test_describe_without_an_effective_policy() -> None:
    late = threads.WaitPolicy(None, "too late")
    assert not late.effective
    assert "OMP_WAIT_POLICY=PASSIVE" in late.describe()
    assert threads.WaitPolicy("GOMP_SPINCOUNT=10000", "environment").describe() == (
        "OpenMP GOMP_SPINCOUNT=10000"
    )
