"""The `dlcourse` command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dlcourse.machinery import cli


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("dlcourse 0.")


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    out = capsys.readouterr().out
    assert "doctor" in out and "regenerate" in out


def test_doctor_json(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DLCOURSE_DEVICE", raising=False)
    assert cli.main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["fixes"] == []
    assert {c["name"] for c in report["checks"]} >= {"Python", "torch", "device", "GPU"}


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dlcourse", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def test_doctor_command_says_ok() -> None:
    proc = _run("doctor", DLCOURSE_DEVICE="")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.rstrip().endswith("OK: everything the course needs is here.")


def test_doctor_command_with_a_bad_device_lists_the_fix() -> None:
    proc = _run("doctor", DLCOURSE_DEVICE="tpu")
    assert proc.returncode == 1
    assert "Fix this before the course:" in proc.stdout
    assert "DLCOURSE_DEVICE='tpu' is not a device name" in proc.stdout
    assert "Available on this machine: cpu" in proc.stdout


def test_regenerate_missing_notebook(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["regenerate", str(tmp_path / "nope.ipynb")]) == 1
    assert "no such notebook" in capsys.readouterr().err


def test_robustness_command_refuses_bad_arguments_before_running_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nb = tmp_path / "toy.ipynb"
    nb.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    assert cli.main(["robustness", str(tmp_path / "missing.ipynb")]) == 1
    assert "no such notebook" in capsys.readouterr().err
    assert cli.main(["robustness", str(nb), "--variants", "8-threads"]) == 1
    assert "there are: pinned" in capsys.readouterr().err
    for flag, value, said in (
        ("--retries", "-1", "--retries must be >= 0, got -1"),
        ("--jobs", "0", "--jobs must be >= 1, got 0"),
        ("--timeout", "0", "--timeout must be > 0 (seconds per cell), got 0"),
        ("--seeds", "9-3", "the range '9-3' runs backwards: write '3-9'"),
    ):
        assert cli.main(["robustness", str(nb), flag, value]) == 1
        assert capsys.readouterr().err.strip() == said


def test_student_command_writes_student_notebooks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dlcourse.machinery.notebooks import course_notebooks

    source = course_notebooks()[0]
    assert cli.main(["student", str(source), "--out", str(tmp_path)]) == 0
    written = tmp_path / source.name
    assert f"wrote {written}" in capsys.readouterr().out
    nb = json.loads(written.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert not any("# BEGIN SOLUTION" in "".join(c["source"]) for c in code)
    assert all(c["outputs"] == [] for c in code)


def test_student_command_reports_bad_markers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.ipynb"
    bad.write_text(
        json.dumps(
            {
                "cells": [
                    {
                        "cell_type": "code",
                        "source": "# BEGIN SOLUTION\n",
                        "metadata": {},
                        "outputs": [],
                        "execution_count": None,
                    }
                ],
                "metadata": {},
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        ),
        encoding="utf-8",
    )
    assert cli.main(["student", str(bad), "--out", str(tmp_path / "out")]) == 1
    assert "without # END SOLUTION" in capsys.readouterr().err


@pytest.fixture
def tmp_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """work/ in a temporary course folder, so the commands leave the real one alone."""
    from dlcourse.machinery import lab, workspace

    monkeypatch.setattr(workspace, "WORKSPACE_DIR", tmp_path / "work")
    monkeypatch.setattr(lab, "COURSE_DIR", tmp_path)
    return tmp_path / "work"


def test_progress_command_reads_the_workspace(
    tmp_work: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dlcourse.exercises import progress

    monkeypatch.delenv(progress.PROGRESS_ENV_VAR)
    tmp_work.mkdir()
    monkeypatch.setenv(progress.PROGRESS_ENV_VAR, str(tmp_work / progress.PROGRESS_FILE))
    assert progress.record_result(0, "mse_gradient", "fail")
    monkeypatch.delenv(progress.PROGRESS_ENV_VAR)
    for argv in (["progress", "--workspace", str(tmp_work)], ["progress"]):  # work/ by default
        assert cli.main(argv) == 0
        out = capsys.readouterr().out
        assert "[ ] pairwise_sq_dists: not attempted" in out
        assert "[ ] mse_gradient: not passed yet" in out
        assert f"kept in {tmp_work / progress.PROGRESS_FILE}" in out


def test_lab_dry_run_prepares_work_and_opens_the_learners_copy(
    tmp_work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["lab", "--dry-run", "--no-browser", "--port", "8899"]) == 0
    out = capsys.readouterr().out
    assert "Your notebooks are in work/" in out and "new copies: 00, 01" in out
    command = out.strip().splitlines()[-1]
    assert command.endswith("--no-browser --port 8899 work/00_welcome.ipynb")
    assert (
        "--ServerApp.contents_manager_class=dlcourse.machinery.lab.CourseContentsManager" in command
    )
    assert (tmp_work / "00_welcome.ipynb").is_file()


def test_lab_solutions_opens_the_solution_notebooks_writable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["lab", "--solutions", "--dry-run"]) == 0
    command = capsys.readouterr().out.strip().splitlines()[-1]
    assert command.endswith(" notebooks/00_welcome.ipynb")
    assert "contents_manager_class" not in command


def test_reset_command(tmp_work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["reset", "2"]) == 0
    assert "fresh copy: work/02_activations_and_init.ipynb" in capsys.readouterr().out
    assert cli.main(["reset", "02"]) == 0
    out = capsys.readouterr().out
    assert "your old copy is kept as work/backups/02_activations_and_init." in out
    assert cli.main(["reset", "42"]) == 1
    assert "no notebook '42'" in capsys.readouterr().err


HEAVY = ("torch", "numpy", "matplotlib", "jupyter", "jupyter_server", "jupyterlab", "nbclient")

# Runs in a fresh interpreter: each argv through main(), then which heavy modules it imported.
_IMPORTS_SCRIPT = """
import json, sys
from dlcourse.machinery import cli
heavy = {heavy!r}
seen = {{}}
for argv in {argvs!r}:
    try:
        cli.main(argv)
    except SystemExit:
        pass
    seen[" ".join(argv)] = sorted(m for m in heavy if m in sys.modules)
print(json.dumps(seen))
"""


def test_help_and_version_import_no_torch_or_jupyter() -> None:
    """`dlcourse --help`, `--version` and `dlcourse COMMAND --help` answer without torch, NumPy,
    matplotlib or Jupyter: each command imports what it needs only when it runs."""
    commands = [
        "lab",
        "reset",
        "progress",
        "doctor",
        "regenerate",
        "robustness",
        "student",
        "grade",
        "class",
        "translations",
    ]
    assert len(commands) == len(cli.COMMANDS)
    argvs = [["--help"], ["--version"], *([c, "--help"] for c in commands)]
    argvs += [["class", c, "--help"] for c in ("progress", "collect", "link")]
    script = _IMPORTS_SCRIPT.format(heavy=HEAVY, argvs=argvs)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen == {" ".join(argv): [] for argv in argvs}


def test_grade_help_shows_the_graders_own_limits(capsys: pytest.CaptureFixture[str]) -> None:
    from dlcourse.exercises import grading

    with pytest.raises(SystemExit):
        cli.main(["grade", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps the lines
    assert f"may run (default {grading.TIMEOUT_S:g})" in out
    assert f"may use (default {grading.MEMORY_MB})" in out


def test_help_is_plain_text_and_lists_every_command() -> None:
    proc = _run("--help")
    assert proc.returncode == 0
    assert "``" not in proc.stdout and ":mod:" not in proc.stdout
    for command in ("lab", "reset", "progress", "doctor", "regenerate", "student", "class"):
        assert f"    {command}" in proc.stdout


def test_the_docstring_lists_every_command() -> None:
    """The module docstring's command list (what `pydoc dlcourse.machinery.cli` shows) names
    every command and every class subcommand the parser has."""
    doc = cli.__doc__ or ""
    for name in cli.build_parser()._subparsers._group_actions[0].choices:  # type: ignore[union-attr]
        assert f"\ndlcourse {name}" in doc, name
    for name in ("progress", "collect", "link"):
        assert f"\ndlcourse class {name}" in doc, name


def test_only_lab_passes_unknown_arguments_on(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["doctor", "--no-browser"])
    assert "unrecognized arguments: --no-browser" in capsys.readouterr().err


def test_lab_without_jupyterlab_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(
        sys.modules, "dlcourse.machinery.lab", None
    )  # as if jupyter_server were missing
    assert cli.main(["lab", "--dry-run"]) == 1
    assert "dlcourse lab needs JupyterLab" in capsys.readouterr().err


def test_reset_and_progress_act_on_the_learners_own_course_on_a_hub(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # On a hub the package is installed once for everyone; a learner's terminal opens in their
    # home, where nbgitpuller pulled the course into ~/dlcourse: reset and progress mean that one.
    from dlcourse.exercises import progress
    from dlcourse.machinery import workspace

    home = tmp_path / "home"
    course = home / "dlcourse"
    (course / "dlcourse").mkdir(parents=True)
    (course / "dlcourse" / "__init__.py").write_text("")
    (course / "notebooks").mkdir()
    for source in workspace.course_notebooks()[:2]:
        shutil.copy(source, course / "notebooks" / source.name)
    own = workspace.WORKSPACE_DIR
    before = sorted(own.rglob("*")) if own.exists() else []
    monkeypatch.delenv(progress.PROGRESS_ENV_VAR, raising=False)
    monkeypatch.chdir(home)
    assert workspace.course_here() == course
    assert cli.main(["reset", "1"]) == 0
    assert "fresh copy: work/01_" in capsys.readouterr().out
    assert (course / "work" / workspace.course_notebooks()[1].name).is_file()
    monkeypatch.chdir(course / "work")  # anywhere inside the course: the same
    assert cli.main(["progress"]) == 0
    assert f"kept in {course / 'work' / progress.PROGRESS_FILE}" in capsys.readouterr().out
    assert (sorted(own.rglob("*")) if own.exists() else []) == before  # the package's untouched
    monkeypatch.chdir(workspace.NOTEBOOK_DIR.parent)
    assert workspace.course_here() is None  # in the package's own clone: the defaults
