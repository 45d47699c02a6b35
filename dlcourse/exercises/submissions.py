"""Reading a class's submissions: which files, whose, which course notebook, which cells.

Everything here reads the learner's notebook as data; nothing runs it. A cell is inspected before
it is sent to a grading process (:mod:`dlcourse.exercises.isolation`): a syntax error, a
forbidden call or a use of the package fails that exercise there and then.
"""

from __future__ import annotations

import ast
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlcourse.course import NOTEBOOKS, Notebook
from dlcourse.exercises.engine import CheckResult, Exercise, Failure
from dlcourse.machinery.notebooks import cell_source


class GradingError(ValueError):
    """Grading cannot start: no submission found, a bad setting."""


@dataclass
class Submission:
    """One notebook to grade: whose it is, and which course notebook (None: not recognised)."""

    learner: str
    path: Path
    notebook: Notebook | None = None


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
