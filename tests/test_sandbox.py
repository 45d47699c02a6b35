"""dlcourse.exercises.sandbox: the grading process holds no reference solution.

A learner's cell runs in a process that got its inputs as data (dlcourse.exercises.wire); these
tests look around that process from inside, as a cheating learner would."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dlcourse.exercises import grading, sandbox
from tests.test_grading import N01, _solution_source, _submission, _write

# What the grading process may hold of the package: the learner's side of the engine, the wire,
# the guard, the fence, the landscapes an input needs. Never an exercise module, the registry,
# the optimizers or anything else whose code is an answer.
ALLOWED = {
    "dlcourse",
    "dlcourse._version",
    "dlcourse.threads",  # the OpenMP wait policy, set on import before torch loads
    "dlcourse.exercises",
    "dlcourse.exercises.engine",
    "dlcourse.exercises.fence",
    "dlcourse.exercises.forbidden",
    "dlcourse.exercises.given",
    "dlcourse.exercises.limits",
    "dlcourse.exercises.sandbox",
    "dlcourse.exercises.wire",
    "dlcourse.landscapes",
    # gettext for the engine's messages: the learner's side writes English, the judge translates;
    # it holds message texts only (a catalogue is read when Korean is asked for, never here)
    "dlcourse.i18n",
}

LOOK_AROUND = """
import gc, sys
pkg = "dl" + "course"
print("MODULES", *sorted(m for m in sys.modules if m.startswith(pkg)))
kinds = {"Exercise", "Wrong", "_Settings", "CheckResult"}
print("OBJECTS", *sorted({type(o).__name__ for o in gc.get_objects() if type(o).__name__ in kinds}))
twins = [o for o in gc.get_objects()
         if callable(o) and getattr(o, "__name__", "") == "cosine_schedule"]
print("TWINS", len(twins))
try:
    where = sys.modules[pkg + ".exercises.engine"].__file__
    open(where.replace("engine.py", "gradient_descent.py")).read()
    print("SOURCE read")
except OSError as exc:
    print("SOURCE refused", type(exc).__name__)
"""


@pytest.mark.slow
def test_the_grading_process_holds_no_reference_and_cannot_read_one(tmp_path: Path) -> None:
    source = LOOK_AROUND + "\n" + _solution_source(N01, "cosine_schedule")
    path = _write(tmp_path / "alice.ipynb", _submission(N01, {"cosine_schedule": source}))
    result = grading.grade_class([path], seed=1)
    lines = {line.split()[0]: line.split()[1:] for line in result.runs[0].output.splitlines()}
    assert set(lines["MODULES"]) <= ALLOWED, set(lines["MODULES"]) - ALLOWED
    assert lines["OBJECTS"] == []
    assert lines["TWINS"] == ["0"]  # (it runs before the learner defines theirs): no reference
    if sys.platform.startswith("linux") and result.runs[0].fence.startswith("Landlock"):
        assert lines["SOURCE"][0] == "refused"
    (graded,) = [g for g in result.grades if g.exercise == "cosine_schedule"]
    assert graded.status == "pass", graded.message


def test_the_grading_process_boots_from_three_arguments() -> None:
    """The command line isolation.py builds: the job, the package's parent, the results pipe."""
    assert "sys.argv[3]" in sandbox.BOOT and "sys.argv[2]" in sandbox.BOOT
    assert "registry" not in Path(sandbox.__file__).read_text(encoding="utf-8")


def test_the_results_pipe_is_named_by_number_or_windows_handle() -> None:
    assert sandbox._results_fd("7") == 7 and sandbox._results_fd(5) == 5
    if sys.platform != "win32":
        with pytest.raises(ImportError):  # msvcrt: Windows' own
            sandbox._results_fd("h12")
