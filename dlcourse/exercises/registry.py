"""The course's exercises: found through the course map, one module per notebook."""

from __future__ import annotations

import importlib
import importlib.util

from dlcourse.course import NOTEBOOKS
from dlcourse.exercises.engine import Exercise

PACKAGE = "dlcourse.exercises"


def exercise_modules() -> list[str]:
    """The modules of exercises that exist, in course order (``dlcourse.exercises.welcome``...)."""
    names = (f"{PACKAGE}.{nb.slug}" for nb in NOTEBOOKS)
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
