"""Self-checking exercises: the engine, and one module of exercises per notebook.

::

    ex = dl.exercises.get("pairwise_sq_dists")
    result = ex.check(pairwise_sq_dists)  # green pass, red diagnosis, or "not attempted yet"
    result.code, result.failure           # what failed, for programs ("shape", input 2, ...)
    ex.hint()                     # hints one at a time; ex.hint(2) for a given one
    ex.solution()                 # the reference, highlighted

A notebook's exercises live in the module named after it, without its number
(:attr:`dlcourse.course.Notebook.slug`): ``welcome.py`` for
``00_welcome.ipynb``, ``gradient_descent.py`` for 01, ``activations_and_init.py``
for 02, ``optimizers.py`` for 03. Each defines ``EXERCISES``;
:func:`all_exercises`, the registry the tests run over, finds them through the
course map, so a new notebook's exercises need no list edited.

Class grading (:mod:`dlcourse.exercises.grading`, ``dlcourse grade``) runs learners' notebooks in
a separate, limited process and judges them with the same messages and codes, through the
engine's public contract (:mod:`dlcourse.exercises.engine`, "The contract")::

    grades = dl.exercises.grade(["submissions/"], out="grades.csv", jobs=2)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Loaded on first use (PEP 562), as ``dlcourse`` itself is: the ``dlcourse`` command reads
# grading's limits (:mod:`dlcourse.exercises.limits`) without importing torch.
_EXPORTS = {
    "CheckResult": "engine",
    "Exercise": "engine",
    "Failure": "engine",
    "Wrong": "engine",
    "all_exercises": "registry",
    "exercise_modules": "registry",
    "get": "registry",
}

if TYPE_CHECKING:  # pragma: no cover - for editors and type checkers only
    from dlcourse.exercises.engine import CheckResult, Exercise, Failure, Wrong
    from dlcourse.exercises.registry import all_exercises, exercise_modules, get

__all__ = [
    "CheckResult",
    "Exercise",
    "Failure",
    "Wrong",
    "all_exercises",
    "exercise_modules",
    "get",
    "grade",
]


def grade(submissions: list, **settings: Any) -> list:
    """Grade learners' notebooks: :func:`dlcourse.exercises.grading.grade` (the records, one
    :class:`~dlcourse.exercises.grading.Grade` per learner, notebook and exercise)."""
    from dlcourse.exercises.grading import grade as grade_notebooks

    return grade_notebooks(submissions, **settings)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
