"""The packaging: pyproject.toml, environment.yml, the README's two commands, CI."""

from __future__ import annotations

import os
import re
from pathlib import Path

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
    assert names == {"torch", "numpy", "matplotlib", "ipywidgets", "tqdm", "mnist1d"}
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


def test_makefile_targets_match_the_readme() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in ("lab", "test", "regenerate", "doctor", "docs"):
        assert re.search(rf"^{target}:", makefile, flags=re.MULTILINE), target
    assert re.search(r"jupyter lab .*notebooks/00_welcome.ipynb", makefile)
    assert (ROOT / "notebooks" / "00_welcome.ipynb").exists()


def test_ci_runs_the_readme_test_command() -> None:
    ci = ROOT / ".ci" / "run"
    assert os.access(ci, os.X_OK), ".ci/run must be executable"
    text = ci.read_text(encoding="utf-8")
    assert re.search(r"^make test\b", text, flags=re.MULTILINE)
    assert "set -euo pipefail" in text
    assert "no test ran" in text


def test_pytest_runs_strict_nbval_with_the_sanitize_file() -> None:
    options = _pyproject()["tool"]["pytest"]["ini_options"]
    assert "--nbval" in options["addopts"]
    assert "--nbval-lax" not in options["addopts"]
    sanitize = next(a for a in options["addopts"] if a.startswith("--nbval-sanitize-with="))
    assert (ROOT / sanitize.split("=", 1)[1]).is_file()
    assert options["testpaths"] == ["tests", "notebooks"]
