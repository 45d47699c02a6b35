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

import ast
import csv
import io
import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from dlcourse.course import NOTEBOOKS, Notebook
from dlcourse.exercises.engine import (
    Attempt,
    CheckResult,
    Exercise,
    Failure,
    GradAttempt,
    NotPlain,
    input_label,
)

# Defaults: per submission (one notebook), what its process may use (dlcourse/exercises/limits.py).
from dlcourse.exercises.limits import (
    EXTRA_TASKS,
    MAX_NOTEBOOK_BYTES,
    MEMORY_MB,
    OUTPUT_LIMIT,
    RESULT_LIMIT_MB,
    TIMEOUT_S,
)
from dlcourse.machinery.atomic import write_bytes_atomically
from dlcourse.machinery.notebooks import cell_source

COLUMNS = ("learner", "notebook", "exercise", "status", "code", "points", "max_points", "seconds",
           "seed", "message")  # fmt: skip


class GradingError(ValueError):
    """Grading cannot start: no submission found, a bad setting."""


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


@dataclass
class Submission:
    """One notebook to grade: whose it is, and which course notebook (None: not recognised)."""

    learner: str
    path: Path
    notebook: Notebook | None = None


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


# --------------------------------------------------------------------------- finding submissions


def _course_notebook(stem: str) -> Notebook | None:
    for nb in NOTEBOOKS:
        if stem == nb.filename.removesuffix(".ipynb"):
            return nb
    return None


def find_submissions(paths: Iterable[str | Path]) -> list[Submission]:
    """The notebooks to grade under ``paths`` (files, or folders searched recursively), in a
    deterministic order, each with its learner's name."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(
                p
                for p in sorted(path.rglob("*.ipynb"))
                if ".ipynb_checkpoints" not in p.parts and "backups" not in p.parts
            )
        elif path.is_file():
            found.append(path)
        else:
            raise GradingError(f"no such file or folder: {path}")
    if not found:
        raise GradingError(
            "no notebooks (.ipynb) found in " + ", ".join(map(str, paths)) + ": give the "
            "learners' notebooks, or folders holding them"
        )
    subs = []
    for path in found:
        nb = _course_notebook(path.stem)
        learner = path.parent.resolve().name if nb else path.stem
        subs.append(Submission(learner or path.stem, path, nb))
    return subs


def _exercises_of(nb: Notebook) -> list[Exercise]:
    from dlcourse.exercises.registry import all_exercises

    return [ex for ex in all_exercises() if ex.notebook == nb.number]


def _function(ex: Exercise) -> str:
    return ex.reference.__name__


# CPython 3.11's parser is not safe to run from two threads at once ("SystemError: AST constructor
# recursion depth mismatch", seen with --jobs 2): submissions are read one at a time.
_PARSER = threading.Lock()


def _parse(source: str) -> ast.Module:
    with _PARSER:
        return ast.parse(source)


def _defined_functions(source: str) -> set[str]:
    try:
        tree = _parse(source)
    except (SyntaxError, ValueError):
        return set(re.findall(r"^def (\w+)\(", source, flags=re.MULTILINE))
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def _marked(cell: dict[str, Any]) -> set[str]:
    meta = cell.get("metadata")
    mark = meta.get("dlcourse") if isinstance(meta, dict) else None
    names = mark.get("exercise") if isinstance(mark, dict) else None
    if isinstance(names, str):
        return {names}
    return {n for n in names if isinstance(n, str)} if isinstance(names, list) else set()


def _recognise(nb_json: dict[str, Any]) -> Notebook | None:
    """Which course notebook this is, from its metadata or the exercise functions it defines."""
    meta = nb_json.get("metadata")
    mark = meta.get("dlcourse") if isinstance(meta, dict) else None
    if isinstance(mark, dict) and isinstance(mark.get("notebook"), str):
        found = _course_notebook(mark["notebook"].removesuffix(".ipynb"))
        if found:
            return found
    defined = set()
    for cell in nb_json.get("cells", []):
        if isinstance(cell, dict):
            defined |= _defined_functions(cell_source(cell)) | _marked(cell)
    best, best_count = None, 0
    for nb in NOTEBOOKS:
        count = len(defined & {_function(ex) for ex in _exercises_of(nb)})
        if count > best_count:
            best, best_count = nb, count
    return best


# --------------------------------------------------------------------------- reading the cells


@dataclass
class _Cell:
    index: int
    source: str
    exercises: list[str]


def _find_cell(cells: list[Any], ex: Exercise) -> tuple[int | None, str]:
    """The index of the learner's cell for ``ex`` (None when there is none) and, when there is
    none, why."""
    fn = _function(ex)
    code = [i for i, c in enumerate(cells) if isinstance(c, dict) and c.get("cell_type") == "code"]
    defining = [i for i in code if fn in _defined_functions(cell_source(cells[i]))]
    marked = [i for i in code if {ex.name, fn} & _marked(cells[i])]
    # The learner's latest definition; else the marked cell (it may bind the name otherwise).
    if defining or marked:
        return (defining or marked)[-1], ""
    other = [
        i
        for i, c in enumerate(cells)
        if isinstance(c, dict) and ({ex.name, fn} & _marked(c) or f"def {fn}(" in cell_source(c))
    ]
    if other:
        kind = cells[other[-1]].get("cell_type", "unknown")
        return None, (
            f"your cell for `{fn}` is a {kind} cell now, so it does not run: change it back to "
            "a code cell (in JupyterLab: select it, press Y)."
        )
    return None, (
        f"no code cell defines `{fn}`: write it in the exercise cell of the notebook (a fresh copy "
        "of the notebook: `dlcourse reset NN`, which keeps your old one in work/backups/)."
    )


def _failed(ex: Exercise, message: str, code: str, detail: tuple[Any, ...] = ()) -> CheckResult:
    """A failing result that is about the notebook, the cell or the process, not one input."""
    return CheckResult(ex.name, "fail", message, failure=Failure(code, detail=detail))


def _static_problem(source: str, ex: Exercise) -> CheckResult | None:
    """What is wrong with a cell before it runs: a syntax error, a forbidden call, the package.

    A check on the text, which code that hides its calls (``getattr`` with built strings) gets
    past; the randomised inputs still make it compute the right answer."""
    try:
        tree = _parse(source)
    except SyntaxError as exc:
        return _failed(
            ex,
            f"your cell has a syntax error on line {exc.lineno}: {exc.msg}. Run it in JupyterLab "
            "to see where.",
            "syntax",
        )
    except ValueError as exc:  # null bytes
        return _failed(ex, f"your cell cannot be read as Python: {exc}", "syntax")
    forbidden = {getattr(f, "__name__", "") for f in ex.forbidden} - {""}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in forbidden:
            return _failed(
                ex,
                f"your cell uses {ast.unparse(node)}, which this exercise asks you to do without: "
                "build it from simpler operations.",
                "forbidden",
                (node.attr,),
            )
        if isinstance(node, ast.ImportFrom) and any(a.name in forbidden for a in node.names):
            names = ", ".join(a.name for a in node.names if a.name in forbidden)
            return _failed(
                ex,
                f"your cell imports {names}, which this exercise asks you to do without.",
                "forbidden",
                (names,),
            )
        if _uses_the_package(node):
            return _failed(
                ex,
                "your cell uses the dlcourse package, whose implementation is the answer: "
                "write the function with torch alone (grading runs your cell without the package).",
                "uses_package",
            )
    return None


def _uses_the_package(node: ast.AST) -> bool:
    """Whether ``node`` imports ``dlcourse``, names the notebooks' alias ``dl``, or spells the
    package's name in a string (``sys.modules["dlcourse..."]``, ``__import__``)."""
    if isinstance(node, ast.Import):
        return any(a.name.split(".")[0] == "dlcourse" for a in node.names)
    if isinstance(node, ast.ImportFrom):
        return (node.module or "").split(".")[0] == "dlcourse"
    if isinstance(node, ast.Name):
        return node.id == "dl"
    return (
        isinstance(node, ast.Constant) and isinstance(node.value, str) and "dlcourse" in node.value
    )


# --------------------------------------------------------------------------- the process


# What a process killed by a signal did, by the signal's name (not every platform has each).
_SIGNAL_TEXT = {
    "SIGSEGV": "crashed with a segmentation fault (a bad memory access)",
    "SIGABRT": "aborted (os.abort(), or a failed check inside a C library)",
    "SIGKILL": "was killed by the system (out of memory?)",
    "SIGBUS": "crashed with a bus error (a bad memory access)",
    "SIGFPE": "crashed with a floating-point exception",
    "SIGILL": "crashed with an illegal instruction",
    "SIGXCPU": "used up its CPU time",
    "SIGXFSZ": "wrote a file too large",
}
_SIGNALS = {getattr(signal, n): text for n, text in _SIGNAL_TEXT.items() if hasattr(signal, n)}


def _minimal_env(work: Path) -> dict[str, str]:
    env = {
        "PATH": os.defpath,
        "HOME": str(work),
        "TMPDIR": str(work),
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
    }
    for keep in ("LD_LIBRARY_PATH", "SYSTEMROOT"):  # conda's libraries; Windows needs it
        if keep in os.environ:
            env[keep] = os.environ[keep]
    return env


def _kill(proc: subprocess.Popen) -> None:
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError, OSError):
        pass


@dataclass
class _ProcessEnd:
    returncode: int | None
    stopped_for: str  # "" or why the grader stopped it
    output: str
    seconds: float


def _run_process(job: Path, settings: _Settings) -> _ProcessEnd:
    """Run the grading process for the job in ``job``; stop it at the limits."""
    from dlcourse.exercises.sandbox import BOOT

    package_parent = json.loads((job / "spec.json").read_text(encoding="utf-8"))["package_parent"]
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-I", "-c", BOOT, str(job), package_parent],
        cwd=job / "work",
        env=_minimal_env(job / "work"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    kept = bytearray()
    stopped = {"why": ""}

    def read() -> None:
        total = 0
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(1 << 16):
            total += len(chunk)
            if len(kept) < 8192:
                kept.extend(chunk[: 8192 - len(kept)])
            if total > settings.output_limit and not stopped["why"]:
                stopped["why"] = (
                    f"your code printed more than {settings.output_limit >> 10} KB (a print "
                    "inside a loop?), so grading stopped it"
                )
                _kill(proc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc.wait(settings.timeout)
    except subprocess.TimeoutExpired:
        stopped["why"] = stopped["why"] or (
            f"your code ran past the {settings.timeout:g} s grading allows a notebook, so "
            "grading stopped it (a loop that never ends?)"
        )
        _kill(proc)
        proc.wait()
    _kill(proc)  # anything it started and left behind
    reader.join(5)
    return _ProcessEnd(
        proc.returncode,
        stopped["why"],
        kept.decode("utf-8", errors="replace"),
        time.perf_counter() - start,
    )


def _why_it_ended(end: _ProcessEnd, settings: _Settings) -> str:
    if end.stopped_for:
        return end.stopped_for
    code = end.returncode
    if code is not None and code < 0:
        text = _SIGNALS.get(-code, f"was stopped by signal {-code}")
        if -code == getattr(signal, "SIGXCPU", None):
            text += f" ({settings.timeout:g} s)"
        if -code == getattr(signal, "SIGKILL", None):
            text += f" (grading allows {settings.memory_mb} MB)"
        return f"the grading process {text}"
    return f"the grading process ended early (exit status {code}): os._exit() in your code?"


# --------------------------------------------------------------------------- reading results


class _NotPlainData(ValueError):
    pass


def _validate(value: Any, depth: int = 0) -> Any:
    """``value`` as loaded, if it is the plain data the process is to send; raise otherwise.
    The "not plain" descriptions become :class:`NotPlain`."""
    if depth > 8:
        raise _NotPlainData("nested too deeply")
    if type(value) is torch.Tensor or value is None or type(value) in (int, float, bool, str):
        return value
    if type(value) is dict:
        if set(value) == {"not plain"}:
            info = value["not plain"]
            if (
                type(info) is list
                and len(info) == 4
                and all(type(x) is str for x in (info[0], info[1], info[3]))
            ):
                return NotPlain(info[0][:200], info[1][:200], bool(info[2]), info[3][:80])
            raise _NotPlainData("a malformed description")
        if not all(type(k) is str for k in value):
            raise _NotPlainData("a dict with non-string keys")
        return {k: _validate(v, depth + 1) for k, v in value.items()}
    if type(value) in (list, tuple):
        return [_validate(v, depth + 1) for v in value]
    raise _NotPlainData(f"a {type(value).__module__}.{type(value).__name__}")


def _load_result(path: Path) -> dict[str, Any]:
    """A result file, loaded safely (``weights_only``) and checked to be plain data."""
    if path.stat().st_size > RESULT_LIMIT_MB << 20:
        raise _NotPlainData(f"larger than {RESULT_LIMIT_MB} MB")
    try:
        loaded = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:
        raise _NotPlainData(f"not loadable as plain data ({type(exc).__name__})") from None
    record = _validate(loaded)
    if type(record) is not dict:
        raise _NotPlainData("not a record")
    return record


def _attempt(record: Any) -> Attempt:
    if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
        raise _NotPlainData("a malformed attempt")
    return Attempt(
        record["kind"],
        tuple(record.get("value") or ()),
        tuple(record.get("args_after") or ()),
        str(record.get("detail", "")),
    )


def _grad_attempt(record: Any) -> GradAttempt:
    if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
        raise _NotPlainData("a malformed gradient record")
    return GradAttempt(
        record["kind"], tuple(record.get("grads") or ()), str(record.get("detail", ""))
    )


def _memory_note(text: str, settings: _Settings) -> str:
    if "MemoryError" in text or "can't allocate memory" in text or "std::bad_alloc" in text:
        return f"\n(Grading allows {settings.memory_mb} MB of memory: your code asked for more.)"
    return ""


def _judge(
    ex: Exercise, record: dict[str, Any], sets: list[tuple[int | None, list]], settings: _Settings
) -> CheckResult:
    """The verdict on what the process sent back for ``ex``: the fixed inputs first (the same
    messages as ``ex.check()``), then the randomised ones; a recognised mistake's hint from the
    engine's diagnosis, as in ``ex.check()``."""
    if not record.get("found"):
        return _failed(ex, f"your cell ran, but did not define `{_function(ex)}`.", "not_defined")
    got_sets = record.get("sets") or []
    if not isinstance(got_sets, list) or len(got_sets) > len(sets):
        raise _NotPlainData("the wrong number of input sets")
    for k, (seed, cases) in enumerate(sets):
        if k >= len(got_sets):  # the process stops after a set that fails
            raise _NotPlainData("results missing for some inputs")
        got = got_sets[k]
        attempts = got.get("attempts") or [] if isinstance(got, dict) else []
        grads = got.get("grads") or [] if isinstance(got, dict) else []
        if not attempts:
            raise _NotPlainData("no attempts")
        for i, args in enumerate(cases):
            if i >= len(attempts):
                raise _NotPlainData("too few attempts")
            attempt = _attempt(attempts[i])
            cpu = {torch.device("cpu")}
            verdict = ex.verdict(args, attempt, case=i + 1, seed=seed, devices=cpu)
            if verdict:
                verdict.message += _memory_note(verdict.message, settings)
                verdict.hint = ex.diagnose(verdict.failure)
                return verdict
            if ex.grad:
                grad = _grad_attempt(grads[i] if i < len(grads) else None)
                verdict = ex.grad_verdict(args, grad, case=i + 1, seed=seed)
                if verdict:
                    verdict.hint = ex.diagnose(verdict.failure)
                    return verdict
    total = sum(len(cases) for _, cases in sets)
    return CheckResult(
        ex.name,
        "pass",
        f"all {total} inputs match (the self-check's and {total - len(sets[0][1])} "
        "randomised ones).",
    )


# --------------------------------------------------------------------------- one submission


def _exercise_seed(seed: int, ex: Exercise) -> int:
    return (seed * 1_000_003 + zlib.crc32(ex.name.encode())) % (1 << 62)


def _grade_submission(sub: Submission, settings: _Settings) -> _Run:
    start = time.perf_counter()
    learner, seed = sub.learner, settings.seed

    def rows(exercises: Sequence[Exercise], status: str, message: str, nb: str) -> list[Grade]:
        return [
            Grade(learner, nb, ex.name, status, 0.0, settings.points.get(ex.name, ex.points),
                  message, seed=seed, submission=str(sub.path), code="bad_notebook")
            for ex in exercises
        ]  # fmt: skip

    def whole(message: str) -> _Run:
        """A problem with the whole file: one row per exercise of the notebook it should be."""
        if sub.notebook is None:
            grades = [Grade(learner, "?", "(notebook)", "fail", 0.0, 0.0, message, seed=seed,
                            submission=str(sub.path), code="bad_notebook")]  # fmt: skip
        else:
            grades = rows(_exercises_of(sub.notebook), "fail", message, sub.notebook.filename)
        return _Run(sub, grades, time.perf_counter() - start)

    try:
        raw = sub.path.read_bytes()
    except OSError as exc:
        return whole(f"the file could not be read: {exc.strerror}.")
    if len(raw) > MAX_NOTEBOOK_BYTES:
        return whole(
            f"the file is larger than {MAX_NOTEBOOK_BYTES >> 20} MB: not a notebook to grade."
        )
    if not raw.strip():
        return whole("the notebook file is empty: hand in the notebook saved from JupyterLab.")
    try:
        nb_json = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = (
            f" (line {exc.lineno}, column {exc.colno})"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        return whole(
            f"the notebook file is not valid JSON{where}, so it cannot be read: was it edited "
            "outside JupyterLab, or cut short? Open it in JupyterLab; if it will not open, hand in "
            "your last good copy."
        )
    if not isinstance(nb_json, dict) or not isinstance(nb_json.get("cells"), list):
        return whole("the file is JSON but not a notebook (it has no list of cells).")
    course_nb = sub.notebook or _recognise(nb_json)
    if course_nb is None:
        if not nb_json["cells"]:
            return whole("the notebook is empty: it has no cells.")
        return whole(
            "this notebook has none of the course's exercises: is it the right file? "
            "Name it as in the course (e.g. 01_gradient_descent.ipynb)."
        )
    sub.notebook = course_nb
    exercises = _exercises_of(course_nb)
    cells: list[Any] = nb_json["cells"]

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
        _run_and_judge(graded, cells_to_run, settings, results, seconds, run)
    for ex in exercises:
        result = results[ex.name]
        status = {"pass": "pass", "not attempted": "not attempted"}.get(result.status, "fail")
        worth = settings.points.get(ex.name, ex.points)
        run.grades.append(
            Grade(learner, course_nb.filename, ex.name, status, worth if status == "pass" else 0.0,
                  worth, result.message, result.hint, seconds.get(ex.name, 0.0), seed,
                  str(sub.path), result.code)
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
    """Run the cells of ``exercises`` in a grading process; judge what came back."""
    import dlcourse

    # The self-check's fixed inputs (seed None), then inputs from this run's seed.
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
        (job / "results").mkdir()
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
                    "sets": [
                        {"label": input_label(seed), "seed": seed} for seed, _ in sets_of[ex.name]
                    ],
                }
                for ex in exercises
            ],
        }
        (job / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
        # The inputs' tensors as the grader made them: the process makes the cases again (some
        # hold functions), but a matrix product on another thread count may differ in the last
        # bit, and the in-place check compares bit for bit.
        tensors = {
            ex.name: [
                [[a if isinstance(a, torch.Tensor) else None for a in case] for case in cases]
                for _, cases in sets_of[ex.name]
            ]
            for ex in exercises
        }
        torch.save(tensors, job / "inputs.pt")
        end = _run_process(job, settings)
        run.output = end.output
        _judge_results(exercises, cells, job, end, sets_of, settings, results, seconds, run)
    finally:
        shutil.rmtree(job, ignore_errors=True)


def _progress_lines(job: Path) -> list[str]:
    try:
        with open(job / "progress.txt", "rb") as fh:
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - 65536))
            return fh.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _judge_results(
    exercises: list[Exercise],
    cells: list[_Cell],
    job: Path,
    end: _ProcessEnd,
    sets_of: dict[str, list[tuple[int | None, list]]],
    settings: _Settings,
    results: dict[str, CheckResult],
    seconds: dict[str, float],
    run: _Run,
) -> None:
    """Judge each exercise from its result file; say why for those without one."""
    lines = _progress_lines(job)
    finished = bool(lines) and lines[-1] == "done"
    last = lines[-1] if lines else "starting"
    ended = "" if finished else _why_it_ended(end, settings)
    try:
        run.fence = json.loads((job / "results" / "fence.json").read_text())["fence"]
    except (OSError, ValueError, KeyError, TypeError):
        run.fence = ""
    if not finished:
        if last.startswith("cell "):
            where = f"while running your cell for `{last[5:]}`"
        elif last.startswith("exercise "):
            where = f"while calling your `{last[9:]}`"
        else:
            where = "before your code ran"
        ended = f"{where}, {ended}".rstrip(".?") + ("?" if ended.endswith("?") else "")
    cell_of = {name: cell for cell in cells for name in cell.exercises}
    for ex in exercises:
        path = job / "results" / f"{ex.name}.pt"
        cell = cell_of.get(ex.name)
        cell_record = _cell_record(job, cell.index) if cell else None
        if not path.exists():
            if not finished and last == f"exercise {ex.name}":
                results[ex.name] = _failed(
                    ex, f"not graded: {ended}" + ("" if ended.endswith("?") else "."), "stopped"
                )
            elif not finished:
                results[ex.name] = _failed(
                    ex,
                    f"not graded, as the notebook's grading stopped: {ended}"
                    + ("" if ended.endswith("?") else "."),
                    "stopped",
                )
            else:
                results[ex.name] = _failed(ex, "no result came back from grading.", "no_result")
            continue
        try:
            record = _load_result(path)
            took = record.get("seconds")
            seconds[ex.name] = took if type(took) is float and 0 <= took < 1e6 else 0.0
            result = _judge(ex, record, sets_of[ex.name], settings)
        except _NotPlainData as exc:
            result = _failed(
                ex,
                f"what came back from your code is not plain data ({exc}): return plain "
                "torch.Tensor results, and leave the grading machinery alone.",
                "not_plain",
            )
        if result.status != "pass" and cell_record and cell_record.get("kind") not in (None, "ok"):
            result.message = _cell_message(cell_record, settings) + "\n" + result.message
        results[ex.name] = result


def _cell_record(job: Path, index: int) -> dict[str, Any] | None:
    try:
        path = job / "results" / f"cell-{index}.json"
        if path.stat().st_size > 1 << 20:
            return None
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _cell_message(record: dict[str, Any], settings: _Settings) -> str:
    detail = str(record.get("detail", ""))[:20_000]
    kind = record.get("kind")
    if kind == "raised":
        return f"running your cell raised an error:\n{detail}{_memory_note(detail, settings)}"
    if kind == "timeout":
        return f"{detail}, so it was stopped: is there a loop at the top level of the cell?"
    if kind == "syntax":
        return f"your cell has a syntax error on {detail}"
    return f"running your cell stopped: {detail}"


# --------------------------------------------------------------------------- the whole class


@dataclass
class ClassGrades:
    """What a grading run produced: the rows, each submission's run, the summary text."""

    grades: list[Grade]
    runs: list[_Run]
    seed: int
    seconds: float

    @property
    def summary(self) -> str:
        return summary(self.runs, self.seed, self.seconds)


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
) -> ClassGrades:
    """Grade every notebook under ``submissions``: one :class:`Grade` per learner,
    notebook and exercise, in a deterministic order (the submissions' order, then the
    exercises'), whatever ``jobs`` is.

    Args:
        submissions: notebooks, or folders of them (searched recursively).
        out: write the grades as CSV here.
        report: write a feedback page per learner (Markdown) into this folder.
        timeout: seconds one notebook's grading process may run (wall clock; CPU time too).
        memory: megabytes of address space that process may use.
        jobs: how many submissions to grade at once.
        seed: the seed of the randomised inputs (recorded in every row); by default a new one.
        points: points per exercise name, replacing the exercises' own.
        output_limit: bytes a notebook's code may print before its process is stopped.
        progress: called with a line of text as each submission is graded, in order.
    """
    if not (isinstance(jobs, int) and jobs >= 1):
        raise GradingError(f"jobs must be a whole number >= 1, got {jobs!r}")
    if not (timeout > 0 and math.isfinite(timeout)):
        raise GradingError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if not (isinstance(memory, int) and memory >= 512):
        raise GradingError(
            f"memory must be at least 512 (MB): torch alone needs about that much; got {memory!r}"
        )
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
    seed = secrets.randbelow(1 << 31) if seed is None else int(seed)
    settings = _Settings(timeout, memory, seed, dict(points or {}), output_limit)
    start = time.perf_counter()
    runs: list[_Run] = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for run in pool.map(lambda s: _grade_submission(s, settings), subs):
            runs.append(run)
            if progress:
                got = sum(g.points for g in run.grades)
                worth = sum(g.max_points for g in run.grades)
                progress(
                    f"{run.submission.learner}: {run.submission.path.name}: {got:g}/{worth:g} "
                    f"points ({run.seconds:.1f} s)"
                )
    grades = [g for run in runs for g in run.grades]
    if out is not None:
        write_csv(grades, out)
    if report is not None:
        write_reports(runs, report)
    return ClassGrades(grades, runs, seed, time.perf_counter() - start)


# --------------------------------------------------------------------------- outputs


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
