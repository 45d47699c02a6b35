"""dlcourse: the package beside the deep-learning course.

The notebooks in ``notebooks/`` import from-scratch implementations from here.
Every submodule names the notebook that teaches it.

``import dlcourse`` is cheap on purpose: it does not import torch, matplotlib or
ipywidgets. Submodules and the helpers below are loaded on first use, so a
grader or a script pays only for what it touches::

    import dlcourse as dl
    device = dl.setup(seed=0)  # seeds everything, picks the device, prints one line
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Submodules, loaded on first attribute access (PEP 562).
_SUBMODULES = (
    "activations",
    "anneal",
    "benchmark",
    "cli",
    "course",
    "data",
    "depth",
    "diagnostics",
    "env",
    "exercises",
    "init",
    "lab",
    "landscapes",
    "notebooks",
    "optim",
    "plot",
    "report",
    "schedules",
    "second_order",
    "train",
    "widgets",
    "workspace",
)

# Helpers re-exported at the top level: name -> module that defines it.
_EXPORTS = {
    "setup": "env",
    "seed_everything": "env",
    "pick_device": "env",
    "available_devices": "env",
    "DeviceError": "env",
}

__all__ = ["__version__", *_SUBMODULES, *_EXPORTS]

if TYPE_CHECKING:  # pragma: no cover - for editors and type checkers only
    from . import (  # noqa: F401
        activations,
        anneal,
        benchmark,
        cli,
        course,
        data,
        depth,
        diagnostics,
        env,
        exercises,
        init,
        lab,
        landscapes,
        notebooks,
        optim,
        plot,
        report,
        schedules,
        second_order,
        train,
        widgets,
        workspace,
    )
    from .env import (  # noqa: F401
        DeviceError,
        available_devices,
        pick_device,
        seed_everything,
        setup,
    )


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'dlcourse' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
