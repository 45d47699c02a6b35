"""How much room each of a notebook's asserts has, seed by seed: ``dlcourse robustness --margins``.

An assert that passes says nothing about how close it came. A threshold is chosen on some
seeds and confirmed on others (``docs/design.md``, "Claims that hold anywhere"); to choose it,
one needs the two sides of each comparison under every seed, not only ``ok``. This module
runs an *instrumented copy* of a notebook (the stored file is never touched): every
``assert`` whose test is a comparison (``a < b``, ``a >= b * 0.8``, a chain ``a < b < c``;
an ``assert A and B`` counts as ``assert A`` then ``assert B``) first records the values of
its sides, then asserts on those same values, so nothing is computed twice. One run per
variant (usually one per seed: :func:`dlcourse.machinery.robustness.seeded`) gives a table:
for each assert, the *slack* under each run (how far the smaller side is from the larger,
relative to the larger magnitude: 0.25 means a quarter of the way), its worst, the seed
of the worst and the median.

Asserts of another shape (``assert ok``, ``assert all(...)``) are counted, not measured.
A cell that does not parse as Python (an IPython magic) is run as it is.
"""

from __future__ import annotations

import ast
import json
import re
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from dlcourse.machinery.robustness import Outcome, Variant, run_notebook

ENV = "DLCOURSE_MARGINS_OUT"  # where the instrumented kernel appends its records (JSON lines)
_RECORD = "__dlcourse_margin"
_VALUES = "__dlcourse_values"
_OPS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}

# Defined at the top of the copy's first code cell (cell numbers stay those of the stored file).
_RECORDER = f'''
def {_RECORD}(cell, line, text, ops, values):
    import json as _json, math as _math, os as _os
    def _number(v):
        try:
            x = float(v)
        except Exception:
            return None
        return x if _math.isfinite(x) else None
    row = {{"cell": cell, "line": line, "text": text, "ops": ops,
           "values": [_number(v) for v in values]}}
    with open(_os.environ["{ENV}"], "a", encoding="utf-8") as _f:
        _f.write(_json.dumps(row) + "\\n")
    return values
'''


class _Instrument(ast.NodeTransformer):
    """Rewrites comparison asserts of one cell (see the module docstring)."""

    def __init__(self, cell: int, source: str) -> None:
        self.cell = cell
        self.source = source
        self.measured = 0
        self.counted = 0

    def visit_Assert(self, node: ast.Assert) -> ast.AST | list[ast.stmt]:
        test = node.test
        if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
            # assert A and B, msg == assert A, msg; assert B, msg (the same order, the same message)
            parts = [ast.copy_location(ast.Assert(v, node.msg), node) for v in test.values]
            out: list[ast.stmt] = []
            for part in parts:
                done = self.visit_Assert(part)
                out += done if isinstance(done, list) else [done]  # type: ignore[list-item]
            return out
        self.counted += 1
        if not (isinstance(test, ast.Compare) and all(type(o) in _OPS for o in test.ops)):
            return node
        self.measured += 1
        text = ast.get_source_segment(self.source, test) or ast.unparse(test)
        operands = [test.left, *test.comparators]
        record = ast.Assign(
            targets=[ast.Name(_VALUES, ast.Store())],
            value=ast.Call(
                ast.Name(_RECORD, ast.Load()),
                [
                    ast.Constant(self.cell),
                    ast.Constant(node.lineno),
                    ast.Constant(" ".join(text.split())),
                    ast.List([ast.Constant(_OPS[type(o)]) for o in test.ops], ast.Load()),
                    ast.Tuple(operands, ast.Load()),
                ],
                [],
            ),
        )
        same = ast.Compare(
            ast.Subscript(ast.Name(_VALUES, ast.Load()), ast.Constant(0), ast.Load()),
            test.ops,
            [
                ast.Subscript(ast.Name(_VALUES, ast.Load()), ast.Constant(i), ast.Load())
                for i in range(1, len(operands))
            ],
        )
        checked = ast.Assert(same, node.msg)
        return [ast.copy_location(record, node), ast.copy_location(checked, node)]


def instrument(nb: dict) -> tuple[dict, int, int]:
    """A copy of the notebook ``nb`` (nbformat 4, as a dict) whose comparison asserts record
    their sides; returns ``(copy, measured, counted)``: the asserts measured and all asserts."""
    copy = json.loads(json.dumps(nb))
    measured = counted = 0
    first = True
    for i, cell in enumerate(copy.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        try:
            tree = ast.parse(source)
        except SyntaxError:  # an IPython magic or shell escape: run as it is
            new = source
        else:
            visitor = _Instrument(i, source)
            tree = ast.fix_missing_locations(visitor.visit(tree))
            measured += visitor.measured
            counted += visitor.counted
            new = ast.unparse(tree) if visitor.counted else source
        if first:
            new = _RECORDER + new
            first = False
        cell["source"] = new
        cell["outputs"] = []
    return copy, measured, counted


@dataclass(frozen=True)
class Record:
    """One comparison assert, evaluated once under one variant."""

    cell: int
    line: int
    text: str
    ops: tuple[str, ...]
    values: tuple[float | None, ...]
    variant: str
    notebook: str = ""

    @property
    def slack(self) -> float | None:
        """How much room the comparison had: the smallest, over a chain's links, of the gap
        between the sides in the direction that passes, relative to the larger magnitude
        (``< 0``: it failed). ``None`` for ``==``/``!=`` or a side that is not a number."""
        worst: float | None = None
        for op, a, b in zip(self.ops, self.values[:-1], self.values[1:], strict=True):
            if a is None or b is None or op in ("==", "!="):
                return None
            gap = b - a if op in ("<", "<=") else a - b
            scale = max(abs(a), abs(b))
            room = gap / scale if scale > 0 else 0.0
            worst = room if worst is None else min(worst, room)
        return worst


def read_records(path: Path, variant: str, notebook: str = "") -> list[Record]:
    """The records one instrumented run of ``notebook`` under ``variant`` wrote to ``path``."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        raw = json.loads(line)
        rows.append(
            Record(
                int(raw["cell"]),
                int(raw["line"]),
                str(raw["text"]),
                tuple(raw["ops"]),
                tuple(raw["values"]),
                variant,
                notebook,
            )
        )
    return rows


def run(
    paths: Sequence[Path],
    matrix: Sequence[Variant],
    *,
    timeout: float = 600.0,
    retries: int = 0,
    on_result: Callable[[Outcome], None] | None = None,
) -> tuple[list[Outcome], list[Record]]:
    """Each notebook's instrumented copy under each variant, one at a time; the outcomes (as
    :func:`~dlcourse.machinery.robustness.run_matrix` gives them, named after the stored file)
    and every record."""
    outcomes: list[Outcome] = []
    records: list[Record] = []
    with tempfile.TemporaryDirectory(prefix="dlcourse-margins-") as scratch:
        for path in paths:
            stored = json.loads(Path(path).read_text(encoding="utf-8"))
            copy, _, _ = instrument(stored)
            target = Path(scratch) / Path(path).name
            target.write_text(json.dumps(copy), encoding="utf-8")
            for k, v in enumerate(matrix):
                out = Path(scratch) / f"{Path(path).stem}.{k}.jsonl"
                measured = replace(v, env={**v.env, ENV: str(out)}, outputs=False)
                outcome = run_notebook(target, measured, timeout=timeout, retries=retries)
                found = read_records(out, v.name, Path(path).name)
                said = re.fullmatch(r"(cell \d+): assert .*? (\(.*\))", outcome.failure)
                if _VALUES in outcome.failure and found and said:  # as the notebook writes it
                    failure = f"{said[1]}: assert {found[-1].text} {said[2]}"
                    outcome = replace(outcome, failure=failure)
                if on_result is not None:
                    on_result(outcome)
                outcomes.append(outcome)
                records += found
    return outcomes, records


def table(records: Sequence[Record]) -> str:
    """Per assert (in notebook order): runs, worst slack and where, median slack, and the two
    sides at the worst. A Markdown table."""
    groups: dict[tuple[str, int, int, str], list[Record]] = {}
    for r in records:
        groups.setdefault((r.notebook, r.cell, r.line, r.text), []).append(r)
    lines = [
        "| notebook | cell:line | assert | runs | worst slack | at | median | sides at worst |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (name, cell, line, text), rows in groups.items():
        measured = [(r.slack, r) for r in rows if r.slack is not None]
        shown = text if len(text) <= 60 else text[:57] + "..."
        shown = shown.replace("|", "\\|")
        if not measured:
            lines.append(f"| {name} | {cell}:{line} | `{shown}` | {len(rows)} | - | | | |")
            continue
        worst, at = min(measured, key=lambda m: m[0])
        median = statistics.median(s for s, _ in measured)
        sides = " / ".join("?" if v is None else f"{v:.4g}" for v in at.values)
        lines.append(
            f"| {name} | {cell}:{line} | `{shown}` | {len(rows)} | {worst:+.3f} | "
            f"{at.variant} | {median:+.3f} | {sides} |"
        )
    return "\n".join(lines)
