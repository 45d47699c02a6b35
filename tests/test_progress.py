"""dlcourse.exercises.progress: the report lists each notebook's exercises in its order.

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
