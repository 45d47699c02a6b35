"""The packaging: pyproject.toml, the lock, environment.yml, the README's two commands and its
course table, CI."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests._compat import tomllib

ROOT = Path(__file__).resolve().parent.parent
CONDA_NAMES = {"pytorch": "torch"}  # conda-forge name -> PyPI name


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _pip_requirements() -> dict[str, str]:
    project = _pyproject()["project"]
    specs = list(project["dependencies"])
    for extra in ("lab", "test"):
        specs += project["optional-dependencies"][extra]
    found = {}
    for spec in specs:
        if ";" in spec:  # an environment marker: only for old Pythons (tomli)
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", spec)
        assert match, f"{spec!r}: use a lower bound only (name>=version), no pins"
        found[match[1].lower()] = match[2]
    return found


def _conda_requirements() -> dict[str, str]:
    found = {}
    text = (ROOT / "environment.yml").read_text(encoding="utf-8")
    for line in text.split("\ndependencies:\n", 1)[1].splitlines():
        match = re.fullmatch(r" +- ([A-Za-z0-9_.-]+)(?:>=([0-9.]+))?", line)
        if match and match[1] not in ("python", "pip"):
            found[CONDA_NAMES.get(match[1], match[1]).lower()] = match[2] or ""
    return found


def test_environment_yml_names_the_same_dependencies_as_pyproject() -> None:
    assert _conda_requirements() == _pip_requirements()


def test_runtime_dependencies() -> None:
    names = {re.split(r"[<>=;]", s)[0] for s in _pyproject()["project"]["dependencies"]}
    assert names == {"torch", "numpy", "matplotlib", "ipywidgets", "tqdm", "mnist1d", "babel"}
    assert _pyproject()["project"]["requires-python"] == ">=3.10"


def test_environment_yml_installs_the_package() -> None:
    text = (ROOT / "environment.yml").read_text(encoding="utf-8")
    assert re.search(r"^\s+- -e \.$", text, flags=re.MULTILINE)
    assert "python>=3.10" in text


def _quick_start() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Quick start\n(.*?)^## ", readme, flags=re.MULTILINE | re.DOTALL)
    assert match, "README.md needs a '## Quick start' section"
    return match[1]


def test_readme_quick_start_shows_exactly_two_commands() -> None:
    blocks = re.findall(r"```(?:bash|sh|console)?\n(.*?)```", _quick_start(), flags=re.DOTALL)
    commands = [
        line.strip()
        for block in blocks
        for line in block.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert commands == ["make lab", "make test"]


def _outside_make() -> dict[str, str]:
    """This environment without what a calling make passes down (``make test`` runs these
    tests: its MAKEFLAGS, and variables given on its command line such as PYTEST_ARGS, would
    change what the inner make prints)."""
    passed_down = {"MAKEFLAGS", "MAKELEVEL", "MFLAGS", "PYTEST_ARGS", "TORCH", "CONSTRAINTS",
                   "PYTHON", "VENV", "NB", "LAB_FLAGS", "LOCK_TORCH"}  # fmt: skip
    return {k: v for k, v in os.environ.items() if k not in passed_down}


def _make_dry_run(*args: str, venv: str = "/nonexistent/venv") -> list[str]:
    """The commands ``make ARGS`` would run from scratch (``-n -B``: print, do not run; as if
    nothing were built), with the virtual environment at ``venv``."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    proc = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", f"VENV={venv}", *args],
        cwd=ROOT, capture_output=True, text=True, check=True, env=_outside_make(),
    )  # fmt: skip
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


def test_make_lab_sets_up_then_opens_the_learners_copies() -> None:
    commands = _make_dry_run("lab")
    assert "python3 -m venv /nonexistent/venv" in commands
    install = [c for c in commands if "pip install" in c and " -e " in c]
    # a learner's install holds what a learner uses: no pytest, Sphinx or Playwright
    assert install == ["/nonexistent/venv/bin/python -m pip install --quiet -c constraints.txt "
                       "-e '.[lab]'"]  # fmt: skip
    assert commands[-1] == "/nonexistent/venv/bin/dlcourse lab"  # work/, not notebooks/
    assert any(c.startswith("/nonexistent/venv/bin/dlcourse doctor") for c in commands)
    assert _make_dry_run("lab-solutions")[-1] == "/nonexistent/venv/bin/dlcourse lab --solutions"
    for target in ("regenerate", "doctor", "docs", "lock", "test-fast", "robustness", "bench"):
        assert _make_dry_run(target), target  # every target the README names exists


def test_the_lab_extra_is_what_a_learner_uses_and_make_test_adds_the_rest() -> None:
    extras = _pyproject()["project"]["optional-dependencies"]
    names = {re.split(r"[<>=;\[ ]", s)[0].lower() for s in extras["lab"]}
    assert names == {"jupyterlab", "ipykernel", "jupyterlab-language-pack-ko-kr", "nbgitpuller"}
    for target in ("test", "test-fast", "test-browser", "site", "lint", "regenerate"):
        install = [c for c in _make_dry_run(target) if "pip install" in c and " -e " in c]
        assert install[-1].endswith("-e '.[lab,hub,test,site,browser]'"), target


def test_make_test_runs_lint_then_the_whole_suite() -> None:
    commands = _make_dry_run("test")
    tail = commands[-3:]
    assert tail == [
        "/nonexistent/venv/bin/ruff check .",
        "/nonexistent/venv/bin/ruff format --check .",
        "/nonexistent/venv/bin/python -m pytest",  # pyproject.toml's addopts: strict nbval
    ]


def test_make_reinstalls_when_the_lock_changes_and_can_skip_it() -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    # -W: as if constraints.txt had just changed; without -B only what is out of date runs
    proc = subprocess.run(
        ["make", "--no-print-directory", "-n", "-W", "constraints.txt", "VENV=.venv", "test"],
        cwd=ROOT, capture_output=True, text=True, check=True, env=_outside_make(),
    )  # fmt: skip
    assert "pip install --quiet -c constraints.txt -e" in proc.stdout
    unlocked = " ".join(" ".join(c.split()) for c in _make_dry_run("lab", "CONSTRAINTS="))
    assert "-c constraints.txt" not in unlocked and "pip install --quiet -e" in unlocked
    torch_first = _make_dry_run("lab", "TORCH=torch --index-url https://example.invalid/cpu")
    assert any(c.endswith("pip install -c constraints.txt torch --index-url "
                          "https://example.invalid/cpu") for c in torch_first)  # fmt: skip


def test_ci_runs_the_readme_test_command_as_a_newcomer_types_it() -> None:
    ci = ROOT / ".ci" / "run"
    assert os.access(ci, os.X_OK), ".ci/run must be executable"
    text = ci.read_text(encoding="utf-8")
    calls = re.findall(r"^(make .*)$", text, flags=re.MULTILINE)
    assert calls == ['make test 2>&1 | tee "$log"'], "make test, with no variables or arguments"
    assert re.search(r'^git clone --quiet "\$here" "\$scratch/dlcourse"$', text, re.MULTILINE)
    assert "set -euo pipefail" in text
    assert "no test ran" in text


# --------------------------------------------------------------------------- the lock


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked() -> dict[str, set[str]]:
    """constraints.txt as {package: {versions}} (a package may have one pin per Python)."""
    found: dict[str, set[str]] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^ ;]+)(?: ; .+)?", line)
        assert match, f"constraints.txt: {line!r} is not an exact pin"
        found.setdefault(_normalise(match[1]), set()).add(match[2])
    return found


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text.split("+")[0])[:3])


def test_the_lock_pins_every_dependency_within_pyprojects_bounds() -> None:
    locked = _locked()
    assert len(locked) > 50  # the whole tree, not only the direct dependencies
    for name, lower in _pip_requirements().items():
        versions = locked.get(_normalise(name))
        assert versions, f"{name} is in pyproject.toml but not in constraints.txt: run make lock"
        for version in versions:
            assert _version(version) >= _version(lower), f"{name}=={version} < {lower}"
    header = (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()[:2]
    assert "uv" in header[0] and header[1].strip("# ") == "make lock"


def test_the_lock_pins_the_torch_the_stored_outputs_were_made_with() -> None:
    (torch_pin,) = _locked()["torch"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert f"LOCK_TORCH ?= torch=={torch_pin}\n" in makefile
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        text = path.read_text(encoding="utf-8")
        made_with = set(re.findall(r"torch=([0-9][^ \\\"]*)", text))
        assert made_with, f"{path.name}: no setup line with the torch version"
        assert {v.split("+")[0] for v in made_with} == {torch_pin}, path.name


def test_pytest_runs_strict_nbval_with_the_sanitize_file() -> None:
    options = _pyproject()["tool"]["pytest"]["ini_options"]
    assert "--nbval" in options["addopts"]
    assert "--nbval-lax" not in options["addopts"]
    sanitize = next(a for a in options["addopts"] if a.startswith("--nbval-sanitize-with="))
    assert (ROOT / sanitize.split("=", 1)[1]).is_file()
    assert options["testpaths"] == ["tests", "notebooks"]


def test_readme_lists_the_course_maps_notebooks_in_order() -> None:
    """The README's course table has a row per notebook of the course map, with its title, in
    order, and no other (a notebook added to the map, such as 08, shows up here too)."""
    from dlcourse.course import NOTEBOOKS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## The course\n(.*?)^## ", readme, flags=re.MULTILINE | re.DOTALL)
    assert match, "README.md needs a '## The course' section"
    rows = re.findall(r"^\| (\d\d) \| ([^|]+?) \|", match[1], flags=re.MULTILINE)
    assert rows == [(f"{nb.number:02d}", nb.title) for nb in NOTEBOOKS]
