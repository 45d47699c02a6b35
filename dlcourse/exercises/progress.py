"""Learner progress: each exercise's last result and when it first passed.

Only checks run in the learner's own notebooks count. Those are the copies in the
learner's workspace (``work/`` in the course folder, see :mod:`dlcourse.machinery.workspace`),
and the progress file lives beside them: ``work/.progress.json``. A check records
its result when the notebook it runs in lies in a workspace: the notebook Jupyter
names in ``JPY_SESSION_NAME`` (JupyterLab sets it for every kernel it starts), or,
where that is not set, the current directory. Tests, graders, scripts and the
solution notebooks in ``notebooks/`` run elsewhere, so they record nothing.

``DLCOURSE_PROGRESS`` overrides the rule: a file to record into, or ``off``.

For each exercise the file keeps the time of its first pass, the result and time
of its last check, and how many checks ran; a check that finds the stub ("not
attempted yet") is not a check of the learner's work and is not recorded. A
missing, unreadable or read-only file never breaks a check: recording is skipped
and the check's result stands. ``dlcourse progress`` prints it per notebook, each
notebook's exercises in the order the notebook has them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlcourse.course import NOTEBOOKS, Notebook
from dlcourse.i18n import _
from dlcourse.machinery.atomic import write_bytes_atomically
from dlcourse.machinery.notebooks import is_workspace

if TYPE_CHECKING:
    from dlcourse.exercises.engine import Exercise

PROGRESS_ENV_VAR = "DLCOURSE_PROGRESS"
PROGRESS_FILE = ".progress.json"
FORMAT = 2

Progress = dict[str, dict[str, dict[str, Any]]]  # {"00": {exercise: {first_passed, last, ...}}}


def _running_notebook_dir() -> Path:
    """The folder of the notebook this kernel runs (Jupyter tells), else the current directory."""
    session = os.environ.get("JPY_SESSION_NAME", "")
    if session.endswith(".ipynb") and os.path.isabs(session):
        return Path(session).parent
    return Path.cwd()


def progress_path() -> Path | None:
    """Where this process records progress, or None when it records nothing."""
    value = os.environ.get(PROGRESS_ENV_VAR, "")
    if value.lower() == "off":
        return None
    if value:
        return Path(value).expanduser()
    here = _running_notebook_dir()
    if not is_workspace(here):
        return None
    # work/ko/ (the Korean copies) records into work/: one progress, whatever the language
    if is_workspace(here.parent) and len(here.name) == 2 and here.name.isalpha():
        return here.parent / PROGRESS_FILE
    return here / PROGRESS_FILE


def load_progress(path: Path | None = None) -> Progress:
    """The recorded progress (of ``path``, else of :func:`progress_path`); empty if unreadable."""
    path = progress_path() if path is None else path
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            return {}
        return {
            str(nb): {str(name): dict(entry) for name, entry in exercises.items()}
            for nb, exercises in data["exercises"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def record_result(notebook: int, exercise: str, status: str) -> bool:
    """Record one check of ``exercise`` (``status``: pass, fail, timeout, error).

    Returns False, and raises nothing, when this process records nothing or cannot write.
    """
    path = progress_path()
    if path is None:
        return False
    progress = load_progress(path)
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    entry = progress.setdefault(f"{notebook:02d}", {}).setdefault(
        exercise, {"first_passed": None, "checks": 0}
    )
    if status == "pass" and not entry.get("first_passed"):
        entry["first_passed"] = now
    entry.update(last=status, last_checked=now, checks=int(entry.get("checks", 0)) + 1)
    try:
        text = json.dumps({"format": FORMAT, "exercises": progress}, indent=1, sort_keys=True)
        write_bytes_atomically(path, text.encode("utf-8"))
    except OSError:
        return False
    return True


def _line(name: str, entry: dict[str, Any] | None) -> str:
    if not entry:
        return _("   [ ] {name}: not attempted").format(name=name)
    first, last, when = entry.get("first_passed"), entry.get("last"), entry.get("last_checked")
    if first and last == "pass":
        return _("   [x] {name}: passed {first}").format(name=name, first=first)
    if first:
        return _("   [!] {name}: passed {first}, but the last check ({when}) said: {last}").format(
            name=name, first=first, when=when, last=_status(last)
        )
    return _("   [ ] {name}: not passed yet; last check ({when}) said: {last}").format(
        name=name, when=when, last=_status(last)
    )


def _status(status: Any) -> str:
    """A recorded status (pass, fail, timeout, error) in the current language."""
    names = {"pass": _("pass"), "fail": _("fail"), "timeout": _("timeout"), "error": _("error")}
    return names.get(status, str(status))


def in_notebook_order(number: int, exercises: Sequence[Exercise]) -> list[Exercise]:
    """``exercises`` (all of notebook ``number``) in the order the notebook defines them: the
    order a learner meets them. As given when the course's notebooks are not here."""
    import re

    from dlcourse.machinery.notebooks import cell_source, course_notebooks

    found = [p for p in course_notebooks() if p.name[:2] == f"{number:02d}"]
    try:
        cells = json.loads(found[0].read_text(encoding="utf-8"))["cells"] if found else []
    except (OSError, ValueError, KeyError):
        cells = []
    defined = [
        name
        for cell in cells
        if cell.get("cell_type") == "code"
        for name in re.findall(r"^def (\w+)\(", cell_source(cell), flags=re.MULTILINE)
    ]
    first = {name: i for i, name in reversed(list(enumerate(defined)))}
    given = {id(ex): i for i, ex in enumerate(exercises)}
    return sorted(exercises, key=lambda ex: (first.get(ex.name, len(defined)), given[id(ex)]))


def _has_exercises(nb: Notebook) -> bool:
    """Whether notebook ``nb`` has a module of exercises, ``dlcourse.exercises.<slug>``, as
    :mod:`dlcourse.exercises.registry` finds them (not imported here: the registry imports the
    engine, which imports this module)."""
    return importlib.util.find_spec(f"dlcourse.exercises.{nb.slug}") is not None


def progress_report(exercises: Sequence[Exercise], path: Path | None = None) -> str:
    """Per notebook, each exercise: passed, passed then failed, tried, or not attempted; a
    notebook with no exercises at all (the capstone) is named as having none.

    ``exercises``: the course's (``dlcourse.exercises.all_exercises()``); ``path``: the
    progress file (default: this process's, :func:`progress_path`).
    """
    path = progress_path() if path is None else path
    progress = load_progress(path) if path is not None else {}
    lines = []
    for nb in NOTEBOOKS:
        mine = in_notebook_order(nb.number, [ex for ex in exercises if ex.notebook == nb.number])
        if not mine:
            if not _has_exercises(nb):  # the capstone: the learner's model is their own
                lines.append(
                    _("{number} {title}: no exercises to check").format(
                        number=f"{nb.number:02d}", title=_(nb.title)
                    )
                )
            continue
        done = progress.get(f"{nb.number:02d}", {})
        passed = sum(bool(done.get(ex.name, {}).get("first_passed")) for ex in mine)
        lines.append(
            _("{number} {title}: {passed}/{count} passed").format(
                number=f"{nb.number:02d}", title=_(nb.title), passed=passed, count=len(mine)
            )
        )
        lines.extend(_line(ex.name, done.get(ex.name)) for ex in mine)
    where = _("nothing is recorded here") if path is None else _("kept in {path}").format(path=path)
    lines.append(f"({where})")
    return "\n".join(lines)
