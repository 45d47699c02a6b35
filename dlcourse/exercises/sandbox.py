"""The grading process: a learner's exercise cells run here, limited and fenced in.

:mod:`dlcourse.exercises.grading` starts one such process per submission
(``python -I -c BOOT JOB``) and never runs learner code itself. The process,
in this order:

1. sets its resource limits, soft and hard, so the learner's code cannot raise
   them: CPU seconds, address space (memory), file size, open files, no core
   dumps, and a bound on the number of processes;
2. imports torch (one thread) and the exercises, and builds every input case
   the grader asked for (fixed and randomised seeds), before any learner code;
3. fences itself in: with Landlock (Linux 5.13+, no privileges needed) the
   kernel lets it read only Python's and the libraries' folders, write only
   the job folder, open no network connection and signal no process outside
   it; an audit hook (:func:`sys.addaudithook`, which cannot be removed) turns
   the same rules into readable errors and refuses new processes, ``ctypes``,
   sockets and signals on every platform;
4. runs a fixed preamble of imports, then the learner's cells, each with a
   time limit, then calls each learner function on every case, as
   ``Exercise.check`` would (forbidden calls blocked, per-call time limit),
   and the gradients where the exercise checks them;
5. writes what happened as plain data, one file per exercise
   (``torch.save`` of tensors, numbers, strings; anything else described, not
   sent), which the grader loads with ``weights_only=True`` and judges.

Nothing here is trusted by the grader: learner code shares this process and
can change any of it. It can make the process send lies, but only plain
data, which the grader compares with its own reference on inputs drawn from
a seed the learner does not know.
"""

from __future__ import annotations

import json
import linecache
import os
import sys
import time
from pathlib import Path
from typing import Any

from dlcourse.exercises.fence import _Fence, _landlock, _read_roots, _set_limits
from dlcourse.machinery.atomic import write_atomically, write_bytes_atomically

# The command line the grader runs: python -I -c BOOT JOB_DIR PACKAGE_PARENT. -I: no
# PYTHON* variables, no user site, and not the working folder on sys.path (a learner's
# torch.py cannot shadow torch).
BOOT = (
    "import sys; sys.path.append(sys.argv[2]); "
    "from dlcourse.exercises.sandbox import main; sys.exit(main(sys.argv[1]))"
)

# A cell runs after these imports (the grader's, not the learner's: the notebook's other cells
# are not run). Anything else an exercise cell needs, it imports itself.
PREAMBLE = """\
import functools
import itertools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
"""

# --------------------------------------------------------------------------- running


def _plain(value: Any) -> Any:
    """``value`` as plain data the grader can load with ``weights_only``; other objects
    described, never sent."""
    import torch

    from dlcourse.exercises.engine import NotPlain

    kind = type(value)
    if kind is torch.Tensor:
        return value.detach().cpu().clone()
    if kind in (int, float, bool, str) or value is None:
        return value
    numpy_integer = kind.__module__ == "numpy" and getattr(value, "ndim", 1) == 0
    if numpy_integer and getattr(getattr(value, "dtype", None), "kind", "") in ("i", "u"):
        return int(value)
    info = NotPlain.of(value)
    return {"not plain": [info.module, info.name, info.tensor_subclass, info.text]}


def _attempt_record(attempt: Any) -> dict[str, Any]:
    return {
        "kind": attempt.kind,
        "value": [_plain(v) for v in attempt.value],
        "args_after": [_plain(a) for a in attempt.args_after],
        "detail": str(attempt.detail)[:20_000],
    }


def _grad_record(attempt: Any) -> dict[str, Any]:
    return {
        "kind": attempt.kind,
        "grads": [_plain(g) for g in attempt.grads],
        "detail": str(attempt.detail)[:20_000],
    }


def _exited(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return (
            f"your code called sys.exit({exc.code if exc.code is not None else ''}) (or raised "
            "SystemExit): return a value instead"
        )
    return f"your code raised {type(exc).__name__}, which stops a program: return a value instead"


class _Progress:
    """Where the process is, one line per step, so the grader can say where it stopped."""

    def __init__(self, path: Path) -> None:
        self.fh = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115

    def __call__(self, text: str) -> None:
        self.fh.write(text + "\n")
        self.fh.flush()


def _save(results: Path, name: str, record: Any) -> None:
    """Write ``record`` (bytes, or plain data for ``torch.save``) to ``results/name`` whole or
    not at all, so that a process killed while writing leaves no half file.

    :mod:`dlcourse.machinery.atomic` works inside the fence: its temporary file (``mkstemp``
    beside the target), ``fsync``, ``chmod`` and ``os.replace`` all stay in the job's folder,
    which Landlock and the audit hook let this process create, write and rename files in, and
    a record is far below the file-size limit."""
    import torch

    if isinstance(record, bytes):
        write_bytes_atomically(results / name, record)
    else:
        write_atomically(results / name, lambda fh: torch.save(record, fh))


def _run_cell(source: str, label: str, namespace: dict[str, Any], timeout: float) -> dict:
    from dlcourse.exercises.engine import (
        TimeLimitExceeded,
        call_with_time_limit,
        learner_traceback,
    )

    filename = f"<your cell for {label}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    try:
        code = compile(source, filename, "exec")
    except SyntaxError as exc:
        return {"kind": "syntax", "detail": f"line {exc.lineno}: {exc.msg}"}
    try:
        call_with_time_limit(lambda: exec(code, namespace), timeout)
    except TimeLimitExceeded:
        return {"kind": "timeout", "detail": f"running your cell took more than {timeout:g} s"}
    except Exception as exc:
        return {"kind": "raised", "detail": learner_traceback(exc)}
    except BaseException as exc:  # SystemExit, KeyboardInterrupt: this cell's problem only
        return {"kind": "exited", "detail": _exited(exc)}
    return {"kind": "ok", "detail": ""}


def _with_tensors(cases: list[tuple], given: list[list[Any]]) -> list[tuple]:
    """``cases`` with their tensor arguments replaced by the grader's (``given``)."""
    if len(cases) != len(given):
        raise RuntimeError("the grader's inputs and this process's differ in number")
    out = []
    for case, tensors in zip(cases, given, strict=True):
        if len(case) != len(tensors):
            raise RuntimeError("the grader's inputs and this process's differ in shape")
        out.append(tuple(a if t is None else t for a, t in zip(case, tensors, strict=True)))
    return out


def main(job_dir: str) -> int:
    job = Path(job_dir)
    spec = json.loads((job / "spec.json").read_text(encoding="utf-8"))
    _set_limits(spec["limits"])
    results = job / "results"
    progress = _Progress(job / "progress.txt")
    progress("starting")

    import torch

    torch.set_num_threads(1)
    from dlcourse.exercises.engine import Attempt, clone_inputs
    from dlcourse.exercises.registry import get

    # Every input, before any learner code runs.
    plan = []
    tensors = torch.load(job / "inputs.pt", weights_only=True)
    for item in spec["exercises"]:
        ex = get(item["name"])
        sets = [
            (s["label"], _with_tensors(ex.input_cases(s["seed"]), given))
            for s, given in zip(item["sets"], tensors[ex.name], strict=True)
        ]
        plan.append((ex, item["function"], sets))

    fence = _Fence(str(job), _read_roots(spec["package_parent"]))
    how = _landlock(str(job), fence.read_roots)
    sys.addaudithook(fence)
    fence.on = True
    _save(results, "fence.json", json.dumps({"fence": how}).encode())
    os.chdir(job / "work")

    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    exec(compile(PREAMBLE, "<preamble>", "exec"), namespace)
    for cell in spec["cells"]:
        progress(f"cell {cell['label']}")
        record = _run_cell(cell["source"], cell["label"], namespace, spec["cell_timeout"])
        _save(results, f"cell-{cell['index']}.json", json.dumps(record).encode())

    for ex, function, sets in plan:
        progress(f"exercise {ex.name}")
        start = time.perf_counter()
        fn = namespace.get(function)
        record: dict[str, Any] = {"found": callable(fn), "sets": []}
        if callable(fn):
            for label, cases in sets:
                attempts, grads = [], []
                for args in cases:
                    try:
                        attempt = ex.attempt(fn, clone_inputs(args))
                        grad = ex.grad_attempt(fn, args) if ex.grad else None
                    except BaseException as exc:  # SystemExit and friends, from learner code
                        attempt, grad = Attempt("exited", detail=_exited(exc)), None
                    attempts.append(_attempt_record(attempt))
                    grads.append(_grad_record(grad) if grad is not None else None)
                    if attempt.kind != "returned":
                        break
                record["sets"].append({"label": label, "attempts": attempts, "grads": grads})
                if attempt.kind != "returned":  # the verdict stops there: skip the other sets
                    break
        record["seconds"] = time.perf_counter() - start
        _save(results, f"{ex.name}.pt", record)
    progress("done")
    sys.stdout.flush()
    os._exit(0)  # not waiting for threads the learner's code may have left running
