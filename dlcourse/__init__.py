"""dlcourse: the package beside the deep-learning course.

The notebooks in ``notebooks/`` import from-scratch implementations from here.
Every module at this level is what a notebook teaches or uses (each names the
notebook that teaches it); what runs the course itself (the ``dlcourse``
command, JupyterLab, the learner's copies, the stored notebooks) is in
:mod:`dlcourse.machinery`, and the exercises with their checks in
:mod:`dlcourse.exercises`.

``import dlcourse`` is cheap on purpose: it does not import torch, matplotlib or
ipywidgets. Submodules and the helpers below are loaded on first use, so a
grader or a script pays only for what it touches::

    import dlcourse as dl
    device = dl.setup(seed=0)  # seeds everything, picks the device, prints one line

Importing it before torch also lets it set OpenMP's wait policy (:mod:`dlcourse.threads`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import pkgutil
import sys
from typing import TYPE_CHECKING, Any

from dlcourse._version import __version__
from dlcourse.threads import set_wait_policy as _set_wait_policy

# OpenMP reads its wait policy once, when torch loads: set it now, before any notebook or
# script imports torch, unless you set one (dlcourse.threads says why).
_set_wait_policy()

# Submodules, loaded on first attribute access (PEP 562): every module of the package, found in
# its folder, so adding one is enough to make it reachable as ``dl.<name>``.
_SUBMODULES = tuple(
    sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
)

# Helpers re-exported at the top level: name -> module that defines it.
_EXPORTS = {
    "setup": "env",
    "run_seed": "env",
    "seed_everything": "env",
    "pick_device": "env",
    "available_devices": "env",
    "DeviceError": "env",
}

# Modules that moved into dlcourse.machinery: their old names still import (the same module
# object, not a copy) and still resolve as attributes (``dl.notebooks``).
_MOVED = {
    name: f"dlcourse.machinery.{name}"
    for name in ("atomic", "cli", "kernel_client", "lab", "notebooks", "robustness", "workspace")
}

__all__ = ["__version__", *_SUBMODULES, *_EXPORTS]


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import dlcourse.lab`` gives ``dlcourse.machinery.lab`` itself, loaded on first use."""

    def __init__(self) -> None:
        self._own_specs: dict[str, Any] = {}  # alias -> the real module's spec, while loading

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname.removeprefix("dlcourse.") in _MOVED and fullname.startswith("dlcourse."):
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec: Any) -> Any:
        module = importlib.import_module(_MOVED[spec.name.removeprefix("dlcourse.")])
        self._own_specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module: Any) -> None:
        # importlib has just given the module the alias's spec: give it back its own
        module.__spec__ = self._own_specs.pop(module.__spec__.name, module.__spec__)


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.append(_MovedModules())

if TYPE_CHECKING:  # pragma: no cover - for editors and type checkers only
    from .env import (  # noqa: F401
        DeviceError,
        available_devices,
        pick_device,
        run_seed,
        seed_everything,
        setup,
    )


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _MOVED:
        return importlib.import_module(_MOVED[name])
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'dlcourse' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
