"""Learner progress: which exercises pass, kept in a small JSON file on the learner's machine.

The file is ``$DLCOURSE_PROGRESS`` if set (``off`` turns recording off, as the
tests and the regenerate command do), else ``$XDG_DATA_HOME/dlcourse/progress.json``,
else ``~/.local/share/dlcourse/progress.json``. A missing, unreadable or read-only
file never breaks a check: recording is skipped and the check's result stands.
``dlcourse progress`` prints it per notebook.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from dlcourse.atomic import write_bytes_atomically

PROGRESS_ENV_VAR = "DLCOURSE_PROGRESS"


def progress_path() -> Path | None:
    """Where progress is kept, or None when recording is off."""
    value = os.environ.get(PROGRESS_ENV_VAR, "")
    if value.lower() == "off":
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "dlcourse" / "progress.json"


def load_progress() -> dict[str, dict[str, str]]:
    """``{notebook: {exercise: when it first passed}}``; empty when there is nothing readable."""
    path = progress_path()
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        passed = data["passed"]
        return {str(k): dict(v) for k, v in passed.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def record_pass(notebook: int, exercise: str) -> bool:
    """Remember that ``exercise`` passed; False (and no error) when it cannot be written."""
    path = progress_path()
    if path is None:
        return False
    passed = load_progress()
    key = f"{notebook:02d}"
    if exercise in passed.get(key, {}):
        return True
    passed.setdefault(key, {})[exercise] = time.strftime("%Y-%m-%d %H:%M")
    try:
        text = json.dumps({"passed": passed}, indent=1, sort_keys=True)
        write_bytes_atomically(path, text.encode("utf-8"))
    except OSError:
        return False
    return True


def progress_report() -> str:
    """Per notebook, each exercise with a tick when it has passed (``dlcourse progress``)."""
    from dlcourse.course import NOTEBOOKS
    from dlcourse.exercises import all_exercises

    passed = load_progress()
    lines = []
    exercises = all_exercises()
    for nb in NOTEBOOKS:
        mine = [ex for ex in exercises if ex.notebook == nb.number]
        if not mine:
            continue
        done = passed.get(f"{nb.number:02d}", {})
        lines.append(
            f"{nb.number:02d} {nb.title}: {sum(ex.name in done for ex in mine)}/{len(mine)}"
        )
        for ex in mine:
            mark = "x" if ex.name in done else " "
            when = f"  (passed {done[ex.name]})" if ex.name in done else ""
            lines.append(f"   [{mark}] {ex.name}{when}")
    path = progress_path()
    where = "recording is off" if path is None else f"kept in {path}"
    lines.append(f"({where})")
    return "\n".join(lines)
