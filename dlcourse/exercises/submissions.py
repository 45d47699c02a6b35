"""Reading a class's submissions: which files, whose, which course notebook, which cells.

Everything here reads the learner's notebook as data; nothing runs it. Files are untrusted
bytes: links are refused (never followed, neither a notebook nor a folder), only regular files
are opened (``O_NOFOLLOW | O_NONBLOCK``: a FIFO cannot hang the grader), and only up to
:data:`~dlcourse.exercises.limits.MAX_NOTEBOOK_BYTES`; the JSON's nesting is measured before it
is parsed. A cell is inspected before it is sent to a grading process
(:mod:`dlcourse.exercises.isolation`): a syntax error, a forbidden call or a use of the package
fails that exercise there and then.
"""

from __future__ import annotations

import ast
import errno
import functools
import json
import os
import re
import stat
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlcourse.course import NOTEBOOKS, Notebook
from dlcourse.exercises.engine import CheckResult, Exercise, Failure
from dlcourse.exercises.forbidden import family, forbidden_names
from dlcourse.exercises.limits import MAX_NOTEBOOK_BYTES
from dlcourse.machinery.notebooks import cell_source, is_workspace


class GradingError(ValueError):
    """Grading cannot start: no submission found, a bad setting."""


class NotebookProblem(ValueError):
    """A submission that cannot be graded as a notebook; the message is for the learner."""


# Learner-facing sentences about a whole file, in one place (a translation edits them here).
MESSAGES = {
    "link": "a link, not a notebook: hand in the file itself.",
    "linked_folder": "a link to a folder, not a folder: hand in the notebooks themselves "
    "(links are not followed).",
    "not_a_file": "not a regular file (a {kind}): hand in the notebook saved from JupyterLab.",
    "unreadable": "the file could not be read: {why}.",
    "too_large": "the file is larger than {mb} MB: not a notebook to grade.",
    "empty": "the notebook file is empty: hand in the notebook saved from JupyterLab.",
    "not_json": "the notebook file is not valid JSON{where}, so it cannot be read: was it edited "
    "outside JupyterLab, or cut short? Open it in JupyterLab; if it will not open, hand in "
    "your last good copy.",
    "too_deep": "the notebook file nests its data more than {depth} levels deep, which no "
    "notebook saved from JupyterLab does: hand in the notebook saved from JupyterLab.",
    "too_many": "the notebook file holds more than {count:,} lists and objects, which no "
    "notebook saved from JupyterLab does: hand in the notebook saved from JupyterLab.",
    "long_number": "the notebook file holds a number with thousands of digits, which no notebook "
    "saved from JupyterLab does: hand in the notebook saved from JupyterLab.",
    "not_notebook": "the file is JSON but not a notebook (it has no list of cells).",
    "no_cells": "the notebook is empty: it has no cells.",
    "not_course": "this notebook has none of the course's exercises: is it the right file? "
    "Name it as in the course (e.g. 01_gradient_descent.ipynb).",
    "no_exercises": "{notebook} has no exercises: nothing in it is graded.",
    "grader_error": "the grader could not read your notebook: {what}. This is a problem of the "
    "grader, not necessarily of your code: tell your instructor.",
    "page_error": "Note for the instructor: the grader could not write this learner's feedback "
    "page: {what}.",
    "solution_copy": "Note for the instructor: this notebook's exercise cells are identical to "
    "the course's solution notebook.",
    "solution_copy_summary": "{learner} ({file}): the exercise cells are identical to the "
    "course's solution notebook.",
    "two_files": "Note for the instructor: {learner} handed in {count} files for {notebook} "
    "({files}); each is graded on its own.",
}

MAX_JSON_DEPTH = 200  # a notebook saved from JupyterLab nests about 6 deep
MAX_JSON_CONTAINERS = 1_000_000  # lists and objects; a notebook of 1,000 cells has ~10,000


@dataclass
class Submission:
    """One notebook to grade: whose it is, and which course notebook (None: not recognised).

    ``learner`` is shown as is (valid Unicode, no control characters: a file name that is not
    UTF-8 shows replacement characters); ``problem``, when set, is why the file is not read at
    all (a link)."""

    learner: str
    path: Path
    notebook: Notebook | None = None
    problem: str = ""


# --------------------------------------------------------------------------- finding submissions


def readable(name: str) -> str:
    """``name`` as text that can be written and shown anywhere: bytes that were not UTF-8 (kept
    by the file system as surrogates) become replacement characters, and so do control
    characters (terminal escapes, carriage returns, bidirectional overrides)."""
    try:
        text = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        text = name.encode("utf-8", "replace").decode("utf-8", "replace")
    return _CONTROLS.sub("\ufffd", text)


# C0 and C1 controls, DEL, and the bidirectional formatting characters ("Trojan source").
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _course_notebook(stem: str) -> Notebook | None:
    for nb in NOTEBOOKS:
        if stem == nb.filename.removesuffix(".ipynb"):
            return nb
    return None


_SKIPPED_FOLDERS = (".ipynb_checkpoints", "backups")


def _walk(root: Path) -> Iterator[tuple[Path, str]]:
    """The notebooks under ``root`` and the links to folders in it (with why they are not
    read), never following a link."""
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        for name in dirs:
            if name not in _SKIPPED_FOLDERS and os.path.islink(here / name):
                yield here / name, MESSAGES["linked_folder"]
        dirs[:] = [d for d in dirs if d not in _SKIPPED_FOLDERS and not os.path.islink(here / d)]
        for name in files:
            if name.endswith(".ipynb"):
                yield here / name, ""


def find_submissions(paths: Iterable[str | Path]) -> list[Submission]:
    """The notebooks to grade under ``paths`` (files, or folders searched recursively), in a
    deterministic order, each with its learner's name. Links are not followed: each link (to
    a notebook or a folder) is a submission that fails with the reason."""
    paths = list(paths)
    found: list[tuple[Path, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_symlink() and not path.is_dir():
            found.append((path, MESSAGES["link"]))
        elif path.is_dir():
            found.extend(sorted(_walk(path)))
        elif path.exists():
            found.append((path, ""))  # a file, or something else that reading will refuse
        else:
            raise GradingError(f"no such file or folder: {readable(str(path))}")
    if not found:
        raise GradingError(
            "no notebooks (.ipynb) found in " + ", ".join(readable(str(p)) for p in paths)
            + ": give the learners' notebooks, or folders holding them"
        )  # fmt: skip
    subs = []
    for path, problem in found:
        if not problem and path.is_symlink():
            problem = MESSAGES["link"]
        nb = _course_notebook(path.stem)
        folder = Path(os.path.abspath(path.parent))
        learner = folder.name if nb else path.stem
        if nb and is_workspace(folder):  # one's own copy in work/ (dlcourse grade work/01_...)
            learner = "you"
        subs.append(Submission(readable(learner or path.stem), path, nb, problem))
    return subs


# --------------------------------------------------------------------------- reading a notebook


def read_bytes_below(root: Path, relative: Path, limit: int = MAX_NOTEBOOK_BYTES) -> bytes:
    """As :func:`read_bytes_safely`, for the file ``root / relative``, where whoever owns
    ``root`` (a learner's home) may change what is below it while it is read: each folder on the
    way is opened from the one before it without following a link, so a folder swapped for a
    link to another learner's files between a check and the read is refused, not followed."""
    parts = Path(relative).parts
    if not parts or any(part in ("", ".", "..") for part in parts) or Path(relative).is_absolute():
        raise ValueError(f"{relative} is not a path below {root}")
    directory = getattr(os, "O_DIRECTORY", 0)
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    if not (directory and nofollow) or os.open not in os.supports_dir_fd:  # Windows
        return read_bytes_safely(Path(root, *parts), limit)
    flags = os.O_RDONLY | directory | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(root, flags)
    except OSError as exc:
        raise NotebookProblem(MESSAGES["unreadable"].format(why=exc.strerror or exc)) from None
    try:
        for part in parts[:-1]:
            try:
                inner = os.open(part, flags | nofollow, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise NotebookProblem(MESSAGES["link"]) from None
                raise NotebookProblem(
                    MESSAGES["unreadable"].format(why=exc.strerror or exc)
                ) from None
            os.close(fd)
            fd = inner
        return read_bytes_safely(Path(parts[-1]), limit, dir_fd=fd)
    finally:
        os.close(fd)


def read_bytes_safely(
    path: Path, limit: int = MAX_NOTEBOOK_BYTES, *, dir_fd: int | None = None
) -> bytes:
    """The bytes of the regular file ``path`` (relative to the open folder ``dir_fd`` when
    given), at most ``limit`` of them; :exc:`NotebookProblem` for a link, anything but a regular
    file (a FIFO, a device), or a larger file."""
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    if not nofollow and path.is_symlink():  # Windows: no O_NOFOLLOW
        raise NotebookProblem(MESSAGES["link"])
    flags = os.O_RDONLY | nofollow | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno == errno.EMLINK and path.is_symlink()):
            raise NotebookProblem(MESSAGES["link"]) from None
        raise NotebookProblem(MESSAGES["unreadable"].format(why=exc.strerror or exc)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "folder" if stat.S_ISDIR(info.st_mode) else "FIFO, device or socket"
            raise NotebookProblem(MESSAGES["not_a_file"].format(kind=kind))
        if info.st_size > limit:
            raise NotebookProblem(MESSAGES["too_large"].format(mb=limit >> 20))
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:  # it grew while being read
            raise NotebookProblem(MESSAGES["too_large"].format(mb=limit >> 20))
        return b"".join(chunks)
    except OSError as exc:
        raise NotebookProblem(MESSAGES["unreadable"].format(why=exc.strerror or exc)) from None
    finally:
        os.close(fd)


def json_shape(raw: bytes) -> tuple[int, int]:
    """How deeply the JSON text ``raw`` nests its arrays and objects, and how many it holds
    (brackets inside strings left out): a linear scan in bounded memory, cheap enough to run
    before :func:`json.loads`, whose recursion and memory it guards. Where ``raw`` is not JSON
    the numbers are exact up to the first error, which is as far as :func:`json.loads` goes."""
    import numpy as np

    # Escaped backslashes, then escaped quotes, go: every quote left opens or closes a string.
    text = np.frombuffer(raw.replace(b"\\\\", b"").replace(b'\\"', b""), dtype=np.uint8)
    depth = deepest = inside = count = 0
    for start in range(0, len(text), 1 << 22):
        chunk = text[start : start + (1 << 22)]
        outside = ((np.cumsum(chunk == ord('"'), dtype=np.int64) + inside) & 1) == 0
        opens = ((chunk == ord("[")) | (chunk == ord("{"))) & outside
        closes = ((chunk == ord("]")) | (chunk == ord("}"))) & outside
        count += int(opens.sum())
        levels = np.cumsum(opens.astype(np.int64) - closes, dtype=np.int64) + depth
        deepest, depth = max(deepest, int(levels.max())), int(levels[-1])
        inside = int(not outside[-1])  # in a string after the chunk's last byte
    return deepest, count


def parse_notebook(raw: bytes) -> dict[str, Any]:
    """A notebook's JSON from its bytes; :exc:`NotebookProblem` with a plain reason when the
    bytes are not a notebook (not UTF-8, not JSON, nested too deeply, huge numbers)."""
    if not raw.strip():
        raise NotebookProblem(MESSAGES["empty"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NotebookProblem(MESSAGES["not_json"].format(where="")) from None
    depth, containers = json_shape(raw)
    if depth > MAX_JSON_DEPTH:
        raise NotebookProblem(MESSAGES["too_deep"].format(depth=MAX_JSON_DEPTH))
    if containers > MAX_JSON_CONTAINERS:
        raise NotebookProblem(MESSAGES["too_many"].format(count=MAX_JSON_CONTAINERS))
    try:
        nb_json = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f" (line {exc.lineno}, column {exc.colno})"
        raise NotebookProblem(MESSAGES["not_json"].format(where=where)) from None
    except ValueError:  # "Exceeds the limit (4300 digits) for integer string conversion"
        raise NotebookProblem(MESSAGES["long_number"]) from None
    except RecursionError:  # the depth scan should have caught it: belt and braces
        raise NotebookProblem(MESSAGES["too_deep"].format(depth=MAX_JSON_DEPTH)) from None
    if not isinstance(nb_json, dict) or not isinstance(nb_json.get("cells"), list):
        raise NotebookProblem(MESSAGES["not_notebook"])
    return nb_json


def read_notebook(path: Path) -> dict[str, Any]:
    """The notebook at ``path``, read as untrusted data (:func:`read_bytes_safely`,
    :func:`parse_notebook`)."""
    return parse_notebook(read_bytes_safely(path))


def _exercises_of(nb: Notebook) -> list[Exercise]:
    from dlcourse.exercises.registry import all_exercises

    return [ex for ex in all_exercises() if ex.notebook == nb.number]


def _function(ex: Exercise) -> str:
    return ex.reference.__name__


# CPython 3.11's parser is not safe to run from two threads at once ("SystemError: AST constructor
# recursion depth mismatch", seen with --jobs 2): submissions are read one at a time.
_PARSER = threading.Lock()


class _TooDeep(ValueError):
    """A cell nested more deeply than Python's parser can follow (``1+1+...`` 200,000 times)."""


def _parse(source: str) -> ast.Module:
    with _PARSER:
        try:
            return ast.parse(source)
        except (RecursionError, MemoryError) as exc:
            raise _TooDeep(str(exc)) from None


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


_CELL_TYPES = ("markdown", "raw", "code")


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
        kind = cells[other[-1]].get("cell_type")
        kind = kind if kind in _CELL_TYPES else "non-code"  # the learner's text: not echoed
        return None, (
            f"your cell for `{fn}` is a {kind} cell now, so it does not run: change it back to "
            "a code cell (in JupyterLab: select it, press Y)."
        )
    return None, (
        f"no code cell defines `{fn}`: write it in the exercise cell of the notebook (a fresh copy "
        "of the notebook: `dlcourse reset NN`, which keeps your old one in work/backups/)."
    )


def exercise_sources(cells: list[Any], exercises: Iterable[Exercise]) -> dict[str, str | None]:
    """The source of each exercise's cell, as grading finds it (None: no cell)."""
    found = {}
    for ex in exercises:
        index, _ = _find_cell(cells, ex)
        found[ex.name] = None if index is None else cell_source(cells[index])
    return found


def _normalised(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


@functools.cache
def _solution_sources(filename: str) -> dict[str, str] | None:
    """The exercise cells of the course's solution notebook ``filename`` (normalised), found as
    a submission's are; None where the course's notebooks are not at hand (an installed
    package)."""
    from dlcourse.machinery.notebooks import NOTEBOOK_DIR

    nb = _course_notebook(filename.removesuffix(".ipynb"))
    if nb is None:
        return None
    try:
        cells = read_notebook(NOTEBOOK_DIR / filename)["cells"]
    except NotebookProblem:
        return None
    sources = exercise_sources(cells, _exercises_of(nb))
    if any(s is None for s in sources.values()):
        return None
    return {name: _normalised(s) for name, s in sources.items() if s is not None}


def is_solution_copy(nb: Notebook, sources: dict[str, str | None]) -> bool:
    """Whether the exercise cells ``sources`` (exercise name: source) are the course's solution
    notebook's, every one of them (whitespace at the ends of lines aside)."""
    solution = _solution_sources(nb.filename)
    if not solution or set(solution) != set(sources):
        return False
    return all(s is not None and _normalised(s) == solution[n] for n, s in sources.items())


def _failed(ex: Exercise, message: str, code: str, detail: tuple[Any, ...] = ()) -> CheckResult:
    """A failing result that is about the notebook, the cell or the process, not one input."""
    return CheckResult(ex.name, "fail", message, failure=Failure(code, detail=detail))


def _shown(node: ast.AST) -> str:
    """A node's source for a message, short; its name alone where unparsing fails (deep)."""
    try:
        text = ast.unparse(node)
    except (RecursionError, ValueError):
        text = getattr(node, "attr", "") or type(node).__name__
    return text if len(text) <= 80 else text[:77] + "..."


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
    except _TooDeep:
        return _failed(
            ex,
            "your cell is too deeply nested for Python to read (an expression of thousands of "
            "parts inside one another): write it in smaller steps.",
            "syntax",
        )
    except ValueError as exc:  # null bytes
        return _failed(ex, f"your cell cannot be read as Python: {exc}", "syntax")
    # the forbidden functions and every alias of theirs (torch._euclidean_dist for cdist, ...)
    forbidden = set(family(forbidden_names(ex.forbidden)))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in forbidden:
            return _failed(
                ex,
                f"your cell uses {_shown(node)}, which this exercise asks you to do without: "
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
