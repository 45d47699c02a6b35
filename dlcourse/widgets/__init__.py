"""Interactive demos for the notebooks (ipywidgets): one module per notebook, drawing only.

A notebook's demo lives in the module named after it, without its number (as its
exercises do in :mod:`dlcourse.exercises`): ``welcome.py`` for
``00_welcome.ipynb``, ``gradient_descent.py`` for 01, ``activations_and_init.py``
for 02, ``optimizers.py`` for 03. Each has a ``show_*`` function, the callback,
that draws one setting of the knobs and returns what was computed, and an
``*_explorer()`` that wires it to sliders starting at the defaults of the
settings dataclass. The computation lives in the topic module
(:mod:`dlcourse.derivatives`, :mod:`dlcourse.anneal`, :mod:`dlcourse.diagnostics`,
:mod:`dlcourse.landscapes`), so only the drawing is here. Tests call the
callbacks directly and drive the explorers' widgets headless.

``dl.widgets.tangent_explorer()`` and the other demos are found in their modules
on first use; nothing here imports ipywidgets or matplotlib until then.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from dlcourse.course import NOTEBOOKS


def widget_modules() -> list[str]:
    """The demo modules that exist, in course order (``dlcourse.widgets.welcome``, ...)."""
    names = (f"{__name__}.{nb.slug}" for nb in NOTEBOOKS)
    return [name for name in names if importlib.util.find_spec(name) is not None]


def __getattr__(name: str) -> Any:
    """``dl.widgets.tangent_explorer`` and friends: a demo, from its notebook's module."""
    if not name.startswith("_"):
        for module in widget_modules():
            found = getattr(importlib.import_module(module), name, None)
            if found is not None:
                return found
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
