"""Do the notebooks' claims hold on every learner's machine? ``dlcourse robustness``.

A stored output reproduces only under the pinned settings
(:data:`~dlcourse.machinery.notebooks.PINNED_ENV`); an ``assert`` in a notebook must hold
anywhere: with another thread count, another seed, on a GPU. This module runs copies of the
notebooks (outputs discarded) under a matrix of variants and reports, for each notebook and
variant, ``ok`` or the assert that failed:

- ``pinned``: CI's settings (seed 0);
- ``1 thread``, ``2 threads``, ``4 threads``: a learner's CPU, nothing else pinned
  (no kernel choice, no reproducible-MKL mode), torch with that many threads;
- ``seed 1`` ... ``seed 4``: the pinned settings with every seed the notebook sets
  changed (``$DLCOURSE_SEED``: ``dl.setup`` takes it, and notebooks derive their data
  splits, batch orders and weights from :func:`dlcourse.env.run_seed`); any other seed on
  request (``--variants seed-17``, ``--seeds 10-29``): thresholds are chosen on some seeds
  and confirmed on others;
- ``other kernels``: the pinned settings on what stands for another CPU: torch's
  portable kernels instead of the AVX2 ones (``ATEN_CPU_CAPABILITY=default``), MKL's
  own choice of code path, two threads (the pinned runs use one; OpenMP's threads spin only
  briefly at a barrier, so a busy machine does not stall them). Every last bit of a long
  computation moves; under
  this variant the stored outputs that nbval checks must still come out the same, so
  they hold on any x86-64 or ARM CPU, not only on the one that made them;
- ``cuda``: on an NVIDIA GPU, when there is one.

``make robustness`` runs the whole matrix; the test suite runs every notebook
under two off-pinned variants (``tests/test_robustness.py``): ``other kernels`` (the
claims, and the stored outputs) and ``seed 3`` (the claims).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlcourse.machinery.notebooks import (
    PINNED_ENV,
    course_notebooks,
    execute,
    output_differences,
)

_LEARNER_KEEPS = ("DLCOURSE_PROGRESS", "DLCOURSE_HEADLESS")  # not pins: no effect on numbers


@dataclass(frozen=True)
class Variant:
    """One column of the matrix: the environment a notebook's kernel runs in."""

    name: str
    env: dict[str, str] = field(default_factory=dict)  # on top of the base below
    pinned: bool = True  # start from CI's pinned settings; else from none of them
    outputs: bool = False  # the outputs nbval checks must come out as stored, too

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        if self.pinned:
            env.update(PINNED_ENV)
        else:
            for key in PINNED_ENV:
                env.pop(key, None)
            env.update({k: PINNED_ENV[k] for k in _LEARNER_KEEPS})
        env.pop("DLCOURSE_SEED", None)
        env.update(self.env)
        return env


def _threads(n: int) -> Variant:
    count = str(n)
    return Variant(
        f"{n} thread{'s' if n > 1 else ''}",
        {"OMP_NUM_THREADS": count, "MKL_NUM_THREADS": count, "DLCOURSE_DEVICE": "cpu"},
        pinned=False,
    )


# Another CPU's rounding, on this one: portable kernels, MKL's own path, two threads.
OTHER_KERNELS = Variant(
    "other kernels",
    {
        "ATEN_CPU_CAPABILITY": "default",
        "MKL_CBWR": "AUTO",
        "OMP_NUM_THREADS": "2",
        "MKL_NUM_THREADS": "2",
        "OPENBLAS_NUM_THREADS": "2",
        "GOMP_SPINCOUNT": "10000",  # a short spin, then sleep: 0.1 s, not 2.5 s, when busy
    },
    outputs=True,
)


def variants(cuda: bool | None = None) -> list[Variant]:
    """The whole matrix; ``cuda`` (default: whether torch sees a GPU) adds the GPU column."""
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    found = [Variant("pinned"), *(_threads(n) for n in (1, 2, 4))]
    found += [seeded(k) for k in range(1, 5)]
    found.append(OTHER_KERNELS)
    if cuda:
        found.append(Variant("cuda", {"DLCOURSE_DEVICE": "cuda"}))
    return found


def seeded(seed: int) -> Variant:
    """The pinned settings with every seed the notebook sets derived from ``seed`` (any
    ``seed >= 0``: thresholds are chosen on some seeds and confirmed on others)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"a seed is an integer >= 0, got {seed!r}")
    return Variant(f"seed {seed}", {"DLCOURSE_SEED": str(seed)})


def seed_range(text: str) -> list[int]:
    """The seeds ``text`` names: ``"10-29"``, ``"3,5,7"`` or a mix (``"0-4,17"``), in order,
    each once."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise ValueError(f"seeds are numbers and ranges like '10-29' or '3,5,7', got {part!r}")
        low, high = int(match[1]), int(match[2] or match[1])
        if high < low:
            raise ValueError(f"the range {part!r} runs backwards: write '{high}-{low}'")
        seeds += [k for k in range(low, high + 1) if k not in seeds]
    return seeds


def variant(name: str) -> Variant:
    """The variant called ``name`` (``"1 thread"``, ``"seed 3"``, ``"seed 17"``: any seed;
    ``-`` for a space works)."""
    wanted = name.replace("-", " ").strip()
    for v in variants(cuda=True):
        if v.name == wanted:
            return v
    match = re.fullmatch(r"seed (\d+)", wanted)
    if match:
        return seeded(int(match[1]))
    names = ", ".join(v.name for v in variants(cuda=True))
    raise ValueError(f"no variant {name!r}; there are: {names} (and 'seed N' for any N >= 0)")


@dataclass(frozen=True)
class Outcome:
    """How one notebook did under one variant."""

    notebook: str
    variant: str
    ok: bool
    seconds: float
    failure: str = ""  # where and what: the failing assert, or the error
    stalls: tuple[str, ...] = ()  # runs before this one that stalled (see run_notebook)

    @property
    def cell_text(self) -> str:
        text = "ok" if self.ok else "FAIL"
        return f"{text}, after {len(self.stalls)} stalled" if self.stalls else text


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _failure(nb: object, exc: BaseException) -> str:
    """``cell N: <the failing line> (<error>: <message>)`` from the executed notebook."""
    for i, cell in enumerate(getattr(nb, "cells", [])):
        for out in cell.get("outputs", []):
            if out.get("output_type") != "error":
                continue
            trace = _ANSI.sub("", "\n".join(out.get("traceback", [])))
            arrows = re.findall(r"^-+> *\d+ (.*)$", trace, flags=re.MULTILINE)
            line = arrows[-1].strip() if arrows else ""
            message = f"{out.get('ename')}: {out.get('evalue')}".rstrip(": ")
            return f"cell {i}: {line} ({message})" if line else f"cell {i}: {message}"
    first = str(exc).strip().splitlines()
    return first[-1] if first else type(exc).__name__


def run_notebook(
    path: Path,
    v: Variant,
    *,
    timeout: float = 600.0,
    retries: int = 0,
    check: Callable[[Any], list[str]] | None = None,
) -> Outcome:
    """Execute a copy of the notebook ``path`` under the variant ``v``; nothing is written back.

    ``timeout`` bounds each cell. A run that *stalled* (a cell passed ``timeout`` without an
    error, or the kernel died) says nothing about the notebook's claims, only about the
    kernel: it is run again in a fresh kernel, up to ``retries`` times, and the outcome
    lists the stalls (the test suite allows one: twice a CI run saw a kernel sit idle for
    about 600 s, cause unknown). A failing cell is never retried.

    ``check(executed_notebook)`` may look at the run's outputs and return problems, which fail
    the outcome: one run then serves two checks (the tests run the student version under
    ``seed 3`` and check that every exercise says "not attempted").
    """
    import nbformat
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    stalls: list[str] = []
    start = time.perf_counter()
    while True:
        nb = nbformat.read(path, as_version=4)
        with tempfile.TemporaryDirectory(prefix="dlcourse-robustness-") as scratch:
            try:
                execute(nb, Path(scratch), timeout=timeout, env=v.environment())
            except (CellTimeoutError, DeadKernelError) as exc:
                said = str(exc).strip().splitlines()
                stall = f"{type(exc).__name__}: {said[0] if said else 'no message'}"
                if len(stalls) < retries:
                    stalls.append(stall)
                    continue
                failure = stall
            except Exception as exc:  # a failing cell: CellExecutionError
                failure = _failure(nb, exc)
            else:
                failure = ""
                problems = []
                if v.outputs:
                    stored = json.loads(path.read_text(encoding="utf-8"))
                    problems += [f"output of {c}" for c in output_differences(stored, nb)]
                if check is not None:
                    problems += check(nb)
                failure = "; ".join(problems)
        seconds = time.perf_counter() - start
        return Outcome(path.name, v.name, not failure, seconds, failure, tuple(stalls))


def run_matrix(
    paths: Sequence[Path] | None = None,
    matrix: Sequence[Variant] | None = None,
    *,
    jobs: int = 1,
    timeout: float = 600.0,
    retries: int = 0,
    on_result: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Every notebook under every variant, ``jobs`` at a time; in notebook, then variant order.

    ``timeout`` and ``retries`` are :func:`run_notebook`'s."""
    paths = list(course_notebooks() if paths is None else paths)
    matrix = list(variants() if matrix is None else matrix)
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    tasks = [(p, v) for p in paths for v in matrix]

    def one(task: tuple[Path, Variant]) -> Outcome:
        outcome = run_notebook(*task, timeout=timeout, retries=retries)
        if on_result is not None:
            on_result(outcome)
        return outcome

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, tasks))


def table(outcomes: Sequence[Outcome]) -> str:
    """The matrix as a Markdown table (notebook x variant), then every failure in full."""
    notebooks = list(dict.fromkeys(o.notebook for o in outcomes))
    names = list(dict.fromkeys(o.variant for o in outcomes))
    cell = {(o.notebook, o.variant): o for o in outcomes}
    lines = [
        "| notebook | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for nb in notebooks:
        row = [
            f"{cell[nb, n].cell_text} ({cell[nb, n].seconds:.0f} s)" if (nb, n) in cell else ""
            for n in names
        ]
        lines.append(f"| {nb} | " + " | ".join(row) + " |")
    failures = [o for o in outcomes if not o.ok]
    if failures:
        lines.append("")
        lines.append("Failures:")
        lines += [f"- {o.notebook}, {o.variant}: {o.failure}" for o in failures]
    stalled = [o for o in outcomes if o.stalls]
    if stalled:
        lines.append("")
        lines.append("Runs that stalled and were run again (the kernel, not the notebook):")
        lines += [f"- {o.notebook}, {o.variant}: {s}" for o in stalled for s in o.stalls]
    return "\n".join(lines)
