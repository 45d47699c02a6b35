"""Starting a grading process, away from the grader, and stopping it at its limits.

The process itself (:mod:`dlcourse.exercises.sandbox`) runs the learner's cells; this module
starts it with a minimal environment in its own session, reads what it prints (up to a limit),
stops it at the wall-clock limit, kills whatever it left behind, and says why it ended.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from dlcourse.exercises.grading import _Settings


# --------------------------------------------------------------------------- the process


# What a process killed by a signal did, by the signal's name (not every platform has each).
_SIGNAL_TEXT = {
    "SIGSEGV": "crashed with a segmentation fault (a bad memory access)",
    "SIGABRT": "aborted (os.abort(), or a failed check inside a C library)",
    "SIGKILL": "was killed by the system (out of memory?)",
    "SIGBUS": "crashed with a bus error (a bad memory access)",
    "SIGFPE": "crashed with a floating-point exception",
    "SIGILL": "crashed with an illegal instruction",
    "SIGXCPU": "used up its CPU time",
    "SIGXFSZ": "wrote a file too large",
}
_SIGNALS = {getattr(signal, n): text for n, text in _SIGNAL_TEXT.items() if hasattr(signal, n)}


def _minimal_env(work: Path) -> dict[str, str]:
    env = {
        "PATH": os.defpath,
        "HOME": str(work),
        "TMPDIR": str(work),
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
    }
    for keep in ("LD_LIBRARY_PATH", "SYSTEMROOT"):  # conda's libraries; Windows needs it
        if keep in os.environ:
            env[keep] = os.environ[keep]
    return env


def _kill(proc: subprocess.Popen) -> None:
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError, OSError):
        pass


@dataclass
class _ProcessEnd:
    returncode: int | None
    stopped_for: str  # "" or why the grader stopped it
    output: str
    seconds: float


def _run_process(job: Path, settings: _Settings) -> _ProcessEnd:
    """Run the grading process for the job in ``job``; stop it at the limits."""
    from dlcourse.exercises.sandbox import BOOT

    package_parent = json.loads((job / "spec.json").read_text(encoding="utf-8"))["package_parent"]
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-I", "-c", BOOT, str(job), package_parent],
        cwd=job / "work",
        env=_minimal_env(job / "work"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    kept = bytearray()
    stopped = {"why": ""}

    def read() -> None:
        total = 0
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(1 << 16):
            total += len(chunk)
            if len(kept) < 8192:
                kept.extend(chunk[: 8192 - len(kept)])
            if total > settings.output_limit and not stopped["why"]:
                stopped["why"] = (
                    f"your code printed more than {settings.output_limit >> 10} KB (a print "
                    "inside a loop?), so grading stopped it"
                )
                _kill(proc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc.wait(settings.timeout)
    except subprocess.TimeoutExpired:
        stopped["why"] = stopped["why"] or (
            f"your code ran past the {settings.timeout:g} s grading allows a notebook, so "
            "grading stopped it (a loop that never ends?)"
        )
        _kill(proc)
        proc.wait()
    _kill(proc)  # anything it started and left behind
    reader.join(5)
    return _ProcessEnd(
        proc.returncode,
        stopped["why"],
        kept.decode("utf-8", errors="replace"),
        time.perf_counter() - start,
    )


def _why_it_ended(end: _ProcessEnd, settings: _Settings) -> str:
    if end.stopped_for:
        return end.stopped_for
    code = end.returncode
    if code is not None and code < 0:
        text = _SIGNALS.get(-code, f"was stopped by signal {-code}")
        if -code == getattr(signal, "SIGXCPU", None):
            text += f" ({settings.timeout:g} s)"
        if -code == getattr(signal, "SIGKILL", None):
            text += f" (grading allows {settings.memory_mb} MB)"
        return f"the grading process {text}"
    return f"the grading process ended early (exit status {code}): os._exit() in your code?"
