"""dlcourse.machinery.margins: how much room each assert has, seed by seed."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from dlcourse.machinery import margins, robustness

CELL = """\
x = 0.1 * (seed + 1)
assert x < 0.35 and x > 0, f"x={x}"
assert 0 <= x <= 1
assert seed is not None
def f(v):
    assert v < 10
    return v
calls = []
f(len(calls) or calls.append(1) or seed)  # a side with a side effect runs once
"""


def _notebook(*sources: str) -> dict:
    cells = [new_markdown_cell("# toy"), *(new_code_cell(s) for s in sources)]
    return json.loads(nbformat.writes(new_notebook(cells=cells)))


def _run_copy(copy: dict, seed: int, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(margins.ENV, str(out))
    namespace: dict = {"seed": seed}
    for cell in copy["cells"]:
        if cell["cell_type"] == "code" and not cell["source"].startswith("%"):
            exec(compile(cell["source"], "<cell>", "exec"), namespace)


def test_instrumented_asserts_record_both_sides_and_still_assert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = _notebook("seed = seed", CELL, "%matplotlib inline")
    before = json.dumps(stored)
    copy, measured, counted = margins.instrument(stored)
    assert json.dumps(stored) == before  # the stored notebook is untouched
    assert (measured, counted) == (4, 5)  # `seed is not None` is counted, not measured
    assert copy["cells"][3]["source"] == "%matplotlib inline"  # a magic runs as it is
    out = tmp_path / "0.jsonl"
    _run_copy(copy, 1, out, monkeypatch)
    rows = margins.read_records(out, "seed 1", "toy.ipynb")
    assert [(r.cell, r.line, r.text) for r in rows] == [
        (2, 2, "x < 0.35"),
        (2, 2, "x > 0"),
        (2, 3, "0 <= x <= 1"),
        (2, 6, "v < 10"),
    ]
    assert rows[0].values == pytest.approx((0.2, 0.35)) and rows[0].slack == pytest.approx(
        0.15 / 0.35
    )
    assert rows[2].slack == pytest.approx(0.8)  # a chain: the tighter link (0.2 <= 1)
    assert rows[3].values == (1.0, 10.0)  # f's argument was computed once
    with pytest.raises(AssertionError, match=r"x=0\.4"):
        _run_copy(copy, 3, tmp_path / "3.jsonl", monkeypatch)
    failed = margins.read_records(tmp_path / "3.jsonl", "seed 3")
    assert failed[-1].text == "x < 0.35" and failed[-1].slack < 0


def test_the_table_names_the_worst_seed() -> None:
    rows = [
        margins.Record(2, 2, "a < b", ("<",), (a, 1.0), f"seed {k}", "toy.ipynb")
        for k, a in enumerate((0.5, 0.9, 0.2))
    ]
    rows.append(margins.Record(3, 1, "a == b", ("==",), (1.0, 1.0), "seed 0", "toy.ipynb"))
    text = margins.table(rows)
    assert "| toy.ipynb | 2:2 | `a < b` | 3 | +0.100 | seed 1 | +0.500 | 0.9 / 1 |" in text
    assert "| toy.ipynb | 3:1 | `a == b` | 1 | - |" in text


@pytest.mark.slow
def test_a_run_under_seeds_gives_outcomes_and_margins(tmp_path: Path) -> None:
    path = tmp_path / "toy.ipynb"
    setup = "import dlcourse as dl\ndevice = dl.setup(seed=0)\nseed = dl.run_seed()"
    nbformat.write(nbformat.reads(json.dumps(_notebook(setup, CELL)), as_version=4), path)
    matrix = [robustness.seeded(k) for k in (0, 3)]
    outcomes, records = margins.run([path], matrix, timeout=120)
    assert [o.ok for o in outcomes] == [True, False]
    assert outcomes[1].failure == "cell 2: assert x < 0.35 (AssertionError: x=0.4)"
    assert {r.variant for r in records} == {"seed 0", "seed 3"}
    assert "| toy.ipynb | 2:2 | `x < 0.35` | 2 | -0.125 | seed 3 |" in margins.table(records)
