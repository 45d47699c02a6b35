"""Starting a grading process, away from the grader, and stopping it at its limits.

The process itself (:mod:`dlcourse.exercises.sandbox`) runs the learner's cells; this module
starts it, reads what it prints and what it sends back (each up to a limit), stops it at the
wall-clock limit, kills whatever it left behind, and says why it ended.

On Linux the process starts in fresh user, PID, network, mount and IPC namespaces, made by a
well-kept tool from the distribution's packages: bubblewrap (``bwrap``) where it is installed and
works, else util-linux's ``unshare``. Inside, there is no network (not even the host's loopback),
``/tmp`` is private, the whole file system is read-only except the job's ``work/`` folder, which
is a size-limited tmpfs (the disk quota), and every process the learner's code starts dies with
the sandbox (the PID namespace's first process is the sandbox's: when it ends, the kernel kills
the rest). Where neither works (macOS, Windows, a kernel without unprivileged user namespaces),
the process runs in its own session with the other layers only (rlimits, Landlock, the audit
hook of :mod:`dlcourse.exercises.fence`), and the grader polls the job folder's size a few times
a second for the disk quota. Which one works is probed once per grader process.

``DLCOURSE_GRADING_ISOLATION=bwrap|unshare|none`` starts the choice at that tool (the next one
if it does not work here): for an instructor whose bubblewrap misbehaves, and for the tests.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from dlcourse.exercises.limits import RESULT_LIMIT_MB

if TYPE_CHECKING:  # pragma: no cover
    from dlcourse.exercises.grading import _Settings

WORK_QUOTA_MB = 256  # what the learner's process may write in its working folder, in all
WORK_ENTRIES = 20_000  # files and folders it may create there
ISOLATION_ENV_VAR = "DLCOURSE_GRADING_ISOLATION"
HOST_TASKS_ENV_VAR = "DLCOURSE_HOST_TASKS"  # read by fence._set_limits (the process count)
KINDS = ("bwrap", "unshare", "none")

_KEPT = 8192  # bytes of printed output kept: its start (shown) and its end (for _why_it_ended)
_POLL_S = 0.2  # how often the grader looks at the process (and, without namespaces, its folder)


# --------------------------------------------------------------------------- the launchers

_WHAT_NAMESPACES = "user, PID, network, mount and IPC namespaces"

# util-linux's unshare gives a root shell in fresh namespaces; this script (sh -c SCRIPT sh JOB
# BYTES ENTRIES COMMAND...) makes the mounts, makes every mount read-only but the work folder,
# then runs COMMAND without capabilities (setpriv), as a child: the shell stays the PID
# namespace's first process, so that COMMAND's signals behave as usual, and when it ends, the
# kernel kills every process left in the namespace. `mount --bind .`: the job folder, reached
# through the working directory once the private /tmp hides it (-c: the path as given).
_UNSHARE_SCRIPT = r"""set -e
job=$1 bytes=$2 entries=$3 private=$4
shift 4
command -v setpriv >/dev/null
cd "$job"
if [ "$private" = 1 ]; then
  mount -t tmpfs -o size=1m,nr_inodes=256,mode=755 tmpfs /tmp
  mkdir -p "$job"
  mount --no-canonicalize --bind . "$job"
fi
while read -r _ _ _ _ point _; do
  mount -o remount,bind,ro "$(printf '%b' "$point")" 2>/dev/null || true
done < /proc/self/mountinfo
mount -t tmpfs -o "size=$bytes,nr_inodes=$entries,mode=700" tmpfs "$job/work"
cd "$job/work"
set +e
setpriv --bounding-set=-all --inh-caps=-all "$@"
exit $?
"""


def _needed_under_tmp() -> list[str]:
    """The folders a grading process needs (Python, the environment, the package) that lie under
    /tmp, outermost first: a course cloned or a virtual environment made there (CI's clone is)
    would vanish behind a private /tmp. bubblewrap binds them back read-only; ``unshare``, which
    cannot reach them once /tmp is covered, leaves /tmp unprivate (read-only) instead."""
    import dlcourse

    wanted = {sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path}
    wanted.add(os.path.dirname(os.path.realpath(sys.executable)))
    wanted.add(os.path.dirname(os.path.dirname(os.path.realpath(dlcourse.__file__))))
    real = sorted({os.path.realpath(p) for p in wanted if p and os.path.isdir(p)})
    under = [p for p in real if p.startswith("/tmp/")]
    return [p for p in under if not any(p.startswith(q + os.sep) for q in under if q != p)]


def _bwrap_command(job: Path, argv: list[str], disable_userns: bool = True) -> list[str]:
    """bubblewrap: the host's file system read-only, a fresh /dev, /proc and /tmp, the job folder
    read-only at its own path, its work folder a size-limited tmpfs, no capabilities."""
    work = str(job / "work")
    return [
        "bwrap",
        "--die-with-parent",  # the grader kills bwrap: everything inside dies
        "--new-session",
        "--unshare-user",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        *(["--disable-userns"] if disable_userns else []),  # no namespaces of its own inside
        "--cap-drop",
        "ALL",
        *("--ro-bind", "/", "/"),
        *("--dev", "/dev"),
        *("--proc", "/proc"),
        *("--tmpfs", "/tmp"),
        *(arg for path in _needed_under_tmp() for arg in ("--ro-bind", path, path)),
        *("--ro-bind", str(job), str(job)),
        *("--size", str(WORK_QUOTA_MB << 20), "--tmpfs", work),
        *("--remount-ro", "/tmp"),
        *("--remount-ro", "/dev"),
        *("--chdir", work),
        "--",
        *argv,
    ]


def _unshare_command(job: Path, argv: list[str]) -> list[str]:
    return [
        "unshare",
        *("--user", "--map-root-user", "--pid", "--fork", "--kill-child"),
        *("--net", "--ipc", "--uts", "--mount", "--mount-proc"),
        "--",
        *("sh", "-c", _UNSHARE_SCRIPT, "sh", str(job), str(WORK_QUOTA_MB << 20)),
        str(WORK_ENTRIES),
        "0" if _needed_under_tmp() else "1",  # a private /tmp unless it would hide the course
        *argv,
    ]


@dataclass(frozen=True)
class _Launcher:
    """How grading processes start here: ``kind`` is one of :data:`KINDS`."""

    kind: str
    layers: str  # what the isolation field says, in words
    disable_userns: bool = True

    def command(self, job: Path, argv: list[str]) -> list[str]:
        if self.kind == "bwrap":
            return _bwrap_command(job, argv, self.disable_userns)
        if self.kind == "unshare":
            return _unshare_command(job, argv)
        return argv

    @property
    def namespaced(self) -> bool:
        return self.kind != "none"


def _layers(tool: str) -> str:
    private = tool == "bubblewrap" or not _needed_under_tmp()
    tmp = "a private /tmp" if private else "/tmp read-only, not private (the course lives under it)"
    return (
        f"{tool}: {_WHAT_NAMESPACES}; no network; {tmp}; a read-only file system but for "
        f"a {WORK_QUOTA_MB} MB working folder"
    )


def _no_namespaces(why: str) -> _Launcher:
    return _Launcher(
        "none",
        f"no namespaces ({why}): its own session; the grader stops it beyond "
        f"{WORK_QUOTA_MB} MB written",
    )


_probed: dict[str, _Launcher | str] = {}  # kind -> the launcher, or why it does not work here
_probe_lock = threading.Lock()


def _try(launcher: _Launcher) -> str:
    """Start a trivial process with ``launcher``: "" when it ran, else what went wrong."""
    with tempfile.TemporaryDirectory(prefix="dlcourse-probe-") as tmp:
        job = Path(tmp).resolve()
        (job / "work").mkdir()
        argv = [sys.executable, "-I", "-S", "-c", "import os; os.listdir('.')"]
        try:
            done = subprocess.run(
                launcher.command(job, argv),
                cwd=job / "work",
                env=_minimal_env(job / "work"),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=30,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return str(exc)
    if done.returncode == 0:
        return ""
    text = (done.stderr or done.stdout).decode("utf-8", errors="replace").strip()
    return (text.splitlines() or [f"exit status {done.returncode}"])[-1][:200]


def _probe(kind: str) -> _Launcher | str:
    if kind == "none":
        return _no_namespaces("none asked for")
    if not sys.platform.startswith("linux"):
        return f"not Linux ({sys.platform})"
    if shutil.which(kind) is None:
        return f"{kind} is not installed"
    tool = "bubblewrap" if kind == "bwrap" else "unshare"
    candidates = [_Launcher(kind, _layers(tool))]
    if kind == "bwrap":  # bubblewrap before 0.8 has no --disable-userns
        candidates.append(_Launcher(kind, _layers(tool), disable_userns=False))
    why = ""
    for launcher in candidates:
        why = _try(launcher)
        if not why:
            return launcher
    return f"{kind} does not work here: {why}"


def _launcher(kind: str | None = None) -> _Launcher:
    """The first launcher that works here, from ``kind`` on (default: the environment's
    :data:`ISOLATION_ENV_VAR`, else bubblewrap). Probed once per grader process and kind."""
    kind = kind or os.environ.get(ISOLATION_ENV_VAR) or KINDS[0]
    if kind not in KINDS:
        raise ValueError(
            f"{ISOLATION_ENV_VAR}={kind!r} is not a way to isolate grading: use one of "
            + ", ".join(KINDS)
        )
    reasons = []
    for each in KINDS[KINDS.index(kind) :]:
        with _probe_lock:
            if each not in _probed:
                _probed[each] = _probe(each)
            found = _probed[each]
        if isinstance(found, _Launcher):
            if found.kind == "none" and reasons:
                return _no_namespaces("; ".join(reasons))
            return found
        reasons.append(found)
    raise AssertionError("'none' always works")  # pragma: no cover


def available(kind: str) -> bool:
    """Whether ``kind`` (one of :data:`KINDS`) works here (probed once)."""
    return _launcher(kind).kind == kind


# --------------------------------------------------------------------------- the process


# What a process killed by a signal did, by the signal's name (not every platform has each).
_SIGNAL_TEXT = {
    "SIGSEGV": "crashed with a segmentation fault (a bad memory access)",
    "SIGABRT": "aborted (os.abort(), or a failed check inside a C library)",
    "SIGKILL": "was killed by the system (SIGKILL)",
    "SIGBUS": "crashed with a bus error (a bad memory access)",
    "SIGFPE": "crashed with a floating-point exception",
    "SIGILL": "crashed with an illegal instruction",
    "SIGTERM": "was asked to stop (SIGTERM) by something other than grading",
    "SIGPIPE": "wrote to a pipe nobody read (SIGPIPE)",
    "SIGXFSZ": "wrote a file too large",
}
_SIGNALS = {getattr(signal, n): text for n, text in _SIGNAL_TEXT.items() if hasattr(signal, n)}

# What the end of the output says when memory ran out: Python's, C++'s, torch's, the C library's.
_OUT_OF_MEMORY = (
    "MemoryError",
    "std::bad_alloc",
    "can't allocate memory",
    "Cannot allocate memory",
)
_DISK_FULL = ("No space left on device", "Disk quota exceeded")

# Why a grading process ended, in the learner's words: whole sentences (without the final full
# stop: judging.py puts each after "while running your cell for `x`, "), all in one place.
_WHY = {
    "timeout": (
        "your code ran past the {timeout:g} s grading allows a notebook, so grading stopped it "
        "(a loop that never ends?)"
    ),
    "output": (
        "your code printed more than {kb} KB (a print inside a loop?), so grading stopped it"
    ),
    "results": (
        "what your code returned was more than the {mb} MB grading takes back from a notebook "
        "(a huge tensor or string?), so grading stopped it"
    ),
    "disk": (
        "your code wrote more than {mb} MB in its working folder, the most grading allows, so "
        "grading stopped it"
    ),
    "entries": (
        "your code made more than {n} files and folders in its working folder, the most grading "
        "allows, so grading stopped it"
    ),
    "disk_full": (
        "the grading process stopped after your code filled its working folder (grading allows "
        "{mb} MB there)"
    ),
    "cpu": (
        "the grading process used up the {cpu:g} s of CPU time grading allows a notebook, so the "
        "system stopped it (a loop that never ends?)"
    ),
    "memory": (
        "the grading process ran out of memory: grading allows {mb} MB (a tensor or list too "
        "large?)"
    ),
    "killed": (
        "the grading process was killed by the system (SIGKILL), most likely for running out of "
        "memory: grading allows {mb} MB"
    ),
    "killed_or_cpu": (
        "the grading process was killed by the system (SIGKILL): it ran out of memory (grading "
        "allows {mb} MB) or used up its {cpu:g} s of CPU time"
    ),
    "signal": "the grading process {what}",
    "signal_number": "the grading process was stopped by signal {n}",
    "error": (
        "the grading process ended early (exit status {code}); the last thing it printed was: "
        "{line}"
    ),
    "exit": "the grading process ended early (exit status {code}): os._exit() in your code?",
}


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


def _host_tasks() -> int | None:
    """How many tasks the grader's user runs now, as the grader sees them (see
    :func:`dlcourse.exercises.fence._tasks_counted`)."""
    from dlcourse.exercises.fence import _tasks_of_user

    return _tasks_of_user()


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
    returncode: int | None  # negative: the signal that killed it (also through a namespace)
    stopped_for: str  # "" or why the grader stopped it
    output: str  # the start of what it printed (stdout and stderr)
    seconds: float
    results: bytes = b""  # what it sent on the results pipe, whole (up to the limit)
    isolation: str = ""  # the layers in force around it, in words
    tail: str = ""  # the end of what it printed (where a crash's last words are)
    cpu_seconds: float | None = None  # CPU time it used, where known (not through bubblewrap)
    limits: dict = field(default_factory=dict)  # spec.json's "limits"


class _Reader(threading.Thread):
    """Reads a pipe to its end: keeps the start and the end, or all of it; calls ``over`` once
    when more than ``limit`` bytes came."""

    def __init__(
        self, fh: BinaryIO, limit: int, over: Callable[[], None], keep_all: bool = False
    ) -> None:
        super().__init__(daemon=True)
        self.fh, self.limit, self.over, self.keep_all = fh, limit, over, keep_all
        self.head, self.end, self.total = bytearray(), bytearray(), 0

    def run(self) -> None:
        try:
            while chunk := self.fh.read1(1 << 16):
                self.total += len(chunk)
                if self.keep_all:
                    if self.total <= self.limit:
                        self.head.extend(chunk)
                else:
                    if len(self.head) < _KEPT:
                        self.head.extend(chunk[: _KEPT - len(self.head)])
                    self.end.extend(chunk)
                    del self.end[: max(0, len(self.end) - _KEPT)]
                if self.total > self.limit:
                    self.over()
                    if self.keep_all:
                        return
        except (OSError, ValueError):
            pass


def _folder_use(folder: Path, skip: set[str]) -> tuple[int, int]:
    """Bytes (allocated) and entries under ``folder``, not following links; stops counting
    beyond :data:`WORK_ENTRIES` entries."""
    used = entries = 0
    stack = [folder]
    while stack and entries <= WORK_ENTRIES:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    if entry.name in skip and os.path.dirname(entry.path) == str(folder):
                        continue
                    entries += 1
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    used += getattr(st, "st_blocks", 0) * 512 or st.st_size
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
        except OSError:
            continue
    return used, entries


def _wait(proc: subprocess.Popen, timeout: float) -> float | None:
    """Wait up to ``timeout`` s for ``proc``; its CPU seconds (and those of the processes it
    waited for) once it ended, else None."""
    if not hasattr(os, "wait4"):
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return 0.0
    deadline = time.monotonic() + timeout
    while True:
        try:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        except ChildProcessError:
            proc.wait()
            return 0.0
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() >= deadline:
            return None
        time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))


def _pass_to_child(fd: int) -> tuple[str, dict[str, Any]]:
    """How the results pipe's write end reaches the grading process: its number and
    ``pass_fds`` on POSIX; on Windows (no ``pass_fds``) an inheritable handle, named ``h<handle>``
    on the command line and listed alone in the start-up information's handle list."""
    if os.name != "nt":
        return str(fd), {"pass_fds": (fd,)}
    import msvcrt

    handle = msvcrt.get_osfhandle(fd)
    os.set_handle_inheritable(handle, True)
    info = subprocess.STARTUPINFO(lpAttributeList={"handle_list": [handle]})
    return f"h{handle}", {"startupinfo": info, "close_fds": True}


def _run_process(
    job: Path,
    settings: _Settings,
    *,
    boot: str | None = None,
    isolation: str | None = None,
) -> _ProcessEnd:
    """Run the grading process for the job in ``job``; stop it at the limits.

    ``boot`` replaces :data:`dlcourse.exercises.sandbox.BOOT` (the tests' own programs);
    ``isolation`` starts the choice of launcher at that kind (see :func:`_launcher`)."""
    if boot is None:
        from dlcourse.exercises.sandbox import BOOT as boot
    job = job.resolve()
    spec = json.loads((job / "spec.json").read_text(encoding="utf-8"))
    launcher = _launcher(isolation)
    result_limit = RESULT_LIMIT_MB << 20
    env = _minimal_env(job / "work")
    if launcher.namespaced:
        tasks = _host_tasks()
        if tasks is not None:
            env[HOST_TASKS_ENV_VAR] = str(tasks)
    read_end, write_end = os.pipe()
    results_arg, passing = _pass_to_child(write_end)
    argv = [sys.executable, "-I", "-c", boot, str(job), spec["package_parent"], results_arg]
    start = time.perf_counter()
    try:
        proc = subprocess.Popen(
            launcher.command(job, argv),
            cwd=job / "work",
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **passing,
        )
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    stopped = {"why": ""}
    lock = threading.Lock()

    def stop(why: str) -> None:
        with lock:
            if not stopped["why"]:
                stopped["why"] = why
        _kill(proc)

    assert proc.stdout is not None
    output = _Reader(
        proc.stdout,
        settings.output_limit,
        lambda: stop(_WHY["output"].format(kb=settings.output_limit >> 10)),
    )
    results = _Reader(
        open(read_end, "rb"),  # noqa: SIM115 (closed below, once read)
        result_limit,
        lambda: stop(_WHY["results"].format(mb=RESULT_LIMIT_MB)),
        keep_all=True,
    )
    output.start()
    results.start()
    deadline = time.monotonic() + settings.timeout
    cpu = None
    while cpu is None:
        cpu = _wait(proc, min(_POLL_S, max(0.0, deadline - time.monotonic())))
        if cpu is not None:
            break
        if time.monotonic() >= deadline:
            stop(_WHY["timeout"].format(timeout=settings.timeout))
            cpu = _wait(proc, 30) or 0.0
            break
        if not launcher.namespaced:  # the disk quota, as a running total
            used, entries = _folder_use(job, {"spec.json", "inputs.wire"})
            if used > WORK_QUOTA_MB << 20:
                stop(_WHY["disk"].format(mb=WORK_QUOTA_MB))
            elif entries > WORK_ENTRIES:
                stop(_WHY["entries"].format(n=WORK_ENTRIES))
    _kill(proc)  # anything it started and left behind in its session
    # In namespaces, every process inside is gone now and the pipes end at once; without, a
    # process that left the session may hold them: give up on it after a moment.
    output.join(5)
    results.join(5 if launcher.namespaced else 1)
    if not results.is_alive():
        results.fh.close()
    code = proc.returncode
    if launcher.namespaced and code is not None and code > 128 and (code - 128) < 65:
        code = -(code - 128)  # the tools report a signal as 128 + its number, as a shell does
    return _ProcessEnd(
        code,
        stopped["why"],
        bytes(output.head).decode("utf-8", errors="replace"),
        time.perf_counter() - start,
        results=bytes(results.head) if results.total <= result_limit else b"",
        isolation=launcher.layers,
        tail=bytes(output.end).decode("utf-8", errors="replace"),
        cpu_seconds=None if launcher.kind == "bwrap" else cpu,  # bwrap's own, not the child's
        limits=dict(spec.get("limits", {})),
    )


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[-1] if lines else ""
    line = "".join(c if c.isprintable() else " " for c in line)
    return line if len(line) <= 200 else line[:199] + "…"


def _why_it_ended(end: _ProcessEnd, settings: _Settings) -> str:
    """Why the grading process ended before it finished, as honestly as can be known: what the
    grader stopped it for, else the limit or signal that killed it, else its last words."""
    if end.stopped_for:
        return end.stopped_for
    code = end.returncode
    mb = end.limits.get("memory_mb", settings.memory_mb)
    cpu_limit = end.limits.get("cpu_s")
    killed = -code if code is not None and code < 0 else None
    sigkill = getattr(signal, "SIGKILL", None)
    if killed is not None and (
        killed == getattr(signal, "SIGXCPU", None)  # the soft CPU limit; the hard one is 1 s more
        or (killed == sigkill and cpu_limit and (end.cpu_seconds or -1.0) >= cpu_limit)
    ):
        return _WHY["cpu"].format(cpu=cpu_limit or settings.timeout)
    if any(mark in end.tail for mark in _OUT_OF_MEMORY) and code != 0:
        return _WHY["memory"].format(mb=mb)
    if any(mark in end.tail for mark in _DISK_FULL) and code != 0:
        return _WHY["disk_full"].format(mb=WORK_QUOTA_MB)
    if killed is not None:
        if killed not in _SIGNALS:
            return _WHY["signal_number"].format(n=killed)
        if killed == sigkill:
            key = "killed" if end.cpu_seconds is not None or not cpu_limit else "killed_or_cpu"
            return _WHY[key].format(mb=mb, cpu=cpu_limit)
        return _WHY["signal"].format(what=_SIGNALS[killed])
    line = _last_line(end.tail)
    if code != 0 and line:  # it said something before it ended: that, not a guess
        return _WHY["error"].format(code=code, line=line)
    return _WHY["exit"].format(code=code)  # a clean exit, or one without a word: os._exit()
