"""dlcourse.machinery.classroom and course_link: the instructor's view of a class on a hub.

Three learners' homes, each with a copy of the course pulled one folder down as nbgitpuller
does, their progress written by the real recording code (``record_result``; for one check, a
kernel of a Korean copy in ``work/ko/``): alice passed, bob passed then failed and has an
exercise he has not passed yet, carol did nothing (her server never made ``work/``). Then the
table, the CSV and the figure read back; hostile progress files, each an unreadable learner and
never an exception; collect, then ``dlcourse grade`` on what it collected; the course link
parsed back to its inputs.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from dlcourse.exercises import progress
from dlcourse.exercises.student import write_student_version
from dlcourse.machinery import classroom, cli, course_link
from dlcourse.machinery.notebooks import MANIFEST, NOTEBOOK_DIR

N00 = "00_welcome.ipynb"
N01 = "01_gradient_descent.ipynb"
EXERCISES = classroom._course_exercises()


def _course(home: Path, name: str = "dlcourse") -> Path:
    """A copy of the course in ``home/name``, as find_course knows one: the package beside the
    solution notebooks (here: files with the course's names, which nothing here reads)."""
    course = home / name
    (course / "dlcourse").mkdir(parents=True)
    (course / "dlcourse" / "__init__.py").write_text("")
    (course / "notebooks").mkdir()
    for source in sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb")):
        (course / "notebooks" / source.name).write_text("{}")
    return course


def _workspace(course: Path, lang: str = "") -> Path:
    work = course / "work" / lang if lang else course / "work"
    work.mkdir(parents=True, exist_ok=True)
    (work / MANIFEST).write_text('{"copies": {}}')
    return work


def _record(
    monkeypatch: pytest.MonkeyPatch, course: Path, notebook: int, exercise: str, status: str
) -> None:
    """A check's result, recorded by the real code into ``course``'s progress file."""
    monkeypatch.setenv(progress.PROGRESS_ENV_VAR, str(course / "work" / progress.PROGRESS_FILE))
    assert progress.record_result(notebook, exercise, status)
    monkeypatch.delenv(progress.PROGRESS_ENV_VAR)


@pytest.fixture
def homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """/home with alice, bob and carol (see the module docstring)."""
    monkeypatch.delenv(progress.PROGRESS_ENV_VAR, raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.setenv("DLCOURSE_LANG", "en")
    root = tmp_path / "home"
    alice, bob = _course(root / "alice"), _course(root / "bob")
    _course(root / "carol")
    for course in (alice, bob):
        _workspace(course)
        _workspace(course, "ko")
    _record(monkeypatch, alice, 0, "mse_gradient", "pass")
    _record(monkeypatch, alice, 0, "pairwise_sq_dists", "fail")
    _record(monkeypatch, alice, 0, "pairwise_sq_dists", "pass")
    _record(monkeypatch, bob, 0, "mse_gradient", "pass")
    _record(monkeypatch, bob, 0, "mse_gradient", "fail")
    # bob checks cosine_schedule in a kernel of his Korean copy: the same progress file
    monkeypatch.setenv("JPY_SESSION_NAME", str(bob / "work" / "ko" / N01))
    assert progress.progress_path() == bob / "work" / progress.PROGRESS_FILE
    assert progress.record_result(1, "cosine_schedule", "fail")
    monkeypatch.delenv("JPY_SESSION_NAME")
    return root


def _statuses(learner: classroom.LearnerProgress) -> dict[str, str]:
    return {e.exercise: e.status for e in learner.exercises}


# --------------------------------------------------------------------------- progress


def test_progress_of_three_learners(homes: Path) -> None:
    found = classroom.class_progress([homes / "alice", homes / "bob", homes / "carol"])
    assert [lp.learner.name for lp in found] == ["alice", "bob", "carol"]
    alice, bob, carol = (_statuses(lp) for lp in found)
    assert alice["mse_gradient"] == alice["pairwise_sq_dists"] == "passed"
    assert bob["mse_gradient"] == "failed since"
    assert bob["cosine_schedule"] == "not passed yet"  # checked in work/ko/: counted
    assert set(carol.values()) == {"not attempted"}
    assert len(alice) == len(EXERCISES) == len({name for _nb, name in EXERCISES})
    bob_mse = next(e for e in found[1].exercises if e.exercise == "mse_gradient")
    assert bob_mse.checks == 2 and bob_mse.first_passed and bob_mse.last_checked
    # a folder of homes stands for every home below it
    assert [lp.learner.name for lp in classroom.class_progress([homes])] == [
        "alice",
        "bob",
        "carol",
    ]


def test_the_table_csv_and_figure(homes: Path, tmp_path: Path, capsys) -> None:
    out_csv, out_png = tmp_path / "progress.csv", tmp_path / "progress.png"
    argv = ["class", "progress", str(homes), "--csv", str(out_csv), "--figure", str(out_png)]
    assert cli.main([*argv, "--each"]) == 0
    table = capsys.readouterr().out
    lines = {}
    for line in table.splitlines()[1:4]:
        lines[line.split()[0]] = line.split()[1:]
    n00, n01 = (len([e for e in EXERCISES if e[0] == nb]) for nb in ("00", "01"))
    total = f"{len(EXERCISES)}"
    assert lines["alice"][:2] == [f"2/{n00}", f"0/{n01}"] and lines["alice"][-1] == f"2/{total}"
    assert lines["bob"][:2] == [f"1/{n00}!", f"0/{n01}"] and lines["bob"][-1] == f"1/{total}"
    assert lines["carol"][-1] == f"0/{total}"
    mse = next(line for line in table.splitlines() if line.startswith("00 mse_gradient"))
    assert mse.split()[2:6] == ["1", "1", "0", "1"]  # passed, failed since, not yet, not tried
    assert "first passed" in table  # --each: times per learner

    with open(out_csv, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == classroom.CSV_COLUMNS
    assert len(rows) == 3 * len(EXERCISES)
    got = {(r["learner"], r["exercise"]): r for r in rows}
    assert got[("alice", "pairwise_sq_dists")]["status"] == "passed"
    assert got[("alice", "pairwise_sq_dists")]["checks"] == "2"
    assert got[("bob", "mse_gradient")]["status"] == "failed since"
    assert got[("bob", "mse_gradient")]["first_passed"]
    assert got[("bob", "cosine_schedule")]["status"] == "not passed yet"
    assert got[("bob", "cosine_schedule")]["first_passed"] == ""
    assert {r["status"] for r in rows if r["learner"] == "carol"} == {"not attempted"}

    _assert_png(out_png, tall=False)


def _assert_png(path: Path, *, tall: bool) -> None:
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        colours = {c for _n, c in image.convert("RGB").getcolors(1 << 20)}
    assert width >= 900
    assert (height > 1200) if tall else (height < 600), (width, height)
    assert (0x2E, 0x9E, 0x44) in colours  # passed, as the legend says


def _synthetic(n: int) -> list[classroom.LearnerProgress]:
    statuses = classroom.STATUSES
    found = []
    for i in range(n):
        learner = classroom.Learner(f"learner{i:03d}", Path("/nowhere"), Path("/nowhere"))
        if i % 17 == 5:
            found.append(classroom.LearnerProgress(learner, problem="a reason"))
            continue
        rows = [
            classroom.ExerciseProgress(nb, name, statuses[(i + k) % 4])
            for k, (nb, name) in enumerate(EXERCISES)
        ]
        found.append(classroom.LearnerProgress(learner, rows))
    return found


def test_the_figure_for_200_learners_stays_a_readable_size(tmp_path: Path) -> None:
    path = classroom.write_progress_figure(_synthetic(200), tmp_path / "class.png")
    _assert_png(path, tall=True)
    from PIL import Image

    with Image.open(path) as image:
        assert image.size[1] < 4000


def test_the_table_in_korean(homes: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from dlcourse import i18n

    monkeypatch.setenv("DLCOURSE_LANG", "ko")
    i18n.clear_cache()
    try:
        assert cli.main(["class", "progress", str(homes), "--each"]) == 0
    finally:
        i18n.clear_cache()
    table = capsys.readouterr().out
    assert table.startswith("학습자") and "통과 후 실패" in table and "첫 통과" in table
    assert "not attempted" not in table and "first pass" not in table


def test_nothing_found_is_a_clear_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert cli.main(["class", "progress", str(tmp_path / "empty")]) == 1
    assert "no copy of the course found in" in capsys.readouterr().err
    assert cli.main(["class", "progress", str(tmp_path / "missing")]) == 1
    assert "no such folder" in capsys.readouterr().err


# --------------------------------------------------------------------------- hostile files

ESC = "\x1b]0;owned\x07\x1b[2J"
GOOD = {"first_passed": None, "last": "fail", "last_checked": "2026-01-01 10:00:00", "checks": 1}


def _progress_file(data: object) -> bytes:
    return json.dumps({"format": 2, "exercises": data}).encode()


HOSTILE: dict[str, object] = {
    "not json": b'{"format": 2, "exercises": {',
    "empty": b"",
    "not utf-8": b'{"format": 2, "exercises": {}, "x": "\xff\xfe"}',
    "huge": b'{"format": 2, "exercises": {}}' + b" " * (2 << 20),
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "many": b'{"format": 2, "exercises": {}, "x": [' + b"[]," * 20_000 + b"[]]}",
    "a list": b"[]",
    "format 3": b'{"format": 3, "exercises": {}}',
    "huge format": b'{"format": 1' + b"0" * 400 + b', "exercises": {}}',
    "long number": b'{"format": 2, "exercises": {"00": {"mse_gradient": {"checks": 1'
    + b"0" * 5000
    + b"}}}}",
    "NaN checks": b'{"format": 2, "exercises": {"00": {"mse_gradient": {"first_passed": null, '
    b'"last": "fail", "last_checked": "2026-01-01 10:00:00", "checks": NaN}}}}',
    "inf checks": _progress_file({"00": {"mse_gradient": {**GOOD, "checks": 1e999}}}),
    "float checks": _progress_file({"00": {"mse_gradient": {**GOOD, "checks": 1.5}}}),
    "bool checks": _progress_file({"00": {"mse_gradient": {**GOOD, "checks": True}}}),
    "huge checks": _progress_file({"00": {"mse_gradient": {**GOOD, "checks": 10**30}}}),
    "string checks": _progress_file({"00": {"mse_gradient": {**GOOD, "checks": "=1+1"}}}),
    "escape in a time": _progress_file(
        {"00": {"mse_gradient": {**GOOD, "first_passed": ESC, "last": "pass"}}}
    ),
    "formula in a time": _progress_file(
        {"00": {"mse_gradient": {**GOOD, "last_checked": '=HYPERLINK("http://x")'}}}
    ),
    "unknown result": _progress_file({"00": {"mse_gradient": {**GOOD, "last": ESC}}}),
    "pass without a time": _progress_file({"00": {"mse_gradient": {**GOOD, "last": "pass"}}}),
    "entry a list": _progress_file({"00": {"mse_gradient": [1, 2]}}),
    "notebook a list": _progress_file({"00": []}),
    "exercises a list": _progress_file([]),
}


def _hostile_class(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One learner per hostile file, plus links, a FIFO and an honest learner with a name that
    is a formula and an escape sequence."""
    monkeypatch.setenv("DLCOURSE_LANG", "en")
    for name, raw in HOSTILE.items():
        work = _workspace(_course(root / name.replace(" ", "_")))
        (work / progress.PROGRESS_FILE).write_bytes(raw)  # type: ignore[arg-type]
    honest = _course(root / f"=cmd|' -C calc'!A0{ESC}")
    _workspace(honest)
    _record(monkeypatch, honest, 0, "mse_gradient", "pass")
    # progress recorded for exercises this course does not have (another version): left out
    data = json.loads((honest / "work" / progress.PROGRESS_FILE).read_text())
    data["exercises"]["00"][ESC] = GOOD
    data["exercises"]["99"] = {"x": GOOD}
    (honest / "work" / progress.PROGRESS_FILE).write_text(json.dumps(data))
    linked = _workspace(_course(root / "linked_file"))
    (linked / progress.PROGRESS_FILE).symlink_to(honest / "work" / progress.PROGRESS_FILE)
    linked_work = _course(root / "linked_work")
    (linked_work / "work").symlink_to(honest / "work")
    fifo = _workspace(_course(root / "fifo"))
    os.mkfifo(fifo / progress.PROGRESS_FILE)
    folder = _workspace(_course(root / "a_folder"))
    (folder / progress.PROGRESS_FILE).mkdir()
    return honest


def test_hostile_progress_files_are_unreadable_learners(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    root = tmp_path / "home"
    honest = _hostile_class(root, monkeypatch)
    found = classroom.class_progress([root])
    by_name = {lp.learner.name: lp for lp in found}
    hostile = [n.replace(" ", "_") for n in HOSTILE] + ["linked_file", "linked_work", "fifo"]
    hostile.append("a_folder")
    for name in hostile:
        assert not by_name[name].readable, name
        assert by_name[name].problem and ESC not in by_name[name].problem, name
    assert "link" in by_name["linked_file"].problem and "link" in by_name["linked_work"].problem
    assert "regular file" in by_name["fifo"].problem
    assert "NaN" in by_name["NaN_checks"].problem
    assert "format 3" in by_name["format_3"].problem
    (honest_row,) = [lp for lp in found if lp.learner.home == honest.parent]
    assert honest_row.readable and _statuses(honest_row)["mse_gradient"] == "passed"
    assert len(honest_row.exercises) == len(EXERCISES)

    out_csv, out_png = tmp_path / "p.csv", tmp_path / "p.png"
    assert cli.main(["class", "progress", str(root), "--csv", str(out_csv), "--figure",
                     str(out_png), "--each"]) == 0  # fmt: skip
    shown = capsys.readouterr().out
    assert "\x1b" not in shown and "\x07" not in shown
    assert f"Unreadable ({len(hostile)}):" in shown
    text = out_csv.read_text(encoding="utf-8")
    assert "\x1b" not in text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(found) * len(EXERCISES)
    for row in rows:
        assert not row["learner"].startswith(("=", "+", "-", "@")), row
        assert not any(v.startswith(("=", "+", "@")) for v in row.values()), row
    statuses = {r["learner"]: r["status"] for r in rows}
    assert all(statuses[name] == "unreadable" for name in hostile)
    assert {r["exercise"] for r in rows} == {name for _nb, name in EXERCISES}
    assert out_png.stat().st_size > 1000


# --------------------------------------------------------------------------- collect, then grade


def _notebooks_for_grading(homes: Path) -> None:
    """alice: notebook 00 solved (the solution notebook itself) in work/, and a Korean copy
    she has not touched since; bob: the student version of 00, in Korean only."""
    alice = homes / "alice" / "dlcourse" / "work"
    write_student_version(NOTEBOOK_DIR / N00, alice / "ko" / N00, keep_outputs=True)
    os.utime(alice / "ko" / N00, (1_000_000_000, 1_000_000_000))
    shutil.copy(NOTEBOOK_DIR / N00, alice / N00)
    bob = homes / "bob" / "dlcourse" / "work"
    write_student_version(NOTEBOOK_DIR / N00, bob / "ko" / N00, keep_outputs=True)


@pytest.mark.slow
def test_collect_then_grade(homes: Path, tmp_path: Path, capsys) -> None:
    _notebooks_for_grading(homes)
    out = tmp_path / "collected"
    assert cli.main(["class", "collect", str(homes), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "alice: 00\n" in said and "bob: 00 (ko)" in said and "carol: nothing collected" in said
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.ipynb")) == [
        f"alice/{N00}",
        f"bob/{N00}",
    ]
    assert (out / "alice" / N00).read_bytes() == (NOTEBOOK_DIR / N00).read_bytes()  # the newer

    grades = tmp_path / "grades.csv"
    argv = ["grade", str(out), "--jobs", "1", "--timeout", "60", "--out", str(grades)]
    assert cli.main(argv) == 0
    with open(grades, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    got = {(r["learner"], r["exercise"]): r["status"] for r in rows}
    assert got == {
        ("alice", "mse_gradient"): "pass",
        ("alice", "pairwise_sq_dists"): "pass",
        ("bob", "mse_gradient"): "not attempted",
        ("bob", "pairwise_sq_dists"): "not attempted",
    }


def test_collect_never_overwrites_and_refuses_links(homes: Path, tmp_path: Path, capsys) -> None:
    alice = homes / "alice" / "dlcourse" / "work"
    bob = homes / "bob" / "dlcourse" / "work"
    (bob / N00).write_text('{"cells": [], "secret": "bob\'s"}')
    (alice / N00).symlink_to(bob / N00)  # alice hands in bob's work
    (alice / N01).write_text("{}")
    (alice / "notes.ipynb").write_text("{}")  # not a course notebook: not collected
    shutil.rmtree(alice / "ko")
    (alice / "ko").symlink_to(bob / "ko")  # and bob's Korean copies
    write_student_version(NOTEBOOK_DIR / N01, bob / "ko" / N01)
    carol = homes / "carol" / "dlcourse"
    (carol / "work").symlink_to(bob)
    weird = _course(homes / f"Ann Lee{ESC}")
    _workspace(weird)
    (weird / "work" / N01).write_text("{}")
    out = tmp_path / "collected"
    assert cli.main(["class", "collect", str(homes), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "\x1b" not in said
    assert not (out / "alice" / N00).exists() and (out / "alice" / N01).is_file()
    assert f"{N00}: a link" in said and "work/ is a link" in said
    assert "work/ko/ is a link" in said and (out / "bob" / N01).is_file()
    assert not (out / "carol").exists()
    assert (out / "bob" / N00).read_text().endswith('"bob\'s"}')
    folders = sorted(p.name for p in out.iterdir())
    renamed = [f for f in folders if f.startswith("ann")]
    assert len(renamed) == 1 and "(as " + renamed[0] + ")" in said
    assert all(not p.is_symlink() for p in out.rglob("*"))

    # a second collection into the same folder: refused, or the old one moved aside
    assert cli.main(["class", "collect", str(homes), "--out", str(out)]) == 1
    assert "not empty" in capsys.readouterr().err
    assert cli.main(["class", "collect", str(homes), "--out", str(out), "--replace"]) == 0
    said = capsys.readouterr().out
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("collected.")]
    assert len(kept) == 1 and (kept[0] / "alice" / N01).is_file()
    assert f"moved to {kept[0]}" in said


# --------------------------------------------------------------------------- the link


def _parsed(link: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(link)
    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=True)
    assert all(len(v) == 1 for v in query.values())
    return f"{parts.scheme}://{parts.netloc}{parts.path}", {k: v[0] for k, v in query.items()}


def test_collect_refuses_a_work_folder_swapped_for_a_link_after_the_checks(
    homes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race a learner could try: work/ is a real folder when collect looks, and a link to
    # another learner's work/ when it reads. The read goes down from the home without following
    # a link, so it refuses instead of handing in bob's notebook as alice's.
    alice = homes / "alice" / "dlcourse"
    bob = homes / "bob" / "dlcourse" / "work"
    (bob / N00).write_text('{"cells": [], "secret": "bob\'s"}')
    (alice / "work" / N00).write_text('{"cells": []}')  # alice's own, which she swaps away
    chosen = classroom._choose

    def swap_then_choose(course: Path, lang: str) -> list[Path]:
        sources = chosen(course, lang)
        if course == alice:
            shutil.rmtree(alice / "work")
            (alice / "work").symlink_to(bob)
        return sources

    monkeypatch.setattr(classroom, "_choose", swap_then_choose)
    out = tmp_path / "collected"
    done, _aside = classroom.collect([homes], out)
    theirs = [c for c in done if c.learner == "alice"]
    assert theirs and all(c.path is None and "link" in c.why for c in theirs)
    assert not (out / "alice").exists() or not any((out / "alice").iterdir())
    assert (out / "bob" / N00).read_text().endswith('"bob\'s"}')  # bob's own, as his


def test_the_link_parses_back_to_its_inputs() -> None:
    repo = "https://git.example.org/a b/my course&more.git"
    link = course_link.course_link(
        "https://hub.example.org/hub/", repo=repo, branch="spring/2027 #1", notebook="3"
    )
    assert " " not in link and "#" not in link
    where, query = _parsed(link)
    assert where == "https://hub.example.org/hub/user-redirect/git-pull"
    assert query == {
        "repo": repo,
        "branch": "spring/2027 #1",
        "urlpath": "lab/tree/my course&more.git/work/03_optimizers.ipynb",
    }
    # nbgitpuller's rule for the folder it clones into: the URL's last part, as it is
    assert course_link.clone_folder(repo + "/") == "my course&more.git"
    _where, query = _parsed(
        course_link.course_link("http://localhost:8000", repo=repo, branch="main", app="notebook")
    )
    assert query["urlpath"] == "notebooks/my course&more.git/work/00_welcome.ipynb"
    # a hub whose servers give the Korean edition (DLCOURSE_LANG=ko) keeps the copies in work/ko/
    _where, query = _parsed(
        course_link.course_link("http://localhost:8000", repo=repo, notebook="1", lang="ko")
    )
    assert query["urlpath"] == f"lab/tree/my course&more.git/work/ko/{N01}"
    with pytest.raises(course_link.LinkError, match="--lang must be one of en, ko"):
        course_link.course_link("https://hub.example.org", repo=repo, lang="fr")
    with pytest.raises(course_link.LinkError, match="no notebook 42"):
        course_link.course_link("https://hub.example.org", repo=repo, notebook="42")
    with pytest.raises(course_link.LinkError, match="--hub must be"):
        course_link.course_link("hub.example.org", repo=repo)


def _clone(tmp_path: Path, origin: str | None) -> Path:
    repo = tmp_path / "clone"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "spring", str(repo)], check=True)
    if origin:
        subprocess.run(["git", "-C", str(repo), "remote", "add", "origin", origin], check=True)
    return repo


def test_the_repository_defaults_to_this_clones_origin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    clone = _clone(tmp_path, "git@github.com:teacher/dlcourse.git")
    monkeypatch.setattr(course_link, "REPOSITORY", clone)
    assert cli.main(["class", "link", "--hub", "https://hub.example.org", "--open", "01"]) == 0
    _where, query = _parsed(capsys.readouterr().out.strip())
    assert query == {
        "repo": "https://github.com/teacher/dlcourse",  # learners clone over HTTPS
        "branch": "spring",
        "urlpath": f"lab/tree/dlcourse/work/{N01}",  # GitHub serves it without .git too
    }
    shutil.rmtree(clone)
    monkeypatch.setattr(course_link, "REPOSITORY", _clone(tmp_path, None))
    assert cli.main(["class", "link", "--hub", "https://hub.example.org"]) == 1
    assert "--repo" in capsys.readouterr().err
