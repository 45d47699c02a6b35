"""dlcourse.exercises.progress: the report lists each notebook's exercises in its order, and
names a notebook that has none.

(Recording and reading progress is tested with the exercises, in tests/test_exercises.py.)"""

from __future__ import annotations

import re
from pathlib import Path

from dlcourse import exercises
from dlcourse.exercises import progress
from dlcourse.machinery.notebooks import course_notebooks


def _defined_in(path: Path, names: set[str]) -> list[str]:
    """``names`` in the order the notebook's text first defines them."""
    order = re.findall(r"def (\w+)\(", path.read_text(encoding="utf-8"))
    return list(dict.fromkeys(n for n in order if n in names))


def test_the_report_lists_exercises_in_the_notebooks_order(tmp_path: Path) -> None:
    every = exercises.all_exercises()
    report = progress.progress_report(every, tmp_path / ".progress.json")
    listed = re.findall(r"\] (\w+):", report)
    shuffled = 0
    for path in course_notebooks():
        mine = [ex for ex in every if ex.notebook == int(path.name[:2])]
        if not mine:
            continue
        names = [ex.name for ex in mine]
        expected = _defined_in(path, set(names))
        assert [n for n in listed if n in names] == expected, path.name
        shuffled += names != expected
    assert shuffled, "no notebook's registry order differs from its own: nothing is tested"


def test_every_notebook_of_the_course_map_is_in_the_report(tmp_path: Path) -> None:
    """A notebook without exercises (08, the capstone) is named as having none, not left out
    (a learner working in it would wonder whether the report had missed it)."""
    from dlcourse.course import NOTEBOOKS
    from dlcourse.exercises.registry import PACKAGE, exercise_modules

    every = exercises.all_exercises()
    report = progress.progress_report(every, tmp_path / ".progress.json")
    headers = [line for line in report.splitlines() if re.match(r"\d\d ", line)]
    assert [h[:2] for h in headers] == [f"{nb.number:02d}" for nb in NOTEBOOKS]
    have = set(exercise_modules())
    for nb, header in zip(NOTEBOOKS, headers, strict=True):
        assert header.startswith(f"{nb.number:02d} {nb.title}: ")
        count = sum(ex.notebook == nb.number for ex in every)
        if f"{PACKAGE}.{nb.slug}" in have:
            assert count and header.endswith(f": 0/{count} passed"), header
        else:
            assert not count and header.endswith(": no exercises to check"), header
