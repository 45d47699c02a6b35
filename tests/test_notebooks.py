"""dlcourse.machinery.notebooks and the stored notebooks themselves.

nbval (run by `make test`) compares every stored output with a fresh run; these
tests catch what nbval does not: a notebook stored unexecuted, out of order or
with an error, a header that disagrees with the course map, and habits that
break nbval.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from dlcourse import course
from dlcourse.machinery import notebooks

ROOT = Path(__file__).resolve().parent.parent
STORED = notebooks.course_notebooks()


def _executed(*sources: str) -> dict:
    cells = []
    for i, src in enumerate(sources, 1):
        cell = new_code_cell(src, execution_count=i)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="ok\n")]
        cells.append(cell)
    return json.loads(nbformat.writes(new_notebook(cells=cells)))


# --------------------------------------------------------------------------- the checker


def test_a_clean_run_has_no_problems() -> None:
    assert notebooks.stored_problems(_executed("a = 1", "b = 2", "")) == []


def test_unexecuted_cell_is_a_problem() -> None:
    nb = _executed("a = 1", "b = 2")
    nb["cells"][1]["execution_count"] = None
    assert any("never executed" in p for p in notebooks.stored_problems(nb))


@pytest.mark.parametrize("counts", [[2, 1], [1, 3], [3, 4], [1, 1]])
def test_out_of_order_run_is_a_problem(counts: list[int]) -> None:
    nb = _executed("a = 1", "b = 2")
    for cell, count in zip(nb["cells"], counts, strict=True):
        cell["execution_count"] = count
    assert any("out of order" in p for p in notebooks.stored_problems(nb))


def test_error_output_is_a_problem_unless_expected() -> None:
    nb = _executed("1 / 0")
    nb["cells"][0]["outputs"] = [
        {"output_type": "error", "ename": "ZeroDivisionError", "evalue": "", "traceback": []}
    ]
    assert notebooks.stored_problems(nb) == ["code cell 0 stores an error: ZeroDivisionError"]
    expected = copy.deepcopy(nb)
    expected["cells"][0]["source"] = "# NBVAL_RAISES_EXCEPTION\n1 / 0"
    assert notebooks.stored_problems(expected) == []


def test_warning_on_stderr_is_a_problem() -> None:
    nb = _executed("import warnings")
    nb["cells"][0]["outputs"] = [
        {"output_type": "stream", "name": "stderr", "text": "x.py:1: UserWarning: careful\n"}
    ]
    assert "warning on stderr" in notebooks.stored_problems(nb)[0]


@pytest.mark.parametrize(
    "sources",
    [
        ("t0 = time.perf_counter()\nf()\nelapsed = time.perf_counter() - t0", "assert elapsed < 1"),
        ("h = fit()\nseconds = h['time'][-1]", "fast = seconds < 2\nassert fast"),
        ("t = dl.benchmark.time_call(f, 'cpu')", "assert t < 0.1"),  # a median: load shifts it
        ("times = []\nfor n in (1, 2):\n    times.append(time.perf_counter())", "assert times[0]"),
        ("rows = {}\nfor k in 'ab':\n    rows[k] = time.monotonic()", "assert rows['a'] > 0"),
        ("assert time.perf_counter() > 0",),
    ],
    ids=["perf_counter", "history time", "median time_call", "append", "loop", "direct"],
)
def test_an_assert_on_wall_time_is_found(sources: tuple[str, ...]) -> None:
    problems = notebooks.wall_clock_asserts(_executed(*sources))
    assert len(problems) == 1 and "wall-clock reading" in problems[0]
    assert problems[0].startswith(f"code cell {len(sources) - 1}, line")


@pytest.mark.parametrize(
    "sources",
    [
        ("t = dl.benchmark.time_call(f, 'cpu', repeats=20, stat='min')", "assert t < 0.1"),
        ("flops = dl.benchmark.count_flops(f)", "assert flops > 10"),
        ("t = time.perf_counter()\nt = 3", "assert t == 3"),  # replaced by a count
        ("h = fit()\nprint(h['time'][-1])\nsteps = h['step'][-1]", "assert steps > 1"),
    ],
    ids=["best of N", "count", "reassigned", "printed only"],
)
def test_counts_and_best_of_n_timings_may_be_asserted(sources: tuple[str, ...]) -> None:
    assert notebooks.wall_clock_asserts(_executed(*sources)) == []


def test_normalise_drops_timings_and_widget_state() -> None:
    nb = _executed("a = 1")
    nb["cells"][0]["metadata"]["execution"] = {"iopub.execute_input": "2026-01-01"}
    nb["metadata"]["widgets"] = {"state": {}}
    nb["metadata"]["language_info"] = {"name": "python", "version": "3.11.7"}
    out = notebooks.normalise(nb)
    assert "execution" not in out["cells"][0]["metadata"]
    assert "widgets" not in out["metadata"]
    assert out["metadata"]["kernelspec"]["name"] == "python3"
    assert "version" not in out["metadata"]["language_info"]
    assert out["cells"][0]["execution_count"] == 1 and out["cells"][0]["outputs"]


def test_pinned_environment() -> None:
    env = notebooks.pinned_environment()
    assert env["DLCOURSE_DEVICE"] == "cpu"
    # one thread: small operations, no OpenMP team waiting at every one of them on a busy machine
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"


def test_pinned_environment_keeps_a_chosen_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLCOURSE_DEVICE", "cuda")
    assert notebooks.pinned_environment(keep_device=True)["DLCOURSE_DEVICE"] == "cuda"
    assert notebooks.pinned_environment()["DLCOURSE_DEVICE"] == "cpu"


def test_budgets_are_the_default_but_for_the_notebooks_given_longer() -> None:
    assert notebooks.budget_s("notebooks/00_welcome.ipynb") == notebooks.BUDGET_S
    for name, seconds in notebooks.LONGER_BUDGETS_S.items():
        assert name in {nb.filename for nb in course.NOTEBOOKS}, f"{name} is not in the map"
        assert notebooks.BUDGET_S < seconds <= 2 * notebooks.BUDGET_S
        assert notebooks.budget_s(Path("notebooks") / name) == seconds
        result = notebooks.RegenerateResult(Path(name), (notebooks.BUDGET_S + seconds) / 2, [])
        assert result.budget_s == seconds and not result.over_budget
        assert notebooks.RegenerateResult(Path(name), seconds + 1, []).over_budget
    assert notebooks.RegenerateResult(Path("x.ipynb"), notebooks.BUDGET_S + 1, []).over_budget


@pytest.mark.slow
def test_regenerate_executes_in_place_under_the_pinned_settings(tmp_path: Path) -> None:
    path = tmp_path / "demo.ipynb"
    nb = new_notebook(
        cells=[
            new_markdown_cell("# demo"),
            new_code_cell(
                "import os\nprint(os.environ['DLCOURSE_DEVICE'], os.environ['OMP_NUM_THREADS'])"
            ),
            new_code_cell("import torch\nprint(torch.get_num_threads())"),
        ]
    )
    nbformat.write(nb, path)
    result = notebooks.regenerate(path, fmt=False)
    assert result.problems == [] and not result.over_budget
    stored = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in stored["cells"] if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in code] == [1, 2]
    assert "".join(code[0]["outputs"][0]["text"]) == "cpu 1\n"
    assert "".join(code[1]["outputs"][0]["text"]) == "1\n"
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


@pytest.mark.slow
def test_regenerate_leaves_the_file_alone_when_a_cell_fails(tmp_path: Path) -> None:
    path = tmp_path / "broken.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("raise RuntimeError('boom')")]), path)
    before = path.read_bytes()
    with pytest.raises(Exception, match="boom"):
        notebooks.regenerate(path, fmt=False)
    assert path.read_bytes() == before


# --------------------------------------------------------------------------- the stored notebooks


def test_there_are_notebooks() -> None:
    assert STORED, "notebooks/ holds no NN_topic.ipynb"
    assert [p.name for p in STORED] == sorted(p.name for p in STORED)
    # The stored notebooks are the course map's, all of them and in its order (08 included).
    assert [p.name for p in STORED] == [nb.filename for nb in course.NOTEBOOKS]


def _ids(nb: Path) -> str:
    return nb.name


@pytest.mark.parametrize("path", STORED, ids=_ids)
def test_stored_executed_in_order_without_errors(path: Path) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    problems = notebooks.stored_problems(nb)
    assert problems == [], f"{path.name}: {problems}; run `make regenerate NB={path}`"


@pytest.mark.parametrize("path", STORED, ids=_ids)
def test_no_assert_rests_on_wall_time(path: Path) -> None:
    """A claim about speed is asserted on counts or best-of-N timings: load cannot flip it."""
    assert notebooks.wall_clock_asserts(json.loads(path.read_text(encoding="utf-8"))) == []


@pytest.mark.parametrize("path", STORED, ids=_ids)
def test_header_matches_the_course_map(path: Path) -> None:
    """The first cell names the notebook's claims and modules, as dlcourse/course.py does."""
    entry = next((nb for nb in course.NOTEBOOKS if nb.filename == path.name), None)
    assert entry is not None, f"{path.name} is not in the course map (dlcourse/course.py)"
    nb = json.loads(path.read_text(encoding="utf-8"))
    first = nb["cells"][0]
    assert first["cell_type"] == "markdown"
    header = "".join(first["source"])
    assert header.startswith(f"# {entry.number:02d} ")
    claims_line = next(line for line in header.splitlines() if line.startswith("**Claims"))
    assert tuple(re.findall(r"C\d\.\d", claims_line)) == entry.claims
    modules_line = next(line for line in header.splitlines() if line.startswith("**Modules"))
    assert tuple(re.findall(r"`dlcourse\.(\w+)`", modules_line)) == entry.modules


@pytest.mark.parametrize("path", STORED, ids=_ids)
def test_header_names_exactly_the_modules_the_code_uses(path: Path) -> None:
    """A learner looking for the code of `dl.report.number` finds `dlcourse.report` named."""
    import dlcourse

    entry = next(nb for nb in course.NOTEBOOKS if nb.filename == path.name)
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    names = set(re.findall(r"\bdl\.(\w+)", code)) | set(re.findall(r"from dlcourse\.(\w+)", code))
    for imported in re.findall(r"^from dlcourse import (.+)$", code, flags=re.MULTILINE):
        names |= {part.split(" as ")[0].strip() for part in imported.split(",")}  # seq, ...
    used = {dlcourse._EXPORTS.get(name, name) for name in names}  # dl.setup lives in env
    assert used & set(dlcourse._SUBMODULES) == set(entry.modules)


@pytest.mark.parametrize("path", STORED, ids=_ids)
def test_shape_of_a_notebook(path: Path) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert "dl.setup(" in code[0], "the first code cell is the setup cell"
    for src in code:
        # nbval runs cells without storing history, so IPython cannot see a trailing
        # ';' and shows the value anyway: end plotting cells with plt.show() instead.
        assert not src.rstrip().endswith(";"), f"cell ends with ';':\n{src}"
    text = "".join("".join(c["source"]) for c in nb["cells"])
    assert "assert " in text
    assert re.search(r"[\uac00-\ud7a3]", text), "the glossary's Korean terms are missing"


def test_a_floats_full_repr_in_a_checked_output_is_a_problem() -> None:
    nb = _executed(
        "print({'acc': 0.8904494382022472})", "# NBVAL_IGNORE_OUTPUT\nprint(0.1234567891)"
    )
    for cell, text in zip(
        nb["cells"], ("{'acc': 0.8904494382022472}\n", "0.1234567891\n"), strict=True
    ):
        cell["outputs"][0]["text"] = text
    problems = notebooks.stored_problems(nb)
    assert len(problems) == 1 and "code cell 0 prints 0.8904494382022472" in problems[0]
