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

import contextlib
import ctypes
import json
import linecache
import os
import sys
import time
from pathlib import Path
from typing import Any

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

# What learner code may not do here: the audit events refused, and why (in the learner's words).
_REFUSED = {
    "os.system": "start other programs",
    "os.exec": "start other programs",
    "os.spawn": "start other programs",
    "os.posix_spawn": "start other programs",
    "os.startfile": "start other programs",
    "subprocess.Popen": "start other programs",
    "os.fork": "start new processes",
    "os.forkpty": "start new processes",
    "os.kill": "send signals to processes",
    "os.killpg": "send signals to processes",
    "signal.pthread_kill": "send signals to processes",
    "socket.connect": "use the network",
    "socket.bind": "use the network",
    "socket.getaddrinfo": "use the network",
    "ctypes.dlopen": "load C libraries (ctypes)",
    "ctypes.dlsym": "load C libraries (ctypes)",
    "ctypes.call_function": "call C code (ctypes)",
    "ctypes.string_at": "read raw memory (ctypes)",
    "ctypes.wstring_at": "read raw memory (ctypes)",
    "ctypes.cdata": "read raw memory (ctypes)",
    "ctypes.addressof": "read raw memory (ctypes)",
    "sys._current_frames": "inspect the grader's frames",
}
_WRITES = {
    *("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate"),
    *("os.symlink", "os.link", "os.utime", "shutil.rmtree", "shutil.copyfile", "shutil.move"),
}
_READS = {"os.listdir", "os.scandir", "glob.glob", "os.chdir"}


# --------------------------------------------------------------------------- limits


def _set_limits(limits: dict[str, int]) -> None:
    """Soft and hard resource limits (the hard one cannot be raised again without privileges)."""
    try:
        import resource
    except ImportError:  # Windows: only the grader's wall-clock limit applies
        return
    wanted = {
        "RLIMIT_CPU": limits["cpu_s"],
        "RLIMIT_AS": limits["memory_mb"] << 20,
        "RLIMIT_FSIZE": limits["file_mb"] << 20,
        "RLIMIT_NOFILE": 256,
        "RLIMIT_CORE": 0,
    }
    tasks = _tasks_of_user()
    if tasks is not None:  # counts threads too, of all this user's processes (Linux)
        wanted["RLIMIT_NPROC"] = tasks + limits["extra_tasks"]
    for name, value in wanted.items():
        which = getattr(resource, name, None)
        if which is None:
            continue
        _, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        with contextlib.suppress(ValueError, OSError):  # macOS refuses RLIMIT_AS: others apply
            resource.setrlimit(which, (value, value))


def _tasks_of_user() -> int | None:
    """How many tasks (threads) this user runs now: RLIMIT_NPROC counts them all (Linux)."""
    uid = os.getuid()
    total = 0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        if int(fields.get("Uid", "-1").split()[0]) == uid:
            total += int(fields.get("Threads", "1"))
    return total


# --------------------------------------------------------------------------- the fence


def _read_roots(package_parent: str) -> list[str]:
    """Folders the learner's code may read: Python's, the libraries', the package's own folder
    (not the folder around it, where an instructor's files may be), and the system's."""
    import torch

    import dlcourse

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots.update(p for p in sys.path if p and p != package_parent)
    roots.add(str(Path(dlcourse.__file__).parent))
    roots.add(str(Path(torch.__file__).parent))
    roots.update(("/usr", "/lib", "/lib64", "/proc/self", "/sys/devices/system/cpu"))
    return sorted({os.path.realpath(r) for r in roots if os.path.exists(r)})


class _Fence:
    """The audit hook: the same rules as Landlock's, as errors a learner can read."""

    def __init__(self, job: str, read_roots: list[str]) -> None:
        self.job = os.path.realpath(job)
        self.read_roots = read_roots
        self.on = False

    @staticmethod
    def _inside(path: str, roots: list[str]) -> bool:
        return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)

    def _check_path(self, path: Any, write: bool) -> None:
        if isinstance(path, int) or path is None:
            return
        try:
            real = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return
        if real == os.devnull or self._inside(real, [self.job]):
            return
        if not write and self._inside(real, self.read_roots):
            return
        verb = "write" if write else "read"
        raise PermissionError(
            f"grading does not let your code {verb} {real}: it may use only its own working "
            "folder (the current one)"
        )

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.on:
            return
        for prefix, why in _REFUSED.items():
            if event == prefix or event.startswith(prefix + "."):
                raise PermissionError(f"grading does not let your code {why} ({event})")
        if event == "open" and args:
            mode, flags = (args[1], args[2]) if len(args) >= 3 else ("r", 0)
            write = any(c in str(mode or "") for c in "wax+") or bool(
                (flags or 0) & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND)
            )
            self._check_path(args[0], write)
        elif event in _WRITES:
            for a in args:
                if isinstance(a, str | bytes | os.PathLike):
                    self._check_path(a, True)
        elif event in _READS and args:
            self._check_path(args[0] if args[0] is not None else ".", False)


# Landlock (linux/landlock.h): syscall numbers are the same on every architecture since 5.13.
_LL_CREATE, _LL_ADD_RULE, _LL_RESTRICT = 444, 445, 446
_PR_SET_NO_NEW_PRIVS = 38
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1, 2, 4, 8


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


def _landlock(job: str, read_roots: list[str]) -> str:
    """Restrict this process with Landlock; say what was done (or why not)."""
    if not sys.platform.startswith("linux"):
        return "no Landlock (not Linux): the audit hook alone fences file access"
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(_LL_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        return "no Landlock (this kernel has it off): the audit hook alone fences file access"
    fs_bits = {1: 13, 2: 14, 3: 15, 4: 15, 5: 16}.get(abi, 16)  # REFER 2, TRUNCATE 3, IOCTL 5
    handled_fs = (1 << fs_bits) - 1
    attr = _RulesetAttr(handled_fs, 3 if abi >= 4 else 0, 3 if abi >= 6 else 0)  # tcp; signals
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    fd = libc.syscall(_LL_CREATE, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if fd < 0:
        return f"no Landlock (ruleset refused: {os.strerror(ctypes.get_errno())})"
    read = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
    file_rights = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | (1 << 14 if abi >= 3 else 0)
    rules = [(r, read) for r in read_roots] + [(job, handled_fs), (os.devnull, file_rights)]
    try:
        for path, access in rules:
            try:
                pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            if not os.path.isdir(path):
                access &= file_rights
            rule = _PathBeneath(access & handled_fs, pfd)
            libc.syscall(_LL_ADD_RULE, fd, 1, ctypes.byref(rule), ctypes.c_uint32(0))
            os.close(pfd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return "no Landlock (no_new_privs refused)"
        if libc.syscall(_LL_RESTRICT, fd, ctypes.c_uint32(0)) != 0:
            return f"no Landlock (restrict refused: {os.strerror(ctypes.get_errno())})"
    finally:
        os.close(fd)
    return f"Landlock ABI {abi}: files, network" + (" and signals" if abi >= 6 else "")


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
