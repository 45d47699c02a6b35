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
import pkgutil
from typing import TYPE_CHECKING, Any

from dlcourse._version import __version__

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

__all__ = ["__version__", *_SUBMODULES, *_EXPORTS]

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
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'dlcourse' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
