"""Every notebook's time on the learner's path, idle and beside two busy programs.

A learner's kernel does not run under the pinned settings the stored outputs come from
(``PINNED_ENV``: one thread); it runs with whatever the package chooses. This executes each
notebook top to bottom in a fresh, unpinned kernel (``dlcourse.machinery.notebooks.execute``,
the engine ``make regenerate`` uses), under two settings:

- ``before``: torch's defaults, as before issue 26: one OpenMP thread per core, and idle threads
  that spin (``GOMP_SPINCOUNT=300000``, GNU OpenMP's default when no policy is set, which also
  overrides the policy ``import dlcourse`` now sets);
- ``after``: nothing set: what ``import dlcourse`` and ``dl.setup()`` choose
  (:mod:`dlcourse.threads`);

each on an idle machine and with two busy programs (``while True: pass`` in two Python processes
this script starts and stops), as on a laptop with a browser, a video call and an IDE open.

It first times the loop the issue found (``h = tanh(h @ W.T + x)``, 3,000 steps, 64x64) under
more settings, each in its own process since OpenMP reads its policy when torch loads.

    python benchmarks/notebook_times.py                       # all notebooks, four conditions
    python benchmarks/notebook_times.py --notebooks 05 07 --conditions after-idle after-busy
    python benchmarks/notebook_times.py --quick               # the loop, short; notebook 00 once

Times are printed, never asserted. A run longer than ``--timeout`` is stopped and printed as
``>N``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONDITIONS = ("before-idle", "before-busy", "after-idle", "after-busy")
# Variables a learner's environment does not have, or that this script sets per condition.
_CLEARED = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "OMP_WAIT_POLICY",
    "GOMP_SPINCOUNT",
    "MKL_CBWR",
    "ATEN_CPU_CAPABILITY",
    "PYTHONHASHSEED",
    "TQDM_MININTERVAL",
    "DLCOURSE_HEADLESS",
    "DLCOURSE_SEED",
)

LOOP_CODE = """
import sys, time, json
{imports}
dl.setup(seed=0, verbose=False{threads})
W = torch.randn(64, 64) * 0.1
x = torch.randn(64, 64)
times = []
for _ in range(3):
    h = torch.zeros(64, 64)
    start = time.perf_counter()
    for _ in range({steps}):
        h = torch.tanh(h @ W.T + x)
    times.append(time.perf_counter() - start)
print(json.dumps({{"seconds": sorted(times)[1], "line": dl.env.device_description(
    dl.pick_device("cpu"))}}))
"""

# (name, extra environment, setup's threads argument, dlcourse imported before torch)
LOOP_SETTINGS: tuple[tuple[str, dict[str, str], int | None, bool], ...] = (
    ("before: 2 threads, spin (torch's default)", {"OMP_NUM_THREADS": "2",
                                                  "GOMP_SPINCOUNT": "300000"}, None, False),
    ("after: dl.setup() default", {}, None, True),
    ("after, torch imported first", {}, None, False),
    ("2 threads, OMP_WAIT_POLICY=PASSIVE", {}, 2, True),
    ("2 threads, GOMP_SPINCOUNT=10000", {"GOMP_SPINCOUNT": "10000"}, 2, True),
    ("2 threads, torch imported first", {}, 2, False),
)  # fmt: skip


def learner_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without the pinned settings, on the CPU, not counted as
    the learner's progress, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    env.update({"DLCOURSE_DEVICE": "cpu", "DLCOURSE_PROGRESS": "off"})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra or {})
    return env


def torch_default_threads() -> int:
    """How many threads torch starts with here when nothing is set (one per physical core)."""
    out = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
        env=learner_environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout)


def condition_environment(setting: str, default_threads: int) -> dict[str, str]:
    if setting == "before":
        return learner_environment(
            {"OMP_NUM_THREADS": str(default_threads), "GOMP_SPINCOUNT": "300000"}
        )
    if setting == "after":
        return learner_environment()
    raise ValueError(f"unknown setting {setting!r}: 'before' or 'after'")


@contextlib.contextmanager
def busy(count: int) -> Iterator[None]:
    """``count`` Python processes spinning on a core each, while the block runs."""
    procs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range(count)
    ]
    try:
        time.sleep(0.5 if procs else 0)
        yield
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def _run_with_deadline(cmd: list[str], env: dict[str, str], timeout: float) -> str | None:
    """Run ``cmd`` in its own session; its stdout, or None when it ran past ``timeout`` (then
    the whole session, kernel included, is killed)."""
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, cwd=ROOT,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed ({proc.returncode}):\n{err[-3000:]}")
    return out


def time_loop(steps: int, busy_count: int, timeout: float = 120.0) -> None:
    print(f"\nloop h = tanh(h @ W.T + x), {steps} steps, 64x64 (median of 3, own process each):")
    print(f"  {'setting':<44} {'idle':>9} {'2 busy':>9}   setup's line")
    for name, extra, threads, dlcourse_first in LOOP_SETTINGS:
        imports = (
            "import dlcourse as dl\nimport torch"
            if dlcourse_first
            else "import torch\nimport dlcourse as dl"
        )
        code = LOOP_CODE.format(
            imports=imports,
            steps=steps,
            threads="" if threads is None else f", threads={threads}",
        )
        cells, line = [], ""
        for count in (0, busy_count):
            with busy(count):
                out = _run_with_deadline(
                    [sys.executable, "-c", code], learner_environment(extra), timeout
                )
            if out is None:
                cells.append(f">{timeout:.0f} s")
                continue
            result = json.loads(out.strip().splitlines()[-1])
            cells.append(f"{result['seconds']:.3f} s")
            line = result["line"]
        print(f"  {name:<44} {cells[0]:>9} {cells[1]:>9}   {line}", flush=True)


def _execute_one(path: str) -> None:
    """In the child: run one notebook in a fresh kernel with this process's environment."""
    import nbformat

    from dlcourse.machinery.notebooks import execute

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:  # cells the notebook expects to raise run on, as in regenerate
        if cell.cell_type == "code" and "# NBVAL_RAISES_EXCEPTION" in cell.source.splitlines():
            cell.metadata.setdefault("tags", []).append("raises-exception")
    seconds = execute(nb, Path(path).parent, timeout=3600)
    print(json.dumps({"seconds": seconds}))


def time_notebook(path: Path, condition: str, default_threads: int, timeout: float) -> float | None:
    setting, load = condition.split("-")
    env = condition_environment(setting, default_threads)
    with busy(2 if load == "busy" else 0):
        out = _run_with_deadline(
            [sys.executable, str(Path(__file__).resolve()), "--execute-one", str(path)],
            env,
            timeout,
        )
    return None if out is None else json.loads(out.strip().splitlines()[-1])["seconds"]


def time_notebooks(
    names: list[str], conditions: list[str], repeats: int, timeout: float
) -> dict[str, dict[str, list[float | None]]]:
    from dlcourse.machinery.notebooks import course_notebooks

    paths = [p for p in course_notebooks() if not names or p.name[:2] in names]
    default_threads = torch_default_threads()
    print(
        f"\nnotebooks, learner's path (fresh unpinned kernel, CPU); 'before' = {default_threads} "
        f"threads spinning; stopped after {timeout:.0f} s:"
    )
    print(f"  {'notebook':<34}" + "".join(f"{c:>14}" for c in conditions))
    table: dict[str, dict[str, list[float | None]]] = {}
    for path in paths:
        row = table.setdefault(path.name, {c: [] for c in conditions})
        for _ in range(repeats):
            for condition in conditions:
                row[condition].append(time_notebook(path, condition, default_threads, timeout))
        cells = [
            "/".join(f">{timeout:.0f}" if s is None else f"{s:.0f}" for s in row[c]) + " s"
            for c in conditions
        ]
        print(f"  {path.name:<34}" + "".join(f"{c:>14}" for c in cells), flush=True)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", nargs="*", default=[], help="numbers: 05 07 (all)")
    parser.add_argument("--conditions", nargs="*", default=list(CONDITIONS), choices=CONDITIONS)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600, help="seconds per notebook run")
    parser.add_argument("--no-loop", action="store_true", help="skip the small-operation loop")
    parser.add_argument("--no-notebooks", action="store_true", help="only the loop")
    parser.add_argument("--quick", action="store_true", help="the loop, short; notebook 00 once")
    parser.add_argument("--execute-one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.execute_one:
        _execute_one(args.execute_one)
        return
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"notebook times on {os.cpu_count()} CPUs (load average {load:.2f} before starting)")
    if args.quick:
        time_loop(steps=300, busy_count=2)
        time_notebooks(["00"], ["after-idle"], repeats=1, timeout=args.timeout)
        return
    if not args.no_loop:
        time_loop(steps=3000, busy_count=2)
    if not args.no_notebooks:
        time_notebooks(args.notebooks, args.conditions, args.repeats, args.timeout)


if __name__ == "__main__":
    main()
