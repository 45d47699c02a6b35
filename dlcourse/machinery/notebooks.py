"""Stored notebooks: the pinned settings, the regenerate command, and their checks.

The notebooks in ``notebooks/`` are stored executed, and strict nbval compares
every stored text output with a fresh run. Floating-point sums differ with the
thread count and the CPU's instruction set, so outputs are produced, and
checked, under one pinned set of settings: :data:`PINNED_ENV`.

``dlcourse regenerate`` (``make regenerate``) re-executes notebooks in place under
those settings; ``tests/test_notebooks.py`` uses :func:`stored_problems` to
fail on a notebook stored unexecuted, out of order or with an error, and
:func:`wall_clock_asserts` to fail on an ``assert`` that a busy machine could flip.

This module needs nbclient and nbformat only when regenerating (the ``test``
extra); importing it costs nothing.
"""

from __future__ import annotations

import ast
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlcourse.machinery.atomic import write_bytes_atomically

# Settings that make notebook outputs reproduce on CI's machine: the CPU, one thread, AVX2
# kernels (not AVX-512) and MKL's reproducible code path.
#
# One thread, because the notebooks' operations are small and OpenMP's team waits at every one
# of them: with two threads spinning and two other busy programs on the two cores, a loop of
# 3,000 small 64x64 products took 2.5 s instead of 0.07 s on one thread; sleeping threads
# (OMP_WAIT_POLICY=PASSIVE) fixed that but tripled notebook 07's time on an idle machine (wake-up
# latency: 100 s against 34 s). One thread runs 07 in 36-37 s and 05 in 46-47 s, idle or with
# two busy programs beside it.
PINNED_ENV: dict[str, str] = {
    "DLCOURSE_DEVICE": "cpu",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_CBWR": "COMPATIBLE",
    "PYTHONHASHSEED": "0",
    "TQDM_MININTERVAL": "1000",  # at most one progress-bar update a stored output shows
    "DLCOURSE_HEADLESS": "1",  # live plots draw one static figure at the end
    "DLCOURSE_PROGRESS": "off",  # checks run by tests do not count as a learner's progress
}
if platform.machine().lower() in ("x86_64", "amd64"):
    PINNED_ENV["ATEN_CPU_CAPABILITY"] = "avx2"

BUDGET_S = 60.0  # each notebook runs top to bottom within this on a 2-core CPU
# The notebooks given longer, and why. 08, the capstone, trains the MNIST-1D paper's four
# networks and then an ablation over three seeds (issue 28: at most 90 s on 2 CPU cores).
LONGER_BUDGETS_S: dict[str, float] = {"08_capstone.ipynb": 90.0}
NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"  # the solution notebooks
WORKSPACE_DIR = NOTEBOOK_DIR.parent / "work"  # the learner's copies (dlcourse.machinery.workspace)
MANIFEST = ".dlcourse-workspace.json"  # marks a folder as a learner's workspace


def is_workspace(folder: Path) -> bool:
    """Whether ``folder`` is a learner's workspace (it holds the manifest that
    :mod:`dlcourse.machinery.workspace` writes)."""
    return (Path(folder) / MANIFEST).is_file()


def budget_s(path: Path | str) -> float:
    """The seconds notebook ``path`` may take top to bottom on a 2-core CPU: :data:`BUDGET_S`,
    or its entry in :data:`LONGER_BUDGETS_S`."""
    return LONGER_BUDGETS_S.get(Path(path).name, BUDGET_S)


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


def cell_source(cell: dict[str, Any]) -> str:
    """A cell's source as one string (nbformat allows a string or a list of lines). Anything
    else, as in a damaged or hostile notebook, reads as no source."""
    source = cell.get("source", "")
    if isinstance(source, list):
        return "".join(s for s in source if isinstance(s, str))
    return source if isinstance(source, str) else ""


def stored_problems(nb: dict[str, Any]) -> list[str]:
    """What is wrong with a stored notebook, as sentences; empty when it is fine.

    Checks that every non-empty code cell was executed, in order, counting from 1
    without gaps (a run top to bottom in a fresh kernel), and that no output is
    an error (unless the cell is marked ``# NBVAL_RAISES_EXCEPTION``) or a warning, or a
    checked output that prints a float's full repr.
    """
    problems = []
    counts = []
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code" or not cell_source(cell).strip():
            continue
        count = cell.get("execution_count")
        if count is None:
            problems.append(f"code cell {i} was never executed")
        counts.append(count)
        expects_error = "# NBVAL_RAISES_EXCEPTION" in cell_source(cell).splitlines()
        ignored = "# NBVAL_IGNORE_OUTPUT" in cell_source(cell).splitlines()
        for out in cell.get("outputs", []):
            kind = out.get("output_type")
            if kind == "error" and not expects_error:
                problems.append(f"code cell {i} stores an error: {out.get('ename')}")
            if not ignored and kind in ("stream", "execute_result", "display_data"):
                shown = "".join(out.get("text", "")) + "".join(
                    out.get("data", {}).get("text/plain", "")
                )
                digits = re.search(r"\d\.\d{8,}", shown)
                if digits:
                    problems.append(
                        f"code cell {i} prints {digits[0]}: a float's full repr, whose last digits "
                        "change from machine to machine; print 2-3 significant figures"
                    )
            if kind == "stream" and out.get("name") == "stderr":
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


# Readings of the clock: a single one measures the machine's load as much as the code.
_CLOCK_CALLS = {"perf_counter", "perf_counter_ns", "time", "time_ns", "monotonic", "process_time"}


def _reads_the_clock(node: ast.AST) -> bool:
    """Whether an expression contains a raw wall-clock reading.

    Raw: ``time.perf_counter()`` and friends, a ``History``'s ``["time"]`` column, and
    ``time_call(...)`` unless it takes the best of its repeats (``stat="min"``), which is
    what the code costs when nothing else competes.
    """
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            name = getattr(sub.func, "attr", getattr(sub.func, "id", ""))
            if name in _CLOCK_CALLS:
                return True
            if name == "time_call" and not any(
                k.arg == "stat" and isinstance(k.value, ast.Constant) and k.value.value == "min"
                for k in sub.keywords
            ):
                return True
        if (
            isinstance(sub, ast.Subscript)
            and isinstance(sub.slice, ast.Constant)
            and sub.slice.value == "time"
        ):
            return True
    return False


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _bound_names(target: ast.AST) -> set[str]:
    """The variables an assignment target binds or changes (``d[k] = ...`` changes ``d``)."""
    while isinstance(target, ast.Subscript | ast.Attribute | ast.Starred):
        target = target.value
    if isinstance(target, ast.Tuple | ast.List):
        return set().union(*(_bound_names(t) for t in target.elts))
    return {target.id} if isinstance(target, ast.Name) else set()


class _ClockFlow(ast.NodeVisitor):
    """Follows wall-clock readings through a notebook's code, top to bottom, as it runs.

    A name holds a raw reading when it is assigned one, or anything computed from one (also
    through ``for`` loops and ``.append``); assigning it something else clears it. Each
    ``assert`` that reads such a name, or the clock itself, is recorded.
    """

    def __init__(self) -> None:
        self.tainted: set[str] = set()
        self.cell = 0
        self.found: list[tuple[int, int, set[str]]] = []  # (cell, line, names)

    def _raw(self, value: ast.AST) -> bool:
        return _reads_the_clock(value) or bool(_names(value) & self.tainted)

    def _flow(self, value: ast.AST, targets: list[ast.AST]) -> None:
        raw = self._raw(value)
        for target in targets:
            if raw:
                self.tainted |= _bound_names(target)
            elif isinstance(target, ast.Name | ast.Tuple | ast.List):
                self.tainted -= _bound_names(target)  # a new value replaces the old one

    def visit_Assign(self, node: ast.Assign) -> None:
        self.generic_visit(node)
        self._flow(node.value, node.targets)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.generic_visit(node)
        if node.value is not None:
            self._flow(node.value, [node.target])

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.generic_visit(node)
        if self._raw(node.value):
            self.tainted |= _bound_names(node.target)

    def visit_For(self, node: ast.For) -> None:
        self._flow(node.iter, [node.target])
        for _ in range(2):  # twice: values can flow from one iteration into the next
            for stmt in [*node.body, *node.orelse]:
                self.visit(stmt)

    def visit_comprehension(self, node: ast.comprehension) -> None:
        self._flow(node.iter, [node.target])
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        func = node.func
        grows = isinstance(func, ast.Attribute) and func.attr in (
            "append",
            "extend",
            "update",
            "add",
        )
        if grows and any(self._raw(a) for a in node.args):
            self.tainted |= _bound_names(func.value)

    def visit_Assert(self, node: ast.Assert) -> None:
        if self._raw(node.test):
            self.found.append((self.cell, node.lineno, _names(node.test) & self.tainted))


def wall_clock_asserts(nb: dict[str, Any]) -> list[str]:
    """The ``assert`` statements that rest on a raw wall-clock reading, as sentences.

    A timing assert flakes on a loaded machine, so a notebook asserts on operation counts,
    or on best-of-N timings (``dl.benchmark.time_call(..., stat="min")``) with a wide margin.
    """
    flow = _ClockFlow()
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        lines = [
            ln for ln in cell_source(cell).splitlines() if not ln.lstrip().startswith(("%", "!"))
        ]
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError:
            continue
        flow.cell = i
        flow.visit(tree)
    return [
        f"code cell {cell}, line {line}: the assert rests on a wall-clock reading "
        f"({', '.join(sorted(names)) or 'the clock'}); assert on an operation count, or on "
        "dl.benchmark.time_call(..., stat='min') with a wide margin"
        for cell, line, names in flow.found
    ]


# --------------------------------------------------------------------------- stored outputs

# What nbval masks before it compares an output (the versions and the device in dl.setup's
# line, memory addresses): the file pyproject.toml hands to nbval, read here too.
SANITIZE_FILE = Path(__file__).resolve().parent / "nbval_sanitize.cfg"
# What nbval leaves out of a comparison: images, widget views (their ids are random).
_NOT_COMPARED = {"metadata", "traceback", "output_type", "name", "execution_count",
                 "image/png", "image/jpeg", "application/vnd.jupyter.widget-view+json"}  # fmt: skip
_UNCHECKED_MARKS = ("# NBVAL_IGNORE_OUTPUT", "# NBVAL_SKIP", "# NBVAL_RAISES_EXCEPTION")


def sanitize_patterns(path: Path = SANITIZE_FILE) -> list[tuple[str, str]]:
    """The ``(regex, replacement)`` pairs of an nbval sanitize file, in order."""
    pairs, regex = [], None
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.startswith("regex:"):
            regex = line.removeprefix("regex:").strip()
        elif line.startswith("replace:") and regex is not None:
            pairs.append((regex, line.removeprefix("replace:").strip()))
            regex = None
    return pairs


def _is_checked(cell: dict[str, Any]) -> bool:
    lines = [ln.strip() for ln in cell_source(cell).splitlines()]
    tags = cell.get("metadata", {}).get("tags", [])
    return (
        cell.get("cell_type") == "code"
        and not any(mark in lines for mark in _UNCHECKED_MARKS)
        and not {"nbval-ignore-output", "nbval-skip", "raises-exception"} & set(tags)
    )


def checked_outputs(nb: dict[str, Any], patterns: list[tuple[str, str]]) -> dict[int, dict]:
    """What strict nbval compares, cell by cell: ``{code cell number: {key: [values]}}``.

    As nbval does: the cells not marked ``# NBVAL_IGNORE_OUTPUT`` (or skipped, or expected to
    raise); streams of the same name joined; each output's fields and MIME types flattened
    into one list per key, images and widget views left out; every string sanitized.
    """

    def clean(value: Any) -> Any:
        if isinstance(value, list):  # a multi-line string stored as lines
            value = "".join(value)
        if isinstance(value, str):
            for regex, replacement in patterns:
                value = re.sub(regex, replacement, value)
        return value

    found: dict[int, dict] = {}
    code_cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    for number, cell in enumerate(code_cells):
        if not _is_checked(cell):
            continue
        streams: dict[str, str] = {}
        flat: dict[str, list] = {}
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                streams[out.get("name", "")] = streams.get(out.get("name", ""), "") + clean(
                    out.get("text", "")
                )
                continue
            for key, value in out.items():
                if key == "data":
                    for mime, data in value.items():
                        if mime not in _NOT_COMPARED:
                            flat.setdefault(mime, []).append(clean(data))
                elif key not in _NOT_COMPARED:
                    flat.setdefault(key, []).append(clean(value))
        for text in streams.values():  # nbval compares a stream's text, not its name
            flat.setdefault("text", []).append(text)
        found[number] = flat
    return found


def output_differences(stored: dict[str, Any], ran: dict[str, Any]) -> list[str]:
    """The checked cells whose output in ``ran`` (an executed copy) differs from ``stored``,
    one sentence each with the first line that differs: what strict nbval would fail."""
    patterns = sanitize_patterns()
    want, got = checked_outputs(stored, patterns), checked_outputs(ran, patterns)
    problems = []
    for number, expected in want.items():
        actual = got.get(number, {})
        if actual == expected:
            continue
        old = "\n".join(str(v) for vs in expected.values() for v in vs).splitlines()
        new = "\n".join(str(v) for vs in actual.values() for v in vs).splitlines()
        first = next(
            (i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b),
            min(len(old), len(new)),
        )
        line_old = old[first] if first < len(old) else "(nothing)"
        line_new = new[first] if first < len(new) else "(nothing)"
        problems.append(
            f"code cell {number}: stored {line_old.strip()!r}, "
            f"this run printed {line_new.strip()!r}"
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


def kernel_config(sockets: str) -> Any:
    """The traitlets ``Config`` of :func:`execute`'s kernels: Unix sockets in the folder
    ``sockets`` (on POSIX), and a client that waits in slices of a second
    (:mod:`dlcourse.machinery.kernel_client`: a missed wake-up once cost a run ten minutes)."""
    from traitlets.config import Config

    config = Config()
    if os.name == "posix":
        config.KernelManager.transport = "ipc"
        config.KernelManager.ip = os.path.join(sockets, "kernel")
    config.AsyncKernelManager.client_class = "dlcourse.machinery.kernel_client.SlicedPollClient"
    return config


def execute(
    nb: Any, workdir: Path, *, timeout: float = 600.0, env: dict[str, str] | None = None
) -> float:
    """Run every cell of the nbformat notebook ``nb`` in a fresh kernel; return the seconds.

    The kernel runs in ``workdir`` with the environment ``env`` (default: this process's),
    and talks to this process over Unix sockets in a private temporary folder, not TCP
    ports on localhost: two kernels started at once (a test run beside a regenerate) can
    then never pick the same port, and none lingers when the run ends. The client polls
    for the kernel's messages a second at a time (:mod:`dlcourse.machinery.kernel_client`).
    """
    import tempfile

    from nbclient import NotebookClient

    with tempfile.TemporaryDirectory(prefix="dlcourse-kernel-") as sockets:
        client = NotebookClient(
            nb,
            config=kernel_config(sockets),
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(workdir)}},
        )
        start = time.perf_counter()
        client.execute(**({} if env is None else {"env": env}))
        return time.perf_counter() - start


@dataclass
class RegenerateResult:
    path: Path
    seconds: float
    problems: list[str]

    @property
    def budget_s(self) -> float:
        return budget_s(self.path)

    @property
    def over_budget(self) -> bool:
        return self.seconds > self.budget_s


def regenerate(path: Path, *, timeout: float = 600.0, fmt: bool = True) -> RegenerateResult:
    """Execute one notebook top to bottom in a fresh kernel under :data:`PINNED_ENV`.

    The result replaces the file atomically, so an interrupted run loses nothing.
    A cell that raises stops the run and leaves the file as it was, unless the
    cell is marked ``# NBVAL_RAISES_EXCEPTION``.
    """
    try:
        import nbclient  # noqa: F401  (execute needs it)
        import nbformat
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
    seconds = execute(nb, path.parent, timeout=timeout, env={**os.environ, **PINNED_ENV})
    normalise(nb)
    text = nbformat.writes(nb) + "\n"
    write_bytes_atomically(path, text.encode("utf-8"))
    return RegenerateResult(path, seconds, stored_problems(json.loads(text)))
