"""The fence around a grading process: what learner code there may read, write and start.

Layers, each independent of the others (:mod:`dlcourse.exercises.sandbox` sets them up before any
learner code runs): resource limits (CPU, memory, file size, open files, processes), Landlock
(Linux 5.13+: the kernel refuses files outside the allowed folders, TCP and signals), and an
audit hook (:func:`sys.addaudithook`) that turns the same rules into errors a learner can read.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from pathlib import Path
from typing import Any

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
    "socket.__new__": "use the network",
    "socket.connect": "use the network",
    "socket.bind": "use the network",
    "socket.sendto": "use the network",  # UDP: a datagram needs no connection
    "socket.sendmsg": "use the network",
    "socket.getaddrinfo": "use the network",
    "socket.gethostbyname": "use the network",
    "socket.gethostbyaddr": "use the network",
    "socket.getnameinfo": "use the network",
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
    tasks = _tasks_counted()
    if tasks is not None:  # counts threads too, of all this user's processes (Linux)
        wanted["RLIMIT_NPROC"] = tasks + limits["extra_tasks"]
    for name, value in wanted.items():
        which = getattr(resource, name, None)
        if which is None:
            continue
        _, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        # CPU: SIGXCPU at the limit (a death the grader can name), SIGKILL a second later
        # (should the learner's code catch SIGXCPU); the others: soft and hard the same.
        ceiling = value + 1 if name == "RLIMIT_CPU" else value
        ceiling = ceiling if hard == resource.RLIM_INFINITY else min(ceiling, hard)
        with contextlib.suppress(ValueError, OSError):  # macOS refuses RLIMIT_AS: others apply
            resource.setrlimit(which, (value, ceiling))


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


# The grader's count of its user's tasks, when it started this process in namespaces
# (dlcourse.exercises.isolation.HOST_TASKS_ENV_VAR; not imported: this module stays small).
_HOST_TASKS_ENV_VAR = "DLCOURSE_HOST_TASKS"


def _tasks_counted() -> int | None:
    """The tasks RLIMIT_NPROC counts against this process now.

    The kernel counts a real user's tasks. In a user namespace of its own (the grader's
    bubblewrap or unshare), Linux 5.14 and later count that namespace's tasks only, which are
    the tasks this process sees in its PID namespace's /proc; older kernels count all the
    user's tasks, most of which that /proc does not show, so the grader's count (taken before
    it started this process, and passed in the environment) is added."""
    inside = _tasks_of_user()
    host = os.environ.get(_HOST_TASKS_ENV_VAR, "")
    if not host.isdigit() or _kernel_at_least(5, 14):
        return inside
    return int(host) + (inside or 0)


def _kernel_at_least(major: int, minor: int) -> bool:
    if not sys.platform.startswith("linux"):
        return True
    numbers = []
    for part in os.uname().release.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit()) if part else ""
        numbers.append(int(digits) if digits else 0)
    return tuple(numbers) >= (major, minor)


# --------------------------------------------------------------------------- the fence


def _read_roots(package_parent: str) -> list[str]:
    """Folders the learner's code may read: Python's, the libraries' and the system's; not the
    ``dlcourse`` package (it holds the reference solutions: the process imports what it needs
    before the fence goes up), nor the folder around it (an instructor's files may be there)."""
    import torch

    import dlcourse

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots.update(p for p in sys.path if p and p != package_parent)
    roots.add(str(Path(torch.__file__).parent))
    roots.update(
        ("/usr", "/lib", "/lib64", "/proc/self", "/proc/cpuinfo", "/sys/devices/system/cpu")
    )
    hidden = [os.path.realpath(Path(dlcourse.__file__).parent)]
    real = {os.path.realpath(r) for r in roots if os.path.exists(r)}
    return sorted(_without(real, hidden))


def _without(roots: set[str], hidden: list[str]) -> set[str]:
    """``roots`` less the folders in ``hidden``: a root inside one is dropped; a root that holds
    one (site-packages, with dlcourse installed in it) is replaced by its other entries, level by
    level down to the hidden folder (Landlock only adds permissions: it cannot take one away)."""

    def inside(path: str, folder: str) -> bool:
        return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)

    out: set[str] = set()
    todo = list(roots)
    while todo:
        root = todo.pop()
        if any(inside(root, h) for h in hidden):
            continue
        if not any(inside(h, root) for h in hidden):
            out.add(root)
            continue
        try:
            entries = os.listdir(root)
        except OSError:
            continue
        todo.extend(os.path.join(root, e) for e in entries)
    return out


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
