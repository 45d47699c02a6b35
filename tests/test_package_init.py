"""`import dlcourse`: cheap, lazy, and complete."""

from __future__ import annotations

import subprocess
import sys

import pytest

import dlcourse


def test_import_does_not_load_heavy_packages() -> None:
    """A grader or script that imports dlcourse pays nothing until it uses something."""
    code = (
        "import sys, dlcourse; "
        "heavy = [m for m in ('torch', 'numpy', 'matplotlib', 'ipywidgets') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_lazy_attributes_resolve() -> None:
    for name in dlcourse._SUBMODULES:
        assert getattr(dlcourse, name).__name__ == f"dlcourse.{name}"
    assert dlcourse.setup is dlcourse.env.setup
    assert dlcourse.DeviceError is dlcourse.env.DeviceError
    assert set(dlcourse.__all__) <= set(dir(dlcourse))


def test_every_module_has_a_docstring() -> None:
    for name in dlcourse._SUBMODULES:
        doc = getattr(dlcourse, name).__doc__
        assert doc and len(doc.strip()) > 40, f"dlcourse.{name} needs a docstring"


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        dlcourse.nope  # noqa: B018


@pytest.mark.parametrize("name", sorted(dlcourse._MOVED))
def test_modules_moved_into_machinery_keep_their_old_names(name: str) -> None:
    """``dlcourse.lab`` and the others moved into dlcourse.machinery; the old imports give the
    same module object (monkeypatching either patches both), with its own name and spec."""
    import importlib

    new = importlib.import_module(f"dlcourse.machinery.{name}")
    old = importlib.import_module(f"dlcourse.{name}")
    assert old is new and getattr(dlcourse, name) is new
    assert new.__name__ == new.__spec__.name == f"dlcourse.machinery.{name}"
    assert name not in dlcourse._SUBMODULES  # the top level lists what the notebooks teach


def test_an_old_import_path_works_in_a_fresh_process() -> None:
    code = (
        "from dlcourse.notebooks import PINNED_ENV; import dlcourse.cli as c, sys; "
        "print(c.__name__, 'dlcourse.machinery.notebooks' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["dlcourse.machinery.cli", "True"]
