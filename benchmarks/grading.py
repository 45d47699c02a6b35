"""Class grading's cost per notebook, against the floor any separate process pays.

``dlcourse grade`` runs each learner's notebook in its own fenced process (namespaces, limits,
Landlock, no reference solution inside: see docs/instructor-guide.md, "What keeps a class safe").
This grades copies of notebook 01 (three exercises, all passing) with ``--jobs 1`` and
``--jobs 2``, and prints the wall time per notebook against the reference measured in the same
run: starting ``python -I`` and importing torch, which every grading process must do.

Target: at most 1.5x the grader before the hardening of issue 25 (1.1 s per notebook on the
course's 2-core CI machine), i.e. about 1.65 s; printed, never asserted.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dlcourse.exercises import grading
from dlcourse.exercises.isolation import _launcher
from dlcourse.machinery.notebooks import course_notebooks


def _bare_process() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-I", "-c", "import torch; torch.ones(1)"], check=True)
    return time.perf_counter() - start


def run(notebooks: int = 8, repeats: int = 3) -> None:
    solution = next(p for p in course_notebooks() if p.name.startswith("01_"))
    folder = Path(tempfile.mkdtemp(prefix="dlcourse-bench-grading-"))
    try:
        for i in range(notebooks):
            shutil.copy(solution, folder / f"learner{i:03d}.ipynb")
        reference = statistics.median(_bare_process() for _ in range(repeats))
        print(f"grading ({_launcher(None).layers}):")
        for jobs in (1, 2):
            times = []
            for _ in range(max(1, repeats // 2)):
                result = grading.grade_class([folder], jobs=jobs, seed=1)
                assert all(g.status == "pass" for g in result.grades), "a reference failed"
                times.append(result.seconds / notebooks)
            ours = statistics.median(times)
            print(
                f"  --jobs {jobs}: {ours:.2f} s per notebook ({notebooks} notebooks); reference "
                f"(python -I, import torch) {reference:.2f} s; {ours / reference:.2f}x the "
                "reference; target <= 1.65 s per notebook with --jobs 1"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="two notebooks: a smoke test")
    args = parser.parse_args()
    run(notebooks=2 if args.quick else args.notebooks, repeats=1 if args.quick else 3)
