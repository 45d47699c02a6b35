"""dlcourse.exercises.class_report, and the class run around it: outputs that a learner cannot
poison, written as each learner finishes, and one learner who cannot take down the class.

Most tests replace the grading process by a stand-in judge (no process, no second); one class
run (slow) grades hostile files between honest learners for real.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from dlcourse.exercises import class_report, grading
from dlcourse.exercises.class_report import csv_cell, markdown_text, page_name, terminal_text
from dlcourse.exercises.engine import CheckResult
from dlcourse.exercises.submissions import MESSAGES, Submission
from tests.test_grading import N00, OTHER_STYLES, _solution_source, _submission, _write

HONEST = _submission(N00, OTHER_STYLES[N00])
DEEP = "x = " + "+".join(["1"] * 200_000)  # ast.parse: RecursionError


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _grade(learner: str, message: str = "ok", submission: str = "x.ipynb") -> grading.Grade:
    return grading.Grade(learner, N00 + ".ipynb", "mse_gradient", "fail", 0.0, 1.0, message,
                         seed=1, submission=submission, code="values")  # fmt: skip


def _run(learner: str, path: str, message: str = "ok") -> grading._Run:
    return grading._Run(Submission(learner, Path(path)), [_grade(learner, message, path)])


# --------------------------------------------------------------------------- safe text


@pytest.mark.parametrize(
    "value",
    ["=1+1", "=cmd|' -C calc'!A0", "@SUM(A1)", "+1", "-2+3", "\tx", "\r=1", "'=quoted"],
)
def test_csv_cells_that_a_spreadsheet_would_compute_are_neutralised(value: str) -> None:
    cell = csv_cell(value)
    assert cell.startswith("'") and cell[1:] == value.replace("\r", "")
    assert class_report._from_csv_cell(cell) == value.replace("\r", "")


def test_plain_csv_cells_are_kept_and_control_characters_go() -> None:
    assert csv_cell("alice") == "alice"
    assert csv_cell("a message\nHint: two lines") == "a message\nHint: two lines"
    assert csv_cell("red\x1b[31m bell\x07") == "red[31m bell"
    assert csv_cell(os.fsdecode(b"caf\xe9")) == "caf\ufffd"


def test_write_csv_never_raises_on_names_that_are_not_utf8(tmp_path: Path) -> None:
    name = "caf\udce9"  # how Linux hands a non-UTF-8 byte to Python
    grades = [_grade(name, '=HYPERLINK("http://x")', f"class/{name}.ipynb")]
    class_report.write_csv(grades, tmp_path / "g.csv")
    [row] = _rows(tmp_path / "g.csv")
    assert row["learner"] == "caf\ufffd" and row["message"].startswith("'=HYPERLINK")
    assert row["submission"] == "class/caf\ufffd.ipynb"


def test_names_in_markdown_show_as_text() -> None:
    shown = markdown_text("<img src=x onerror=alert(1)>")
    assert (
        "<" not in shown and ">" not in shown and shown == "&lt;img src=x onerror=alert\\(1\\)&gt;"
    )
    assert markdown_text("a|b *c* [l](u) `x` &amp;") == r"a\|b \*c\* \[l\]\(u\) \`x\` &amp;amp;"
    assert markdown_text("two\nlines\x1b[2J") == "two\ufffdlines\ufffd\\[2J"


def test_a_feedback_page_cannot_be_broken_out_of(tmp_path: Path) -> None:
    learner = "<script>alert(1)</script>"
    run = _run(learner, "class/<b>x</b>.ipynb", "```\n<img src=x onerror=alert(1)>\n\x1b[31m")
    run.output = "``` printed\x1b]0;title\x07"
    page = class_report.feedback_markdown(learner, [run])
    assert "<script>" not in page and "<b>" not in page
    assert "# Feedback for &lt;script&gt;alert\\(1\\)&lt;/script&gt;" in page
    assert "\x1b" not in page and "\x07" not in page
    # the message stays inside its code block: only the page's own fences start a line with ```
    fences = [line for line in page.splitlines() if line.startswith("```")]
    assert fences == ["```text", "```"] * 2


def test_every_learner_gets_a_page_of_their_own() -> None:
    names = ["ada", "a b", "a_b", "A_b", "a/b", "a\\b", "con", "a_b~x", "..", "", "김민수", "Ada"]
    pages = [page_name(n) for n in names]
    assert len(set(pages)) == len(names), pages
    assert len({p.casefold() for p in pages}) == len(names)  # case-insensitive file systems
    assert page_name("ada") == "ada.md" and page_name("cy-00") == "cy-00.md"
    for p in pages:
        assert "/" not in p and "\\" not in p and not p.startswith(".") and p.endswith(".md")
    assert page_name("김민수").startswith("김민수~")


def test_nothing_printed_holds_control_characters() -> None:
    assert terminal_text("a\x1b[31mb\rc\x9bd\u202ee\tf\ng") == "a[31mbcde f\ng"
    run = _run("ev\x1b[2Jil", "class/ev\x1b[2Jil.ipynb")
    text = class_report.summary([run], seed=1, seconds=1.0, notes=["ev\x1b[2Jil: \rnote"])
    assert "\x1b" not in text and "\r" not in text and "note" in text


def test_two_files_for_one_notebook_are_reported_not_merged() -> None:
    first, second = _run("alice", "class/alice.ipynb"), _run("alice", f"class/alice/{N00}.ipynb")
    other = _run("bob", "class/bob.ipynb")
    notes = class_report.note_two_files([first, other, second])
    assert len(notes) == 1 and "alice.ipynb" in notes[0] and f"alice/{N00}.ipynb" in notes[0]
    for run in (first, second):
        assert notes[0] in run.grades[0].message
    assert other.grades[0].message == "ok"
    page = class_report.feedback_markdown("alice", [first, second])
    assert "File: class/alice.ipynb" in page and markdown_text(f"File: alice/{N00}.ipynb") in page


def _without_exercises() -> list[Any]:
    """The course map's notebooks that have no exercises (08, the capstone: the learner's turn
    there is a model of their own, which nothing checks)."""
    from dlcourse.course import NOTEBOOKS
    from dlcourse.exercises.registry import PACKAGE, exercise_modules

    have = set(exercise_modules())
    return [nb for nb in NOTEBOOKS if f"{PACKAGE}.{nb.slug}" not in have]


def test_a_course_notebook_without_exercises_is_said_to_have_none_not_failed(
    tmp_path: Path,
) -> None:
    """The learner's copy of such a notebook, handed in with the rest: no row, no failure, and
    the page says there is nothing to grade in it instead of showing an empty table."""
    from dlcourse.exercises.student import student_notebook
    from dlcourse.machinery.notebooks import NOTEBOOK_DIR

    found = _without_exercises()
    if not found:
        pytest.skip("every notebook of the course map has exercises")
    lines: list[str] = []
    for i, nb in enumerate(found):
        stored = json.loads((NOTEBOOK_DIR / nb.filename).read_text(encoding="utf-8"))
        copy = student_notebook(stored, nb.filename, keep_outputs=True)
        _write(tmp_path / "class" / "alice" / nb.filename, copy)
        _write(tmp_path / "class" / f"bob{i}.ipynb", copy)  # renamed: known by its metadata
    result = grading.grade_class(
        [tmp_path / "class"], report=tmp_path / "pages", seed=1, progress=lines.append
    )
    assert result.grades == []
    assert len(lines) == 2 * len(found)
    assert all(line.endswith("s)") and "no exercises to grade" in line for line in lines), lines
    pages = {"alice": found} | {f"bob{i}": [nb] for i, nb in enumerate(found)}
    for learner, theirs in pages.items():
        page = (tmp_path / "pages" / f"{learner}.md").read_text(encoding="utf-8")
        assert "| exercise |" not in page and "fail" not in page
        for nb in theirs:
            assert f"## {nb.filename}" in page
            assert MESSAGES["no_exercises"].format(notebook=nb.filename) in page


def test_rows_read_back_for_resume_are_the_rows_written(tmp_path: Path) -> None:
    grades = [_grade("=x", "a message"), _grade("y", "-1 wrong", "b.ipynb")]
    grades[1].hint = "a hint"
    class_report.write_csv(grades, tmp_path / "g.csv")
    kept = class_report.read_kept_rows(tmp_path / "g.csv")
    assert list(kept) == ["x.ipynb", "b.ipynb"]
    assert kept["x.ipynb"] == [grades[0]] and kept["b.ipynb"] == [grades[1]]
    (tmp_path / "old.csv").write_text("learner,notebook\nann,x\n", encoding="utf-8")
    with pytest.raises(grading.GradingError, match="no 'submission' column"):
        class_report.read_kept_rows(tmp_path / "old.csv")
    assert class_report.read_kept_rows(tmp_path / "none.csv") == {}


# --------------------------------------------------------------------------- the class run


def _passing_judge(exercises, cells, settings, results, seconds, run) -> None:
    """A stand-in for the grading process and the judge: every exercise passes."""
    for ex in exercises:
        results[ex.name] = CheckResult(ex.name, "pass", "all inputs match (stand-in)")


def _class(root: Path, learners: list[str]) -> Path:
    for name in learners:
        _write(root / f"{name}.ipynb", HONEST)
    return root


def test_an_exception_while_grading_one_learner_is_that_learners_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def judge(exercises, cells, settings, results, seconds, run) -> None:
        if run.submission.learner == "b-sparse":
            raise RuntimeError("isfinite is not implemented for sparse tensors")
        if run.submission.learner == "d-deep":
            raise RecursionError("maximum recursion depth exceeded")
        _passing_judge(exercises, cells, settings, results, seconds, run)

    monkeypatch.setattr(grading, "_run_and_judge", judge)
    root = _class(tmp_path / "class", ["a", "b-sparse", "c", "d-deep", "e"])
    cell = "x = " + "+".join(["1"] * 200_000) + "\n" + OTHER_STYLES[N00]["mse_gradient"]
    _write(root / "b-sparse.ipynb", _submission(N00, {**OTHER_STYLES[N00], "mse_gradient": cell}))
    result = grading.grade_class([root], out=tmp_path / "g.csv", report=tmp_path / "fb", seed=1)
    rows = _rows(tmp_path / "g.csv")
    by = {(r["learner"], r["exercise"]): r for r in rows}
    for learner in ("a", "c", "e"):
        assert {by[(learner, ex)]["status"] for ex in ("mse_gradient", "pairwise_sq_dists")} == {
            "pass"
        }
    # the cell that could not be parsed keeps its own message; the rest is the grader's error
    assert by[("b-sparse", "mse_gradient")]["code"] == "syntax"
    assert by[("b-sparse", "pairwise_sq_dists")]["code"] == "grader_error"
    assert "could not read your notebook: RuntimeError: isfinite" in by[
        ("b-sparse", "pairwise_sq_dists")]["message"]  # fmt: skip
    assert {by[("d-deep", ex)]["code"] for ex in ("mse_gradient", "pairwise_sq_dists")} == {
        "grader_error"
    }
    assert len(rows) == len(result.grades) == 10
    assert len(list((tmp_path / "fb").glob("*.md"))) == 5


def test_a_failure_outside_the_judge_is_contained_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = grading._grade_submission

    def flaky(sub, settings):
        if sub.learner == "b":
            raise MemoryError("while reading")
        return real(sub, settings)

    monkeypatch.setattr(grading, "_run_and_judge", _passing_judge)
    monkeypatch.setattr(grading, "_grade_submission", flaky)
    root = _class(tmp_path / "class", ["a", "b", "c"])
    grades = grading.grade([root], seed=1)
    assert [(g.learner, g.status, g.code) for g in grades] == [
        ("a", "pass", ""), ("a", "pass", ""),
        ("b", "fail", "grader_error"),  # one row: which notebook it is was not known yet
        ("c", "pass", ""), ("c", "pass", ""),
    ]  # fmt: skip
    assert grades[2].exercise == "(notebook)"
    assert "the grader could not read your notebook: MemoryError: while" in grades[2].message


def test_a_page_that_cannot_be_written_is_noted_and_the_class_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(grading, "_run_and_judge", _passing_judge)
    root = _class(tmp_path / "class", ["a", "b", "c"])
    (tmp_path / "fb").mkdir()
    (tmp_path / "fb" / "b.md").mkdir()  # a folder where b's page should go
    grading.grade_class([root], out=tmp_path / "g.csv", report=tmp_path / "fb", seed=1)
    rows = _rows(tmp_path / "g.csv")
    assert [r["status"] for r in rows] == ["pass"] * 6
    assert all(("feedback page" in r["message"]) == (r["learner"] == "b") for r in rows)
    assert (tmp_path / "fb" / "a.md").is_file() and (tmp_path / "fb" / "c.md").is_file()


def test_a_stopped_run_keeps_what_it_graded_and_resume_grades_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    graded: list[str] = []

    def judge(exercises, cells, settings, results, seconds, run) -> None:
        graded.append(run.submission.learner)
        _passing_judge(exercises, cells, settings, results, seconds, run)

    def interrupt(line: str) -> None:
        if line.startswith("[2/"):
            raise KeyboardInterrupt  # Ctrl-C once b is graded

    monkeypatch.setattr(grading, "_run_and_judge", judge)
    root = _class(tmp_path / "class", ["a", "b", "c", "d"])
    out, fb = tmp_path / "g.csv", tmp_path / "fb"
    with pytest.raises(KeyboardInterrupt):
        grading.grade_class([root], out=out, report=fb, seed=5, progress=interrupt)
    assert [r["learner"] for r in _rows(out)] == ["a", "a", "b", "b"]
    assert sorted(p.name for p in fb.glob("*.md")) == ["a.md", "b.md"]

    for thread in threading.enumerate():  # what was running when Ctrl-C came finishes unwritten
        if thread.name.startswith("ThreadPoolExecutor"):
            thread.join()
    before, lines = len(graded), []
    result = grading.grade_class([root], out=out, report=fb, resume=True, progress=lines.append)
    assert graded[:2] == ["a", "b"] and graded[before:] == ["c", "d"]  # a, b not graded again
    assert "2 of 4 notebook(s) already graded" in lines[0] and "seed 5" in lines[0]
    assert result.seed == 5 and len(result.kept) == 2 and len(result.runs) == 2
    rows = _rows(out)
    assert [r["learner"] for r in rows] == ["a", "a", "b", "b", "c", "c", "d", "d"]
    assert {r["seed"] for r in rows} == {"5"} and len(result.grades) == 8
    assert sorted(p.name for p in fb.glob("*.md")) == ["a.md", "b.md", "c.md", "d.md"]
    assert "Kept 2 notebook(s)" in result.summary
    with pytest.raises(grading.GradingError, match="resume needs"):
        grading.grade_class([root], resume=True)


def test_rows_keep_the_submissions_order_whatever_order_they_finish_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    def judge(exercises, cells, settings, results, seconds, run) -> None:
        time.sleep(0.3 if run.submission.learner in ("a", "c") else 0.0)  # a, c finish last
        _passing_judge(exercises, cells, settings, results, seconds, run)

    monkeypatch.setattr(grading, "_run_and_judge", judge)
    root = _class(tmp_path / "class", ["a", "b", "c", "d"])
    lines: list[str] = []
    grading.grade_class([root], out=tmp_path / "g.csv", jobs=2, seed=1, progress=lines.append)
    assert [r["learner"] for r in _rows(tmp_path / "g.csv")] == [*"aabbccdd"]
    assert lines[0].startswith("[1/4] b: class/b.ipynb: 2/2 points")


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="links, FIFOs and file names as on POSIX")
def test_a_class_with_broken_and_poisonous_files_between_honest_learners(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each hostile or broken file sits between two honest learners (00_welcome in other
    styles than the reference's, graded for real), whose grades must come out right."""
    from dlcourse.machinery.notebooks import NOTEBOOK_DIR

    root = tmp_path / "class"
    solution = NOTEBOOK_DIR / f"{N00}.ipynb"
    names = ("mse_gradient", "pairwise_sq_dists")
    bad: list[tuple[str, object]] = [  # (file under its own folder, content or how to make it)
        ("=1+1.ipynb", HONEST),
        ("<img src=x onerror=alert(1)>.ipynb", HONEST),
        ("\x1b[31mred\r.ipynb", HONEST),
        (os.fsdecode(b"caf\xe9.ipynb"), HONEST),
        ("huge-int.ipynb", '{"cells": [], "n": ' + "9" * 5000 + "}"),
        ("deep-json.ipynb", "[" * 100_000 + "]" * 100_000),
        ("deep-cell.ipynb", _submission(N00, {**OTHER_STYLES[N00], "mse_gradient": DEEP})),
        ("linked.ipynb", "link"),
        ("fifo.ipynb", "fifo"),
        ("folder", "linked folder"),
        ("copier.ipynb", _submission(N00, {n: _solution_source(N00, n) for n in names})),
        ("course-copy.ipynb", solution.read_text(encoding="utf-8")),
        ("alice.ipynb", HONEST),
        (f"alice/{N00}.ipynb", HONEST),
        ("a b.ipynb", HONEST),
        ("a_b.ipynb", HONEST),
        ("crash.ipynb", HONEST),  # the judge fails on this one (below)
    ]
    _write(root / "00" / "honest00.ipynb", HONEST)
    for i, (name, content) in enumerate(bad, start=1):
        folder = root / f"{i:02d}"
        folder.mkdir(parents=True)
        if content == "link":
            (folder / name).symlink_to(solution)
        elif content == "fifo":
            os.mkfifo(folder / name)
        elif content == "linked folder":
            (folder / name).symlink_to(root / "00", target_is_directory=True)
        else:
            _write(folder / name, content)  # type: ignore[arg-type]
        _write(folder / "zz" / f"honest{i:02d}.ipynb", HONEST)  # after it, before the next
    real = grading._run_and_judge

    def judge(exercises, cells, settings, results, seconds, run) -> None:
        if run.submission.learner == "crash":
            raise TypeError("a judge that met a nested tensor")
        real(exercises, cells, settings, results, seconds, run)

    monkeypatch.setattr(grading, "_run_and_judge", judge)
    out, fb = tmp_path / "g.csv", tmp_path / "fb"
    result = grading.grade_class([root], out=out, report=fb, jobs=2, seed=2, timeout=60)

    rows = _rows(out)
    assert len(rows) == len(result.grades)
    by: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by.setdefault(r["submission"], []).append(r)
    honest = [k for k in by if "/honest" in k]
    assert len(honest) == len(bad) + 1
    for key in honest:  # every honest learner, right
        assert [(r["exercise"], r["status"], r["points"]) for r in by[key]] == [
            ("mse_gradient", "pass", "1"), ("pairwise_sq_dists", "pass", "1")
        ], (key, [r["message"] for r in by[key]])  # fmt: skip

    def theirs(name: str) -> list[dict[str, str]]:
        [key] = [k for k in by if k.endswith("/" + name.replace("\r", "").replace("\x1b", ""))
                 or k.endswith("/" + name)]  # fmt: skip
        return by[key]

    assert [r["learner"] for r in theirs("=1+1.ipynb")] == ["'=1+1"] * 2
    for name in ("=1+1.ipynb", "<img src=x onerror=alert(1)>.ipynb", "a b.ipynb", "a_b.ipynb"):
        assert [r["status"] for r in theirs(name)] == ["pass", "pass"], name
    assert {r["learner"] for r in rows} >= {"caf\ufffd", "\ufffd[31mred\ufffd"}
    assert "thousands of digits" in theirs("huge-int.ipynb")[0]["message"]
    assert "more than 200 levels" in theirs("deep-json.ipynb")[0]["message"]
    deep_cell = theirs("deep-cell.ipynb")
    assert [(r["status"], r["code"]) for r in deep_cell] == [("fail", "syntax"), ("pass", "")]
    assert "too deeply nested for Python to read" in deep_cell[0]["message"]
    assert theirs("linked.ipynb")[0]["message"] == MESSAGES["link"]
    assert "not a regular file" in theirs("fifo.ipynb")[0]["message"]
    assert theirs("folder")[0]["message"] == MESSAGES["linked_folder"]
    assert all(r["code"] == "grader_error" for r in theirs("crash.ipynb"))
    copier = theirs("copier.ipynb")
    assert [r["status"] for r in copier] == ["pass", "pass"]
    assert all(MESSAGES["solution_copy"] in r["message"] for r in copier)
    course_copy = theirs("course-copy.ipynb")  # the course's notebook as it is: flagged too
    assert [r["status"] for r in course_copy] == ["pass", "pass"]
    assert all(MESSAGES["solution_copy"] in r["message"] for r in course_copy)
    alice = theirs("alice.ipynb") + theirs(f"alice/{N00}.ipynb")
    assert all("handed in 2 files" in r["message"] for r in alice)
    assert any("copier" in n for n in result.notes) and any("alice" in n for n in result.notes)
    assert "To look at:" in result.summary and "\x1b" not in result.summary

    # a page per learner, each escaped
    learners = {r["learner"] for r in rows}
    pages = {p.name: p.read_text(encoding="utf-8") for p in fb.glob("*.md")}
    assert len(pages) == len(learners)
    img = pages[page_name("<img src=x onerror=alert(1)>")]
    assert "<img" not in img and "&lt;img src=x onerror=alert\\(1\\)&gt;" in img
    assert page_name("a b") in pages and "a_b.md" in pages
    assert all("\x1b" not in text for text in pages.values())
