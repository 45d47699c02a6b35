"""What class grading writes for the instructor: the CSV, a page per learner, the summary.

Everything written here holds text a learner chose (their name, their file's name, what their
code raised or printed), so everything is made safe for where it goes:

- the CSV, which a spreadsheet opens: a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab
  or a carriage return (or ``'``, so that the rule can be undone) gets a ``'`` in front (the
  OWASP rule against formula injection); control characters other than newline and tab go;
- the pages, which a Markdown viewer or a browser opens: names and file names are escaped
  (``<``, ``>``, ``&`` as entities, Markdown's specials with a backslash), messages and output
  sit in code blocks they cannot close; each learner's page has a file of its own
  (:func:`page_name`), whatever their name;
- the terminal: control characters (escape sequences, carriage returns) never reach it.

Outputs are written as each submission finishes (:class:`ClassOutputs`), atomically, so a run
that is stopped keeps what it graded, and ``--resume`` can read the CSV back
(:func:`read_kept_rows`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlcourse.exercises.submissions import MESSAGES, GradingError, Submission, readable
from dlcourse.i18n import N_, gettext
from dlcourse.machinery.atomic import write_bytes_atomically

if TYPE_CHECKING:  # pragma: no cover
    from dlcourse.exercises.grading import _Run

# "submission" last: the columns before it keep their places from earlier versions.
COLUMNS = ("learner", "notebook", "exercise", "status", "code", "points", "max_points", "seconds",
           "seed", "message", "submission")  # fmt: skip


@dataclass
class Grade:
    """One row of the grades: a learner's result on one exercise."""

    learner: str
    notebook: str  # the course notebook's file name, or "?" when the file is not one
    exercise: str
    status: str  # pass, fail, not attempted
    points: float
    max_points: float
    message: str
    hint: str = ""
    seconds: float = 0.0
    seed: int = 0
    submission: str = ""
    code: str = ""  # what failed, for programs (engine.FAILURE_CODES); "" for a pass

    def row(self) -> dict[str, Any]:
        message = self.message + (f"\nHint: {self.hint}" if self.hint else "")
        values = {
            **asdict(self),
            "message": message,
            "points": f"{self.points:g}",
            "max_points": f"{self.max_points:g}",
            "seconds": f"{self.seconds:.3f}",
        }
        return {k: values[k] for k in COLUMNS}


# --------------------------------------------------------------------------- text made safe

# Control characters but newline and tab, and the bidirectional formatting characters.
_CONTROLS_IN_TEXT = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def plain_text(text: str) -> str:
    """``text`` without control characters (but newlines and tabs), and valid Unicode."""
    return _CONTROLS_IN_TEXT.sub("", readable_keeping_lines(text))


def readable_keeping_lines(text: str) -> str:
    """``text`` as valid Unicode (file system bytes that were not UTF-8: replacement
    characters), newlines and tabs kept."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8", "replace")


def terminal_text(text: str) -> str:
    """``text`` as it may be printed: no escape sequences, no carriage returns, valid Unicode."""
    return plain_text(text).replace("\t", " ")


def csv_cell(value: object) -> str:
    """One CSV cell: plain text, and never a formula (a leading ``'`` where a spreadsheet would
    read one)."""
    text = plain_text(str(value))
    return "'" + text if text.startswith(_FORMULA_START) else text


def _from_csv_cell(text: str) -> str:
    """A cell's text as it was before :func:`csv_cell` neutralised it."""
    return text[1:] if text.startswith("'") else text


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]()#|{}~!])")


def markdown_text(text: str) -> str:
    """``text`` shown as itself in Markdown and in the HTML made from it: on one line,
    ``<``, ``>`` and ``&`` as entities, Markdown's specials (``|`` for tables too) escaped."""
    one_line = readable(text)  # control characters, newlines included, become U+FFFD
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", one_line)
    return escaped.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _name(name: str) -> str:
    """An exercise's name in Markdown: as code where it is an identifier, else escaped."""
    return f"`{name}`" if name.isidentifier() else markdown_text(name)


def short_path(path: Path) -> str:
    """A submission's file as a page shows it: its folder and name (``alice/01_....ipynb``),
    not where the instructor keeps the class."""
    return readable(f"{path.parent.name}/{path.name}" if path.parent.name else path.name)


def _code_block(text: str) -> list[str]:
    """Lines of a fenced code block showing ``text``, which cannot close it."""
    return ["```text", plain_text(text).replace("```", "'''"), "```"]


# --------------------------------------------------------------------------- the CSV


def csv_row(grade: Grade) -> dict[str, str]:
    """A grade's CSV row, every cell made safe (:func:`csv_cell`)."""
    return {k: csv_cell(v) for k, v in grade.row().items()}


def submission_key(sub: Submission) -> str:
    """How a submission appears in the CSV's ``submission`` column (what ``--resume`` matches)."""
    return csv_cell(str(sub.path))


def _csv_bytes(grades: Sequence[Grade]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for g in grades:
        writer.writerow(csv_row(g))
    return buffer.getvalue().encode("utf-8")


def write_csv(grades: Sequence[Grade], path: str | Path) -> Path:
    """The grades as CSV (one row per learner, notebook and exercise), written atomically."""
    write_bytes_atomically(Path(path), _csv_bytes(grades))
    return Path(path)


def read_kept_rows(path: str | Path) -> dict[str, list[Grade]]:
    """The grades in a CSV this module wrote, by submission (:func:`submission_key`), for
    ``--resume``; {} when there is no such file. :exc:`GradingError` when it cannot be read."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise GradingError(f"--resume: cannot read {path}: {exc}") from None
    if rows and "submission" not in rows[0]:
        raise GradingError(
            f"--resume: {path} has no 'submission' column (an older dlcourse wrote it): grade "
            "again without --resume, or into another file"
        )
    kept: dict[str, list[Grade]] = {}
    for number, row in enumerate(rows, start=2):
        try:
            text = {k: _from_csv_cell(row[k] or "") for k in COLUMNS}
            message, marker, hint = text["message"].rpartition("\nHint: ")
            grade = Grade(text["learner"], text["notebook"], text["exercise"], text["status"],
                          float(text["points"]), float(text["max_points"]),
                          message if marker else hint, hint if marker else "",
                          float(text["seconds"]), int(text["seed"]), text["submission"],
                          text["code"])  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise GradingError(
                f"--resume: {path}, line {number}, is not a row dlcourse wrote ({exc}): grade "
                "again without --resume, or into another file"
            ) from None
        kept.setdefault(row["submission"], []).append(grade)
    return kept


# --------------------------------------------------------------------------- the pages

_RESERVED = re.compile(r"(con|prn|aux|nul|com\d|lpt\d)(\..*)?", re.IGNORECASE)  # Windows


def page_name(learner: str) -> str:
    """The file name of ``learner``'s page: the name itself where it is a plain, lower-case
    ASCII file name, else a readable slug and a short hash of the name (``a b`` and ``a_b``,
    ``Ann`` and ``ann``, get two pages, on any file system)."""
    slug = unicodedata.normalize("NFC", learner).casefold()
    slug = re.sub(r"[^\w.-]+", "_", slug).strip("._-")[:60] or "learner"
    if slug == learner and learner.isascii() and not _RESERVED.fullmatch(learner):
        return f"{slug}.md"
    digest = hashlib.sha256(learner.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{slug}~{digest}.md"  # "~" is never in a plain name: no clash with one


# A learner's feedback page is in the language of the grading (DLCOURSE_LANG; English by
# default); the CSV, its codes and the class summary stay English.
_MARK = {"pass": N_("✅ pass"), "fail": N_("❌ fail"), "not attempted": N_("⬜ not attempted")}
_STATUS = {
    "pass": N_("pass"),
    "fail": N_("fail"),
    "not attempted": N_("not attempted"),
    "timeout": N_("timeout"),
    "error": N_("error"),
}


def _status(status: str) -> str:
    """A grade's status as the feedback page shows it (Markdown)."""
    return gettext(_STATUS[status]) if status in _STATUS else markdown_text(status)


def _title(run: _Run) -> str:
    sub = run.submission
    if sub.notebook is not None:
        return sub.notebook.filename
    known = {g.notebook for g in run.grades} - {"?"}
    return known.pop() if len(known) == 1 else markdown_text(sub.path.name)


def feedback_markdown(learner: str, runs: Sequence[_Run]) -> str:
    """A learner's feedback page: per notebook, each exercise's result and what to do."""
    grades = [g for run in runs for g in run.grades]
    got = sum(g.points for g in grades)
    worth = sum(g.max_points for g in grades)
    lines = [gettext("# Feedback for {learner}").format(learner=markdown_text(learner)), "",
             gettext("**{got} of {worth} points.**").format(got=f"{got:g}", worth=f"{worth:g}"),
             ""]  # fmt: skip
    if grades:
        lines += [gettext("Graded with seed {seed}: besides the self-check's inputs, your "
                          "functions ran on inputs drawn from it.").format(seed=grades[0].seed),
                  ""]  # fmt: skip
    for run in runs:
        shown = markdown_text(short_path(run.submission.path))
        lines += [f"## {_title(run)}", "", gettext("File: {path}").format(path=shown), ""]
        if not run.grades and run.submission.notebook is not None:  # the capstone, say
            lines += [MESSAGES["no_exercises"].format(notebook=_title(run)), ""]
            continue
        lines += [gettext("| exercise | result | points |"), "|---|---|---|"]
        for g in run.grades:
            mark = gettext(_MARK[g.status]) if g.status in _MARK else markdown_text(g.status)
            lines.append(f"| {_name(g.exercise)} | {mark} | {g.points:g} / {g.max_points:g} |")
        lines.append("")
        for g in run.grades:
            lines += [f"### {_name(g.exercise)}: {_status(g.status)}", "",
                      *_code_block(g.message), ""]  # fmt: skip
            if g.hint:
                hint = plain_text(gettext(g.hint))
                lines += [gettext("**Hint:** {hint}").format(hint=hint), ""]
        if run.output.strip():
            lines += [gettext("What your code printed while it was graded (the start):"), "",
                      *_code_block(run.output[:2000]), ""]  # fmt: skip
    return "\n".join(lines)


def _by_learner(runs: Sequence[_Run]) -> dict[str, list[_Run]]:
    by_learner: dict[str, list[_Run]] = {}
    for run in runs:
        by_learner.setdefault(run.submission.learner, []).append(run)
    return by_learner


def write_reports(runs: Sequence[_Run], folder: str | Path) -> list[Path]:
    """One feedback page per learner (``folder/`` :func:`page_name`); return the paths."""
    written = []
    for learner, theirs in _by_learner(runs).items():
        path = Path(folder) / page_name(learner)
        write_bytes_atomically(path, feedback_markdown(learner, theirs).encode("utf-8"))
        written.append(path)
    return written


# --------------------------------------------------------------------------- as they finish


class ClassOutputs:
    """The CSV and the pages of a class run, written again (atomically) as each submission
    finishes, in the submissions' order whatever order they finish in.

    ``kept`` are the runs an earlier run graded (``--resume``): their rows stay where their
    submissions are, and their learners' pages include them."""

    def __init__(
        self,
        order: Sequence[Submission],
        out: str | Path | None,
        report: str | Path | None,
        kept: Sequence[_Run] = (),
    ) -> None:
        self.order = list(order)
        self.out = None if out is None else Path(out)
        self.report = None if report is None else Path(report)
        self.runs: dict[int, _Run] = {id(run.submission): run for run in kept}

    def add(self, run: _Run) -> None:
        """Record a finished run; write the CSV and its learner's page again. A page that cannot
        be written is noted in that learner's rows; the class goes on."""
        self.runs[id(run.submission)] = run
        self.write_page(run.submission.learner)
        self.write_csv()

    def finished(self) -> list[_Run]:
        return [self.runs[id(s)] for s in self.order if id(s) in self.runs]

    def write_csv(self) -> None:
        if self.out is not None:
            write_csv([g for run in self.finished() for g in run.grades], self.out)

    def write_page(self, learner: str) -> None:
        if self.report is None:
            return
        theirs = [r for r in self.finished() if r.submission.learner == learner]
        try:
            page = feedback_markdown(learner, theirs).encode("utf-8")
            write_bytes_atomically(self.report / page_name(learner), page)
        except Exception as exc:  # that learner's problem only, not the class's
            note = MESSAGES["page_error"].format(what=error_text(exc))
            for run in theirs:
                for g in run.grades:
                    if note not in g.message:
                        g.message = f"{g.message}\n{note}"

    def write_all(self) -> None:
        """Everything again: after notes were added to rows of finished runs."""
        for learner in _by_learner(self.finished()):
            self.write_page(learner)
        self.write_csv()


def error_text(exc: BaseException) -> str:
    """An exception as one short line of plain text, for a message."""
    text = f"{type(exc).__name__}: {exc}"
    return plain_text(text if len(text) <= 300 else text[:297] + "...").replace("\n", " ")


def note_two_files(runs: Sequence[_Run]) -> list[str]:
    """Notes for the learners who handed in more than one file for one notebook: added to those
    runs' rows (which the ``submission`` column tells apart), and returned for the summary."""
    groups: dict[tuple[str, str], list[_Run]] = {}
    for run in runs:
        notebooks = {g.notebook for g in run.grades} - {"?"}
        for nb in notebooks:
            groups.setdefault((run.submission.learner, nb), []).append(run)
    notes = []
    for (learner, nb), theirs in groups.items():
        if len(theirs) < 2:
            continue
        files = ", ".join(short_path(r.submission.path) for r in theirs)
        note = MESSAGES["two_files"].format(learner=learner, count=len(theirs), notebook=nb,
                                            files=files)  # fmt: skip
        for run in theirs:
            for g in run.grades:
                if note not in g.message:
                    g.message = f"{g.message}\n{note}"
        notes.append(note)
    return notes


# --------------------------------------------------------------------------- the summary


def summary(
    runs: Sequence[_Run],
    seed: int,
    seconds: float,
    notes: Sequence[str] = (),
    kept: int = 0,
) -> str:
    """Counts per exercise, the slowest submissions, and what the instructor should look at
    (``notes``); ``kept``: how many submissions an earlier run graded (``--resume``). Text for
    a terminal: no control characters."""
    grades = [g for run in runs for g in run.grades]
    learners = {run.submission.learner for run in runs}
    lines = [
        f"Graded {len(runs)} notebook(s) of {len(learners)} learner(s) in {seconds:.1f} s "
        f"(seed {seed}).",
    ]
    if kept:
        lines.append(f"Kept {kept} notebook(s) graded by an earlier run (--resume).")
    lines += ["", f"{'exercise':<28} {'pass':>5} {'fail':>5} {'not attempted':>14}"]
    order: dict[str, dict[str, int]] = {}
    for g in grades:
        counts = order.setdefault(g.exercise, {"pass": 0, "fail": 0, "not attempted": 0})
        counts[g.status] = counts.get(g.status, 0) + 1
    for name, c in order.items():
        lines.append(f"{name:<28} {c['pass']:>5} {c['fail']:>5} {c['not attempted']:>14}")
    slow = sorted(runs, key=lambda r: -r.seconds)[:3]
    if slow:
        lines += [
            "",
            "Slowest: "
            + ", ".join(
                f"{r.submission.learner} ({r.submission.path.name}, {r.seconds:.1f} s)"
                for r in slow
            ),
        ]
    fences = {r.fence for r in runs if r.fence}
    if fences:
        lines.append("Fence: " + "; ".join(sorted(fences)))
    if notes:
        lines += ["", "To look at:", *(f"- {n.removeprefix('Note for the instructor: ')}"
                                      for n in notes)]  # fmt: skip
    return terminal_text("\n".join(lines))
