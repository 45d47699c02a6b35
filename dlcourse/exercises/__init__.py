"""Self-checking exercises: the engine, and one module of exercises per notebook.

::

    ex = dl.exercises.get("pairwise_sq_dists")
    ex.check(pairwise_sq_dists)   # green pass, red diagnosis, or "not attempted yet"
    ex.hint()                     # hints one at a time; ex.hint(2) for a given one
    ex.solution()                 # the reference, highlighted

A notebook's exercises live in the module named after it, without its number
(:attr:`dlcourse.course.Notebook.slug`): ``welcome.py`` for
``00_welcome.ipynb``, ``gradient_descent.py`` for 01, ``activations_and_init.py``
for 02, ``optimizers.py`` for 03. Each defines ``EXERCISES``;
:func:`all_exercises`, the registry the tests run over, finds them through the
course map, so a new notebook's exercises need no list edited.
"""

from __future__ import annotations

import importlib
import importlib.util

from dlcourse.course import NOTEBOOKS
from dlcourse.exercises.engine import CheckResult, Exercise, Wrong

__all__ = ["CheckResult", "Exercise", "Wrong", "all_exercises", "exercise_modules", "get"]


def exercise_modules() -> list[str]:
    """The modules of exercises that exist, in course order (``dlcourse.exercises.welcome``...)."""
    names = (f"{__name__}.{nb.slug}" for nb in NOTEBOOKS)
    return [name for name in names if importlib.util.find_spec(name) is not None]


def all_exercises() -> list[Exercise]:
    """Every exercise of the course, in notebook order."""
    found = []
    for name in exercise_modules():
        found.extend(importlib.import_module(name).EXERCISES)
    return found


def get(name: str) -> Exercise:
    """The exercise called ``name``."""
    exercises = all_exercises()
    for ex in exercises:
        if ex.name == name:
            return ex
    raise KeyError(f"no exercise {name!r}; there are: {', '.join(e.name for e in exercises)}")
