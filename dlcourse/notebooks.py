"""Stored notebooks: the pinned settings, the regenerate command, and their checks.

The notebooks in ``notebooks/`` are stored executed, and strict nbval compares
every stored text output with a fresh run. Floating-point sums differ with the
thread count and the CPU's instruction set, so outputs are produced, and
checked, under one pinned set of settings: :data:`PINNED_ENV`.

``dlcourse regenerate`` (``make regenerate``) re-executes notebooks in place under
those settings; ``tests/test_notebooks.py`` uses :func:`stored_problems` to
fail on a notebook stored unexecuted, out of order or with an error.

This module needs nbclient and nbformat only when regenerating (the ``test``
extra); importing it costs nothing.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlcourse.atomic import write_bytes_atomically

# Settings that make notebook outputs reproduce on CI's machine: the CPU, a fixed
# thread count, AVX2 kernels (not AVX-512) and MKL's reproducible code path.
PINNED_ENV: dict[str, str] = {
    "DLCOURSE_DEVICE": "cpu",
    "OMP_NUM_THREADS": "2",
    "MKL_NUM_THREADS": "2",
    "OPENBLAS_NUM_THREADS": "2",
    "MKL_CBWR": "COMPATIBLE",
    "PYTHONHASHSEED": "0",
    "TQDM_MININTERVAL": "1000",  # at most one progress-bar update a stored output shows
    "DLCOURSE_HEADLESS": "1",  # live plots draw one static figure at the end
    "DLCOURSE_PROGRESS": "off",  # checks run by tests do not count as a learner's progress
}
if platform.machine().lower() in ("x86_64", "amd64"):
    PINNED_ENV["ATEN_CPU_CAPABILITY"] = "avx2"

BUDGET_S = 60.0  # each notebook runs top to bottom within this on a 2-core CPU
NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"


def pinned_environment(keep_device: bool = False) -> dict[str, str]:
    """The pinned settings; with ``keep_device``, a ``DLCOURSE_DEVICE`` already set wins.

    ``keep_device`` lets nbval run the notebooks on a GPU (``DLCOURSE_DEVICE=cuda``);
    stored outputs are always produced on the CPU.
    """
    env = dict(PINNED_ENV)
    if keep_device and os.environ.get("DLCOURSE_DEVICE"):
        env["DLCOURSE_DEVICE"] = os.environ["DLCOURSE_DEVICE"]
    return env


def course_notebooks(directory: Path | None = None) -> list[Path]:
    """The course's notebooks in order (``NN_topic.ipynb``)."""
    directory = NOTEBOOK_DIR if directory is None else directory
    return sorted(p for p in directory.glob("[0-9][0-9]_*.ipynb") if p.is_file())


# --------------------------------------------------------------------------- checks


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def stored_problems(nb: dict[str, Any]) -> list[str]:
    """What is wrong with a stored notebook, as sentences; empty when it is fine.

    Checks that every non-empty code cell was executed, in order, counting from 1
    without gaps (a run top to bottom in a fresh kernel), and that no output is
    an error (unless the cell is marked ``# NBVAL_RAISES_EXCEPTION``) or a warning.
    """
    problems = []
    counts = []
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code" or not _source(cell).strip():
            continue
        count = cell.get("execution_count")
        if count is None:
            problems.append(f"code cell {i} was never executed")
        counts.append(count)
        expects_error = "# NBVAL_RAISES_EXCEPTION" in _source(cell).splitlines()
        for out in cell.get("outputs", []):
            kind = out.get("output_type")
            if kind == "error" and not expects_error:
                problems.append(f"code cell {i} stores an error: {out.get('ename')}")
            elif kind == "stream" and out.get("name") == "stderr":
                text = "".join(out.get("text", ""))
                if "Warning" in text or "Traceback" in text:
                    first = text.strip().splitlines()[0][:120]
                    problems.append(f"code cell {i} stores a warning on stderr: {first}")
    executed = [c for c in counts if c is not None]
    if executed and executed != list(range(1, len(executed) + 1)):
        problems.append(
            f"code cells ran out of order or not in one fresh run (execution counts {executed}); "
            "regenerate the notebook"
        )
    return problems


# --------------------------------------------------------------------------- regenerate


def normalise(nb: dict[str, Any]) -> dict[str, Any]:
    """Drop what changes on every run but teaches nothing: timings, widget state, versions.

    Keeps outputs and execution counts (nbval needs both), like
    ``nbstripout --keep-output --keep-count``.
    """
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {})
        meta.pop("execution", None)
        meta.pop("ExecuteTime", None)
    meta = nb.setdefault("metadata", {})
    meta.pop("widgets", None)
    meta["kernelspec"] = {
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "name": "python3",
    }
    meta["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}
    return nb


def _format_with_ruff(path: Path) -> None:
    """Run ``ruff format`` on the notebook if ruff is installed (it is in the test extra)."""
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        print("  (ruff not found: the notebook's code is not reformatted)")
        return
    subprocess.run([ruff, "format", "--quiet", str(path)], check=True)


@dataclass
class RegenerateResult:
    path: Path
    seconds: float
    problems: list[str]

    @property
    def over_budget(self) -> bool:
        return self.seconds > BUDGET_S


def regenerate(path: Path, *, timeout: float = 600.0, fmt: bool = True) -> RegenerateResult:
    """Execute one notebook top to bottom in a fresh kernel under :data:`PINNED_ENV`.

    The result replaces the file atomically, so an interrupted run loses nothing.
    A cell that raises stops the run and leaves the file as it was, unless the
    cell is marked ``# NBVAL_RAISES_EXCEPTION``.
    """
    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise RuntimeError(
            "regenerating notebooks needs nbclient and nbformat: run `make regenerate`, "
            "or `pip install -e '.[test]'` first"
        ) from exc

    path = Path(path).resolve()
    if fmt:
        _format_with_ruff(path)
    nb = nbformat.read(path, as_version=4)
    # Cells the notebook expects to raise run on; everything else must succeed.
    for cell in nb.cells:
        if cell.cell_type == "code" and "# NBVAL_RAISES_EXCEPTION" in cell.source.splitlines():
            cell.metadata.setdefault("tags", [])
            if "raises-exception" not in cell.metadata["tags"]:
                cell.metadata["tags"].append("raises-exception")
    saved = {k: os.environ.get(k) for k in PINNED_ENV}
    os.environ.update(PINNED_ENV)
    try:
        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        )
        start = time.perf_counter()
        client.execute()
        seconds = time.perf_counter() - start
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    normalise(nb)
    text = nbformat.writes(nb) + "\n"
    write_bytes_atomically(path, text.encode("utf-8"))
    return RegenerateResult(path, seconds, stored_problems(json.loads(text)))
