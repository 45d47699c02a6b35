"""What class grading writes for the instructor: the CSV, a page per learner, the summary."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dlcourse.machinery.atomic import write_bytes_atomically

if TYPE_CHECKING:  # pragma: no cover
    from dlcourse.exercises.grading import Grade, _Run

COLUMNS = ("learner", "notebook", "exercise", "status", "code", "points", "max_points", "seconds",
           "seed", "message")  # fmt: skip


def write_csv(grades: Sequence[Grade], path: str | Path) -> Path:
    """The grades as CSV (one row per learner, notebook and exercise), written atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for g in grades:
        writer.writerow(g.row())
    write_bytes_atomically(Path(path), buffer.getvalue().encode("utf-8"))
    return Path(path)


def _safe_name(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "learner"


def feedback_markdown(learner: str, runs: Sequence[_Run]) -> str:
    """A learner's feedback page: per notebook, each exercise's result and what to do."""
    grades = [g for run in runs for g in run.grades]
    got = sum(g.points for g in grades)
    worth = sum(g.max_points for g in grades)
    lines = [f"# Feedback for {learner}", "", f"**{got:g} of {worth:g} points.**", ""]
    if grades:
        lines += [f"Graded with seed {grades[0].seed}: besides the self-check's inputs, your "
                  "functions ran on inputs drawn from it.", ""]  # fmt: skip
    mark = {"pass": "✅ pass", "fail": "❌ fail", "not attempted": "⬜ not attempted"}
    for run in runs:
        title = (
            run.submission.notebook.filename
            if run.submission.notebook
            else run.submission.path.name
        )
        lines += [f"## {title}", "", "| exercise | result | points |", "|---|---|---|"]
        for g in run.grades:
            lines.append(
                f"| `{g.exercise}` | {mark.get(g.status, g.status)} "
                f"| {g.points:g} / {g.max_points:g} |"
            )
        lines.append("")
        for g in run.grades:
            lines += [
                f"### `{g.exercise}`: {g.status}",
                "",
                "```text",
                g.message.replace("```", "'''"),
                "```",
                "",
            ]
            if g.hint:
                lines += [f"**Hint:** {g.hint}", ""]
        if run.output.strip():
            lines += ["What your code printed while it was graded (the start):", "", "```text",
                      run.output[:2000].replace("```", "'''"), "```", ""]  # fmt: skip
    return "\n".join(lines)


def write_reports(runs: Sequence[_Run], folder: str | Path) -> list[Path]:
    """One feedback page per learner (``folder/<learner>.md``); return the paths."""
    by_learner: dict[str, list[_Run]] = {}
    for run in runs:
        by_learner.setdefault(run.submission.learner, []).append(run)
    written = []
    for learner, theirs in by_learner.items():
        path = Path(folder) / f"{_safe_name(learner)}.md"
        write_bytes_atomically(path, feedback_markdown(learner, theirs).encode("utf-8"))
        written.append(path)
    return written


def summary(runs: Sequence[_Run], seed: int, seconds: float) -> str:
    """Counts per exercise, and the slowest submissions."""
    grades = [g for run in runs for g in run.grades]
    learners = {run.submission.learner for run in runs}
    lines = [
        f"Graded {len(runs)} notebook(s) of {len(learners)} learner(s) in {seconds:.1f} s "
        f"(seed {seed}).",
        "",
        f"{'exercise':<28} {'pass':>5} {'fail':>5} {'not attempted':>14}",
    ]
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
    return "\n".join(lines)
