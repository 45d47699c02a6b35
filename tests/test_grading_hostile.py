"""Class grading against a held-out set of hostile and unusual submissions (issue 25).

The attacks are in :mod:`tests._hostile`. Each test grades a class in a separate process
(``grading.grade_class(..., out=..., report=..., jobs=2)``), so that a grader that hangs, dies
or swells is seen and stopped, with its own ``TMPDIR`` (so that what it leaves behind is seen)
and a secret in its environment (so that a leak is seen). Then it checks what the issue requires:

- every honest learner gets full marks; the CSV and the reports hold every learner;
- no attacker scores a point it did not earn; a correct cell beside an attack is still graded;
- nothing written outside the job: the canary folder and a file in /tmp are untouched, and the
  grader's temporary folder is empty afterwards;
- nothing keeps running: no process with the test's token or folder in it, a few seconds after;
- no network traffic: the test's UDP and TCP listeners on 127.0.0.1 receive nothing;
- bounded time (per submission) and memory (the grader's peak RSS);
- safe outputs: no CSV cell a spreadsheet runs as a formula, no raw HTML in the rendered
  reports, no control characters in what is printed, no leaked secret or solution.

Every check is collected, and a test fails with all of them, one line each.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests import _hostile
from tests._hostile import ATTACKS, KINDS, Attack, Target

REPO = Path(__file__).resolve().parent.parent
TIMEOUT_S = 20  # grade_class's limit per notebook (wall clock)
SECONDS_PER_SUBMISSION = 4.0  # the time bound's allowance per submission (about 1.1 s today)
PEAK_RSS_MB = 1536  # the grader's own peak memory (honest classes: about 600 MB)
DISK_MB = 1024  # what one submission may write (the issue saw 1 GB)
CELL_CHARS = 100_000  # the longest CSV cell
PAGE_BYTES = 2 << 20  # the largest feedback page
ESCAPEE_WAIT_S = 4.0  # after grading: an escapee says it is alive once a second
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # not \t or \n


# --------------------------------------------------------------------------- the target


@dataclass
class _Listeners:
    """A UDP and a TCP listener on 127.0.0.1, recording everything they receive."""

    udp: socket.socket
    tcp: socket.socket
    received: list[tuple[str, bytes]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def serve(self) -> None:
        self.udp.settimeout(0.2)
        self.tcp.settimeout(0.2)
        while not self.stop.is_set():
            with contextlib.suppress(OSError):
                self.received.append(("udp", self.udp.recvfrom(1 << 16)[0]))
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                continue
            conn.settimeout(1)
            data = b""
            with contextlib.suppress(OSError):
                data = conn.recv(1 << 16)
            conn.close()
            self.received.append(("tcp", data))


@contextlib.contextmanager
def _target(tmp_path: Path) -> Iterator[tuple[Target, _Listeners]]:
    canary = tmp_path / "canary"
    canary.mkdir()
    secret = "SECRET-" + secrets.token_hex(8)
    (canary / "canary.txt").write_text("untouched")
    (canary / "secret.txt").write_text(secret)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(16)
    listeners = _Listeners(udp, tcp)
    thread = threading.Thread(target=listeners.serve, daemon=True)
    thread.start()
    token = "HOSTILE-" + secrets.token_hex(6)
    target = Target(
        canary=canary,
        secret=secret,
        marker=canary / "escapee-was-here",
        tmp_file=Path("/tmp") / f"{token}-written",
        udp_port=udp.getsockname()[1],
        tcp_port=tcp.getsockname()[1],
        token=token,
        course_root=REPO,
    )
    try:
        yield target, listeners
    finally:
        listeners.stop.set()
        thread.join(2)
        udp.close()
        tcp.close()
        target.tmp_file.unlink(missing_ok=True)


# --------------------------------------------------------------------------- the grader


CHILD = r"""
import json, resource, sys, time, traceback
root, out, report, info_path, lines_path, jobs, timeout = sys.argv[1:8]
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))  # a runaway grader stops here
from dlcourse.exercises import grading
lines = open(lines_path, "a", encoding="utf-8")
def progress(line):
    lines.write(json.dumps(line) + "\n")
    lines.flush()
info = {}
start = time.perf_counter()
try:
    result = grading.grade_class([root], out=out, report=report, jobs=int(jobs),
                                 timeout=float(timeout), seed=5, progress=progress)
    info["summary"] = result.summary
    try:
        info["runs"] = [[str(r.submission.path), float(r.seconds)] for r in result.runs]
    except Exception:
        info["runs"] = []
except BaseException:
    info["error"] = traceback.format_exc()[-6000:]
info["seconds"] = time.perf_counter() - start
info["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
with open(info_path, "w", encoding="utf-8") as fh:
    json.dump(info, fh)
"""


@dataclass
class _Graded:
    info: dict[str, Any]
    progress: list[str]
    returncode: int | None
    timed_out: bool
    wall_s: float
    disk_rise_mb: float
    csv: Path
    report: Path
    tmpdir: Path


def _grade(tmp_path: Path, root: Path, target: Target, jobs: int, limit_s: float) -> _Graded:
    """Grade ``root`` in a child process (its own session, TMPDIR and a secret in its
    environment); stop it after ``limit_s``; sample the disk's use meanwhile."""
    tmpdir = tmp_path / "grader-tmp"
    tmpdir.mkdir()
    out, report = tmp_path / "grades.csv", tmp_path / "feedback"
    info_path, lines_path = tmp_path / "info.json", tmp_path / "progress.jsonl"
    env = {**os.environ, "TMPDIR": str(tmpdir), "HOSTILE_SECRET": target.secret}
    argv = [sys.executable, "-c", CHILD, str(root), str(out), str(report), str(info_path),
            str(lines_path), str(jobs), str(TIMEOUT_S)]  # fmt: skip
    base = shutil.disk_usage(tmpdir).used
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            peak[0] = max(peak[0], shutil.disk_usage(tmpdir).used)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    timed_out = False
    try:
        _, err = proc.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        for sig in (signal.SIGCONT, signal.SIGKILL):  # a stopped grader is killed too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
        _, err = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join(1)
    info: dict[str, Any] = {}
    if info_path.exists():
        info = json.loads(info_path.read_text(encoding="utf-8"))
    if proc.returncode and not info.get("error"):
        info["error"] = err.decode("utf-8", "replace")[-3000:]
    progress = []
    if lines_path.exists():
        progress = [json.loads(x) for x in lines_path.read_text(encoding="utf-8").splitlines()]
    return _Graded(info, progress, proc.returncode, timed_out, wall,
                   (peak[0] - base) / 2**20, out, report, tmpdir)  # fmt: skip


def _escapees(target: Target, tmp_path: Path) -> list[tuple[int, str]]:
    """Processes that carry the test's token or folder (in their command line, environment or
    working folder): started by the graded code, and still running."""
    found = []
    marks = (target.token.encode(), str(tmp_path).encode())
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        seen = b""
        for part in ("cmdline", "environ"):
            with contextlib.suppress(OSError):
                seen += Path(f"/proc/{entry}/{part}").read_bytes()
        with contextlib.suppress(OSError):
            seen += os.readlink(f"/proc/{entry}/cwd").encode()
        if any(m in seen for m in marks):
            cmd = seen.split(b"\0")[:3]
            found.append((int(entry), b" ".join(cmd).decode("utf-8", "replace")[:120]))
    return found


def _end_escapees(found: list[tuple[int, str]]) -> None:
    for pid, _ in found:  # processes this test's graded code started
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- the checks


def _rows(graded: _Graded, problems: list[str]) -> list[dict[str, str]]:
    if not graded.csv.exists():
        problems.append("no CSV was written")
        return []
    raw = graded.csv.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(f"the CSV is not UTF-8 ({exc})")
        text = raw.decode("utf-8", "replace")
    rows = list(csv.DictReader(io.StringIO(text)))
    for row in rows:
        for column, cell in row.items():
            cell = cell or ""
            if cell.startswith(FORMULA_START):
                problems.append(f"CSV injection: {column} cell starts with {cell[:20]!r}")
            if "\x1b" in cell:
                problems.append(f"CSV: an ANSI escape in {column}: {cell[:40]!r}")
            if len(cell) > CELL_CHARS:
                problems.append(f"CSV: a {column} cell of {len(cell):,} characters")
    return rows


def _token(text: str) -> str | None:
    m = re.search(r"u\d{3}", text)
    return m.group(0) if m else None


def _pages(graded: _Graded, problems: list[str]) -> dict[str, str]:
    from markdown_it import MarkdownIt

    pages: dict[str, str] = {}
    if not graded.report.is_dir():
        problems.append("no report folder was written")
        return pages
    md = MarkdownIt("commonmark", {"html": True})
    for path in sorted(graded.report.rglob("*.md")):
        size = path.stat().st_size
        if size > PAGE_BYTES:
            problems.append(f"report {path.name!r} is {size:,} bytes")
        text = path.read_bytes()[:PAGE_BYTES].decode("utf-8", "replace")
        pages[str(path.relative_to(graded.report))] = text
        html = md.render(text)
        for bad in re.findall(r"<(?:script|img)\b[^>]{0,40}|href=\"javascript:[^\"]{0,20}", html):
            problems.append(f"report {path.name!r} renders raw HTML: {bad!r}")
        if CONTROL.search(text):
            problems.append(f"report {path.name!r} holds control characters: "
                            f"{CONTROL.findall(text)[:5]!r}")  # fmt: skip
    return pages


def _check(
    graded: _Graded,
    target: Target,
    listeners: _Listeners,
    honest: list[str],
    by_token: dict[str, Attack],
    tmp_path: Path,
) -> list[str]:
    problems: list[str] = []
    info = graded.info
    n_subs = len(honest) + sum(a.learners + a.extra.get("two", 0) for a in by_token.values())
    if graded.timed_out:
        problems.append(f"the class run did not finish in {graded.wall_s:.0f} s (stopped)")
    if info.get("error"):
        problems.append("the class run failed: " + info["error"].strip().splitlines()[-1][:300])
    elif graded.returncode:
        problems.append(f"the grader's process ended with status {graded.returncode}")

    rows = _rows(graded, problems)
    by: dict[str | None, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by[_token(row.get("learner", ""))].append(row)

    for name in honest:
        theirs = by.get(_token(name), [])
        if len(theirs) != 3:
            problems.append(f"honest {name}: {len(theirs)} rows, not 3")
        for row in theirs:
            if row["status"] != "pass" or float(row["points"]) != float(row["max_points"]):
                problems.append(f"honest {name}: {row['exercise']} {row['status']}: "
                                f"{row['message'][:160]!r}")  # fmt: skip

    for token, a in by_token.items():
        theirs = by.get(token, [])
        who = f"{a.kind}/{a.name} ({token})"
        if not theirs:
            problems.append(f"{who}: no row in the CSV")
            continue
        names = {r["learner"] for r in theirs}
        if len(names) != a.learners:
            problems.append(f"{who}: {len(names)} learner name(s) in the CSV, not {a.learners}")
        for r in theirs:
            points = float(r["points"] or 0)
            if points and r["exercise"] not in a.may_earn:
                problems.append(f"{who}: scored {points:g} on {r['exercise']}, not earned "
                                f"({r['status']}: {r['message'][:100]!r})")  # fmt: skip
            if a.kind == "message" and "os._exit()" in r["message"]:  # a guess, not the cause
                problems.append(f"{who}: {r['exercise']} blames os._exit(): {r['message'][:200]!r}")
        for ex in a.must_earn:
            if not any(r["exercise"] == ex and r["status"] == "pass" for r in theirs):
                got = [f"{r['status']}: {r['message'][:120]}" for r in theirs
                       if r["exercise"] == ex]  # fmt: skip
                problems.append(f"{who}: its correct {ex} was not passed: {got!r}")
        if a.says:
            hit = [r for r in theirs if a.attacked in ("*", r["exercise"])]
            text = " ".join(r["message"] for r in hit).lower()
            if not any(s.lower() in text for s in a.says):
                problems.append(f"{who}: the message does not say {' or '.join(a.says)!r}: "
                                f"{[r['message'][:200] for r in hit]!r}")  # fmt: skip
        if a.extra.get("two"):
            keys = [(r["learner"], r["notebook"], r["exercise"], r.get("submission", ""))
                    for r in theirs]  # fmt: skip
            if len(keys) != len(set(keys)):
                problems.append(f"{who}: two submissions' rows cannot be told apart: {keys!r}")
        if a.extra.get("disk"):
            for r in theirs:
                for mb in re.findall(r"DISK-ATTACK wrote (\d+) MB", r["message"]):
                    if int(mb) >= DISK_MB:
                        problems.append(f"{who}: the learner's code wrote {mb} MB to disk")

    if graded.disk_rise_mb >= DISK_MB:
        problems.append(f"the disk's use rose by {graded.disk_rise_mb:.0f} MB during grading")

    pages = _pages(graded, problems)
    for token, a in [(_token(n), None) for n in honest] + list(by_token.items()):
        want = a.learners if a else 1
        mention = [p for p, text in pages.items() if token in p or token in text]
        if len(mention) < want:
            problems.append(f"{token} ({a.name if a else 'honest'}): {len(mention)} report "
                            f"page(s), not {want}")  # fmt: skip

    summary = info.get("summary") or ""
    printed = [summary, *graded.progress]
    for text in printed:
        if CONTROL.search(text):
            problems.append(f"printed text holds control characters: {text[:80]!r}")
            break
    if len(summary) > CELL_CHARS:
        problems.append(f"the summary is {len(summary):,} characters long")

    outputs = {"CSV": graded.csv.read_text("utf-8", "replace") if graded.csv.exists() else "",
               "reports": "\n".join(pages.values()), "summary": summary,
               "progress": "\n".join(graded.progress)}  # fmt: skip
    for where, text in outputs.items():
        if target.secret in text:
            problems.append(f"the secret leaked into the {where}")
        if "BEGIN SOLUTION" in text:
            problems.append(f"the course's solution notebook leaked into the {where}")

    canary = target.canary / "canary.txt"
    if not canary.exists() or canary.read_text() != "untouched":
        problems.append("the canary file was changed or removed")
    extra = sorted(p.name for p in target.canary.iterdir()) if target.canary.exists() else []
    if extra != ["canary.txt", "secret.txt"]:
        problems.append(f"the canary folder holds {extra!r}")
    if target.tmp_file.exists():
        problems.append(f"a file was written in /tmp: {target.tmp_file}")
    left = sorted(str(p.relative_to(graded.tmpdir)) for p in graded.tmpdir.iterdir())
    if left:
        problems.append(f"the grader's temporary folder still holds {left[:5]!r}")

    # nothing keeps running, nothing reached the network
    time.sleep(ESCAPEE_WAIT_S)
    alive = _escapees(target, tmp_path)
    if alive:
        problems.append(f"{len(alive)} process(es) still running after grading: {alive[:3]!r}")
    _end_escapees(alive)
    if target.marker.exists():
        problems.append("a process outlived its grading and wrote the marker file")
    for kind, data in listeners.received:
        problems.append(f"the {kind.upper()} listener received {data[:80]!r}")

    bound = (
        60
        + SECONDS_PER_SUBMISSION * n_subs
        + TIMEOUT_S * sum(1 for a in by_token.values() if a.slow)
    )
    if info.get("seconds", 0) > bound:
        problems.append(f"grading took {info['seconds']:.0f} s; the bound is {bound:.0f} s")
    for path, seconds in info.get("runs", []):
        if seconds > TIMEOUT_S + 20:
            problems.append(f"one submission took {seconds:.0f} s: {path!r}")
    if info.get("peak_rss_mb", 0) > PEAK_RSS_MB:
        problems.append(f"the grader's peak RSS was {info['peak_rss_mb']:.0f} MB")
    return problems


def _run_class(tmp_path: Path, attacks: list[Attack], honest_between: bool) -> list[str]:
    with _target(tmp_path) as (target, listeners):
        root = tmp_path / "class"
        honest, by_token = _hostile.build_class(root, attacks, target, honest_between)
        n = len(honest) + len(by_token)
        limit = 120 + SECONDS_PER_SUBMISSION * n * 1.5
        graded = _grade(tmp_path, root, target, jobs=2, limit_s=limit)
        try:
            return _check(graded, target, listeners, honest, by_token, tmp_path)
        finally:
            _end_escapees(_escapees(target, tmp_path))
            _unlock(root)
            _unlock(graded.tmpdir)


def _unlock(folder: Path) -> None:
    """Make what an attack left unreadable removable again (pytest's tmp_path cleanup)."""
    for dirpath, dirnames, _ in os.walk(folder):
        for d in dirnames:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(dirpath, d), 0o700)
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                os.chmod(path, 0o700)


def _verdict(problems: list[str]) -> None:
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)


# --------------------------------------------------------------------------- the tests


def test_the_held_out_set_covers_every_class_twice_or_more() -> None:
    counts = {kind: sum(a.kind == kind for a in ATTACKS) for kind in KINDS}
    assert len(ATTACKS) >= 40 and min(counts.values()) >= 2, counts
    assert len({a.name for a in ATTACKS}) == len(ATTACKS)


def test_the_attacks_write_their_submissions(tmp_path: Path) -> None:
    """Every attack writes something a grader would find (a .ipynb under its folder)."""
    with _target(tmp_path) as (target, _):
        honest, by_token = _hostile.build_class(tmp_path / "class", ATTACKS, target)
    assert len(by_token) == len(ATTACKS) and len(honest) == len(ATTACKS) + 1
    for token, a in by_token.items():
        folder = tmp_path / "class" / token[1:]
        found = [p for p in folder.rglob("*") if p.name.endswith(".ipynb") or p.is_symlink()]
        assert found, a.name


# What only namespaces stop (docs/instructor-guide.md, "What keeps a class safe"): a process that
# leaves its session through _posixsubprocess.fork_exec (no audit event) outlives the grading, and
# on kernels before 6.12 (Landlock without signal scoping) it can signal the grader; a program it
# starts is outside the audit hook, so UDP (and TCP before Linux 6.7) goes out. Where this
# machine cannot make namespaces (no bubblewrap, unprivileged user namespaces off), these attacks
# are left out, and said so, rather than failing a guarantee the guide says is not given there.
NEEDS_NAMESPACES = {
    "setsid-fork-exec",
    "fork-setsid",
    "signal-kill-grader",
    "signal-stop-grader",
    "udp",
    "tcp",
    "read-outside",
}  # fork_exec'd helpers reach the network there


def _attacks(kind: str | None = None) -> list[Attack]:
    from dlcourse.exercises.isolation import _launcher

    chosen = [a for a in ATTACKS if kind is None or a.kind == kind]
    if _launcher(None).namespaced:
        return chosen
    left_out = sorted(a.name for a in chosen if a.name in NEEDS_NAMESPACES)
    if left_out:
        warnings.warn(
            "no namespaces on this machine (install bubblewrap): left out " + ", ".join(left_out),
            stacklevel=2,
        )
    return [a for a in chosen if a.name not in NEEDS_NAMESPACES]


def test_the_attacks_left_out_without_namespaces_exist() -> None:
    assert {a.name for a in ATTACKS} >= NEEDS_NAMESPACES


@pytest.mark.slow
def test_a_hostile_class_between_honest_learners(tmp_path: Path) -> None:
    """Every attack, each between two honest learners, in one class run with two jobs."""
    _verdict(_run_class(tmp_path, _attacks(), honest_between=True))


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_one_class_of_attacks(tmp_path: Path, kind: str) -> None:
    """One class of attacks (crash, trust, fence, cheat, poison, message), with an honest
    learner before and after: ``pytest tests/test_grading_hostile.py -k cheat``."""
    _verdict(_run_class(tmp_path, _attacks(kind), honest_between=False))


def grade_attacks_alone(attacks: list[Attack]) -> None:  # pragma: no cover (a developer's tool)
    """Grade each attack alone between two honest learners; print its problems."""
    for a in attacks:
        with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
            problems = _run_class(Path(tmp), [a], honest_between=True)
        print(f"{a.kind}/{a.name}: " + ("ok" if not problems else f"{len(problems)} problem(s)"))
        for p in problems:
            print("    " + p)
        sys.stdout.flush()
