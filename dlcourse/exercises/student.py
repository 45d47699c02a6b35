"""Student versions of the notebooks: solutions cut out.

Notebooks are written as solution versions. In an exercise cell, the learner's
part sits between two marker lines (nbgrader's spelling)::

    def pairwise_sq_dists(a, b):
        # BEGIN SOLUTION
        diff = a[:, None, :] - b[None, :, :]
        return (diff**2).sum(dim=-1)
        # END SOLUTION

A student version replaces each such region by a stub with the region's
indentation, ``raise NotImplementedError("...")``, and clears execution counts.
Cells after an exercise use the package's implementation, so a student notebook
runs top to bottom, each check saying "not attempted yet".

Marks, for class grading (:mod:`dlcourse.exercises.grading`): each exercise
cell's metadata says whose functions it holds (``{"dlcourse": {"exercise":
["pairwise_sq_dists"]}}``), and the notebook's metadata which course notebook
it is (``{"dlcourse": {"notebook": "00_welcome.ipynb"}}``); JupyterLab keeps
both when the learner edits and saves.

Markers for the course's tools, not for learners, are taken out of every code cell:
nbval's (``# NBVAL_IGNORE_OUTPUT`` and the rest) and ruff's (``# fmt: skip``,
``# fmt: off``/``on``).

Outputs: a handout (``dlcourse student``) has them all cleared. A learner's own
copy (``keep_outputs=True``, what :mod:`dlcourse.machinery.workspace` writes) keeps the
stored outputs, so the notebook still reads like a book before it is run, except
those the learner is to produce: the exercise cells' and the cells that check the
learner's function (``ex.check(pairwise_sq_dists)``); widget views, which only a
live kernel can draw, are dropped too.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from dlcourse.machinery.atomic import write_bytes_atomically
from dlcourse.machinery.notebooks import cell_source

BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
STUB = 'raise NotImplementedError("your code here")'
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def strip_solutions(source: str, where: str = "cell") -> str:
    """``source`` with every marked solution region replaced by a stub."""
    out: list[str] = []
    inside = False
    for number, line in enumerate(source.splitlines(), 1):
        marker = line.strip()
        if marker == BEGIN:
            if inside:
                raise ValueError(f"{where}, line {number}: {BEGIN} inside another solution region")
            inside = True
            indent = re.match(r"\s*", line).group(0)
            out.append(f"{indent}{STUB}")
        elif marker == END:
            if not inside:
                raise ValueError(f"{where}, line {number}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: {BEGIN} without {END}")
    return "\n".join(out)


# A line that is only a tool's marker, and a marker at the end of a line of code.
_MARKER_LINE = re.compile(r"^\s*#\s*(NBVAL_[A-Z_]+|fmt:\s*(off|on|skip))\s*$")
_TRAILING_MARKER = re.compile(r"\s+#\s*fmt:\s*skip\s*$")


def strip_tool_markers(source: str) -> str:
    """``source`` without the markers of nbval and ruff (``# NBVAL_IGNORE_OUTPUT``,
    ``# fmt: skip``): they are for the course's tools, not for the learner."""
    lines = [_TRAILING_MARKER.sub("", line) for line in source.splitlines()]
    return "\n".join(line for line in lines if not _MARKER_LINE.match(line))


def _is_exercise(source: str) -> bool:
    return any(line.strip() == BEGIN for line in source.splitlines())


def learners_functions(nb: dict[str, Any]) -> set[str]:
    """The names of the functions the learner writes (defined in exercise cells)."""
    names: set[str] = set()
    for cell in nb.get("cells", []):
        source = cell_source(cell)
        if cell.get("cell_type") == "code" and _is_exercise(source):
            names.update(re.findall(r"^def (\w+)\(", source, flags=re.MULTILINE))
    return names


def checks_learners_function(source: str, names: set[str]) -> bool:
    """Whether a cell checks one of the learner's functions (``ex.check(name, ...)``)."""
    return any(name in names for name in re.findall(r"\.check\(\s*(\w+)", source))


def student_notebook(
    nb: dict[str, Any], name: str = "notebook", *, keep_outputs: bool = False
) -> dict[str, Any]:
    """A student version of a notebook given as nbformat JSON (the input is left unchanged).

    ``keep_outputs`` keeps the stored outputs but those of exercise and check cells and
    widget views (a learner's copy); without it every output is cleared (a handout).
    """
    nb = copy.deepcopy(nb)
    learners = learners_functions(nb)
    if re.fullmatch(r"\d\d_\w+\.ipynb", name):
        nb.setdefault("metadata", {})["dlcourse"] = {"notebook": name}
    for i, cell in enumerate(nb.get("cells", [])):
        source = cell_source(cell)
        if cell.get("cell_type") == "code":
            if _is_exercise(source):
                defined = sorted(re.findall(r"^def (\w+)\(", source, flags=re.MULTILINE))
                cell.setdefault("metadata", {})["dlcourse"] = {"exercise": defined}
            cell["source"] = strip_tool_markers(strip_solutions(source, f"{name}, cell {i}"))
            cell["execution_count"] = None
            theirs = _is_exercise(source) or checks_learners_function(source, learners)
            if not keep_outputs or theirs:
                cell["outputs"] = []
            cell["outputs"] = [o for o in cell["outputs"] if WIDGET_VIEW not in o.get("data", {})]
            for out in cell["outputs"]:
                if "execution_count" in out:
                    out["execution_count"] = None
        elif BEGIN in source:
            cell["source"] = strip_solutions(source, f"{name}, cell {i}")
    return nb


def solution_regions(nb: dict[str, Any]) -> int:
    """How many solution regions a notebook has."""
    return sum(
        line.strip() == BEGIN
        for cell in nb.get("cells", [])
        for line in cell_source(cell).splitlines()
    )


def write_student_version(path: Path, target: Path, *, keep_outputs: bool = False) -> Path:
    """Write the student version of the notebook ``path`` to ``target`` (atomically)."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    student = student_notebook(nb, Path(path).name, keep_outputs=keep_outputs)
    text = json.dumps(student, indent=1, ensure_ascii=False) + "\n"
    write_bytes_atomically(Path(target), text.encode("utf-8"))
    return Path(target)


def write_student_versions(
    paths: list[Path], out_dir: Path, *, keep_outputs: bool = False
) -> list[Path]:
    """Write the student version of each notebook into ``out_dir``; return the paths written."""
    return [
        write_student_version(path, Path(out_dir) / Path(path).name, keep_outputs=keep_outputs)
        for path in paths
    ]
