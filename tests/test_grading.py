"""dlcourse.exercises.grading and .sandbox: class grading, with learner code never trusted.

The class test builds submissions from the student versions of notebooks 00-03: correct ones
(the solutions, the exercises' other correct implementations, hand-written variants in other
styles), known-wrong ones, untouched stubs, and hostile ones, grades them all in one run, and
checks every row of the CSV.
"""

from __future__ import annotations

import csv
import dataclasses
import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch

from dlcourse import exercises
from dlcourse.exercises import engine, grading, judging, sandbox, student, wire
from dlcourse.machinery.notebooks import course_notebooks

NOTEBOOKS = {p.stem: p for p in course_notebooks()[:4]}  # 00-03
N00, N01, N02, N03 = NOTEBOOKS


def _exercises(stem: str) -> list[engine.Exercise]:
    number = int(stem[:2])
    return [ex for ex in exercises.all_exercises() if ex.notebook == number]


def _student(stem: str) -> dict[str, Any]:
    nb = json.loads(NOTEBOOKS[stem].read_text(encoding="utf-8"))
    return student.student_notebook(nb, NOTEBOOKS[stem].name)


def _exercise_cell(nb: dict[str, Any], fn: str) -> dict[str, Any]:
    for cell in nb["cells"]:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "code" and re.search(rf"^def {fn}\(", source, re.MULTILINE):
            return cell
    raise LookupError(fn)


def _solution_source(stem: str, fn: str) -> str:
    nb = json.loads(NOTEBOOKS[stem].read_text(encoding="utf-8"))
    return "".join(_exercise_cell(nb, fn)["source"])


def _renamed(fn: Any, name: str) -> str:
    """The source of a module-level function, renamed to the exercise's function name, after
    the module's own helpers it calls (a learner's cell holds everything it needs)."""
    helpers: dict[str, str] = {}

    def names(code: Any) -> set[str]:  # the global names a function uses, comprehensions included
        found = set(code.co_names)
        for const in code.co_consts:
            if inspect.iscode(const):
                found |= names(const)
        return found

    def collect(f: Any) -> None:
        for name in sorted(names(f.__code__)):
            value = f.__globals__.get(name)
            if name in helpers or value is None:
                continue
            if inspect.isfunction(value) and value.__module__ == fn.__module__:
                helpers[name] = textwrap.dedent(inspect.getsource(value))
                collect(value)
            elif type(value) in (int, float, str, tuple):  # a module constant, such as EPS
                helpers[name] = f"{name} = {value!r}"

    collect(fn)
    source = textwrap.dedent(inspect.getsource(fn))
    source = re.sub(rf"^def {fn.__name__}\(", f"def {name}(", source, count=1, flags=re.MULTILINE)
    return "\n\n".join([*reversed(helpers.values()), source])


def _write(path: Path, nb: dict[str, Any] | str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(nb, bytes):
        path.write_bytes(nb)
    else:
        path.write_text(nb if isinstance(nb, str) else json.dumps(nb), encoding="utf-8")
    return path


def _submission(stem: str, cells: dict[str, str] | None = None) -> dict[str, Any]:
    """The student version of ``stem`` with the exercise cells of ``cells`` (function name:
    source) filled in."""
    nb = _student(stem)
    for fn, source in (cells or {}).items():
        _exercise_cell(nb, fn)["source"] = source
    return nb


# --------------------------------------------------------------------------- fast, in-process


def test_exercise_names_are_their_functions_names() -> None:
    # The grader finds a learner's cell by the function it defines.
    for ex in exercises.all_exercises():
        assert ex.reference.__name__ == ex.name


def test_student_versions_mark_the_exercise_cells_and_the_notebook() -> None:
    nb = _student(N01)
    assert nb["metadata"]["dlcourse"] == {"notebook": f"{N01}.ipynb"}
    marked = [
        c["metadata"]["dlcourse"]["exercise"] for c in nb["cells"] if "dlcourse" in c["metadata"]
    ]
    assert marked == [["gradient_descent_path"], ["metropolis_acceptance"], ["cosine_schedule"]]


def test_find_submissions_names_learners_by_file_or_folder(tmp_path: Path) -> None:
    _write(tmp_path / "class" / "alice.ipynb", "{}")
    _write(tmp_path / "class" / "bob" / f"{N01}.ipynb", "{}")
    _write(tmp_path / "class" / "bob" / ".ipynb_checkpoints" / f"{N01}-checkpoint.ipynb", "{}")
    subs = grading.find_submissions([tmp_path / "class"])
    assert [(s.learner, s.path.name) for s in subs] == [
        ("alice", "alice.ipynb"),
        ("bob", f"{N01}.ipynb"),
    ]
    assert subs[0].notebook is None and subs[1].notebook.number == 1
    with pytest.raises(grading.GradingError, match="no such file"):
        grading.find_submissions([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(grading.GradingError, match="no notebooks"):
        grading.find_submissions([tmp_path / "empty"])


def test_a_renamed_notebook_is_recognised_by_its_functions_and_marks() -> None:
    nb = _submission(N02)
    assert grading._recognise(nb).number == 2
    del nb["metadata"]["dlcourse"]
    assert grading._recognise(nb).number == 2
    assert grading._recognise({"cells": []}) is None


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def pairwise_sq_dists(a, b):\n    return torch.cdist(a, b) ** 2", "torch.cdist"),
        (
            "from torch import cdist\ndef pairwise_sq_dists(a, b):\n    return cdist(a, b)",
            "imports cdist",
        ),
        ("import dlcourse\ndef pairwise_sq_dists(a, b):\n    return 0", "dlcourse package"),
        (
            "def pairwise_sq_dists(a, b):\n    return dl.exercises.get('x').reference(a, b)",
            "dlcourse package",
        ),
        ("import sys\nf = sys.modules['dlcourse.exercises.welcome']", "dlcourse package"),
        ("def pairwise_sq_dists(a, b)\n    return a", "syntax error on line 1"),
    ],
)
def test_cells_are_inspected_before_they_run(source: str, expected: str) -> None:
    problem = grading._static_problem(source, exercises.get("pairwise_sq_dists"))
    assert problem is not None and expected in problem.message


def test_a_correct_cell_passes_inspection() -> None:
    source = _solution_source(N00, "pairwise_sq_dists")
    assert grading._static_problem(source, exercises.get("pairwise_sq_dists")) is None


def test_only_plain_data_is_accepted_from_a_grading_process() -> None:
    """What comes back is decoded by the wire format: tensors, numbers, texts, descriptions;
    a record of another shape is refused before it is judged."""
    ok = {"a": [torch.ones(2), 3, 1.5, "x", None, True], "b": sandbox._not_sendable(object())}
    checked = judging._load_record(wire.encode(ok))
    assert isinstance(checked["b"], engine.NotPlain) and checked["b"].name == "object"
    assert torch.equal(checked["a"][0], torch.ones(2))
    for bad in (b"", b"\x80\x04K\x01.", wire.encode([1, 2]), wire.encode("x")):
        with pytest.raises(judging._NotPlainData):
            judging._load_record(bad)
    attempt = {"kind": "returned", "value": [torch.ones(1)], "args_after": [None], "detail": ""}
    assert judging._attempt(attempt, 1).value[0].shape == (1,)
    for bad_attempt, n in ((attempt, 2), ({**attempt, "kind": "lied"}, 1), ([], 1)):
        with pytest.raises(judging._NotPlainData):
            judging._attempt(bad_attempt, n)  # e.g. args_after of the wrong length


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")
def test_values_that_are_not_plain_data_are_described_not_sent() -> None:
    """A tensor subclass, a sparse, nested or meta tensor, a huge view, a huge integer, an
    object: the process sends a description, whose message is the object's own."""

    class AlwaysEqual:
        def __eq__(self, other: object) -> bool:
            return True

    lying = torch.ones(2).as_subclass(type("Lying", (torch.Tensor,), {}))
    unusual = [
        torch.ones(2).to_sparse(),
        torch.nested.nested_tensor([torch.ones(2), torch.ones(3)]),
        torch.empty(3, device="meta"),
    ]
    for value in (AlwaysEqual(), lying, [1.0], *unusual):
        described = judging._load_record(wire.encode({"v": sandbox._plain(value)}))["v"]
        assert isinstance(described, engine.NotPlain)
        assert engine._reject_non_tensor(described, "r") == engine._reject_non_tensor(value, "r")
    for value in unusual:
        assert "ordinary (dense) tensor" in engine._reject_non_tensor(value, "r")
    view = torch.zeros(1).expand(10**10)  # 40 GB, if it were made contiguous
    described = judging._load_record(wire.encode({"v": sandbox._plain(view)}))["v"]
    assert "too large to send back" in engine._reject_non_tensor(described, "your result")
    assert isinstance(sandbox._plain(10**100), dict)
    assert len(sandbox._plain("x" * 10**7)) < 21_000
    assert sandbox._plain(2.5) == 2.5 and type(sandbox._plain(torch.ones(1))) is torch.Tensor


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"jobs": 0}, "jobs"),
        ({"timeout": -1}, "timeout"),
        ({"memory": 10}, "memory"),
        ({"points": {"nope": 1}}, "no exercise 'nope'"),
        ({"points": {"adam_step": -1}}, "adam_step"),
    ],
)
def test_bad_settings_are_refused_with_a_reason(kwargs: dict, match: str) -> None:
    with pytest.raises(grading.GradingError, match=match):
        grading.grade([NOTEBOOKS[N00]], **kwargs)


# --------------------------------------------------------------------------- judging


def _record(ex: engine.Exercise, fn: Any, sets: list[tuple[int | None, list]]) -> dict[str, Any]:
    """What a grading process sends back for ``fn`` on ``sets`` (as :mod:`sandbox` builds it),
    as the grader loads it."""
    record: dict[str, Any] = {"found": True, "sets": []}
    for seed, cases in sets:
        attempts, grads = [], []
        for args in cases:
            attempts.append(sandbox._attempt_record(ex.attempt(fn, engine.clone_inputs(args))))
            grads.append(sandbox._grad_record(ex.grad_attempt(fn, args)) if ex.grad else None)
        label = engine.input_label(seed)
        record["sets"].append({"label": label, "attempts": attempts, "grads": grads})
    return judging._load_record(wire.encode(record, describe=sandbox._not_sendable))


def _memorised(ex: engine.Exercise, fixed: list, fn: Any) -> Any:
    """Right on the self-check's fixed inputs (memorised), ``fn`` on any others."""

    def same(args: tuple, case: tuple) -> bool:
        return all(
            torch.equal(x.detach().to(y.dtype), y) if isinstance(y, torch.Tensor) else x == y
            for x, y in zip(args, case, strict=True)
        )

    def memorised(*args: Any) -> Any:
        known = any(same(args, case) for case in fixed)
        return ex.reference(*args) if known else fn(*args)

    return memorised


# Exercises whose randomised inputs share no case with the fixed ones (a learner who memorised
# the fixed answers then fails where the variant fails); results of one and of several tensors.
@pytest.mark.parametrize(
    "name", ["pairwise_sq_dists", "momentum_step", "batch_norm_backward", "conv2d_single"]
)
def test_the_judge_names_known_mistakes_on_randomised_inputs_running_each_once(name: str) -> None:
    """Class grading diagnoses as a check does: by the failure's code, place and values, with
    each known-wrong variant run once per input set, however many learners made the mistake."""
    ex = exercises.get(name)
    calls: Counter = Counter()

    def counted(i: int, fn: Any) -> Any:
        def wrapper(*args: Any) -> Any:
            calls[i] += 1
            return fn(*args)

        return wrapper

    wrong = tuple(engine.Wrong(counted(i, w.fn), w.hint) for i, w in enumerate(ex.wrong))
    counting = dataclasses.replace(ex, wrong=wrong, _hints_shown=0)
    settings = grading._Settings(60.0, 2048, 5, {})
    seed = grading._exercise_seed(5, ex)
    sets = [(s, settings.cases_of(ex, s)) for s in (None, seed)]
    learners = [_memorised(ex, sets[0][1], w.fn) for w in ex.wrong]
    records = [_record(ex, fn, sets) for fn in learners]
    for _ in range(2):  # a second class with the same mistakes: nothing runs again
        for w, record in zip(ex.wrong, records, strict=True):
            result = judging._judge(counting, record, sets, settings)
            assert result.status == "fail" and "on randomised input" in result.message
            assert result.failure.seed == seed and result.code in engine.FAILURE_CODES
            assert result.hint == w.hint, (w.fn.__name__, result.message)
        if not _:
            ran = Counter(calls)
            assert set(ran) == set(range(len(ex.wrong)))
    assert calls == ran, "the judge ran the known-wrong variants again"
    passed = judging._judge(counting, _record(ex, ex.reference, sets), sets, settings)
    assert passed.passed and passed.code == "" and passed.failure is None


# --------------------------------------------------------------------------- the fence


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Landlock is Linux's")
def test_landlock_alone_keeps_a_process_in_its_folder(tmp_path: Path) -> None:
    """Without the audit hook: the kernel refuses reads and writes outside, and signals."""
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    job = tmp_path / "job"
    job.mkdir()
    script = f"""
import os, sys
from dlcourse.exercises import fence, sandbox
how = fence._landlock({str(job)!r}, fence._read_roots(""))
if not how.startswith("Landlock"):
    print("SKIP", how); sys.exit(0)
import torch  # already-opened libraries keep working, and new imports from Python's folders
open({str(job / "mine.txt")!r}, "w").write("ok")
attempts = (lambda: open({str(outside)!r}).read(), lambda: open({str(tmp_path / "new.txt")!r}, "w"))
for attempt in attempts:
    try:
        attempt(); print("ALLOWED")
    except PermissionError:
        print("REFUSED")
if "signals" in how:
    try:
        os.kill(os.getppid(), 0); print("ALLOWED")
    except PermissionError:
        print("REFUSED")
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    if out.stdout.startswith("SKIP"):
        pytest.skip(out.stdout)
    lines = out.stdout.split()
    assert lines and set(lines) == {"REFUSED"}, out.stdout
    assert (job / "mine.txt").read_text() == "ok" and not (tmp_path / "new.txt").exists()


# --------------------------------------------------------------------------- the class


def _hostile(body: str, fn: str = "metropolis_acceptance") -> str:
    """A cell for ``fn`` (notebook 01) that also does ``body``; wrong if it ever returns."""
    return f"{body}\n\ndef {fn}(delta, temperature):\n    return delta\n"


HACKED = Path(tempfile.gettempdir()) / "course-grading-test-hacked"

HOSTILE_RUNTIME = {
    # learner: (cell for metropolis_acceptance, status, what the message says)
    "h-abort": (_hostile("import os\nos.abort()"), "aborted"),
    "h-segfault": (
        "import faulthandler\n\ndef metropolis_acceptance(delta, temperature):\n"
        "    faulthandler._sigsegv()\n",
        "segmentation fault",
    ),
    "h-ctypes": (_hostile("import ctypes\nctypes.string_at(0)"), "ctypes"),
    "h-loop": (
        "def metropolis_acceptance(delta, temperature):\n    while True:\n        pass\n",
        "took more than 10 s",
    ),
    "h-loop-cell": (
        _hostile(
            "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass"
        ),
        "ran past the 30 s",
    ),
    "h-memory": (
        "def metropolis_acceptance(delta, temperature):\n    hog = [0] * 10**10\n"
        "    return delta\n",
        "Grading allows 2048 MB",
    ),
    "h-memory-torch": (
        "def metropolis_acceptance(delta, temperature):\n    return torch.empty(10**11)\n",
        "Grading allows 2048 MB",
    ),
    "h-print": (_hostile("print('x' * 100_000_000)"), "printed more than 1024 KB"),
    "h-sys-exit": (
        "import sys\n\ndef metropolis_acceptance(delta, temperature):\n    sys.exit(3)\n",
        "sys.exit(3)",
    ),
    "h-os-exit": (
        "import os\n\ndef metropolis_acceptance(delta, temperature):\n    os._exit(0)\n",
        "ended early (exit status 0)",
    ),
    "h-fork-bomb": (_hostile("import os\nwhile True:\n    os.fork()"), "start new processes"),
    "h-subprocess": (
        _hostile("import subprocess\nsubprocess.run(['true'])"),
        "start other programs",
    ),
    "h-patch-engine": (
        _hostile("import dlcourse.exercises.engine as e\ne._compare = lambda *a: None"),
        "dlcourse package",
    ),
    "h-patch-torch": (
        _hostile(
            "torch.equal = lambda *a: True\ntorch.isclose = lambda a, b, **k: "
            "torch.ones_like(a, dtype=torch.bool)\ntorch.allclose = lambda *a, **k: True"
        ),
        "values differ",
    ),
    "h-always-equal": (
        "class Same:\n    def __eq__(self, other):\n        return True\n\n"
        "def metropolis_acceptance(delta, temperature):\n    return Same()\n",
        "Same, not a torch.Tensor",
    ),
    "h-lying-tensor": (
        "class Lying(torch.Tensor):\n    def __eq__(self, other):\n        return True\n\n"
        "def metropolis_acceptance(delta, temperature):\n"
        "    return torch.zeros_like(delta).as_subclass(Lying)\n",
        "subclass of torch.Tensor",
    ),
    "h-syntax": (
        "def metropolis_acceptance(delta, temperature)\n    return delta\n",
        "syntax error on line 1",
    ),
    "h-read-outside": (_hostile("open('/etc/hostname').read()"), "does not let your code read"),
    "h-read-class": (
        "def metropolis_acceptance(delta, temperature):\n"
        "    return open('../../class/ada/01_gradient_descent.ipynb').read()\n",
        "does not let your code read",
    ),
    "h-write-outside": (
        _hostile(f"open({str(HACKED)!r}, 'w').write('x')"),
        "does not let your code write",
    ),
    "h-kill-grader": (
        _hostile("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"),
        "send signals",
    ),
}


# The failure code of every failing row of these learners.
HOSTILE_CODES = {
    **dict.fromkeys(("h-abort", "h-segfault", "h-loop-cell", "h-print", "h-os-exit"), "stopped"),
    **dict.fromkeys(("h-ctypes", "h-fork-bomb", "h-subprocess", "h-read-outside",
                     "h-write-outside", "h-kill-grader"), "not_defined"),  # the cell stopped
    **dict.fromkeys(("h-memory", "h-memory-torch", "h-read-class"), "raised"),
    "h-hard-coded": "raised",  # a KeyError: no memorised answer for a randomised input
    **dict.fromkeys(("h-patch-engine", "h-reference"), "uses_package"),
    **dict.fromkeys(("h-always-equal", "h-lying-tensor"), "type"),
    "h-patch-torch": "values",
    **dict.fromkeys(("h-forbidden", "h-forbidden-hidden"), "forbidden"),
    **dict.fromkeys(("h-not-json", "h-empty-file", "h-no-cells"), "bad_notebook"),
    "h-loop": "timeout",
    "h-sys-exit": "exited",
    "h-syntax": "syntax",
    "h-cell-types": "no_cell",
}  # fmt: skip


def _hard_coded_cell() -> str:
    """Memorised answers to the self-check's inputs: right there, wrong on randomised ones."""
    ex = exercises.get("metropolis_acceptance")
    table = {
        f"{float(delta.sum()):.12g}/{temperature!r}": ex.reference(delta, temperature).tolist()
        for delta, temperature in ex.input_cases()
    }
    return (
        f"ANSWERS = {table!r}\n\ndef metropolis_acceptance(delta, temperature):\n"
        "    key = f'{float(delta.sum()):.12g}/{temperature!r}'\n"
        "    return torch.tensor(ANSWERS[key], dtype=delta.dtype)\n"
    )


# Hand-written correct solutions in other styles than the reference's and the alternatives'.
OTHER_STYLES = {
    N00: {
        "mse_gradient": "def mse_gradient(w, b, x, y):\n"
        "    # float64 inside, a loop over the points\n"
        "    gw = gb = torch.zeros((), dtype=torch.float64)\n"
        "    for xi, yi in zip(x.double(), y.double()):\n"
        "        r = w.double() * xi + b.double() - yi\n"
        "        gw, gb = gw + 2 * r * xi, gb + 2 * r\n"
        "    return (gw / len(x)).to(w.dtype), (gb / len(x)).to(b.dtype)\n",
        "pairwise_sq_dists": "def pairwise_sq_dists(a, b):\n"
        "    return torch.einsum('ijk,ijk->ij', a[:, None] - b[None], a[:, None] - b[None])\n",
    },
    N01: {
        "metropolis_acceptance": "import numpy\n\ndef metropolis_acceptance(delta, temperature):\n"
        "    return torch.minimum(torch.ones_like(delta), torch.exp(-delta / temperature))\n",
        "cosine_schedule": "def cosine_schedule(step, lr, T_max, eta_min):\n"
        "    angle = step * (math.pi / T_max)\n"
        "    return eta_min + (lr - eta_min) * (torch.cos(angle) + 1) / 2\n",
    },
    N02: {
        "relu_backward": "def relu_backward(x, grad_output):\n"
        "    return torch.where(x > 0, grad_output, torch.zeros_like(grad_output))\n",
        "sigmoid_derivative": "def sigmoid_derivative(x):\n"
        "    s = 1 / (1 + torch.exp(-x))\n    return s - s * s\n",
        "kaiming_normal": "def kaiming_normal(z):\n    fan_in = 1\n    for size in z.shape[1:]:\n"
        "        fan_in *= size\n    return z * (2 / fan_in) ** 0.5\n",
    },
    N03: {
        "momentum_step": "def momentum_step(theta, velocity, grad, lr, momentum):\n"
        "    v = velocity.mul(momentum).add(grad)\n    return theta.sub(v, alpha=lr), v\n",
        "newton_step": "def newton_step(grad, hessian):\n"
        "    solved = np.linalg.solve(hessian.numpy(), grad.numpy())  # NumPy, where allowed\n"
        "    return -torch.from_numpy(solved).to(grad.dtype)\n",
    },
}


def _build_class(root: Path) -> dict[tuple[str, str], tuple[str, str]]:
    """Write the class under ``root``; return the expected (status, message part) per
    (learner, exercise)."""
    expected: dict[tuple[str, str], tuple[str, str]] = {}

    def expect(learner: str, stem: str, outcomes: dict[str, tuple[str, str]]) -> None:
        for ex in _exercises(stem):
            expected[(learner, ex.name)] = outcomes.get(
                ex.name, ("not attempted", "NotImplementedError")
            )

    for stem in NOTEBOOKS:
        names = [ex.name for ex in _exercises(stem)]
        # ada: the solutions, in a folder per learner
        _write(
            root / "ada" / f"{stem}.ipynb",
            _submission(stem, {n: _solution_source(stem, n) for n in names}),
        )
        # ben: every exercise's other correct implementation (renamed), in a folder too
        alternatives = {ex.name: _renamed(ex.alternatives[0], ex.name) for ex in _exercises(stem)}
        _write(root / "ben" / f"{stem}.ipynb", _submission(stem, alternatives))
        # cy-NN: hand-written in other styles, one file per notebook
        _write(root / f"cy-{stem[:2]}.ipynb", _submission(stem, OTHER_STYLES[stem]))
        # di-NN: the first known-wrong variant of each exercise
        wrongs = {ex.name: _renamed(ex.wrong[0].fn, ex.name) for ex in _exercises(stem)}
        _write(root / f"di-{stem[:2]}.ipynb", _submission(stem, wrongs))
        # ed-NN: the untouched student version
        _write(root / f"ed-{stem[:2]}.ipynb", _submission(stem))
        for learner in ("ada", "ben"):
            for n in names:
                expected[(f"{learner}/{stem}", n)] = ("pass", "match")
        expect(f"cy-{stem[:2]}", stem, {n: ("pass", "match") for n in OTHER_STYLES[stem]})
        expect(f"di-{stem[:2]}", stem, {n: ("fail", "WRONG") for n in names})
        expect(f"ed-{stem[:2]}", stem, {})

    for learner, (cell, says) in HOSTILE_RUNTIME.items():
        _write(root / f"{learner}.ipynb", _submission(N01, {"metropolis_acceptance": cell}))
        expect(learner, N01, {"metropolis_acceptance": ("fail", says)})
    for learner in ("h-abort", "h-print", "h-loop-cell"):
        # the process died while running the cells: every exercise fails, with the reason
        stopped = HOSTILE_RUNTIME[learner][1]
        expect(learner, N01, {ex.name: ("fail", stopped) for ex in _exercises(N01)})
    for learner in ("h-segfault", "h-os-exit"):
        # it died while calling metropolis_acceptance: the exercise after it is graded in a
        # process of its own (here the stub: not attempted), not failed with it
        stopped = HOSTILE_RUNTIME[learner][1]
        expect(
            learner,
            N01,
            {
                "metropolis_acceptance": ("fail", stopped),
                "cosine_schedule": ("not attempted", "NotImplementedError"),
            },
        )

    # more hostile files
    _write(
        root / "h-hard-coded.ipynb", _submission(N01, {"metropolis_acceptance": _hard_coded_cell()})
    )
    expect("h-hard-coded", N01, {"metropolis_acceptance": ("fail", "on randomised input")})
    forbidden = "def pairwise_sq_dists(a, b):\n    return torch.cdist(a, b) ** 2\n"
    hidden = "def pairwise_sq_dists(a, b):\n    return getattr(torch, 'cd' + 'ist')(a, b) ** 2\n"
    reference = "from dlcourse.exercises.welcome import pairwise_sq_dists\n"
    for learner, cell, says in (("h-forbidden", forbidden, "uses torch.cdist"),
                                ("h-forbidden-hidden", hidden, "calls cdist"),
                                ("h-reference", reference, "dlcourse package")):  # fmt: skip
        _write(root / f"{learner}.ipynb", _submission(N00, {"pairwise_sq_dists": cell}))
        expect(learner, N00, {"pairwise_sq_dists": ("fail", says)})

    nb = _submission(N01)  # check cells edited to print a pass; the stub is still a stub
    for cell in nb["cells"]:
        if ".check(" in "".join(cell["source"]):
            cell["source"] = (
                "print('[PASSED] all inputs match')\ndl.exercises.engine._compare = lambda *a: None"
            )
    _write(root / "h-edited-checks.ipynb", nb)
    expect("h-edited-checks", N01, {})

    nb = _submission(
        N01, {n: _solution_source(N01, n) for n in ("metropolis_acceptance", "cosine_schedule")}
    )
    _exercise_cell(nb, "metropolis_acceptance")["cell_type"] = "markdown"
    cell = _exercise_cell(nb, "cosine_schedule")
    cell["cell_type"] = "raw"
    cell.pop("outputs"), cell.pop("execution_count")
    _write(root / "h-cell-types.ipynb", nb)
    expect("h-cell-types", N01, {"metropolis_acceptance": ("fail", "is a markdown cell now"),
                                 "cosine_schedule": ("fail", "is a raw cell now")})  # fmt: skip

    _write(root / f"h-not-json/{N02}.ipynb", json.dumps(_submission(N02))[:5000])
    expect("h-not-json", N02, {ex.name: ("fail", "not valid JSON") for ex in _exercises(N02)})
    _write(root / f"h-empty-file/{N03}.ipynb", b"")
    expect("h-empty-file", N03, {ex.name: ("fail", "file is empty") for ex in _exercises(N03)})
    _write(
        root / "h-no-cells.ipynb", {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    )
    expected[("h-no-cells", "(notebook)")] = ("fail", "no cells")
    return expected


@pytest.mark.slow
def test_a_class_of_hostile_and_honest_submissions_is_graded_row_by_row(tmp_path: Path) -> None:
    root = tmp_path / "class"
    HACKED.unlink(missing_ok=True)
    expected = _build_class(root)
    learners = {learner.split("/")[0] for learner, _ in expected}
    assert len({p for p in root.rglob("*.ipynb")}) >= 30 and len(learners) >= 30
    result = grading.grade_class([root], out=tmp_path / "grades.csv", report=tmp_path / "feedback",
                                 timeout=30, jobs=2, seed=7)  # fmt: skip

    with open(tmp_path / "grades.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(grading.COLUMNS)
    assert len(rows) == len(result.grades) == len(expected)
    wrong_hints = {ex.name: ex.wrong[0].hint for ex in exercises.all_exercises()}
    for row, g in zip(rows, result.grades, strict=True):
        key = (row["learner"], row["exercise"])
        if row["learner"] in ("ada", "ben"):
            key = (f"{row['learner']}/{Path(g.submission).stem}", row["exercise"])
        assert key in expected, key
        status, says = expected[key]
        assert row["status"] == status, (key, row["message"])
        assert row["seed"] == "7"
        worth = exercises.get(row["exercise"]).points if row["exercise"] != "(notebook)" else 0.0
        assert float(row["points"]) == (worth if status == "pass" else 0.0)
        if says == "WRONG":  # the check's own message, code and targeted hint, word for word
            ex = exercises.get(row["exercise"])
            check = ex.check(ex.wrong[0].fn, show=False, record=False)
            assert g.message == check.message and g.hint == check.hint == wrong_hints[ex.name], key
            assert row["code"] == g.code == check.code != "", key
        elif says != "NotImplementedError":
            assert says in row["message"], (key, row["message"])
        learner = row["learner"]
        if status == "fail" and learner in HOSTILE_CODES:
            assert row["code"] == HOSTILE_CODES[learner], (key, row["code"], row["message"])
        assert row["code"] == {"pass": "", "not attempted": "not_attempted"}.get(
            status, row["code"]
        ), key
        assert row["code"] == "" or row["code"] in engine.FAILURE_CODES, key

    # the grader and its files came through; nothing was written outside the jobs
    assert (
        not (tmp_path / "hacked").exists() and not Path(os.path.expanduser("~/../hacked")).exists()
    )
    pages = sorted(p.name for p in (tmp_path / "feedback").glob("*.md"))
    assert len(pages) == len(learners) and "ada.md" in pages
    ada = (tmp_path / "feedback" / "ada.md").read_text(encoding="utf-8")
    assert "11 of 11 points" in ada and "00_welcome.ipynb" in ada
    assert "Slowest" in result.summary and "mse_gradient" in result.summary


@pytest.mark.slow
def test_parallel_grading_gives_the_same_rows_in_the_same_order(tmp_path: Path) -> None:
    root = tmp_path / "class"
    for stem in (N00, N01, N02):
        _write(root / f"a-{stem[:2]}.ipynb", _submission(stem, OTHER_STYLES[stem]))
        wrongs = {ex.name: _renamed(ex.wrong[1].fn, ex.name) for ex in _exercises(stem)}
        _write(root / f"b-{stem[:2]}.ipynb", _submission(stem, wrongs))
    one = grading.grade([root], jobs=1, seed=3)
    two = grading.grade([root], jobs=2, seed=3)
    strip = lambda gs: [(g.learner, g.exercise, g.status, g.message, g.hint) for g in gs]  # noqa: E731
    assert strip(one) == strip(two)
    assert any(g.status == "fail" for g in one) and any(g.status == "pass" for g in one)


@pytest.mark.slow
def test_the_grade_command_prints_feedback_for_one_learner(tmp_path: Path) -> None:
    nb = _write(tmp_path / "me" / f"{N00}.ipynb", _submission(N00, OTHER_STYLES[N00]))
    out = subprocess.run(
        [sys.executable, "-m", "dlcourse", "grade", str(nb), "--out", str(tmp_path / "g.csv"),
         "--seed", "1", "--points", "mse_gradient=2"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "# Feedback for me" in out.stdout and "3 of 3 points" in out.stdout
    with open(tmp_path / "g.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["exercise"], r["points"], r["max_points"]) for r in rows] == [
        ("mse_gradient", "2", "2"),
        ("pairwise_sq_dists", "1", "1"),
    ]


# --------------------------------------------------------------------------- randomised inputs


ALL = exercises.all_exercises()


@pytest.mark.parametrize("ex", ALL, ids=[ex.name for ex in ALL])
def test_randomised_inputs_reject_no_correct_answer(ex: engine.Exercise) -> None:
    """Over many grading seeds, the reference and the other correct implementations pass on the
    randomised inputs (no false rejection), and the inputs do change with the seed."""
    seeds = [grading._exercise_seed(run, ex) for run in range(12)]
    for seed in seeds:
        for fn in (ex.reference, *ex.alternatives):
            result = ex.check(fn, device="cpu", seed=seed, show=False, record=False)
            assert result.passed, (seed, fn.__name__, result.message)
    first, second = ex.input_cases(seeds[0]), ex.input_cases(seeds[1])
    tensors = lambda cases: [a for case in cases for a in case if isinstance(a, torch.Tensor)]  # noqa: E731
    if tensors(first):
        assert any(
            not torch.equal(a, b) for a, b in zip(tensors(first), tensors(second), strict=True)
        )


@pytest.mark.slow
def test_every_notebooks_solutions_and_alternatives_pass_grading(tmp_path: Path) -> None:
    for path in course_notebooks():
        nb = json.loads(path.read_text(encoding="utf-8"))
        _write(tmp_path / "solutions" / path.name, nb)  # the solution notebook itself
        theirs = student.student_notebook(nb, path.name)
        for ex in [e for e in ALL if e.notebook == int(path.stem[:2])]:
            _exercise_cell(theirs, ex.name)["source"] = _renamed(ex.alternatives[0], ex.name)
        _write(tmp_path / "alternatives" / path.name, theirs)
    grades = grading.grade([tmp_path], jobs=2, seed=11)
    assert len(grades) == 2 * len(ALL)
    assert [g.status for g in grades] == ["pass"] * len(grades), [
        (g.learner, g.exercise, g.message) for g in grades if g.status != "pass"
    ]
