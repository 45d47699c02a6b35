"""dlcourse.exercises.fence: what the grading process may read, write, start and send.

An audit hook cannot be removed, and Landlock cannot be lifted: each test that turns one on does
it in a Python process of its own. tests/test_grading.py checks the fence with the sandbox.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import dlcourse
from dlcourse.exercises import fence

PACKAGE = Path(dlcourse.__file__).resolve().parent


def _python(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )


# --------------------------------------------------------------------------- what it may read


def test_the_read_roots_leave_out_the_package_and_its_solutions() -> None:
    import torch

    roots = fence._read_roots(str(PACKAGE.parent))
    assert not any(fence._Fence._inside(str(PACKAGE), [r]) for r in roots), roots
    assert not any(fence._Fence._inside(r, [str(PACKAGE)]) for r in roots), roots
    assert fence._Fence._inside(os.path.realpath(torch.__file__), roots)
    assert fence._Fence._inside(os.path.realpath(os.__file__), roots)


def test_a_root_that_holds_the_package_is_replaced_by_its_other_entries(tmp_path: Path) -> None:
    """dlcourse installed in a site-packages that is a read root: that folder's other entries,
    level by level; a root inside the package is dropped."""
    site = tmp_path / "lib" / "site-packages"
    for name in ("numpy/core", "dlcourse/exercises", "dlcourse-0.1.dist-info", "six.py"):
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".py"):
            (site / name).write_text("")
        else:
            (site / name).mkdir(parents=True, exist_ok=True)
    (tmp_path / "bin").mkdir()
    hidden = str(site / "dlcourse")
    roots = {str(tmp_path), str(site / "dlcourse" / "exercises"), "/usr"}
    assert fence._without(roots, [hidden]) == {
        str(tmp_path / "bin"),
        str(site / "numpy"),
        str(site / "dlcourse-0.1.dist-info"),
        str(site / "six.py"),
        "/usr",
    }


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Landlock is Linux's")
def test_landlock_keeps_the_package_source_from_the_learner(tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    solutions = PACKAGE / "exercises" / "gradient_descent.py"
    script = f"""
import sys
from dlcourse.exercises import fence
how = fence._landlock({str(job)!r}, fence._read_roots({str(PACKAGE.parent)!r}))
if not how.startswith("Landlock"):
    print("SKIP", how); sys.exit(0)
import json  # Python's own folders stay readable
for path in ({str(solutions)!r}, {str(PACKAGE / "__init__.py")!r}):
    try:
        open(path).read(); print("READ")
    except PermissionError:
        print("REFUSED")
"""
    out = _python(script)
    assert out.returncode == 0, out.stderr
    if out.stdout.startswith("SKIP"):
        pytest.skip(out.stdout)
    assert out.stdout.split() == ["REFUSED", "REFUSED"]


# --------------------------------------------------------------------------- the network


def test_the_audit_hook_refuses_udp_and_new_sockets(tmp_path: Path) -> None:
    """A datagram needs no connect(): sendto and sendmsg are refused, and so is a new socket."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(1.0)
    port = listener.getsockname()[1]
    script = f"""
import socket, sys
from dlcourse.exercises import fence
early = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # made before the fence went up
hook = fence._Fence({str(tmp_path)!r}, [])
sys.addaudithook(hook)
hook.on = True
attempts = [
    lambda: early.sendto(b"spec.json", ("127.0.0.1", {port})),
    lambda: early.sendmsg([b"spec.json"], [], 0, ("127.0.0.1", {port})),
    lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
]
for attempt in attempts:
    try:
        attempt(); print("ALLOWED")
    except PermissionError as exc:
        print("REFUSED" if "use the network" in str(exc) else exc)
"""
    try:
        out = _python(script)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["REFUSED"] * 3, out.stdout
        with pytest.raises(TimeoutError):
            listener.recvfrom(100)
    finally:
        listener.close()


# --------------------------------------------------------------------------- limits


def test_the_process_count_adds_the_graders_on_old_kernels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In namespaces Linux 5.14+ counts the namespace's tasks (what /proc shows inside); older
    kernels count all the user's, so the grader's count is added."""
    monkeypatch.setattr(fence, "_tasks_of_user", lambda: 3)
    monkeypatch.delenv(fence._HOST_TASKS_ENV_VAR, raising=False)
    assert fence._tasks_counted() == 3  # no namespaces: the grader's /proc is this one
    monkeypatch.setenv(fence._HOST_TASKS_ENV_VAR, "120")
    monkeypatch.setattr(fence, "_kernel_at_least", lambda major, minor: True)
    assert fence._tasks_counted() == 3
    monkeypatch.setattr(fence, "_kernel_at_least", lambda major, minor: False)
    assert fence._tasks_counted() == 123
    monkeypatch.setenv(fence._HOST_TASKS_ENV_VAR, "not a number")
    assert fence._tasks_counted() == 3


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads os.uname() of Linux")
def test_the_kernel_version_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    def release(text: str) -> None:
        monkeypatch.setattr(fence.os, "uname", lambda: os.uname_result(("", "", text, "", "")))

    release("5.13.0-52-generic")
    assert not fence._kernel_at_least(5, 14)
    release("5.14.21-150400.24-default")
    assert fence._kernel_at_least(5, 14)
    release("6.1.0-rc3")
    assert fence._kernel_at_least(5, 14)


@pytest.mark.skipif(os.name != "posix", reason="resource limits are POSIX's")
def test_the_cpu_limit_warns_before_it_kills() -> None:
    """SIGXCPU at the limit (a death the grader can name), SIGKILL one second later."""
    script = """
import resource
from dlcourse.exercises import fence
fence._set_limits({"cpu_s": 7, "memory_mb": 4096, "file_mb": 64, "extra_tasks": 64})
print(*resource.getrlimit(resource.RLIMIT_CPU), *resource.getrlimit(resource.RLIMIT_FSIZE))
"""
    out = _python(script)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["7", "8", str(64 << 20), str(64 << 20)]
