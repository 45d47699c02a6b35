"""The grading process: a learner's exercise cells run here, limited and fenced in.

:mod:`dlcourse.exercises.grading` starts one such process per submission (through
:mod:`dlcourse.exercises.isolation`: ``python -I -c BOOT JOB PACKAGE_PARENT RESULTS_FD``, in its
own namespaces where the platform has them) and never runs learner code itself. The process, in
this order:

1. sets its resource limits, soft and hard, so the learner's code cannot raise them (CPU
   seconds, address space, file size, open files, no core dumps, processes);
2. imports torch (one thread) and what it needs to call a function and describe what happened:
   the engine's learner side, the wire format, the forbidden-call guard, the landscapes an input
   may need. **Never an exercise module, nor anything that holds a reference solution**: the
   inputs come from the grader, as data (:mod:`dlcourse.exercises.wire`), with each exercise's
   function name, time limit and forbidden calls; the judge runs only in the grader;
3. fences itself in (:mod:`dlcourse.exercises.fence`): Landlock lets it read Python's and the
   libraries' folders but not the course's package or notebooks, write only its work folder, and
   open no network connection; an audit hook turns the same rules into readable errors;
4. runs a fixed preamble of imports, then the learner's cells, each with a time limit, then calls
   each learner function on every case as ``Exercise.check`` would (forbidden calls blocked,
   per-call time limit), and the gradients where the exercise checks them;
5. sends what happened down its results pipe (``RESULTS_FD``), frame by frame: where it is
   (``progress``), each cell's outcome, each exercise's record; values that are not plain data
   or too large to send are described, never sent.

Nothing here is trusted by the grader: learner code shares this process and can change any of it,
or write to the pipe itself. It can make the process send lies, but only bounded plain data, which
the grader compares with its own reference on inputs drawn from a seed the learner does not know.
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

# The command line the grader runs: python -I -c BOOT JOB_DIR PACKAGE_PARENT RESULTS_FD. -I: no
# PYTHON* variables, no user site, and not the working folder on sys.path (a learner's
# torch.py cannot shadow torch).
BOOT = (
    "import sys; sys.path.append(sys.argv[2]); "
    "from dlcourse.exercises.sandbox import main; sys.exit(main(sys.argv[1], sys.argv[3]))"
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

# What one value sent back may weigh, and one exercise's record: results are small (the
# references' are a few KB); anything far larger is described instead ("too large to send").
VALUE_LIMIT = 16 << 20
RECORD_LIMIT = 48 << 20
TEXT_LIMIT = 20_000

# --------------------------------------------------------------------------- sending back


class _Results:
    """The results pipe: whole frames (:func:`dlcourse.exercises.wire.frame`), written in full."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, name: str, body: bytes) -> None:
        from dlcourse.exercises.wire import frame

        data = memoryview(frame(name, body))
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except OSError:  # the learner's code closed the pipe: nothing more can be sent
            pass

    def progress(self, text: str) -> None:
        self.send("progress", text.encode("utf-8", errors="replace"))


def _plain(value: Any) -> Any:
    """``value`` as the wire may carry it: an ordinary tensor (copied, at most ``VALUE_LIMIT``
    bytes), a bounded number, a cut text, None; anything else described, never sent."""
    import torch

    from dlcourse.exercises.engine import NotPlain, is_dense

    kind = type(value)
    if kind is torch.Tensor and is_dense(value):
        size = value.numel() * value.element_size()
        if size > VALUE_LIMIT:
            shape = tuple(value.shape)
            text = f"tensor of shape {shape} ({size / 2**20:.0f} MB), too large to send back"
            return _described(NotPlain("torch", "Tensor", False, text))
        return value.detach().cpu().clone()
    if kind is int and -(1 << 63) <= value < 1 << 63:
        return value
    if kind in (float, bool) or value is None:
        return value
    if kind is str:
        return value if len(value) <= TEXT_LIMIT else value[:TEXT_LIMIT] + " [... cut]"
    numpy_integer = kind.__module__ == "numpy" and getattr(value, "ndim", 1) == 0
    if numpy_integer and getattr(getattr(value, "dtype", None), "kind", "") in ("i", "u"):
        return _plain(int(value))
    if kind is int:
        return _described(NotPlain("builtins", "int", False, "an integer too large to send"))
    return _described(NotPlain.of(value))


def _described(info: Any) -> dict[str, Any]:
    return {"$n": [info.module, info.name, info.tensor_subclass, info.text]}


def _not_sendable(value: Any) -> dict[str, Any]:
    from dlcourse.exercises.engine import NotPlain

    return _described(NotPlain.of(value))


def _attempt_record(attempt: Any) -> dict[str, Any]:
    return {
        "kind": attempt.kind,
        "value": [_plain(v) for v in attempt.value],
        "args_after": [_plain(a) for a in attempt.args_after],
        "detail": str(attempt.detail)[:TEXT_LIMIT],
    }


def _grad_record(attempt: Any) -> dict[str, Any]:
    return {
        "kind": attempt.kind,
        "grads": [_plain(g) for g in attempt.grads],
        "detail": str(attempt.detail)[:TEXT_LIMIT],
    }


def _encoded(record: dict[str, Any]) -> bytes:
    """``record`` on the wire; a record too large to send becomes one that says so."""
    from dlcourse.exercises.wire import encode

    data = encode(record, describe=_not_sendable)
    if len(data) > RECORD_LIMIT:
        data = encode({"too large": len(data)})
    return data


# --------------------------------------------------------------------------- running

# The deepest recursion learner code may ask for (sys.setrecursionlimit is capped at it): a
# recursion without end then stops at once with a RecursionError the learner can read, instead
# of growing millions of frames that take longer to unwind than grading allows. Python 3.10 keeps
# every Python frame on the C stack too, so it gets less.
MAX_RECURSION = 10_000 if sys.version_info >= (3, 11) else 3_000


def _cap_recursion() -> None:
    """Replace ``sys.setrecursionlimit`` by one that never goes above :data:`MAX_RECURSION`."""
    original = sys.setrecursionlimit

    def setrecursionlimit(limit: int) -> None:
        original(min(int(limit), MAX_RECURSION))

    setrecursionlimit.__doc__ = original.__doc__
    sys.setrecursionlimit = setrecursionlimit


def _exited(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return (
            f"your code called sys.exit({exc.code if exc.code is not None else ''}) (or raised "
            "SystemExit): return a value instead"
        )
    return f"your code raised {type(exc).__name__}, which stops a program: return a value instead"


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
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        where = f"line {exc.lineno}: {exc.msg}" if isinstance(exc, SyntaxError) else str(exc)
        return {"kind": "syntax", "detail": where[:TEXT_LIMIT]}
    try:
        call_with_time_limit(lambda: exec(code, namespace), timeout)
    except TimeLimitExceeded:
        return {"kind": "timeout", "detail": f"running your cell took more than {timeout:g} s"}
    except Exception as exc:
        return {"kind": "raised", "detail": learner_traceback(exc)[:TEXT_LIMIT]}
    except BaseException as exc:  # SystemExit, KeyboardInterrupt: this cell's problem only
        return {"kind": "exited", "detail": _exited(exc)}
    return {"kind": "ok", "detail": ""}


def _call_all(item: dict[str, Any], fn: Any, sets: list[dict[str, Any]]) -> dict[str, Any]:
    """Call the learner's ``fn`` on every case of ``sets``, as ``Exercise.check`` would; stop at
    the first call that does not return (the verdict stops there too)."""
    from dlcourse.exercises.engine import Attempt, attempt, clone_inputs, grad_attempt

    limits = {"timeout": float(item["timeout"]), "forbidden": tuple(item["forbidden"])}
    record: dict[str, Any] = {"found": callable(fn), "sets": []}
    if not callable(fn):
        return record
    for one_set in sets:
        attempts, grads = [], []
        for args in one_set["cases"]:
            args = tuple(args)
            try:
                got = attempt(fn, clone_inputs(args), **limits)
                grad = grad_attempt(fn, args, **limits) if item["grad"] else None
            except BaseException as exc:  # SystemExit and friends, from learner code
                got, grad = Attempt("exited", detail=_exited(exc)), None
            attempts.append(_attempt_record(got))
            grads.append(_grad_record(grad) if grad is not None else None)
            if got.kind != "returned":
                break
        record["sets"].append({"label": one_set["label"], "attempts": attempts, "grads": grads})
        if got.kind != "returned":  # the verdict stops there: skip the other sets
            break
    return record


def _results_fd(arg: str | int) -> int:
    """The results pipe from the command line: a file descriptor's number (POSIX), or ``h``
    and an inherited handle's number (Windows)."""
    if isinstance(arg, str) and arg.startswith("h"):
        import msvcrt

        return msvcrt.open_osfhandle(int(arg[1:]), os.O_WRONLY)
    return int(arg)


def main(job_dir: str, results_at: str | int) -> int:
    """The grading process's whole life (see the module docstring); its exit status is 0 when it
    got to the end, and anything that went wrong in its own machinery is sent as ``crashed``.
    ``results_at``: where the results pipe is (:func:`_results_fd`)."""
    results = _Results(_results_fd(results_at))
    try:
        _main(Path(job_dir), results)
    except BaseException as exc:  # MemoryError at the limit, and the like: say what it was
        results.send("crashed", f"{type(exc).__name__}: {exc}"[:2000].encode(errors="replace"))
        sys.stdout.flush()
        os._exit(70)
    sys.stdout.flush()
    os._exit(0)  # not waiting for threads the learner's code may have left running


def _main(job: Path, results: _Results) -> None:
    spec = json.loads((job / "spec.json").read_text(encoding="utf-8"))
    _set_limits(spec["limits"])
    results.progress("starting")

    import torch

    torch.set_num_threads(1)
    # Everything the learner's side needs, before the fence goes up (it hides the package).
    import dlcourse.exercises.engine
    import dlcourse.exercises.forbidden  # noqa: F401
    from dlcourse.exercises.given import rebuild
    from dlcourse.exercises.wire import decode

    # Every input, as the grader made it, before any learner code runs.
    inputs = decode((job / "inputs.wire").read_bytes(), given=rebuild, max_tensor_bytes=1 << 30)

    work = job / "work"
    fence = _Fence(str(work), _read_roots(spec["package_parent"]))
    how = _landlock(str(work), fence.read_roots)
    sys.addaudithook(fence)
    fence.on = True
    results.send("fence", how.encode())
    os.chdir(work)
    _cap_recursion()

    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    exec(compile(PREAMBLE, "<preamble>", "exec"), namespace)
    for cell in spec["cells"]:
        results.progress(f"cell {cell['label']}")
        record = _run_cell(cell["source"], cell["label"], namespace, spec["cell_timeout"])
        results.send(f"cell-{cell['index']}", _encoded(record))

    for item in spec["exercises"]:
        results.progress(f"exercise {item['name']}")
        start = time.perf_counter()
        record = _call_all(item, namespace.get(item["function"]), inputs[item["name"]])
        record["seconds"] = time.perf_counter() - start
        results.send(f"exercise-{item['name']}", _encoded(record))
    results.progress("done")
