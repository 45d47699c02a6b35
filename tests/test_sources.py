"""The project's own text: UTF-8 without control characters.

A docstring that was meant to be raw but was not turns ``\\text`` into a TAB and ``ext``,
``\\top`` into a TAB and ``op``: the maths then renders wrong, and nothing else notices. This
test reads every source file and every notebook cell and fails on any control character
other than a newline (Makefiles may indent with TABs, as make requires).
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# C0 controls but the newline, DEL, and the C1 controls
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f\x80-\x9f]")


def _sources() -> list[Path]:
    found = []
    patterns = ("dlcourse/**/*.py", "tests/**/*.py", "benchmarks/**/*.py", "docs/**/*.py", "*.py",
                "**/*.md", "*.toml", "*.yml", "*.cfg", "tests/*.cfg", ".ci/*")  # fmt: skip
    for pattern in patterns:
        found += [p for p in ROOT.glob(pattern) if p.is_file()]
    skip = (".venv", "build", ".git", "node_modules", "work")
    return sorted({p for p in found if not set(p.relative_to(ROOT).parts) & set(skip)})


def _problems(text: str, allow_tab: bool = False) -> list[str]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for match in _CONTROL.finditer(line.replace("\t", " ") if allow_tab else line):
            char = match.group()
            name = unicodedata.name(char, f"U+{ord(char):04X}")
            found.append(f"line {number}, column {match.start() + 1}: {name} ({char!r})")
    return found


def test_the_check_finds_a_tab_that_should_have_been_a_backslash() -> None:
    text = 'r"""fine: \\text{x}"""\n"""not raw: \text{x}"""\n'
    assert _problems(text) == ["line 2, column 13: U+0009 ('\\t')"]
    assert _problems("a\tb", allow_tab=True) == []


def test_there_are_sources_to_check() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in _sources()}
    assert {"dlcourse/rnn.py", "dlcourse/optim.py", "README.md", "pyproject.toml"} <= names


@pytest.mark.parametrize("path", _sources(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_control_characters_in_sources(path: Path) -> None:
    text = path.read_text(encoding="utf-8")  # also fails on a file that is not UTF-8
    problems = _problems(text, allow_tab=path.name == "Makefile")
    assert not problems, f"{path.relative_to(ROOT)}: " + "; ".join(problems[:5])


def test_no_control_characters_in_makefile_commands() -> None:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert not _problems(text, allow_tab=True)


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_no_control_characters_in_notebook_cells(path: Path) -> None:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    for i, cell in enumerate(cells):
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        problems = _problems(source)
        assert not problems, f"{path.name}, cell {i}: " + "; ".join(problems[:5])
