"""The instructor's view of a class on a JupyterHub: every learner's progress, and their work
collected for grading.

::

    dlcourse class progress /home/alice /home/bob --csv progress.csv --figure progress.png
    dlcourse class progress /home            # a folder of learners' homes: each one below it
    dlcourse class collect /home --out submissions/
    dlcourse grade submissions/ --out grades.csv --report feedback/

A **learner** is a home folder (the learner is the folder's name) holding a copy of the course,
at its root or one folder down, as nbgitpuller pulls it into a hub learner's home
(:func:`dlcourse.machinery.workspace.find_course`); a course folder given directly is a learner
of its own name. A folder that is neither, but has such homes below it, stands for all of them.

**Progress** comes from the file the exercise checks record into, ``work/.progress.json``
(:mod:`dlcourse.exercises.progress`); the Korean copies in ``work/ko/`` record into the same
file, so a check passed in either language counts once. Per exercise a learner has

- ``passed``: passed, and the last check passed too;
- ``failed since``: passed once, but the last check did not;
- ``not passed yet``: checked, never passed;
- ``not attempted``: never checked (or the check found the stub);

or the learner is ``unreadable``, with the reason. Everything in a learner's folder is
untrusted: the progress file is read without following links, only as a regular file of at
most :data:`MAX_PROGRESS_BYTES`, its JSON's nesting measured before it is parsed, and then
checked against what :func:`dlcourse.exercises.progress.record_result` writes (known notebooks
and exercises, times in its format, counts that are whole numbers of a sane size). A file that
is not that makes its learner ``unreadable`` with the reason, never the class's problem; names
reach the terminal without control characters and the CSV without formulas
(:func:`dlcourse.exercises.class_report.csv_cell`).

**Collecting** copies each learner's ``work/NN_*.ipynb`` into ``OUT/<learner>/`` with the
course's file names, the layout :func:`dlcourse.exercises.submissions.find_submissions` reads
as "this learner's notebook NN", so ``dlcourse grade OUT`` grades each learner under their name.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import re
import stat
import time
import unicodedata
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlcourse.course import NOTEBOOKS
from dlcourse.exercises.class_report import csv_cell, page_name
from dlcourse.exercises.limits import MAX_NOTEBOOK_BYTES
from dlcourse.exercises.progress import FORMAT, PROGRESS_FILE
from dlcourse.exercises.submissions import (
    NotebookProblem,
    json_shape,
    read_bytes_below,
    read_bytes_safely,
    readable,
)
from dlcourse.i18n import N_, _
from dlcourse.machinery.atomic import write_bytes_atomically
from dlcourse.machinery.workspace import WORKSPACE_DIR, find_course

__all__ = [
    "CSV_COLUMNS",
    "STATUSES",
    "UNREADABLE",
    "ClassroomError",
    "Collected",
    "ExerciseProgress",
    "Learner",
    "LearnerProgress",
    "class_progress",
    "collect",
    "describe_collection",
    "find_learners",
    "progress_csv",
    "progress_table",
    "read_progress",
    "write_progress_csv",
    "write_progress_figure",
]

WORK = WORKSPACE_DIR.name  # "work"
MAX_PROGRESS_BYTES = 1 << 20  # the course's 26 exercises write about 5 kB
MAX_PROGRESS_DEPTH = 8  # record_result writes 4 levels
MAX_PROGRESS_CONTAINERS = 10_000
MAX_CHECKS = 10**9  # more checks than anyone runs: a count beyond is not a real one
_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")  # as record_result writes it
_RESULTS = ("pass", "fail", "timeout", "error")

STATUSES = ("passed", "failed since", "not passed yet", "not attempted")
UNREADABLE = "unreadable"
# How the terminal table and its legend mark each status (one character each).
_MARKS = {"passed": "x", "failed since": "!", "not passed yet": "o", "not attempted": "."}
_STATUS_NAMES = {
    "passed": N_("passed"),
    "failed since": N_("failed since"),
    "not passed yet": N_("not passed yet"),
    "not attempted": N_("not attempted"),
    UNREADABLE: N_("unreadable"),
}
CSV_COLUMNS = ("learner", "notebook", "exercise", "status", "first_passed", "last_checked",
               "checks", "note")  # fmt: skip


class ClassroomError(ValueError):
    """A class command that cannot do what was asked; the message says why and what to do."""


# --------------------------------------------------------------------------- the learners


@dataclass(frozen=True)
class Learner:
    """One learner: their name (unique in the class, as the terminal may show it), their home
    folder, and their copy of the course there (None, with ``problem`` saying why)."""

    name: str
    home: Path
    course: Path | None
    problem: str = ""


def _is_folder(path: Path) -> bool:
    """A real folder, not a link to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and _is_folder(p))
    except OSError:
        return []


def _no_course(home: Path) -> str:
    """Why ``home`` shows no course: it may not be read, or there is none."""
    if not os.access(home, os.R_OK | os.X_OK):
        return _("this home cannot be read by you: run the command as a user who may (sudo)")
    return _("no copy of the course in this home")


def find_learners(homes: Iterable[str | Path]) -> list[Learner]:
    """The learners ``homes`` name: each a learner's home (or their course folder), or a folder
    of homes (each folder below it that is not hidden). Names are made unique (``alice-2``).
    :exc:`ClassroomError` for a path that is not a folder, and when no course is found at all."""
    found: list[Learner] = []
    homes = [Path(os.path.abspath(h)) for h in homes]
    if not homes:
        raise ClassroomError(_("give the learners' home folders (or a folder of them)"))
    for home in homes:
        if not home.is_dir():
            raise ClassroomError(
                _("no such folder: {path}: give learners' home folders").format(
                    path=readable(str(home))
                )
            )
        course = find_course(home)
        if course is not None:
            found.append(Learner(home.name, home, course))
            continue
        below = _children(home)
        courses = {child: find_course(child) for child in below}
        if any(courses.values()):  # a folder of homes: every home below it is a learner
            for child in below:
                course = courses[child]
                found.append(
                    Learner(child.name, child, course, "" if course else _no_course(child))
                )
        else:
            found.append(Learner(home.name, home, None, _no_course(home)))
    if not any(learner.course for learner in found):
        raise ClassroomError(
            _(
                "no copy of the course found in {paths} (nor one folder below): give the "
                "learners' home folders, where nbgitpuller pulled the course"
            ).format(paths=", ".join(readable(str(h)) for h in homes))
        )
    seen: dict[str, int] = {}
    unique = []
    for learner in found:
        name = readable(learner.name) or "?"
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name}-{seen[name]}"
        unique.append(Learner(name, learner.home, learner.course, learner.problem))
    return unique


# --------------------------------------------------------------------------- reading progress


@dataclass(frozen=True)
class ExerciseProgress:
    """One learner's progress on one exercise (times as recorded: local time, to the second)."""

    notebook: str  # "03"
    exercise: str
    status: str  # one of STATUSES
    first_passed: str = ""
    last_checked: str = ""
    checks: int = 0


@dataclass
class LearnerProgress:
    """A learner's progress on every exercise of the course, in the notebooks' order; or, when
    their progress file could not be read, no rows and the reason (``problem``)."""

    learner: Learner
    exercises: list[ExerciseProgress] = field(default_factory=list)
    problem: str = ""

    @property
    def readable(self) -> bool:
        return not self.problem

    def passed(self, notebook: str | None = None) -> int:
        return sum(
            e.status in ("passed", "failed since")
            for e in self.exercises
            if notebook is None or e.notebook == notebook
        )


@functools.cache
def _course_exercises() -> tuple[tuple[str, str], ...]:
    """Every exercise as (notebook number, name), in the order a learner meets them (read once:
    it reads the notebooks)."""
    from dlcourse.exercises.progress import in_notebook_order
    from dlcourse.exercises.registry import all_exercises

    every = all_exercises()
    order = []
    for nb in NOTEBOOKS:
        mine = [ex for ex in every if ex.notebook == nb.number]
        order += [(f"{nb.number:02d}", ex.name) for ex in in_notebook_order(nb.number, mine)]
    return tuple(order)


class _Unreadable(ValueError):
    """A progress file that is not what dlcourse writes; the message says how."""


def _reject_constant(name: str) -> Any:
    raise _Unreadable(_("the progress file holds {name}, which dlcourse never writes").format(
        name="NaN" if name == "NaN" else "Infinity"))  # fmt: skip


def _read_progress_bytes(course: Path) -> bytes | None:
    """The bytes of the learner's progress file; None when there is none (nothing checked
    yet). :exc:`_Unreadable` for a link, anything but a regular file, or a large file."""
    work = course / WORK
    try:
        work_mode = os.lstat(work).st_mode
    except FileNotFoundError:
        return None  # no workspace yet: their server has not made the copies
    except OSError as exc:
        raise _Unreadable(_("work/ cannot be read: {why}").format(why=exc.strerror)) from None
    if stat.S_ISLNK(work_mode):
        raise _Unreadable(_("work/ is a link, which is not followed"))
    if not stat.S_ISDIR(work_mode):
        raise _Unreadable(_("work/ is not a folder"))
    path = work / PROGRESS_FILE
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        why = exc.strerror
        raise _Unreadable(_("the progress file cannot be read: {why}").format(why=why)) from None
    if stat.S_ISLNK(info.st_mode):
        raise _Unreadable(_("the progress file is a link, which is not followed"))
    if not stat.S_ISREG(info.st_mode):
        raise _Unreadable(_("the progress file is not a regular file"))
    if info.st_size > MAX_PROGRESS_BYTES:
        raise _Unreadable(
            _("the progress file is larger than {kb} kB, which dlcourse never writes").format(
                kb=MAX_PROGRESS_BYTES >> 10
            )
        )
    try:  # again, race-free: O_NOFOLLOW, regular files only, at most the limit
        return read_bytes_safely(path, MAX_PROGRESS_BYTES)
    except NotebookProblem:
        raise _Unreadable(
            _("the progress file changed while it was read, or cannot be read")
        ) from None


def _entry(entry: Any, where: str) -> ExerciseProgress:
    """One exercise's recorded entry, checked against what record_result writes."""
    notebook, name = where.split(" ", 1)

    def bad(what: str) -> _Unreadable:
        return _Unreadable(
            _("the entry of {exercise} (notebook {notebook}) has a bad {field}").format(
                exercise=name, notebook=notebook, field=what
            )
        )

    if not isinstance(entry, dict):
        raise bad("entry")
    first, last = entry.get("first_passed"), entry.get("last")
    when, checks = entry.get("last_checked"), entry.get("checks", 0)
    if first is not None and not (isinstance(first, str) and _TIME.fullmatch(first)):
        raise bad("first_passed")
    if last not in _RESULTS:
        raise bad("last")
    if not (isinstance(when, str) and _TIME.fullmatch(when)):
        raise bad("last_checked")
    if type(checks) is not int or not 1 <= checks <= MAX_CHECKS:
        raise bad("checks")
    if first:
        status = "passed" if last == "pass" else "failed since"
    elif last == "pass":
        raise bad("first_passed")  # a pass records its time
    else:
        status = "not passed yet"
    return ExerciseProgress(notebook, name, status, first or "", when, checks)


def read_progress(course: Path) -> list[ExerciseProgress]:
    """The progress recorded in ``course``'s ``work/.progress.json``: every exercise of the
    course, in order. Entries for notebooks or exercises this course does not have (another
    version's) are left out. :exc:`ValueError` (its message the reason) when the file is not
    one dlcourse wrote, or cannot be read safely."""
    raw = _read_progress_bytes(Path(course))
    recorded: dict[tuple[str, str], ExerciseProgress] = {}
    if raw is not None:
        recorded = _parse_progress(raw)
    return [
        recorded.get((nb, name), ExerciseProgress(nb, name, "not attempted"))
        for nb, name in _course_exercises()
    ]


def _parse_progress(raw: bytes) -> dict[tuple[str, str], ExerciseProgress]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Unreadable(_("the progress file is not UTF-8 text")) from None
    depth, containers = json_shape(raw)
    if depth > MAX_PROGRESS_DEPTH or containers > MAX_PROGRESS_CONTAINERS:
        raise _Unreadable(_("the progress file nests deeper, or holds more, than dlcourse writes"))
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except _Unreadable:
        raise
    except (ValueError, RecursionError):  # not JSON; a number of thousands of digits
        raise _Unreadable(
            _("the progress file is not valid JSON (cut short, or edited?)")
        ) from None
    if not isinstance(data, dict) or type(data.get("format")) is not int:
        raise _Unreadable(_("the progress file is not one dlcourse writes (no format)"))
    if data["format"] != FORMAT:
        shown = data["format"] if abs(data["format"]) < 1000 else "?"
        raise _Unreadable(
            _("the progress file has format {found}; this dlcourse reads format {format}").format(
                found=shown, format=FORMAT
            )
        )
    exercises = data.get("exercises")
    if not isinstance(exercises, dict):
        raise _Unreadable(_("the progress file is not one dlcourse writes (no exercises)"))
    known = set(_course_exercises())
    recorded = {}
    for notebook, entries in exercises.items():
        if not isinstance(entries, dict):
            raise _Unreadable(_("the progress file is not one dlcourse writes (no exercises)"))
        for name, entry in entries.items():
            if (notebook, name) in known:  # else another course version's: left out
                recorded[(notebook, name)] = _entry(entry, f"{notebook} {name}")
    return recorded


def class_progress(homes: Iterable[str | Path]) -> list[LearnerProgress]:
    """Every learner's progress (:func:`find_learners`, :func:`read_progress`). A learner whose
    progress cannot be read is one with a ``problem`` and no rows; the others go on."""
    found = []
    for learner in find_learners(homes):
        if learner.course is None:
            found.append(LearnerProgress(learner, problem=learner.problem))
            continue
        try:
            found.append(LearnerProgress(learner, read_progress(learner.course)))
        except _Unreadable as exc:
            found.append(LearnerProgress(learner, problem=str(exc)))
        except (OSError, ValueError, RecursionError, MemoryError) as exc:  # belt and braces
            why = _("the progress file cannot be read: {why}").format(why=type(exc).__name__)
            found.append(LearnerProgress(learner, problem=why))
    return found


# --------------------------------------------------------------------------- the terminal table


def _width(text: str) -> int:
    """Columns ``text`` takes in a terminal: East Asian wide characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` columns (ending in an ellipsis when cut), then padded."""
    if _width(text) > width:
        while _width(text) > width - 1:
            text = text[:-1]
        text += "…"
    return text + " " * (width - _width(text))


def _by_notebook() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for nb, name in _course_exercises():
        groups.setdefault(nb, []).append(name)
    return groups


def progress_table(learners: Sequence[LearnerProgress]) -> str:
    """The class's progress for a terminal: per learner, each notebook's exercises passed of
    its count (``!`` where one of them failed since), and the total; then per exercise, how
    many learners are in each state and the class's first pass; then the learners whose
    progress could not be read, with the reason."""
    groups = _by_notebook()
    names = [readable(lp.learner.name) for lp in learners]
    name_width = min(max([_width(n) for n in names] + [_width(_("learner"))]), 24)
    total = sum(len(v) for v in groups.values())
    header = [_fit(_("learner"), name_width), *(nb.ljust(4) for nb in groups)]
    lines = ["  ".join(header) + "  " + _("passed")]
    for lp, name in zip(learners, names, strict=True):
        row = [_fit(name, name_width)]
        if not lp.readable:
            lines.append(row[0] + "  " + _("unreadable: see below"))
            continue
        for nb, exercises in groups.items():
            mine = [e for e in lp.exercises if e.notebook == nb]
            since = "!" if any(e.status == "failed since" for e in mine) else ""
            row.append(f"{lp.passed(nb)}/{len(exercises)}{since}".ljust(4))
        lines.append("  ".join(row) + "  " + f"{lp.passed()}/{total}")
    lines += [
        _("(passed of each notebook's exercises; ! one of them failed since it passed)"),
        "",
        *_exercise_lines(learners),
    ]
    bad = [(name, lp) for name, lp in zip(names, learners, strict=True) if not lp.readable]
    if bad:
        lines += ["", _("Unreadable ({count}):").format(count=len(bad))]
        lines += [f"  {name}: {readable(lp.problem)}" for name, lp in bad]
    return "\n".join(lines)


def _exercise_lines(learners: Sequence[LearnerProgress]) -> list[str]:
    """Per exercise: how many learners passed, failed since, have not passed yet, have not
    attempted it; and the class's first pass."""
    counted = [lp for lp in learners if lp.readable]
    names = [_(_STATUS_NAMES[s]) for s in STATUSES]
    widths = [max(_width(n), 5) for n in names]
    title = _fit(_("exercise"), 28)
    head = "  ".join([title] + [_fit(n, w) for n, w in zip(names, widths, strict=True)])
    lines = [head + "  " + _("first pass")]
    for nb, name in _course_exercises():
        rows = [e for lp in counted for e in lp.exercises if (e.notebook, e.exercise) == (nb, name)]
        counts = [sum(e.status == s for e in rows) for s in STATUSES]
        firsts = sorted(e.first_passed for e in rows if e.first_passed)
        cells = [str(c).rjust(w) for c, w in zip(counts, widths, strict=True)]
        line = "  ".join([_fit(f"{nb} {name}", 28), *cells])
        lines.append(line + "  " + (firsts[0] if firsts else "-"))
    return lines


def learner_details(lp: LearnerProgress) -> str:
    """One learner's exercises, each with its status, first pass, last check and count."""
    lines = [readable(lp.learner.name)]
    if not lp.readable:
        return lines[0] + ": " + _("unreadable: {why}").format(why=readable(lp.problem))
    for e in lp.exercises:
        status = _(_STATUS_NAMES[e.status])
        line = f"  {_MARKS[e.status]} {e.notebook} {e.exercise}: {status}"
        if e.first_passed:
            line += "; " + _("first passed {time}").format(time=e.first_passed)
        if e.checks:
            line += "; " + _("last checked {time}; checks: {checks}").format(
                time=e.last_checked, checks=e.checks
            )
        lines.append(line)
    return "\n".join(lines)


# --------------------------------------------------------------------------- the CSV


def progress_csv(learners: Sequence[LearnerProgress]) -> str:
    """One row per learner and exercise (:data:`CSV_COLUMNS`); an unreadable learner has one
    row per exercise with status ``unreadable`` and the reason in ``note``. Statuses are the
    English codes of :data:`STATUSES`; every cell is made safe for a spreadsheet."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    every = _course_exercises()
    for lp in learners:
        if lp.readable:
            rows = [(e.notebook, e.exercise, e.status, e.first_passed, e.last_checked, e.checks,
                     "") for e in lp.exercises]  # fmt: skip
        else:
            rows = [(nb, name, UNREADABLE, "", "", "", lp.problem) for nb, name in every]
        for row in rows:
            writer.writerow([csv_cell(v) for v in (lp.learner.name, *row)])
    return buffer.getvalue()


def write_progress_csv(learners: Sequence[LearnerProgress], path: str | Path) -> Path:
    """:func:`progress_csv`, written atomically to ``path``."""
    write_bytes_atomically(Path(path), progress_csv(learners).encode("utf-8"))
    return Path(path)


# --------------------------------------------------------------------------- the figure

_COLOURS = {
    "passed": "#2e9e44",
    "failed since": "#f0a030",
    "not passed yet": "#d84a3a",
    "not attempted": "#e6e6e6",
    UNREADABLE: "#5a5a5a",
}
_ORDER = (*STATUSES, UNREADABLE)


def _plain_label(text: str) -> str:
    """A learner's name as a figure label: no control characters, no maths (``$``)."""
    text = readable(text)
    text = text if len(text) <= 28 else text[:27] + "…"
    return text.replace("$", r"\$")


# Fonts with Hangul that matplotlib may find on an instructor's machine (its own has none).
_HANGUL_FONTS = ("Noto Sans CJK KR", "Noto Sans KR", "NanumGothic", "NanumBarunGothic",
                 "Malgun Gothic", "Apple SD Gothic Neo", "AppleGothic", "UnDotum")  # fmt: skip
_FIGURE_TITLE = N_("Class progress: {count} learners, {time}")


def _hangul_font() -> str | None:
    """A font with Hangul installed here, or None."""
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in _HANGUL_FONTS if name in names), None)


def write_progress_figure(
    learners: Sequence[LearnerProgress], path: str | Path, *, dpi: int = 100
) -> Path:
    """A PNG of the class: one row per learner, one column per exercise, coloured by status;
    the notebooks separated and labelled above, a legend with the class's counts below. Rows
    keep a readable height up to about 120 learners; beyond, the figure stops growing and
    names every k-th learner.

    The figure's words are in the current language where a font with Hangul is installed
    (the names fall back to it too), else in English: matplotlib's own font has no Hangul,
    and a legend of empty boxes helps nobody."""
    import matplotlib

    hangul = _hangul_font()
    words = _ if hangul else str
    families = ["DejaVu Sans", hangul] if hangul else ["DejaVu Sans"]
    with matplotlib.rc_context({"font.family": families}), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Glyph ... missing": a name in Hangul
        png = _figure_png(learners, words, dpi)
    write_bytes_atomically(Path(path), png)
    return Path(path)


def _figure_png(learners: Sequence[LearnerProgress], words: Any, dpi: int) -> bytes:
    """The figure of :func:`write_progress_figure` as PNG bytes; ``words`` translates (or not)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    every = _course_exercises()
    n = max(len(learners), 1)
    grid = np.full((n, len(every)), _ORDER.index(UNREADABLE))
    for i, lp in enumerate(learners):
        if lp.readable:
            status = {(e.notebook, e.exercise): e.status for e in lp.exercises}
            grid[i] = [_ORDER.index(status[key]) for key in every]
    row_in = 0.2 if n <= 40 else max(0.12, 8.0 / n) if n <= 120 else 0.12
    top, bottom = 0.9, 2.5  # inches: the title and the notebooks; the exercises and the legend
    rows_in = min(n * row_in, 120 * 0.12)
    height = top + rows_in + bottom
    fig = Figure(figsize=(max(9.0, 0.32 * len(every) + 3.0), height), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.18, bottom / height, 0.78, rows_in / height))
    cmap = ListedColormap([_COLOURS[s] for s in _ORDER])
    ax.imshow(grid, cmap=cmap, vmin=-0.5, vmax=len(_ORDER) - 0.5, aspect="auto",
              interpolation="nearest")  # fmt: skip
    # the notebooks: a white line between them, their number above
    bounds, start = [], 0
    for nb, names in _by_notebook().items():
        ax.text(start + (len(names) - 1) / 2, -0.6, nb, ha="center", va="bottom",
                fontsize=9, transform=ax.transData, clip_on=False)  # fmt: skip
        start += len(names)
        bounds.append(start)
    for b in bounds[:-1]:
        ax.axvline(b - 0.5, color="white", linewidth=3)
    if n <= 120:  # a white gap between rows keeps them apart
        for i in range(1, n):
            ax.axhline(i - 0.5, color="white", linewidth=0.5 if n > 40 else 1)
    ax.set_xticks(range(len(every)), [name for _nb, name in every], rotation=90, fontsize=7)
    step = max(1, -(-n // 120))
    rows = list(range(0, len(learners), step))
    label_size = 9 if n <= 40 else 7 if n <= 80 else 5
    ax.set_yticks(rows, [_plain_label(learners[i].learner.name) for i in rows],
                  fontsize=label_size)  # fmt: skip
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    counts = {s: int((grid == _ORDER.index(s)).sum()) for s in _ORDER} if learners else {}
    handles = [
        Patch(facecolor=_COLOURS[s], edgecolor="#999999", label=f"{words(_STATUS_NAMES[s])} ({c})")
        for s, c in ((s, counts.get(s, 0)) for s in _ORDER)
    ]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.05 / height))  # fmt: skip
    title = words(_FIGURE_TITLE).format(count=len(learners), time=time.strftime("%Y-%m-%d %H:%M"))
    fig.suptitle(title, fontsize=11, y=1 - 0.15 / height, va="top")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


# --------------------------------------------------------------------------- collecting


@dataclass(frozen=True)
class Collected:
    """One file collection looked at: the learner, the folder their notebooks went to (its
    name ``folder``), the source, and what happened: ``copied`` (``path``: the copy), or
    ``refused`` (``why``); or a learner with nothing to collect (``source`` None)."""

    learner: str
    folder: str
    source: Path | None
    path: Path | None = None
    why: str = ""


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
LANGUAGES = ("latest", "en", "ko")


def safe_folder_name(learner: str) -> str:
    """``learner`` as a folder name on any file system: the name itself where it is plain
    (letters, digits, ``.``, ``_``, ``-``, not starting with a dot, not a Windows device name),
    else the grading pages' own slug and hash of it (:func:`page_name`)."""
    plain = _SAFE_NAME.fullmatch(learner) and not learner.endswith(".")
    if plain and page_name(learner.lower()) == f"{learner.lower()}.md":
        return learner
    return page_name(learner).removesuffix(".md")


def _notebook_files(folder: Path) -> dict[str, Path]:
    """The course notebooks (by file name) in ``folder``, as entries, links included (they are
    refused when read); none when ``folder`` is a link or missing."""
    if not _is_folder(folder):
        return {}
    names = {nb.filename for nb in NOTEBOOKS}
    try:
        return {e.name: folder / e.name for e in os.scandir(folder) if e.name in names}
    except OSError:
        return {}


def _newer(a: Path, b: Path) -> Path:
    """Of two copies of a notebook, the one saved last (``a`` when that cannot be told)."""
    try:
        return b if os.lstat(b).st_mtime_ns > os.lstat(a).st_mtime_ns else a
    except OSError:
        return a


def _choose(course: Path, lang: str) -> list[Path]:
    """The learner's copies to collect, one per notebook (see :func:`collect`)."""
    english = _notebook_files(course / WORK)
    korean = _notebook_files(course / WORK / "ko")
    if lang == "en":
        return [english[k] for k in sorted(english)]
    if lang == "ko":
        return [korean[k] for k in sorted(korean)]
    chosen = []
    for name in sorted(set(english) | set(korean)):
        if name in english and name in korean:
            chosen.append(_newer(english[name], korean[name]))
        else:
            chosen.append(english.get(name) or korean[name])
    return chosen


def _move_aside(out: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = out.with_name(f"{out.name}.{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = out.with_name(f"{out.name}.{stamp}-{n}")
    out.rename(aside)
    return aside


def collect(
    homes: Iterable[str | Path], out: str | Path, *, lang: str = "latest", replace: bool = False
) -> tuple[list[Collected], Path | None]:
    """Copy each learner's notebooks into ``out/<learner>/NN_name.ipynb``, for ``dlcourse grade
    out``. Returns what was done per file, and where an earlier collection was moved
    (``replace``), else None.

    ``lang``: ``latest`` takes, per notebook, the copy the learner saved last, English
    (``work/``) or Korean (``work/ko/``); ``en`` or ``ko`` takes only that language's copies.
    Only the course's notebooks are taken; a link is refused (never followed), and so is
    anything but a regular file, or a file over the grader's size limit. ``out`` must be a
    new or empty folder; ``replace`` moves a non-empty one aside (``out.<time>``) first."""
    if lang not in LANGUAGES:
        raise ClassroomError(
            _("--lang must be one of {choices}, got {lang}").format(
                choices=", ".join(LANGUAGES), lang=readable(str(lang))
            )
        )
    learners = find_learners(homes)
    out = Path(out)
    aside = None
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ClassroomError(
            _("{out} is not a folder: give a new folder to collect into").format(out=out)
        )
    if out.is_dir() and any(out.iterdir()):
        if not replace:
            raise ClassroomError(
                _(
                    "{out} is not empty (an earlier collection?): give a new folder, or add "
                    "--replace to move it aside to {out}.<time> and collect afresh"
                ).format(out=out)
            )
        aside = _move_aside(out)
    out.mkdir(parents=True, exist_ok=True)
    done: list[Collected] = []
    taken: set[str] = set()
    for learner in learners:
        folder = safe_folder_name(learner.name)
        while folder.casefold() in taken:  # alice and Alice on a case-blind file system
            folder = page_name(folder + "-").removesuffix(".md")
        taken.add(folder.casefold())
        if learner.course is None:
            done.append(Collected(learner.name, folder, None, why=learner.problem))
            continue
        if not _is_folder(learner.course / WORK):
            why = (
                _("work/ is a link, which is not followed")
                if (learner.course / WORK).is_symlink()
                else _("no work/ folder: their server has not made their copies")
            )
            done.append(Collected(learner.name, folder, None, why=why))
            continue
        if (learner.course / WORK / "ko").is_symlink():
            why = _("work/ko/ is a link, which is not followed")
            done.append(Collected(learner.name, folder, None, why=why))
        sources = _choose(learner.course, lang)
        if not sources:
            done.append(Collected(learner.name, folder, None, why=_("no notebooks in work/")))
        for source in sources:
            done.append(_copy(learner, folder, source, out))
    return done, aside


def _copy(learner: Learner, folder: str, source: Path, out: Path) -> Collected:
    try:
        # from the home down, no link followed on the way: a learner who swaps work/ for a link
        # to another learner's between the checks above and this read gets a refusal
        data = read_bytes_below(learner.home, source.relative_to(learner.home), MAX_NOTEBOOK_BYTES)
    except NotebookProblem as exc:
        return Collected(learner.name, folder, source, why=str(exc))
    target = out / folder / source.name
    write_bytes_atomically(target, data)
    return Collected(learner.name, folder, source, target)


def describe_collection(done: Sequence[Collected], out: Path, aside: Path | None) -> str:
    """What :func:`collect` did, for the terminal: per learner, the folder and the notebooks
    copied (``ko`` marks a Korean copy), what was refused and why, and renamed learners."""
    lines = []
    if aside is not None:
        lines.append(_("The earlier collection was moved to {path}.").format(path=aside))
    by_learner: dict[str, list[Collected]] = {}
    for c in done:
        by_learner.setdefault(c.learner, []).append(c)
    copied = 0
    for learner, theirs in by_learner.items():
        name, folder = readable(learner), theirs[0].folder
        shown = (
            name
            if folder == learner
            else _("{name} (as {folder})").format(name=name, folder=folder)
        )
        got = []
        for c in theirs:
            if c.path is not None:
                got.append(c.source.name[:2] + (" (ko)" if c.source.parent.name == "ko" else ""))
        copied += len(got)
        lines.append(f"{shown}: " + (", ".join(got) if got else _("nothing collected")))
        for c in theirs:
            if c.path is None:
                what = c.source.name if c.source is not None else ""
                why = readable(c.why)
                lines.append(f"  {what}: {why}" if what else f"  {why}")
    lines.append(
        _("Collected {count} notebooks of {learners} learners into {out}: grade them with "
          "`dlcourse grade {out}`.").format(count=copied, learners=len(by_learner), out=out)
    )  # fmt: skip
    return "\n".join(lines)
