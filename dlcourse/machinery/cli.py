"""The dlcourse command.

dlcourse lab [--lang ko] [--solutions] [JUPYTERLAB ARGS ...]
    Open the course in JupyterLab: your own copies of the notebooks, in work/
    (made once, never overwritten). --lang ko: the Korean edition, in work/ko/, in a
    Korean JupyterLab. --solutions opens the solution notebooks in notebooks/ instead
    (instructors and authors).
dlcourse reset NN [NN ...] [--lang ko]
    A fresh copy of notebook NN in work/ (work/ko/); your old copy moves to backups/.
dlcourse translations [update|status] [--lang ko]
    The notebooks' prose in other languages (gettext catalogues in locale/): status
    counts translated, fuzzy and missing cells; update merges changed English cells in.
dlcourse progress
    Your exercises, per notebook: passed (and when), failed since, or not attempted.
dlcourse doctor [--json]
    Check this machine for the course: versions, device, GPU, a compute test.
    Ends with OK or a numbered list of what to fix (exit status 1).
dlcourse regenerate [NOTEBOOK ...]
    Re-execute solution notebooks in place under the pinned settings that CI's
    nbval run uses (see dlcourse/machinery/notebooks.py). With no argument: every notebook.
dlcourse robustness [NOTEBOOK ...] [--variants V,V] [--seeds 10-29] [--margins] [--jobs N]
    Run copies of the notebooks under other thread counts, seeds and devices;
    print a table notebook x variant: ok, or the assert that failed.
dlcourse student [NOTEBOOK ...] [--out DIR] [--keep-outputs]
    Write student versions (handouts): solution regions replaced by stubs,
    outputs cleared.
dlcourse grade SUBMISSION ... [--out grades.csv] [--report DIR] [--timeout S]
               [--memory MB] [--jobs N] [--seed N] [--points NAME=P ...]
    Grade learners' notebooks (files, or folders of them): each notebook's
    exercise cells run in a separate, limited process; a CSV, a feedback page
    per learner and a summary come out. See dlcourse/exercises/grading.py.
dlcourse class progress HOME ... [--csv FILE] [--figure FILE] [--each]
    A class on a JupyterHub: every learner's exercises (passed, failed since, not
    attempted; first pass), from their home folders (or a folder of them), as a
    terminal table, a CSV and a figure. See dlcourse/machinery/classroom.py.
dlcourse class collect HOME ... --out DIR [--lang latest|en|ko] [--replace]
    Copy every learner's notebooks (work/) into DIR/<learner>/, for dlcourse grade DIR.
dlcourse class link --hub URL [--repo URL] [--branch B] [--open NN] [--app lab]
    The nbgitpuller link that pulls the course into each learner's hub home and opens
    their copy of notebook NN. See dlcourse/machinery/course_link.py.

Each command imports what it needs when it runs, so `dlcourse --help`, `dlcourse --version`
and `dlcourse COMMAND --help` answer at once: none of them imports torch or Jupyter.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path


class CommandError(Exception):
    """A command that cannot do what was asked: :func:`main` prints the message, exit status 1."""


# --------------------------------------------------------------------------- shared


def _add_notebooks(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebooks", nargs="*", help="notebook files (default: all of them)")


def _notebooks(args: argparse.Namespace) -> list[Path]:
    """The notebooks the command was given, or else all of the course's; every one exists."""
    from dlcourse.machinery.notebooks import course_notebooks

    paths = [Path(p) for p in args.notebooks] or course_notebooks()
    if not paths:
        raise CommandError("no notebooks found in notebooks/")
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise CommandError(f"no such notebook: {', '.join(map(str, missing))}")
    return paths


# --------------------------------------------------------------------------- lab


def _add_lab(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lab",
        help="open your copies of the notebooks (work/) in JupyterLab",
        description="Open the course in JupyterLab. Your copies of the notebooks live in work/: "
        "made the first time, never overwritten. notebooks/ holds the solutions and opens "
        "read-only. Other arguments go to JupyterLab (e.g. --no-browser --port 8899).",
    )
    p.add_argument(
        "--solutions",
        action="store_true",
        help="open the solution notebooks in notebooks/, writable (instructors and authors)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="prepare work/, print the command, start nothing"
    )
    _add_lang(p)
    p.set_defaults(func=_lab, jupyter_args=[])


def _add_lang(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lang",
        default=os.environ.get("DLCOURSE_LANG") or "en",
        metavar="LANG",
        help="the course's language: en (English, work/) or ko (Korean, work/ko/); default: "
        "$DLCOURSE_LANG, else en",
    )


def _lab(args: argparse.Namespace) -> int:
    from dlcourse.machinery.translations import TranslationError
    from dlcourse.machinery.workspace import WorkspaceError

    try:
        from dlcourse.machinery.lab import launch
    except ImportError as exc:  # the package was installed without the lab extra
        raise CommandError(
            f"dlcourse lab needs JupyterLab ({exc}). In the course folder, `make lab` installs it; "
            "elsewhere: pip install 'jupyterlab>=4.0'"
        ) from exc
    try:
        return launch(
            solutions=args.solutions, extra=args.jupyter_args, dry_run=args.dry_run, lang=args.lang
        )
    except (WorkspaceError, TranslationError) as exc:
        raise CommandError(str(exc)) from exc


# --------------------------------------------------------------------------- reset


def _add_reset(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reset",
        help="a fresh copy of a notebook in work/ (the old one is kept in work/backups/)",
    )
    p.add_argument("notebooks", nargs="+", metavar="NN", help="e.g. 03, or 03_optimizers")
    _add_lang(p)
    p.set_defaults(func=_reset)


def _reset(args: argparse.Namespace) -> int:
    from dlcourse.machinery import workspace
    from dlcourse.machinery.translations import TranslationError

    here = workspace.course_here()  # on a hub: the learner's ~/dlcourse, not the package's
    work = None if here is None else here / workspace.WORKSPACE_DIR.name
    solutions = None if here is None else here / workspace.NOTEBOOK_DIR.name
    root = workspace.WORKSPACE_DIR.parent if here is None else here
    for which in args.notebooks:
        try:
            fresh, backup = workspace.reset(which, work, solutions, lang=args.lang)
        except (workspace.WorkspaceError, TranslationError) as exc:
            raise CommandError(str(exc)) from exc
        print(workspace.describe_reset(fresh, backup, root))
    return 0


# --------------------------------------------------------------------------- progress


def _add_progress(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("progress", help="your exercises: passed, failed since, not attempted")
    p.add_argument("--workspace", help="the folder of your copies (default work/)")
    p.set_defaults(func=_progress)


def _progress(args: argparse.Namespace) -> int:
    import os

    from dlcourse.exercises import all_exercises
    from dlcourse.exercises.progress import PROGRESS_ENV_VAR, PROGRESS_FILE, progress_report
    from dlcourse.machinery import workspace

    here = workspace.course_here()  # on a hub: the learner's ~/dlcourse, not the package's
    work = workspace.WORKSPACE_DIR if here is None else here / workspace.WORKSPACE_DIR.name
    folder = Path(args.workspace) if args.workspace else work
    recorded = os.environ.get(PROGRESS_ENV_VAR) or str(folder / PROGRESS_FILE)
    path = None if recorded.lower() == "off" else Path(recorded)
    print(progress_report(all_exercises(), path))
    return 0


# --------------------------------------------------------------------------- doctor


def _add_doctor(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check this machine for the course")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    from dlcourse.env import doctor

    report = doctor()
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.as_text())
    return 0 if report.ok else 1


# --------------------------------------------------------------------------- regenerate


def _add_regenerate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "regenerate", help="re-execute notebooks in place under the pinned CI settings"
    )
    _add_notebooks(p)
    p.add_argument("--timeout", type=float, default=600.0, help="per-cell limit in seconds")
    p.add_argument("--no-format", action="store_true", help="skip `ruff format` first")
    p.set_defaults(func=_regenerate)


def _regenerate(args: argparse.Namespace) -> int:
    from dlcourse.machinery.notebooks import regenerate

    failed = 0
    for path in _notebooks(args):
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
            status = f"OVER BUDGET (> {result.budget_s:.0f} s): shorten its experiments"
            failed += 1
        if result.problems:
            status = "PROBLEMS: " + "; ".join(result.problems)
            failed += 1
        print(f"{path.name}: {result.seconds:.1f} s, {status}", flush=True)
    return 1 if failed else 0


# --------------------------------------------------------------------------- robustness


def _add_robustness(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "robustness",
        help="run the notebooks under other thread counts, seeds and devices; do claims hold?",
    )
    _add_notebooks(p)
    p.add_argument(
        "--variants",
        default="",
        help="comma-separated, e.g. '1-thread,seed-3' (default: the whole matrix)",
    )
    p.add_argument(
        "--seeds",
        default="",
        help="run these seeds (pinned settings otherwise), e.g. '10-29' or '0-4,17': the way to "
        "confirm a threshold on seeds it was not chosen on; added to --variants if both are given",
    )
    p.add_argument(
        "--margins",
        action="store_true",
        help="also record both sides of every comparison assert in each run and print, per "
        "assert, its worst slack and the seed it came from (runs one at a time)",
    )
    p.add_argument("--jobs", type=int, default=1, help="notebooks run at once (default 1)")
    p.add_argument("--timeout", type=float, default=600.0, help="per-cell limit in seconds")
    p.add_argument(
        "--retries",
        type=int,
        default=1,
        help="runs again a run whose kernel stalled (a cell past --timeout, or a dead kernel) "
        "up to this many times; a failing cell is never run again (default 1)",
    )
    p.set_defaults(func=_robustness)


def _robustness(args: argparse.Namespace) -> int:
    from dlcourse.machinery import robustness

    paths = _notebooks(args)
    try:
        matrix = [robustness.variant(n) for n in args.variants.split(",")] if args.variants else []
        matrix += (
            [robustness.seeded(k) for k in robustness.seed_range(args.seeds or "")]
            if args.seeds
            else []
        )
        matrix = matrix or robustness.variants()
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    bad = [
        f"{flag} must be {rule}, got {value:g}"
        for flag, value, ok, rule in (
            ("--retries", args.retries, args.retries >= 0, ">= 0"),
            ("--jobs", args.jobs, args.jobs >= 1, ">= 1"),
            ("--timeout", args.timeout, args.timeout > 0, "> 0 (seconds per cell)"),
        )
        if not ok
    ]
    if bad:
        raise CommandError("; ".join(bad))
    print(f"{len(paths)} notebooks x {len(matrix)} variants: {', '.join(v.name for v in matrix)}")

    def progress(o: robustness.Outcome) -> None:
        print(f"  {o.notebook}, {o.variant}: {o.cell_text} ({o.seconds:.0f} s)", flush=True)

    if args.margins:
        from dlcourse.machinery import margins

        outcomes, records = margins.run(
            paths, matrix, timeout=args.timeout, retries=args.retries, on_result=progress
        )
    else:
        outcomes = robustness.run_matrix(
            paths,
            matrix,
            jobs=args.jobs,
            timeout=args.timeout,
            retries=args.retries,
            on_result=progress,
        )
    print()
    print(robustness.table(outcomes))
    if args.margins:
        print()
        print("Margins (slack: how far each comparison was from failing, relative to its sides):")
        print(margins.table(records))
    return 0 if all(o.ok for o in outcomes) else 1


# --------------------------------------------------------------------------- student


def _add_student(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("student", help="write student versions (handouts) of the notebooks")
    _add_notebooks(p)
    p.add_argument("--out", default="build/student", help="folder to write them to")
    p.add_argument(
        "--keep-outputs",
        action="store_true",
        help="keep the stored outputs but the exercise and check cells' (as in work/)",
    )
    p.set_defaults(func=_student)


def _student(args: argparse.Namespace) -> int:
    from dlcourse.exercises.student import write_student_versions

    paths = _notebooks(args)
    try:
        written = write_student_versions(paths, Path(args.out), keep_outputs=args.keep_outputs)
    except ValueError as exc:  # unbalanced solution markers
        raise CommandError(f"cannot make a student version: {exc}") from exc
    for path in written:
        print(f"wrote {path}")
    return 0


# --------------------------------------------------------------------------- grade


def _points(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    try:
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected NAME=POINTS (e.g. adam_step=2), got {text!r}"
        ) from None


def _add_grade(sub: argparse._SubParsersAction) -> None:
    from dlcourse.exercises import limits  # no torch: the defaults, for the help text

    p = sub.add_parser(
        "grade",
        help="grade learners' notebooks: isolated, limited, a CSV and feedback pages",
        description="Grade learners' notebooks. Each notebook's exercise cells run in a separate "
        "process with limits on time, memory, processes, output and files; the learner's "
        "functions run on the self-check's inputs and on randomised ones (--seed), and the "
        "results are judged here, with the same messages as ex.check(). The learner's name is "
        "the file's (alice.ipynb), or its folder's when the file keeps its course name "
        "(alice/01_gradient_descent.ipynb).",
    )
    p.add_argument("submissions", nargs="+", metavar="SUBMISSION", help="notebooks or folders")
    p.add_argument("--out", default=None, help="write the grades as CSV here")
    p.add_argument("--report", default=None, help="write a feedback page per learner here")
    # No default here: the grader's own (limits.TIMEOUT_S, MEMORY_MB) applies when not given.
    p.add_argument(
        "--timeout",
        type=float,
        help=f"seconds one notebook may run (default {limits.TIMEOUT_S:g})",
    )
    p.add_argument(
        "--memory",
        type=int,
        help=f"megabytes of memory one notebook may use (default {limits.MEMORY_MB})",
    )
    p.add_argument("--jobs", type=int, default=1, help="notebooks graded at once (default 1)")
    p.add_argument(
        "--seed", type=int, default=None, help="seed of the randomised inputs (default: new)"
    )
    p.add_argument(
        "--points",
        type=_points,
        action="append",
        default=[],
        metavar="NAME=P",
        help="points for an exercise, replacing its own (repeat for several)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the rows already in --out (a run that was stopped) and grade only the "
        "notebooks it lacks, with its seed",
    )
    p.set_defaults(func=_grade)


def _grade(args: argparse.Namespace) -> int:
    from dlcourse.exercises.class_report import terminal_text
    from dlcourse.exercises.grading import GradingError, feedback_markdown, grade_class

    limits = {"timeout": args.timeout, "memory": args.memory}
    try:
        result = grade_class(
            args.submissions,
            out=args.out,
            report=args.report,
            jobs=args.jobs,
            seed=args.seed,
            points=dict(args.points),
            progress=lambda line: print(line, flush=True),
            resume=args.resume,
            **{flag: value for flag, value in limits.items() if value is not None},
        )
    except GradingError as exc:
        raise CommandError(f"dlcourse grade: {exc}") from exc
    except KeyboardInterrupt:
        if args.out:
            print(f"\nStopped. The grades of the notebooks that finished are in {args.out}: run "
                  "the same command with --resume to grade the rest.", file=sys.stderr)  # fmt: skip
        else:
            print("\nStopped. Without --out, the grades so far are not kept.", file=sys.stderr)
        return 130
    learners = {run.submission.learner for run in result.runs + result.kept}
    if len(learners) == 1:  # one learner checking their own work: the feedback itself
        print()
        print(terminal_text(feedback_markdown(learners.pop(), result.kept + result.runs)))
    print()
    print(result.summary)
    if args.out:
        print(f"Grades: {args.out}")
    if args.report:
        print(f"Feedback pages: {args.report}/")
    return 0


# --------------------------------------------------------------------------- class


def _add_class(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "class",
        help="a class on a JupyterHub: progress, collecting work, the course link",
        description="For the instructor of a class on a JupyterHub. HOME is a learner's home "
        "folder (the learner is the folder's name) holding the course, at its root or one "
        "folder down as nbgitpuller pulls it; or a folder of such homes (/home).",
    )
    csub = p.add_subparsers(dest="class_command", metavar="SUBCOMMAND", required=True)
    progress = csub.add_parser(
        "progress",
        help="every learner's exercises: a table, a CSV, a figure",
        description="Every learner's exercises, from their work/.progress.json (the Korean "
        "copies record into the same file): passed, failed since (passed once, the last "
        "check did not), not passed yet, not attempted; the first pass time. A learner whose "
        "progress cannot be read is shown as unreadable, with the reason.",
    )
    progress.add_argument("homes", nargs="+", metavar="HOME", help="learners' home folders")
    progress.add_argument("--csv", help="write one row per learner and exercise here")
    progress.add_argument("--figure", help="write a PNG: learners x exercises, by status")
    progress.add_argument(
        "--each", action="store_true", help="also list each learner's exercises with times"
    )
    progress.set_defaults(func=_class_progress)
    collect = csub.add_parser(
        "collect",
        help="copy every learner's notebooks into a folder for dlcourse grade",
        description="Copy each learner's notebooks (work/NN_*.ipynb) into OUT/<learner>/, the "
        "layout `dlcourse grade OUT` grades by learner. Links are refused, never followed; "
        "only regular files up to the grader's size limit. A name that is not a plain folder "
        "name gets a safe one (said in the output).",
    )
    collect.add_argument("homes", nargs="+", metavar="HOME", help="learners' home folders")
    collect.add_argument("--out", required=True, help="a new (or empty) folder to collect into")
    collect.add_argument(
        "--lang",
        choices=("latest", "en", "ko"),
        default="latest",
        help="which copy of each notebook: latest (default: the one saved last, English in "
        "work/ or Korean in work/ko/), en or ko",
    )
    collect.add_argument(
        "--replace",
        action="store_true",
        help="when OUT holds an earlier collection, move it aside (OUT.<time>) and collect afresh",
    )
    collect.set_defaults(func=_class_collect)
    link = csub.add_parser(
        "link",
        help="the nbgitpuller link that gives each learner the course on a JupyterHub",
        description="Print the nbgitpuller link: opened by a learner, their hub pulls the "
        "course into their home (a later pull never overwrites their changes) and opens "
        "their copy of notebook NN in work/.",
    )
    link.add_argument(
        "--hub", required=True, help="the hub's address, e.g. https://hub.example.org"
    )
    link.add_argument("--repo", help="the course's git repository (default: this clone's origin)")
    link.add_argument("--branch", help="the branch to pull (default: this clone's current one)")
    link.add_argument(
        "--open", default="00", metavar="NN", help="the notebook to open (default 00)"
    )
    link.add_argument(
        "--app", choices=("lab", "notebook"), default="lab", help="JupyterLab (default) or Notebook"
    )
    link.add_argument(
        "--lang",
        default="en",
        help="the edition the hub gives: en (work/, default) or ko (work/ko/, a hub whose servers "
        "run with DLCOURSE_LANG=ko)",
    )
    link.set_defaults(func=_class_link)


def _class_progress(args: argparse.Namespace) -> int:
    from dlcourse.machinery import classroom

    try:
        learners = classroom.class_progress(args.homes)
    except classroom.ClassroomError as exc:
        raise CommandError(f"dlcourse class progress: {exc}") from exc
    print(classroom.progress_table(learners))
    if args.each:
        for lp in learners:
            print()
            print(classroom.learner_details(lp))
    if args.csv:
        print(f"CSV: {classroom.write_progress_csv(learners, args.csv)}")
    if args.figure:
        print(f"Figure: {classroom.write_progress_figure(learners, args.figure)}")
    return 0


def _class_collect(args: argparse.Namespace) -> int:
    from dlcourse.machinery import classroom

    try:
        done, aside = classroom.collect(args.homes, args.out, lang=args.lang, replace=args.replace)
    except classroom.ClassroomError as exc:
        raise CommandError(f"dlcourse class collect: {exc}") from exc
    print(classroom.describe_collection(done, Path(args.out), aside))
    return 0


def _class_link(args: argparse.Namespace) -> int:
    from dlcourse.machinery import course_link

    try:
        link = course_link.course_link(
            args.hub,
            repo=args.repo,
            branch=args.branch,
            notebook=args.open,
            app=args.app,
            lang=args.lang,
        )
    except course_link.LinkError as exc:
        raise CommandError(f"dlcourse class link: {exc}") from exc
    print(link)
    return 0


# --------------------------------------------------------------------------- translations


def _add_translations(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "translations",
        help="the notebooks' prose in other languages: status, or update the catalogues",
        description="The notebooks' markdown cells in other languages live in gettext catalogues, "
        "locale/<lang>/notebooks/NN_name.po (open them in Poedit or any .po editor). `status` "
        "counts each notebook's translated, fuzzy and missing cells; `update` merges the "
        "current English cells in (a changed cell's translation is kept, marked fuzzy).",
    )
    p.add_argument("action", nargs="?", choices=("status", "update"), default="status")
    p.add_argument("--lang", default="ko", metavar="LANG", help="the language (default: ko)")
    p.set_defaults(func=_translations)


def _translations(args: argparse.Namespace) -> int:
    from dlcourse.machinery import translations
    from dlcourse.machinery.notebooks import course_notebooks

    try:
        lang = translations.check_language(args.lang)
        if lang == "en":
            raise CommandError("English is the source: the notebooks themselves; nothing to do")
        if args.action == "update":
            found = [translations.update_catalogue(nb, lang) for nb in course_notebooks()]
            found += [translations.update_page_catalogue(page, lang) for page in translations.PAGES]
            if lang == "ko":
                translations.write_korean_readme()
        else:
            found = translations.status(lang) + translations.page_status(lang)
    except translations.TranslationError as exc:
        raise CommandError(str(exc)) from exc
    for line in found:
        print(line)
    incomplete = [s for s in found if not s.complete]
    print(
        f"{len(found) - len(incomplete)} of {len(found)} notebooks and pages fully translated into "
        f"{translations.LANGUAGES[lang]}"
    )
    return 1 if incomplete else 0


# --------------------------------------------------------------------------- the command

COMMANDS = (
    _add_lab,
    _add_reset,
    _add_progress,
    _add_doctor,
    _add_regenerate,
    _add_robustness,
    _add_student,
    _add_grade,
    _add_class,
    _add_translations,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``dlcourse`` parser: one subcommand per function in :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="dlcourse",
        description="The command of the dlcourse course: open it, check your machine and "
        "your progress, and (for authors) regenerate and hand out the notebooks.",
        epilog="`dlcourse COMMAND --help` tells more about one command.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add_command in COMMANDS:
        add_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        if args.command != "lab":
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.jupyter_args = unknown  # for JupyterLab
    if args.version:
        from dlcourse._version import __version__

        print(f"dlcourse {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except CommandError as exc:
        print(exc, file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
