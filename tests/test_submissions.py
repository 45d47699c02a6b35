"""dlcourse.exercises.submissions: finding and reading learners' notebooks as untrusted data.

Nothing here starts a grading process: links, FIFOs, huge numbers, deep nesting, unreadable
cells and file names are all refused or read before any learner code would run.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from dlcourse import exercises
from dlcourse.course import NOTEBOOKS
from dlcourse.exercises import submissions
from dlcourse.exercises.submissions import MESSAGES, NotebookProblem
from tests.test_grading import N00, N01, OTHER_STYLES, _solution_source, _submission, _write

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="links and FIFOs as on POSIX")

# --------------------------------------------------------------------------- finding


@posix_only
def test_a_linked_notebook_is_a_submission_that_is_refused_not_read(tmp_path: Path) -> None:
    solution = Path(_write(tmp_path / "course" / f"{N01}.ipynb", _submission(N01)))
    (tmp_path / "class").mkdir()
    (tmp_path / "class" / "mallory.ipynb").symlink_to(solution)
    (tmp_path / "class" / "trent").mkdir()
    (tmp_path / "class" / "trent" / f"{N01}.ipynb").symlink_to(solution)
    subs = submissions.find_submissions([tmp_path / "class"])
    assert [(s.learner, s.problem) for s in subs] == [
        ("mallory", MESSAGES["link"]),
        ("trent", MESSAGES["link"]),
    ]
    # given by name, too; and reading it refuses it (O_NOFOLLOW)
    [given] = submissions.find_submissions([tmp_path / "class" / "mallory.ipynb"])
    assert given.problem == MESSAGES["link"]
    with pytest.raises(NotebookProblem, match="a link, not a notebook"):
        submissions.read_bytes_safely(tmp_path / "class" / "mallory.ipynb")


@posix_only
def test_a_linked_folder_is_not_followed(tmp_path: Path) -> None:
    _write(tmp_path / "elsewhere" / f"{N00}.ipynb", _submission(N00))
    _write(tmp_path / "elsewhere" / "deep" / "x.ipynb", _submission(N00))
    _write(tmp_path / "class" / "ann.ipynb", _submission(N00))
    (tmp_path / "class" / "carol").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "class" / "ann2").mkdir()
    (tmp_path / "class" / "ann2" / "loop").symlink_to(tmp_path / "class")  # a cycle
    subs = submissions.find_submissions([tmp_path / "class"])
    assert [(s.learner, s.path.name, s.problem) for s in subs] == [
        ("ann", "ann.ipynb", ""),
        ("loop", "loop", MESSAGES["linked_folder"]),
        ("carol", "carol", MESSAGES["linked_folder"]),
    ]


def test_file_names_that_are_not_utf8_or_hold_escapes_give_printable_learners(
    tmp_path: Path,
) -> None:
    names = ["red\x1b[31m\r.ipynb", "bidi\u202egnp.ipynb"]
    if sys.platform == "linux":  # other systems refuse such names
        names.append(os.fsdecode(b"caf\xe9.ipynb"))
    for name in names:
        _write(tmp_path / name, "{}")
    learners = sorted(s.learner for s in submissions.find_submissions([tmp_path]))
    for learner in learners:
        learner.encode("utf-8")  # no surrogates left
        assert not any(ord(c) < 32 or c == "\u202e" for c in learner), repr(learner)
    assert "bidi\ufffdgnp" in learners and "red\ufffd[31m\ufffd" in learners
    if sys.platform == "linux":
        assert "caf\ufffd" in learners


# --------------------------------------------------------------------------- reading


@posix_only
def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "eve.ipynb"
    os.mkfifo(fifo)
    start = time.perf_counter()
    with pytest.raises(NotebookProblem, match="not a regular file"):
        submissions.read_notebook(fifo)
    assert time.perf_counter() - start < 1
    with pytest.raises(NotebookProblem, match="not a regular file"):
        submissions.read_notebook(tmp_path)  # a folder named like a notebook, too


def test_a_file_is_read_only_up_to_the_limit(tmp_path: Path) -> None:
    path = _write(tmp_path / "big.ipynb", b" " * 2000)
    assert submissions.read_bytes_safely(path, limit=2000) == b" " * 2000
    with pytest.raises(NotebookProblem, match="larger than"):
        submissions.read_bytes_safely(path, limit=1999)


def test_a_number_of_thousands_of_digits_is_a_plain_message() -> None:
    for raw in (b'{"cells": [], "n": ' + b"9" * 5000 + b"}", b'{"cells": [' + b"1" * 4400 + b"]}"):
        with pytest.raises(NotebookProblem) as caught:
            submissions.parse_notebook(raw)
        assert str(caught.value) == MESSAGES["long_number"]


@pytest.mark.parametrize(
    "raw",
    [b"[" * 100_000 + b"]" * 100_000, b'{"cells": ' + b'{"a": ' * 300 + b"1" + b"}" * 301],
    ids=["arrays 100,000 deep", "objects 300 deep"],
)
def test_deep_json_is_refused_before_it_is_parsed(raw: bytes) -> None:
    with pytest.raises(NotebookProblem, match="more than 200 levels"):
        submissions.parse_notebook(raw)


def test_the_depth_scan_leaves_strings_out_and_reads_escapes() -> None:
    assert submissions.json_shape(b'{"a": "[[[[{{"}') == (1, 1)
    assert submissions.json_shape(rb'{"a": "\\", "b": [[1]]}') == (3, 3)  # an escaped backslash
    assert submissions.json_shape(rb'{"a": "\"[[[", "b": []}') == (2, 2)  # an escaped quote
    course = NOTEBOOKS[1].filename
    from dlcourse.machinery.notebooks import NOTEBOOK_DIR

    raw = (NOTEBOOK_DIR / course).read_bytes()
    assert submissions.json_shape(raw)[0] == _depth(json.loads(raw)) < 20


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def test_broken_json_says_where() -> None:
    with pytest.raises(NotebookProblem, match=r"not valid JSON \(line 1, column 12\)"):
        submissions.parse_notebook(b'{"cells": [}')
    with pytest.raises(NotebookProblem, match="not valid JSON"):
        submissions.parse_notebook(b"\xff\xfe{}")
    with pytest.raises(NotebookProblem, match="no list of cells"):
        submissions.parse_notebook(b'{"cells": 3}')


# --------------------------------------------------------------------------- the cells

DEEP_CELL = "x = " + "+".join(["1"] * 200_000) + "\n"


@pytest.mark.parametrize(
    "source",
    [DEEP_CELL + OTHER_STYLES[N00]["mse_gradient"], "y = " + "-" * 100_000 + "1\n"],
    ids=["1+1+... 200,000 terms", "100,000 unary minuses"],
)
def test_a_cell_too_deep_for_the_parser_fails_its_exercise_plainly(source: str) -> None:
    ex = exercises.get("mse_gradient")
    problem = submissions._static_problem(source, ex)
    assert problem is not None and problem.code == "syntax"
    assert "too deeply nested for Python to read" in problem.message
    # finding the cell does not raise either (it falls back to the text)
    cells = [{"cell_type": "code", "source": source, "metadata": {}}]
    assert submissions.exercise_sources(cells, [ex]) == {
        "mse_gradient": source if "def mse_gradient" in source else None
    }


def test_a_deep_attribute_chain_is_named_without_unparsing_it_whole() -> None:
    source = (
        "def pairwise_sq_dists(a, b):\n    return ("
        + "(" * 180
        + "torch"
        + ")" * 180
        + ").cdist(a, b)\n"
    )
    problem = submissions._static_problem(source, exercises.get("pairwise_sq_dists"))
    assert problem is not None and problem.code == "forbidden" and len(problem.message) < 300


def test_a_copy_of_the_solution_notebook_is_recognised() -> None:
    nb_info = NOTEBOOKS[1]
    exs = submissions._exercises_of(nb_info)
    names = [ex.name for ex in exs]
    copied = _submission(N01, {n: _solution_source(N01, n) + "  \n" for n in names})
    sources = submissions.exercise_sources(copied["cells"], exs)
    assert submissions.is_solution_copy(nb_info, sources)
    own = {n: _solution_source(N01, n) for n in names}
    own[names[0]] += "# mine\n"
    one_own = _submission(N01, own)
    assert not submissions.is_solution_copy(
        nb_info, submissions.exercise_sources(one_own["cells"], exs)
    )
    assert not submissions.is_solution_copy(
        nb_info, submissions.exercise_sources(_submission(N01)["cells"], exs)
    )


def test_ones_own_copy_in_a_workspace_is_graded_as_you(tmp_path: Path) -> None:
    """`dlcourse grade work/01_gradient_descent.ipynb` names the learner "you", not "work"."""
    from dlcourse.machinery.notebooks import MANIFEST

    work = tmp_path / "work"
    work.mkdir()
    (work / MANIFEST).write_text("{}", encoding="utf-8")
    (work / "01_gradient_descent.ipynb").write_text("{}", encoding="utf-8")
    (tmp_path / "class").mkdir()
    (tmp_path / "class" / "01_gradient_descent.ipynb").write_text("{}", encoding="utf-8")
    assert submissions.find_submissions([work / "01_gradient_descent.ipynb"])[0].learner == "you"
    assert submissions.find_submissions([tmp_path / "class"])[0].learner == "class"
