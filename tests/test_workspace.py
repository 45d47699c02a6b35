"""dlcourse.machinery.workspace: the learner's copies in work/: made once, never overwritten,
reset."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from dlcourse.exercises import student
from dlcourse.machinery import workspace
from dlcourse.machinery.notebooks import course_notebooks

SOURCES = course_notebooks()[:2]  # 00 and 01: enough for every case, and quick


@pytest.fixture(autouse=True)
def _jupyter_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Jupyter data folder of the test's own: the copies' signatures go there, not to yours."""
    folder = tmp_path / "jupyter-data"
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(folder))
    return folder


@pytest.fixture
def course(tmp_path: Path) -> tuple[Path, Path]:
    """A course folder in miniature: (notebooks/, work/)."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for path in SOURCES:
        shutil.copy(path, notebooks / path.name)
    return notebooks, tmp_path / "work"


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _text(cell: dict) -> str:
    return "".join(cell["source"])


def test_prepare_writes_a_student_copy_of_every_notebook(course: tuple[Path, Path]) -> None:
    notebooks, work = course
    copies = workspace.prepare(work, notebooks)
    assert [c.status for c in copies] == ["created", "created"]
    assert [c.path.name for c in copies] == [p.name for p in SOURCES]
    assert workspace.is_workspace(work) and not workspace.is_workspace(notebooks)
    for source, copy in zip(SOURCES, copies, strict=True):
        solution = json.loads(source.read_text(encoding="utf-8"))
        mine = json.loads(copy.path.read_text(encoding="utf-8"))
        regions = student.solution_regions(solution)
        assert regions >= 2 and student.solution_regions(mine) == 0
        assert sum(_text(c).count(student.STUB) for c in mine["cells"]) == regions
        assert len(mine["cells"]) == len(solution["cells"])


def test_a_copy_keeps_the_outputs_but_the_learners(course: tuple[Path, Path]) -> None:
    """Outputs stay, so the copy reads like a book; exercise and check cells start empty."""
    notebooks, work = course
    (copy, _) = workspace.prepare(work, notebooks)
    solution, mine = _cells(SOURCES[0]), _cells(copy.path)
    learners = student.learners_functions({"cells": solution})
    assert learners == {"pairwise_sq_dists", "mse_gradient"}
    kept = 0
    for theirs, ours in zip(solution, mine, strict=True):
        if ours["cell_type"] != "code":
            continue
        assert ours["execution_count"] is None
        source = _text(theirs)
        if student.BEGIN in source or student.checks_learners_function(source, learners):
            assert ours["outputs"] == [], source  # the learner's to produce
            continue
        widgetless = [o for o in theirs["outputs"] if student.WIDGET_VIEW not in o.get("data", {})]
        assert len(ours["outputs"]) == len(widgetless), source
        kept += bool(ours["outputs"])
        for out in ours["outputs"]:
            assert out.get("execution_count") is None
    assert kept >= 15
    # the demonstration of a failing check is not the learner's: its output stays
    demo = next(c for c in mine if "transposed_attempt, record=False" in _text(c))
    assert "FAILED" in json.dumps(demo["outputs"])
    checks = [c for c in mine if ".check(pairwise_sq_dists)" in _text(c)]
    assert checks and all(c["outputs"] == [] for c in checks)


def test_a_copy_shows_no_marker_of_the_course_tools(course: tuple[Path, Path]) -> None:
    notebooks, work = course
    solution = "".join(_text(c) for p in SOURCES for c in _cells(p))
    assert "# NBVAL_IGNORE_OUTPUT" in solution and "# fmt: skip" in solution
    for copy in workspace.prepare(work, notebooks):
        text = "".join(_text(c) for c in _cells(copy.path))
        assert "NBVAL" not in text and "fmt:" not in text, copy.path.name


def test_a_copy_is_trusted_when_written(course: tuple[Path, Path], _jupyter_data: Path) -> None:
    """Signed as Jupyter signs what it saves: no "not trusted" at open, outputs shown at once."""
    import nbformat
    from nbformat.sign import NotebookNotary

    notebooks, work = course
    copies = workspace.prepare(work, notebooks)
    fresh, _ = workspace.reset("01", work, notebooks)
    notary = NotebookNotary()
    assert Path(notary.db_file).parent == _jupyter_data
    for path in [c.path for c in copies] + [fresh]:
        assert notary.check_signature(nbformat.read(path, as_version=4)), path.name
    changed = nbformat.read(fresh, as_version=4)
    changed.cells[0].source += " (changed)"
    assert not notary.check_signature(changed)  # the signature is of the copy as written


def test_a_copy_says_what_the_kernel_will_say_about_its_language(
    course: tuple[Path, Path],
) -> None:
    """JupyterLab writes the kernel's language_info into a notebook when the kernel starts: a
    copy that has it already opens without the unsaved-changes dot (the browser test sees it)."""
    from ipykernel.ipkernel import IPythonKernel

    notebooks, work = course
    for copy in workspace.prepare(work, notebooks):
        metadata = json.loads(copy.path.read_text(encoding="utf-8"))["metadata"]
        assert metadata["language_info"] == IPythonKernel.language_info
        assert metadata["dlcourse"] == {"notebook": copy.path.name}


def test_prepare_never_overwrites_the_learners_copy(course: tuple[Path, Path]) -> None:
    notebooks, work = course
    workspace.prepare(work, notebooks)
    mine = work / SOURCES[0].name
    mine.write_text('{"my": "work"}', encoding="utf-8")
    (work / SOURCES[1].name).unlink()  # a deleted copy comes back
    copies = workspace.prepare(work, notebooks)
    assert [c.status for c in copies] == ["kept", "created"]
    assert mine.read_text(encoding="utf-8") == '{"my": "work"}'


def test_a_changed_solution_notebook_is_reported_not_copied(course: tuple[Path, Path]) -> None:
    notebooks, work = course
    workspace.prepare(work, notebooks)
    before = (work / SOURCES[0].name).read_bytes()
    nb = json.loads((notebooks / SOURCES[0].name).read_text(encoding="utf-8"))
    nb["cells"].append({"cell_type": "markdown", "metadata": {}, "source": "new in a git pull"})
    (notebooks / SOURCES[0].name).write_text(json.dumps(nb), encoding="utf-8")
    copies = workspace.prepare(work, notebooks)
    assert [c.status for c in copies] == ["outdated", "kept"]
    assert (work / SOURCES[0].name).read_bytes() == before
    text = workspace.describe(copies, root=notebooks.parent)
    assert "notebooks/00_welcome.ipynb has changed" in text and "dlcourse reset 00" in text


def test_reset_keeps_the_old_copy_as_a_backup(course: tuple[Path, Path]) -> None:
    notebooks, work = course
    workspace.prepare(work, notebooks)
    mine = work / SOURCES[1].name
    mine.write_text('{"my": "attempt"}', encoding="utf-8")
    fresh, backup = workspace.reset("1", work, notebooks)
    assert fresh == mine and backup is not None and backup.parent == work / "backups"
    assert backup.read_text(encoding="utf-8") == '{"my": "attempt"}'
    expected = student.student_notebook(
        json.loads(SOURCES[1].read_text(encoding="utf-8")), SOURCES[1].name, keep_outputs=True
    )
    expected["metadata"]["language_info"] = workspace.kernel_language_info()
    assert json.loads(fresh.read_text(encoding="utf-8")) == expected
    _, second = workspace.reset("01_gradient_descent", work, notebooks)  # same second: no clash
    assert second is not None and second != backup and backup.exists()
    assert len(list((work / "backups").iterdir())) == 2


@pytest.mark.parametrize("which", ["0", "00", "00_welcome", "00_welcome.ipynb", "work/00_welcome"])
def test_find_notebook_by_number_or_name(course: tuple[Path, Path], which: str) -> None:
    notebooks, _ = course
    assert workspace.find_notebook(which, notebooks).name == "00_welcome.ipynb"


def test_unknown_notebooks_and_missing_course_are_clear_errors(
    course: tuple[Path, Path], tmp_path: Path
) -> None:
    notebooks, work = course
    with pytest.raises(workspace.WorkspaceError, match=r"no notebook '7'.*00_welcome"):
        workspace.reset("7", work, notebooks)
    with pytest.raises(workspace.WorkspaceError, match="in a clone of the course"):
        workspace.prepare(work, tmp_path / "nowhere")


def test_latest_copy_is_the_one_saved_last(course: tuple[Path, Path]) -> None:
    notebooks, work = course
    assert workspace.latest_copy(work) is None
    workspace.prepare(work, notebooks)
    assert workspace.latest_copy(work) is None  # nothing saved by the learner yet
    later = work / SOURCES[1].name
    stamp = later.stat().st_mtime_ns + 5_000_000_000
    os.utime(later, ns=(stamp, stamp))
    assert workspace.latest_copy(work) == later


# --------------------------------------------------------------------------- finding the course


def _course(folder: Path, notebooks: tuple[str, ...] = ("00_welcome.ipynb",)) -> Path:
    (folder / "dlcourse").mkdir(parents=True)
    (folder / "dlcourse" / "__init__.py").write_text("")
    (folder / "notebooks").mkdir()
    for name in notebooks:
        (folder / "notebooks" / name).write_text("{}")
    return folder


def test_the_course_is_the_root_itself_or_one_folder_below(tmp_path: Path) -> None:
    assert workspace.find_course(tmp_path) is None
    assert workspace.is_course(workspace.NOTEBOOK_DIR.parent)  # this clone is one
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes" / "notebooks").mkdir(parents=True)  # notebooks without the package: not one
    (home / "notes" / "notebooks" / "00_x.ipynb").write_text("{}")
    assert workspace.find_course(home) is None
    pulled = _course(home / "deep-learning")  # nbgitpuller names the folder after the repository
    assert workspace.find_course(home) == pulled
    assert workspace.find_course(pulled) == pulled
    named = _course(home / "dlcourse")
    assert workspace.find_course(home) == named  # two copies, neither used yet: the usual name
    (pulled / "work").mkdir()
    (pulled / "work" / workspace.MANIFEST).write_text("{}")
    assert workspace.find_course(home) == pulled  # the one whose workspace was used


def test_finding_the_course_follows_no_link_and_looks_no_deeper(tmp_path: Path) -> None:
    elsewhere = _course(tmp_path / "elsewhere")
    home = tmp_path / "home"
    home.mkdir()
    (home / "link").symlink_to(elsewhere)
    _course(home / ".hidden")
    _course(home / "a" / "b")
    (home / "empty-notebooks").mkdir()
    assert workspace.find_course(home) is None
    assert workspace.find_course(tmp_path / "missing") is None
