"""Class grading: every learner's exercises, judged by the grader, run somewhere else.

::

    dlcourse grade submissions/ --out grades.csv --report feedback/ --jobs 2

    records = dl.exercises.grade(["submissions/"], out="grades.csv", jobs=2)

A **submission** is a learner's notebook (the student version, filled in) or a
folder of them, searched recursively. The learner's name is the file's name
(``alice.ipynb``), or, when the file keeps its course name
(``alice/01_gradient_descent.ipynb``), its folder's. Which course notebook a
file is comes from its metadata, its name, or the exercise functions it defines.

For each submission the grader

1. reads the notebook as data and finds the learner's **exercise cells**: the
   cells the student version marked (``metadata.dlcourse.exercise``), or the
   code cells that define the exercise's function; nothing else of the
   notebook is run, so edited check cells and ``ex.check`` calls do nothing;
2. inspects each cell without running it: a syntax error, a forbidden call
   (``F.conv2d`` where the exercise asks for it from scratch) or a use of the
   ``dlcourse`` package (whose implementation is the answer) fails that
   exercise, and the cell is not run;
3. runs the remaining cells in a separate, limited process
   (:mod:`dlcourse.exercises.sandbox`): wall-clock and CPU time, memory,
   processes, output, files and network are all limited; the process calls the
   learner's functions on the self-check's fixed inputs and on inputs drawn
   from this run's seed, and sends back plain data only;
4. judges what came back in its own process, with the same comparisons and
   the same teaching messages as ``ex.check()``, and the known-wrong variants'
   targeted hints. A process that crashes, hangs or prints without end fails
   that submission's remaining exercises, with the reason; it never touches
   another submission.

Outputs: the records (:class:`Grade`), a CSV, a feedback page per learner
(Markdown) and a summary. Each row carries the failure's code beside the message
(``shape``, ``values``, ``timeout``, ``syntax``, ...: the engine's ``FAILURE_CODES``),
so that a class's mistakes can be counted. Points per exercise come from ``Exercise.points``;
``points={"adam_step": 2}`` (``--points adam_step=2``) changes them for a run.
"""

from __future__ import annotations

import json
import math
import secrets
import shutil
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlcourse.exercises.class_report import (  # noqa: F401 (the outputs, also reachable here)
    COLUMNS,
    ClassOutputs,
    Grade,
    error_text,
    feedback_markdown,
    note_two_files,
    read_kept_rows,
    short_path,
    submission_key,
    summary,
    terminal_text,
    write_csv,
    write_reports,
)
from dlcourse.exercises.engine import CheckResult, Exercise, input_label
from dlcourse.exercises.isolation import _run_process
from dlcourse.exercises.judging import _judge_results

# Defaults: per submission (one notebook), what its process may use (dlcourse/exercises/limits.py).
from dlcourse.exercises.limits import (
    EXTRA_TASKS,
    MEMORY_MB,
    OUTPUT_LIMIT,
    RESULT_LIMIT_MB,
    TIMEOUT_S,
)
from dlcourse.exercises.submissions import (
    MESSAGES,
    GradingError,
    NotebookProblem,
    Submission,
    _Cell,
    _exercises_of,
    _failed,
    _find_cell,
    _function,
    _recognise,
    _static_problem,
    exercise_sources,
    find_submissions,
    is_solution_copy,
    read_notebook,
)
from dlcourse.machinery.notebooks import cell_source


@dataclass
class _Run:
    """One submission's grading: its rows, and what its process did."""

    submission: Submission
    grades: list[Grade]
    seconds: float = 0.0
    output: str = ""  # the start of what the learner's code printed
    fence: str = ""


@dataclass
class _Settings:
    timeout: float
    memory_mb: int
    seed: int
    points: dict[str, float]
    output_limit: int = OUTPUT_LIMIT
    cases: dict[tuple[str, int | None], list] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cases_of(self, ex: Exercise, seed: int | None) -> list:
        with self.lock:
            key = (ex.name, seed)
            if key not in self.cases:
                self.cases[key] = ex.input_cases(seed)
            return self.cases[key]


# --------------------------------------------------------------------------- one submission


def _exercise_seed(seed: int, ex: Exercise) -> int:
    return (seed * 1_000_003 + zlib.crc32(ex.name.encode())) % (1 << 62)


def _whole_file(
    sub: Submission, settings: _Settings, message: str, code: str, seconds: float
) -> _Run:
    """A problem with the whole file: one failing row per exercise of the notebook it should
    be, or one ``(notebook)`` row when that is not known."""
    if sub.notebook is None:
        grades = [Grade(sub.learner, "?", "(notebook)", "fail", 0.0, 0.0, message,
                        seed=settings.seed, submission=str(sub.path), code=code)]  # fmt: skip
    else:
        grades = [
            Grade(sub.learner, sub.notebook.filename, ex.name, "fail", 0.0,
                  settings.points.get(ex.name, ex.points), message, seed=settings.seed,
                  submission=str(sub.path), code=code)
            for ex in _exercises_of(sub.notebook)
        ]  # fmt: skip
    return _Run(sub, grades, seconds)


def _grade_contained(sub: Submission, settings: _Settings) -> _Run:
    """:func:`_grade_submission`, with any exception it lets out turned into this learner's
    rows (``grader_error``): one learner never stops the class. ``KeyboardInterrupt`` is not an
    ``Exception``: it still stops the run."""
    start = time.perf_counter()
    try:
        return _grade_submission(sub, settings)
    except Exception as exc:
        message = MESSAGES["grader_error"].format(what=error_text(exc))
        return _whole_file(sub, settings, message, "grader_error", time.perf_counter() - start)


def _grade_submission(sub: Submission, settings: _Settings) -> _Run:
    """Grade one submission. Whatever goes wrong in it is this learner's rows: a file that is
    not a notebook fails all of them with the reason; a grader that fails while running or
    judging the cells fails the exercises it had not judged, with what went wrong."""
    start = time.perf_counter()
    learner, seed = sub.learner, settings.seed

    def whole(message: str) -> _Run:
        return _whole_file(sub, settings, message, "bad_notebook", time.perf_counter() - start)

    if sub.problem:  # a link: never read
        return whole(sub.problem)
    try:
        nb_json = read_notebook(sub.path)
    except NotebookProblem as exc:
        return whole(str(exc))
    course_nb = sub.notebook or _recognise(nb_json)
    if course_nb is None:
        return whole(MESSAGES["no_cells"] if not nb_json["cells"] else MESSAGES["not_course"])
    sub.notebook = course_nb
    exercises = _exercises_of(course_nb)
    cells: list[Any] = nb_json["cells"]
    sources = exercise_sources(cells, exercises)
    note = MESSAGES["solution_copy"] if is_solution_copy(course_nb, sources) else ""

    results: dict[str, CheckResult] = {}
    seconds: dict[str, float] = {}
    to_run: dict[int, _Cell] = {}
    for ex in exercises:
        index, why = _find_cell(cells, ex)
        if index is None:
            results[ex.name] = _failed(ex, why, "no_cell")
            continue
        source = cell_source(cells[index])
        problem = _static_problem(source, ex)
        if problem:
            results[ex.name] = problem
            continue
        to_run.setdefault(index, _Cell(index, source, [])).exercises.append(ex.name)

    run = _Run(sub, [], 0.0)
    graded = [ex for ex in exercises if ex.name not in results]
    if graded:
        cells_to_run = sorted(to_run.values(), key=lambda c: c.index)
        try:
            _run_and_judge(graded, cells_to_run, settings, results, seconds, run)
        except Exception as exc:  # this learner's rows, never the class's
            broken = MESSAGES["grader_error"].format(what=error_text(exc))
            for ex in graded:
                results.setdefault(ex.name, _failed(ex, broken, "grader_error"))
    for ex in exercises:
        result = results[ex.name]
        status = {"pass": "pass", "not attempted": "not attempted"}.get(result.status, "fail")
        worth = settings.points.get(ex.name, ex.points)
        run.grades.append(
            Grade(learner, course_nb.filename, ex.name, status, worth if status == "pass" else 0.0,
                  worth, f"{result.message}\n{note}" if note else result.message, result.hint,
                  seconds.get(ex.name, 0.0), seed, str(sub.path), result.code)
        )  # fmt: skip
    run.seconds = time.perf_counter() - start
    return run


def _run_and_judge(
    exercises: list[Exercise],
    cells: list[_Cell],
    settings: _Settings,
    results: dict[str, CheckResult],
    seconds: dict[str, float],
    run: _Run,
) -> None:
    """Run the cells of ``exercises`` in a grading process; judge what came back. When the
    process died while calling one exercise's function (a crash, a signal, a limit), the
    exercises it never reached get a second process of their own: one crash costs one exercise,
    not the rest of the notebook."""
    unreached = _run_once(exercises, cells, settings, results, seconds, run)
    if unreached:
        again = [ex for ex in exercises if ex.name in unreached]
        names = set(unreached)
        needed = [c for c in cells if names & set(c.exercises)]
        _run_once(again, needed, settings, results, seconds, run)


def _run_once(
    exercises: list[Exercise],
    cells: list[_Cell],
    settings: _Settings,
    results: dict[str, CheckResult],
    seconds: dict[str, float],
    run: _Run,
) -> list[str]:
    """One grading process for ``exercises``; the exercises it never reached (see
    :func:`dlcourse.exercises.judging._judge_results`).

    The process gets data only: the cells, each exercise's function name, time limit and
    forbidden calls, and every input (the self-check's fixed ones, then those of this run's
    seed) as the grader made them (:mod:`dlcourse.exercises.wire`). No exercise, no reference."""
    import dlcourse
    from dlcourse.exercises.forbidden import forbidden_names
    from dlcourse.exercises.given import describe
    from dlcourse.exercises.wire import encode

    sets_of = {
        ex.name: [
            (seed, settings.cases_of(ex, seed))
            for seed in (None, _exercise_seed(settings.seed, ex))
        ]
        for ex in exercises
    }
    job = Path(tempfile.mkdtemp(prefix="dlcourse-grade-"))
    try:
        (job / "work").mkdir()
        spec = {
            "package_parent": str(Path(dlcourse.__file__).resolve().parent.parent),
            "limits": {
                "cpu_s": math.ceil(settings.timeout) + 5,
                "memory_mb": settings.memory_mb,
                "file_mb": RESULT_LIMIT_MB,
                "extra_tasks": EXTRA_TASKS,
            },
            "cell_timeout": max(ex.timeout for ex in exercises),
            "cells": [
                {"index": c.index, "label": ", ".join(c.exercises), "source": c.source}
                for c in cells
            ],
            "exercises": [
                {
                    "name": ex.name,
                    "function": _function(ex),
                    "timeout": ex.timeout,
                    "grad": ex.grad,
                    "forbidden": list(forbidden_names(ex.forbidden)),
                }
                for ex in exercises
            ],
        }
        (job / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
        inputs = {
            ex.name: [
                {"label": input_label(seed), "cases": [list(case) for case in cases]}
                for seed, cases in sets_of[ex.name]
            ]
            for ex in exercises
        }
        (job / "inputs.wire").write_bytes(encode(inputs, describe=describe))
        end = _run_process(job, settings)
        run.output = run.output or end.output
        return _judge_results(exercises, cells, end, sets_of, settings, results, seconds, run)
    finally:
        shutil.rmtree(job, ignore_errors=True)


# --------------------------------------------------------------------------- the whole class


@dataclass
class ClassGrades:
    """What a grading run produced: the rows (all of them, in the submissions' order), each
    submission's run (``runs`` graded now, ``kept`` by an earlier run, with ``resume``), what
    the instructor should look at (``notes``: copies of the solution, two files for one
    notebook), and the summary text."""

    grades: list[Grade]
    runs: list[_Run]
    seed: int
    seconds: float
    kept: list[_Run] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        return summary(self.runs, self.seed, self.seconds, self.notes, kept=len(self.kept))


def grade(submissions: Sequence[str | Path], **settings: Any) -> list[Grade]:
    """Grade every notebook under ``submissions``: the records of :func:`grade_class`."""
    return grade_class(submissions, **settings).grades


def grade_class(
    submissions: Sequence[str | Path],
    *,
    out: str | Path | None = None,
    report: str | Path | None = None,
    timeout: float = TIMEOUT_S,
    memory: int = MEMORY_MB,
    jobs: int = 1,
    seed: int | None = None,
    points: dict[str, float] | None = None,
    output_limit: int = OUTPUT_LIMIT,
    progress: Callable[[str], None] | None = None,
    resume: bool = False,
) -> ClassGrades:
    """Grade every notebook under ``submissions``: one :class:`Grade` per learner,
    notebook and exercise, in a deterministic order (the submissions' order, then the
    exercises'), whatever ``jobs`` is.

    One submission never stops the class: whatever goes wrong while grading it (a file that is
    not a notebook, a link, a grader error) is that learner's rows. The CSV and the learner's
    page are written again as each submission finishes, so a run that is stopped (Ctrl-C, a
    crash) keeps what it graded; ``resume=True`` then grades the rest.

    Args:
        submissions: notebooks, or folders of them (searched recursively; links not followed).
        out: write the grades as CSV here.
        report: write a feedback page per learner (Markdown) into this folder.
        timeout: seconds one notebook's grading process may run (wall clock; CPU time too).
        memory: megabytes of address space that process may use.
        jobs: how many submissions to grade at once.
        seed: the seed of the randomised inputs (recorded in every row); by default a new one
            (with ``resume``, the earlier run's).
        points: points per exercise name, replacing the exercises' own.
        output_limit: bytes a notebook's code may print before its process is stopped.
        progress: called with a line of text (no control characters) as each submission
            finishes, and once at the start with ``resume``.
        resume: keep the rows already in ``out`` and grade only the submissions it lacks.
    """
    if not (isinstance(jobs, int) and jobs >= 1):
        raise GradingError(f"jobs must be a whole number >= 1, got {jobs!r}")
    if not (timeout > 0 and math.isfinite(timeout)):
        raise GradingError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if not (isinstance(memory, int) and memory >= 512):
        raise GradingError(
            f"memory must be at least 512 (MB): torch alone needs about that much; got {memory!r}"
        )
    if resume and out is None:
        raise GradingError("resume needs the CSV whose rows to keep: give out= (--out)")
    from dlcourse.exercises.registry import all_exercises

    names = {ex.name for ex in all_exercises()}
    for name, value in (points or {}).items():
        if name not in names:
            raise GradingError(
                f"--points: no exercise {name!r}; there are: {', '.join(sorted(names))}"
            )
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise GradingError(f"--points: {name} must be worth a number >= 0, got {value!r}")
    subs = find_submissions(submissions)
    say = (lambda line: progress(terminal_text(line))) if progress else (lambda line: None)
    rows = read_kept_rows(out) if resume and out is not None else {}
    kept: list[_Run] = []
    todo: list[Submission] = []
    for sub in subs:
        theirs = rows.pop(submission_key(sub), None)
        if theirs:
            kept.append(_Run(sub, theirs))
        else:
            todo.append(sub)
    earlier = {g.seed for run in kept for g in run.grades}
    if seed is None and len(earlier) == 1:
        seed = earlier.pop()
    seed = secrets.randbelow(1 << 31) if seed is None else int(seed)
    if resume:
        say(f"--resume: {len(kept)} of {len(subs)} notebook(s) already graded in {out}, "
            f"skipped; grading the other {len(todo)} with seed {seed}.")  # fmt: skip
        if rows:
            say(f"--resume: {sum(map(len, rows.values()))} row(s) of {out} are about files not "
                "found now: left out.")  # fmt: skip
    settings = _Settings(timeout, memory, seed, dict(points or {}), output_limit)
    outputs = ClassOutputs(subs, out, report, kept)
    outputs.write_csv()  # what is kept, at once (and the header): nothing to lose
    start = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = [pool.submit(_grade_contained, sub, settings) for sub in todo]
        for count, future in enumerate(as_completed(futures), start=1):
            run = future.result()
            outputs.add(run)
            got = sum(g.points for g in run.grades)
            worth = sum(g.max_points for g in run.grades)
            result = f"{got:g}/{worth:g} points" if run.grades else "no exercises to grade"
            say(f"[{count}/{len(todo)}] {run.submission.learner}: {short_path(run.submission.path)}"
                f": {result} ({run.seconds:.1f} s)")  # fmt: skip
    except BaseException:  # Ctrl-C, or the outputs cannot be written: what is written stays
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    finished = outputs.finished()
    notes = [
        MESSAGES["solution_copy_summary"].format(learner=r.submission.learner,
                                                 file=short_path(r.submission.path))
        for r in finished
        if any(MESSAGES["solution_copy"] in g.message for g in r.grades)
    ]  # fmt: skip
    notes += note_two_files(finished)
    outputs.write_all()
    earlier_runs = {id(r) for r in kept}
    runs = [r for r in finished if id(r) not in earlier_runs]
    grades = [g for run in finished for g in run.grades]
    return ClassGrades(grades, runs, seed, time.perf_counter() - start, kept, notes)
