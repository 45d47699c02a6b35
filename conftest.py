"""Pytest set-up shared by the unit tests and the nbval run over ``notebooks/``.

- Pins the settings that stored notebook outputs were generated under
  (``dlcourse.machinery.notebooks.PINNED_ENV``), before any kernel or torch starts. A
  ``DLCOURSE_DEVICE`` you set yourself is kept, so nbval can run on a GPU.
- Raises nbval's hard-coded 5 s wait for a cell's output: a cell that trains
  for longer would otherwise fail with a spurious timeout.
- Prints each notebook's run time against its budget (60 s; 90 s for the capstone, 08).
"""

from __future__ import annotations

import os
import time
from collections import defaultdict

import pytest

from dlcourse.machinery.notebooks import BUDGET_S, budget_s, pinned_environment

os.environ.update(pinned_environment(keep_device=True))

NBVAL_OUTPUT_TIMEOUT_S = 120
_notebook_seconds: dict[str, float] = defaultdict(float)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if hasattr(item, "output_timeout"):  # nbval's IPyNbCell
            item.output_timeout = NBVAL_OUTPUT_TIMEOUT_S


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    start = time.perf_counter()
    yield
    if item.nodeid.endswith(".ipynb") or ".ipynb::" in item.nodeid:
        _notebook_seconds[item.nodeid.split("::")[0]] += time.perf_counter() - start


def pytest_terminal_summary(terminalreporter) -> None:
    if not _notebook_seconds:
        return
    terminalreporter.section(f"notebook run times (budget {BUDGET_S:.0f} s each, unless noted)")
    for path, seconds in sorted(_notebook_seconds.items()):
        budget = budget_s(path)
        flag = "" if seconds <= budget else "  OVER BUDGET"
        if budget != BUDGET_S:
            flag += f"  (budget {budget:.0f} s)"
        terminalreporter.write_line(f"{path}: {seconds:.1f} s{flag}")
