"""Self-checking exercises: the engine, and one module of exercises per notebook.

::

    ex = dl.exercises.get("pairwise_sq_dists")
    ex.check(pairwise_sq_dists)   # green pass, red diagnosis, or "not attempted yet"
    ex.hint()                     # hints one at a time; ex.hint(2) for a given one
    ex.solution()                 # the reference, highlighted

:func:`all_exercises` is the registry the tests run over. Exercise modules:
``welcome`` (notebook 00), ``gradient_descent`` (notebook 01), ``activations_init``
(notebook 02), ``optimizers`` (notebook 03).
"""

from __future__ import annotations

import importlib

from dlcourse.exercises.engine import CheckResult, Exercise, Wrong

__all__ = ["CheckResult", "Exercise", "Wrong", "all_exercises", "get"]

# One module per notebook, in course order; each defines EXERCISES.
_MODULES = ("welcome", "gradient_descent", "activations_init", "optimizers")


def all_exercises() -> list[Exercise]:
    """Every exercise of the course, in notebook order."""
    found = []
    for name in _MODULES:
        found.extend(importlib.import_module(f"dlcourse.exercises.{name}").EXERCISES)
    return found


def get(name: str) -> Exercise:
    """The exercise called ``name``."""
    exercises = all_exercises()
    for ex in exercises:
        if ex.name == name:
            return ex
    raise KeyError(f"no exercise {name!r}; there are: {', '.join(e.name for e in exercises)}")
