"""The ``dlcourse`` command.

``dlcourse doctor``
    Check this machine for the course: versions, device, GPU, a compute test.
    Ends with ``OK`` or a numbered list of what to fix (exit status 1).
``dlcourse regenerate [NOTEBOOK ...]``
    Re-execute notebooks in place under the pinned settings that CI's nbval run
    uses (see :mod:`dlcourse.notebooks`). With no argument: every notebook.
``dlcourse student [NOTEBOOK ...] [--out DIR]``
    Write student versions: solution regions replaced by stubs, outputs cleared.
``dlcourse progress``
    Which exercises you have passed, per notebook.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def _doctor(args: argparse.Namespace) -> int:
    from dlcourse.env import doctor

    report = doctor()
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.as_text())
    return 0 if report.ok else 1


def _regenerate(args: argparse.Namespace) -> int:
    from dlcourse.notebooks import BUDGET_S, course_notebooks, regenerate

    paths = [Path(p) for p in args.notebooks] or course_notebooks()
    if not paths:
        print("no notebooks found in notebooks/", file=sys.stderr)
        return 1
    missing = [p for p in paths if not p.is_file()]
    if missing:
        print(f"no such notebook: {', '.join(map(str, missing))}", file=sys.stderr)
        return 1
    failed = 0
    for path in paths:
        print(f"{path.name}: executing ...", flush=True)
        try:
            result = regenerate(path, timeout=args.timeout, fmt=not args.no_format)
        except Exception as exc:
            # nbclient's CellExecutionError carries the cell's traceback as text.
            print(f"{path.name}: FAILED, the file is unchanged\n{exc}", file=sys.stderr)
            failed += 1
            continue
        status = "ok"
        if result.over_budget:
            status = f"OVER BUDGET (> {BUDGET_S:.0f} s): shorten its experiments"
            failed += 1
        if result.problems:
            status = "PROBLEMS: " + "; ".join(result.problems)
            failed += 1
        print(f"{path.name}: {result.seconds:.1f} s, {status}", flush=True)
    return 1 if failed else 0


def _student(args: argparse.Namespace) -> int:
    from dlcourse.exercises.student import write_student_versions
    from dlcourse.notebooks import course_notebooks

    paths = [Path(p) for p in args.notebooks] or course_notebooks()
    missing = [p for p in paths if not p.is_file()]
    if missing:
        print(f"no such notebook: {', '.join(map(str, missing))}", file=sys.stderr)
        return 1
    try:
        written = write_student_versions(paths, Path(args.out))
    except ValueError as exc:  # unbalanced solution markers
        print(f"cannot make a student version: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0


def _progress(args: argparse.Namespace) -> int:
    from dlcourse.exercises.progress import progress_report

    print(progress_report())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dlcourse", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    doc = sub.add_parser("doctor", help="check this machine for the course")
    doc.add_argument("--json", action="store_true", help="print the report as JSON")
    doc.set_defaults(func=_doctor)

    reg = sub.add_parser(
        "regenerate", help="re-execute notebooks in place under the pinned CI settings"
    )
    reg.add_argument("notebooks", nargs="*", help="notebook files (default: all of them)")
    reg.add_argument("--timeout", type=float, default=600.0, help="per-cell limit in seconds")
    reg.add_argument("--no-format", action="store_true", help="skip `ruff format` first")
    reg.set_defaults(func=_regenerate)

    stu = sub.add_parser("student", help="write student versions of the notebooks")
    stu.add_argument("notebooks", nargs="*", help="notebook files (default: all of them)")
    stu.add_argument("--out", default="build/student", help="folder to write them to")
    stu.set_defaults(func=_student)

    prog = sub.add_parser("progress", help="which exercises you have passed")
    prog.set_defaults(func=_progress)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from dlcourse import __version__

        print(f"dlcourse {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
