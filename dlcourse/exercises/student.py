"""Student versions of the notebooks: solutions cut out, outputs cleared.

Notebooks are written as solution versions. In an exercise cell, the learner's
part sits between two marker lines (nbgrader's spelling)::

    def pairwise_sq_dists(a, b):
        # BEGIN SOLUTION
        diff = a[:, None, :] - b[None, :, :]
        return (diff**2).sum(dim=-1)
        # END SOLUTION

``dlcourse student`` replaces each such region by a stub with the region's
indentation, ``raise NotImplementedError("...")``, clears every output and
execution count, and writes the result to another folder (``build/student/``
by default). Cells after an exercise use the package's implementation, so a
student notebook runs top to bottom, each check saying "not attempted yet".
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from dlcourse.atomic import write_bytes_atomically

BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
STUB = 'raise NotImplementedError("your code here")'


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


def student_notebook(nb: dict[str, Any], name: str = "notebook") -> dict[str, Any]:
    """A student version of a notebook given as nbformat JSON (the input is left unchanged)."""
    nb = copy.deepcopy(nb)
    for i, cell in enumerate(nb.get("cells", [])):
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        if cell.get("cell_type") == "code":
            cell["source"] = strip_solutions(source, f"{name}, cell {i}")
            cell["outputs"] = []
            cell["execution_count"] = None
        elif BEGIN in source:
            cell["source"] = strip_solutions(source, f"{name}, cell {i}")
    return nb


def solution_regions(nb: dict[str, Any]) -> int:
    """How many solution regions a notebook has."""
    total = 0
    for cell in nb.get("cells", []):
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        total += sum(line.strip() == BEGIN for line in source.splitlines())
    return total


def write_student_versions(paths: list[Path], out_dir: Path) -> list[Path]:
    """Write the student version of each notebook into ``out_dir``; return the paths written."""
    written = []
    for path in paths:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
        student = student_notebook(nb, Path(path).name)
        target = Path(out_dir) / Path(path).name
        text = json.dumps(student, indent=1, ensure_ascii=False) + "\n"
        write_bytes_atomically(target, text.encode("utf-8"))
        written.append(target)
    return written
