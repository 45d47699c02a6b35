"""dlcourse.exercises.isolation: the grading process starts in namespaces (bubblewrap, else
unshare) or, without them, alone in its session; it is stopped at its limits, and the grader says
honestly why it ended.

Each test runs a small Python program through ``_run_process`` in place of the sandbox
(``boot=``): the program is the job's ``spec.json["program"]``, run with the sandbox's argv (job,
package parent, the results pipe's fd). Tests that need namespaces run under each tool that works
here and are skipped, with the reason, under the others; the fallback ("none") is forced with
``isolation="none"``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
import types
import uuid
from pathlib import Path

import pytest

from dlcourse.exercises import isolation
from dlcourse.exercises.limits import RESULT_LIMIT_MB

BOOT = "import json, sys; exec(json.load(open(sys.argv[1] + '/spec.json'))['program'])"
LIMITS = {"cpu_s": 60, "memory_mb": 4096, "file_mb": 4096, "extra_tasks": 64}
# The fence's limits, set by the program itself as the sandbox does (before anything else).
SET_LIMITS = "from dlcourse.exercises import fence; fence._set_limits({limits!r})\n"


def _settings(timeout: float = 30.0, output_limit: int = 1 << 20) -> types.SimpleNamespace:
    return types.SimpleNamespace(timeout=timeout, memory_mb=4096, output_limit=output_limit)


def _run(
    tmp_path: Path,
    program: str,
    kind: str,
    limits: dict | None = None,
    settings: types.SimpleNamespace | None = None,
) -> isolation._ProcessEnd:
    job = tmp_path / f"job-{uuid.uuid4().hex[:8]}"
    (job / "work").mkdir(parents=True)
    spec = {
        "package_parent": str(Path(isolation.__file__).resolve().parents[2]),
        "limits": {**LIMITS, **(limits or {})},
        "program": program,
    }
    (job / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    return isolation._run_process(job, settings or _settings(), boot=BOOT, isolation=kind)


def _why(end: isolation._ProcessEnd) -> str:
    return isolation._why_it_ended(end, _settings())


@pytest.fixture(params=["bwrap", "unshare"])
def namespaced(request: pytest.FixtureRequest) -> str:
    """A tool that makes namespaces, when it works here."""
    kind = request.param
    if not isolation.available(kind):
        pytest.skip(f"{kind} does not work here: {isolation._probed.get(kind)}")
    return kind


@pytest.fixture(params=["bwrap", "unshare", "none"])
def any_kind(request: pytest.FixtureRequest) -> str:
    kind = request.param
    if not isolation.available(kind):
        pytest.skip(f"{kind} does not work here: {isolation._probed.get(kind)}")
    return kind


def _default_kind() -> str:
    return isolation._launcher().kind


# --------------------------------------------------------------------------- choosing the launcher


def test_the_choice_can_be_forced_and_a_failing_tool_falls_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(isolation.ISOLATION_ENV_VAR, "none")
    assert isolation._launcher().kind == "none"
    monkeypatch.setenv(isolation.ISOLATION_ENV_VAR, "chroot")
    with pytest.raises(ValueError, match="use one of bwrap, unshare, none"):
        isolation._launcher()
    monkeypatch.delenv(isolation.ISOLATION_ENV_VAR)
    # Neither tool works: no crash, the fallback, and why in its description.
    monkeypatch.setattr(isolation, "_probed", {})
    monkeypatch.setattr(isolation, "_try", lambda launcher: f"{launcher.kind}: uid map refused")
    monkeypatch.setattr(isolation.shutil, "which", lambda name: f"/usr/bin/{name}")
    launcher = isolation._launcher()
    assert launcher.kind == "none" and not launcher.namespaced
    if sys.platform.startswith("linux"):
        assert "bwrap does not work here: bwrap: uid map refused" in launcher.layers
        assert "unshare does not work here" in launcher.layers


def test_results_come_back_on_the_pipe_and_the_output_apart(tmp_path: Path, any_kind: str) -> None:
    program = (
        "import os, sys\nprint('printed')\nos.write(int(sys.argv[3]), b'result bytes')\n"
        "print(os.getcwd())\n"
    )
    end = _run(tmp_path, program, any_kind)
    assert end.returncode == 0 and end.stopped_for == "", end
    assert end.results == b"result bytes"
    printed = end.output.split()
    assert printed[0] == "printed" and printed[1].endswith("/work"), end.output
    tool = {"bwrap": "bubblewrap:", "unshare": "unshare:", "none": "no namespaces"}[any_kind]
    assert end.isolation.startswith(tool), end.isolation


# --------------------------------------------------------------------------- the namespaces


def _alive_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                continue
    return found


def test_a_process_that_leaves_the_session_dies_with_the_sandbox(
    tmp_path: Path, namespaced: str
) -> None:
    """A double fork with setsid (what _posixsubprocess.fork_exec(call_setsid=True) does, with no
    audit event) leaves the process group the grader kills; the PID namespace takes it down."""
    marker = f"dlcourse-survivor-{uuid.uuid4().hex}"
    program = f"""
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)", {marker!r}])
    os._exit(0)
time.sleep(0.5)
os.write(int(sys.argv[3]), b"started")
"""
    survivors: list[int] = []
    try:
        end = _run(tmp_path, program, namespaced)
        assert end.results == b"started", end
        deadline = time.monotonic() + 3
        while (survivors := _alive_with(marker)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert survivors == [], "a process the learner started outlived the grading"
    finally:
        for pid in survivors:
            os.kill(pid, signal.SIGKILL)


def test_a_udp_datagram_never_reaches_the_graders_loopback(tmp_path: Path, namespaced: str) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(1.0)
    port = listener.getsockname()[1]
    program = f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(5):
    try:
        s.sendto(b"spec.json says", ("127.0.0.1", {port}))
        print("sent")
    except OSError as exc:
        print("refused", exc.errno)
"""
    try:
        end = _run(tmp_path, program, namespaced)
        assert end.returncode == 0 and len(end.output.split("\n")) > 5, end
        with pytest.raises(TimeoutError):
            listener.recvfrom(100)
    finally:
        listener.close()


def test_only_the_work_folder_is_writable_and_tmp_is_private(
    tmp_path: Path, namespaced: str
) -> None:
    kept = isolation._needed_under_tmp()  # the course or its environment, when under /tmp
    if namespaced == "unshare" and kept:
        pytest.skip(f"the course lives under /tmp ({kept[0]}): unshare leaves /tmp unprivate")
    secret = Path("/tmp") / f"dlcourse-host-tmp-{uuid.uuid4().hex}"
    secret.write_text("the host's")
    outside = tmp_path / "outside.txt"
    try:
        program = f"""
import os, sys
job = sys.argv[1]
targets = [{str(outside)!r}, job + "/spec.json", job + "/new.txt", "/tmp/x", "/dev/shm/x",
           os.path.expanduser("~/../x"), sys.prefix + "/x"]
for path in targets:
    try:
        open(path, "a").write("x")
        print("WROTE", path)
    except OSError:
        pass
kept = [job, *{kept!r}]  # bound back into the private /tmp: the job, the course
print("TMP", os.path.exists({str(secret)!r}), sorted(os.listdir("/tmp")) == sorted(
    [p for p in os.listdir("/tmp") if any(k.startswith("/tmp/" + p) for k in kept)]))
open("mine.txt", "w").write("ok")
print("WORK", open("mine.txt").read())
"""
        end = _run(tmp_path, program, namespaced)
        assert end.returncode == 0, end
        assert "WROTE" not in end.output, end.output
        assert "TMP False True" in end.output and "WORK ok" in end.output, end.output
        assert not outside.exists() and not (tmp_path / "new.txt").exists()
    finally:
        secret.unlink()


@pytest.mark.skipif(os.name != "posix" or os.getuid() == 0, reason="root has no process limit")
def test_the_process_limit_counts_the_namespaces_tasks(tmp_path: Path, namespaced: str) -> None:
    program = (
        SET_LIMITS.format(limits={**LIMITS, "extra_tasks": 3})
        + """
import os, time
made = 0
for _ in range(10):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(1); os._exit(0)
    made += 1
print("MADE", made)
"""
    )
    end = _run(tmp_path, program, namespaced)
    assert end.returncode == 0, end
    made = int(end.output.split("MADE")[1].split()[0])
    assert 1 <= made <= 3, end.output


# --------------------------------------------------------------------------- the disk quota


def test_writing_a_gigabyte_stops_at_the_quota(tmp_path: Path, any_kind: str) -> None:
    """16 files of 63 MB filled 1 GB of disk: now the folder holds WORK_QUOTA_MB at most (a
    tmpfs of that size in namespaces: the write fails; without, the grader stops the process)."""
    program = """
import os, time
block = b"x" * (1 << 20)
written = 0
for n in range(16):
    with open(f"file-{n}", "wb") as fh:
        for _ in range(63):
            fh.write(block)
            written += len(block)
            time.sleep(0.002)  # at most 500 MB/s: a poll of the folder (no namespaces) sees it
    print("WRITTEN", written >> 20, flush=True)
"""
    end = _run(tmp_path, program, any_kind)
    quota = isolation.WORK_QUOTA_MB
    if any_kind == "none":
        assert end.stopped_for.startswith(f"your code wrote more than {quota} MB"), end
        assert _why(end) == end.stopped_for
    else:
        assert "No space left on device" in end.tail and end.returncode == 1, end
        assert _why(end) == (
            "the grading process stopped after your code filled its working folder (grading "
            f"allows {quota} MB there)"
        )
    written = [int(w.split()[0]) for w in end.output.split("WRITTEN")[1:]]
    assert written and max(written) <= 3 * quota and 1008 not in written, end.output


def test_many_files_stop_at_the_entry_limit_without_namespaces(tmp_path: Path) -> None:
    program = "for n in range(10**6):\n    open(f'f{n}', 'w').close()\n"
    end = _run(tmp_path, program, "none")
    assert end.stopped_for.startswith(
        f"your code made more than {isolation.WORK_ENTRIES} files and folders"
    ), end


# --------------------------------------------------------------------------- honest messages


@pytest.mark.parametrize(
    ("program", "says"),
    [
        ("import ctypes\nctypes.string_at(0)", "crashed with a segmentation fault"),
        ("import os\nos.abort()", "aborted (os.abort()"),
        ("import os\nprint('bye')\nos._exit(0)", "ended early (exit status 0): os._exit()"),
        ("import os\nos._exit(3)", "ended early (exit status 3): os._exit() in your code?"),
        ("raise ValueError('boom')", "the last thing it printed was: ValueError: boom"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGUSR1)", "stopped by signal 10"),
    ],
    ids=["segfault", "abort", "exit-0", "exit-3", "error", "sigusr1"],
)
def test_a_process_that_died_says_what_killed_it(tmp_path: Path, program: str, says: str) -> None:
    end = _run(tmp_path, program, _default_kind())
    assert says in _why(end), (_why(end), end)
    if "os._exit" not in says:
        assert "os._exit" not in _why(end)


@pytest.mark.parametrize("catches_sigxcpu", [False, True], ids=["sigxcpu", "sigkill"])
def test_the_cpu_limit_is_named(tmp_path: Path, any_kind: str, catches_sigxcpu: bool) -> None:
    program = SET_LIMITS.format(limits={**LIMITS, "cpu_s": 1})
    if catches_sigxcpu:  # then the hard limit, a second later: SIGKILL
        program += "import signal\nsignal.signal(signal.SIGXCPU, lambda *a: None)\n"
    program += "while True:\n    pass\n"
    end = _run(tmp_path, program, any_kind, limits={"cpu_s": 1})
    why = _why(end)
    if catches_sigxcpu and any_kind == "bwrap":  # bubblewrap hides the child's CPU time
        assert "ran out of memory (grading allows 4096 MB) or used up its 1 s of CPU" in why
    else:
        assert why.startswith("the grading process used up the 1 s of CPU time"), (why, end)


def test_the_memory_limit_is_named(tmp_path: Path) -> None:
    program = SET_LIMITS.format(limits={**LIMITS, "memory_mb": 300}) + "hog = bytearray(10**10)\n"
    end = _run(tmp_path, program, _default_kind(), limits={"memory_mb": 300})
    assert "MemoryError" in end.tail
    assert _why(end) == (
        "the grading process ran out of memory: grading allows 300 MB (a tensor or list too large?)"
    )


def test_the_grader_stops_a_process_at_its_limits(tmp_path: Path) -> None:
    kind = _default_kind()
    loop = _run(tmp_path, "while True:\n    pass\n", kind, settings=_settings(timeout=1))
    assert _why(loop).startswith("your code ran past the 1 s grading allows a notebook")
    assert 1 <= loop.seconds < 10
    printer = _run(tmp_path, "while True:\n    print('x' * 1000)\n", kind)
    assert _why(printer).startswith("your code printed more than 1024 KB")
    big = (
        "import os, sys\nfd = int(sys.argv[3])\nblock = b'x' * (1 << 20)\n"
        f"for _ in range({RESULT_LIMIT_MB + 8}):\n    os.write(fd, block)\n"
    )
    sender = _run(tmp_path, big, kind)
    assert _why(sender).startswith(
        f"what your code returned was more than the {RESULT_LIMIT_MB} MB"
    )
    assert sender.results == b""


def test_messages_from_what_the_end_of_the_output_says() -> None:
    """Without running anything: a C++ allocation failure, an OOM kill with the CPU time
    known, and a process that printed and then exited cleanly."""

    def end(code: int, tail: str, cpu: float | None = 0.5) -> isolation._ProcessEnd:
        limits = {"cpu_s": 60, "memory_mb": 2048}
        return isolation._ProcessEnd(code, "", "", 1.0, tail=tail, cpu_seconds=cpu, limits=limits)

    abort, kill = -signal.SIGABRT, -signal.SIGKILL
    bad_alloc = "terminate called after throwing an instance of 'std::bad_alloc'\n"
    assert _why(end(abort, bad_alloc)).startswith("the grading process ran out of memory")
    assert _why(end(kill, "")) == (
        "the grading process was killed by the system (SIGKILL), most likely for running out of "
        "memory: grading allows 2048 MB"
    )
    assert _why(end(kill, "", cpu=60.2)).startswith("the grading process used up the 60 s")
    assert "os._exit()" in _why(end(0, "my last print\n"))
    assert "os._exit()" not in _why(end(1, "Fatal Python error: Aborted\n"))


# --------------------------------------------------------------------------- the cost


@pytest.mark.slow
def test_the_namespaces_cost_little(tmp_path: Path) -> None:
    """The median start of a trivial process, with and without namespaces (10 each): the
    difference is the per-submission overhead (grading one takes about 1.1 s)."""
    kind = _default_kind()
    if kind == "none":
        pytest.skip("no namespaces here")

    def median(which: str) -> float:
        times = []
        for _ in range(10):
            start = time.perf_counter()
            _run(tmp_path, "pass", which)
            times.append(time.perf_counter() - start)
        return sorted(times)[5]

    overhead = median(kind) - median("none")
    print(f"\n{kind}: {overhead * 1000:.0f} ms more per submission than no namespaces")
    assert overhead < 0.55  # 1.5 x 1.1 s, less the 1.1 s
