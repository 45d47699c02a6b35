"""The `dlcourse` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dlcourse import cli


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


def test_student_command_writes_student_notebooks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dlcourse.notebooks import course_notebooks

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


def test_progress_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["progress"]) == 0
    out = capsys.readouterr().out
    assert "pairwise_sq_dists" in out and "mse_gradient" in out
