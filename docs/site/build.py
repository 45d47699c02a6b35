"""Build the course website: ``make site`` (or ``python docs/site/build.py [--instructor] [OUT]``).

Two editions, from the same pages:

- **public** (``make site``, into ``build/site/``): what a learner sees. Each notebook is its
  student version as ``make lab`` writes it into ``work/`` (:mod:`dlcourse.exercises.student`):
  the solution regions replaced by ``raise NotImplementedError("your code here")``, the stored
  outputs kept except those of the exercise cells and of the cells that check the learner's
  functions. No solution is on it, on a page or in a file to download.
- **instructor** (``make site-instructor``, into ``build/site-instructor/``): the solution
  notebooks as they are stored, every output included, titled as the instructor edition on every
  page. Not for publishing where learners can read it.

Each edition is built in every language the course is taught in: English at the top of the
output folder, Korean under ``ko/`` (the notebooks' prose and the pages from the gettext
catalogues in ``locale/ko/``, see :mod:`dlcourse.machinery.translations`; Sphinx's own words in
Korean through ``language``), with a link on every page to the same page in the other language.

Both leave out the lines that only the tests and the tools read (``# NBVAL_IGNORE_OUTPUT`` and
the other nbval markers, ``# fmt: skip``, ``# noqa``). The front page (``docs/site/index.md``),
the notebooks so prepared and the reference pages are laid out in ``build/<edition>-src/``, then
Sphinx with myst-nb (``docs/site/conf.py``) builds the edition. Nothing is executed: the pages
show the outputs the notebooks were stored with.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(ROOT) not in sys.path:  # run as a script: the course's package from this checkout
    sys.path.insert(0, str(ROOT))

from dlcourse.exercises.student import student_notebook  # noqa: E402
from dlcourse.machinery import translations  # noqa: E402
from dlcourse.machinery.notebooks import cell_source, course_notebooks  # noqa: E402

PAGES = ("course-map.md", "glossary.md", "instructor-guide.md")  # docs/ pages on the site
EDITIONS = ("public", "instructor")
DEFAULT_OUT = {"public": ROOT / "build" / "site", "instructor": ROOT / "build" / "site-instructor"}

# Lines, and ends of lines, that only the tests and the tools read: nbval's cell markers, ruff's
# formatter and linter pragmas, type checkers' ignores.
_TOOL_LINE = re.compile(r"\s*#\s*(NBVAL_[A-Z_]+|fmt:\s*(off|on|skip))\s*")
_TOOL_COMMENT = re.compile(
    r"\s+#\s*(fmt:\s*skip|noqa(:\s*[A-Z]+[0-9]+(\s*,\s*[A-Z]+[0-9]+)*)?"
    r"|type:\s*ignore(\[[\w, -]+\])?)\s*$"
)


def without_tool_comments(source: str) -> str:
    """``source`` without the lines and trailing comments meant for the tests and tools only."""
    lines = [line for line in source.splitlines() if not _TOOL_LINE.fullmatch(line)]
    return "\n".join(_TOOL_COMMENT.sub("", line) for line in lines)


def shown_notebook(nb: dict[str, Any], name: str, edition: str) -> dict[str, Any]:
    """The notebook ``nb`` (nbformat JSON, named ``name``) as the ``edition`` of the site shows
    it and offers it for download; the input is left unchanged."""
    if edition not in EDITIONS:
        raise ValueError(f"unknown edition {edition!r}: the site has {', '.join(EDITIONS)}")
    if edition == "public":
        nb = student_notebook(nb, name, keep_outputs=True)  # a copy: the learner's own
    else:
        nb = json.loads(json.dumps(nb))  # a copy
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["source"] = without_tool_comments(cell_source(cell))
    return nb


def stage(source: Path, edition: str = "public", lang: str = "en") -> Path:
    """Lay out the ``edition``'s sources in ``lang`` in ``source`` (emptied first); return it."""
    shutil.rmtree(source, ignore_errors=True)
    (source / "notebooks").mkdir(parents=True)
    (source / "docs").mkdir()
    index, _ = translations.translate_page("index", lang)
    (source / "index.md").write_text(index, encoding="utf-8")
    for path in course_notebooks(ROOT / "notebooks"):
        nb = json.loads(path.read_text(encoding="utf-8"))
        shown = shown_notebook(nb, path.name, edition)
        if lang != "en":
            shown, _ = translations.translate_notebook(shown, path, lang)
        text = json.dumps(shown, indent=1, ensure_ascii=False) + "\n"
        (source / "notebooks" / path.name).write_text(text, encoding="utf-8")
    for page in PAGES:
        text, _ = translations.translate_page(page.removesuffix(".md"), lang)
        (source / "docs" / page).write_text(text, encoding="utf-8")
    return source


def build(out: Path | None = None, *, edition: str = "public", quiet: bool = True) -> Path:
    """Build the ``edition`` of the site into ``out`` (default ``build/site`` for the public one,
    ``build/site-instructor`` for the instructor's), in English there and in every other
    language under ``out/<lang>/``; return the (English) front page's path.
    Sphinx's warnings are errors: a broken reference fails the build."""
    if edition not in EDITIONS:
        raise ValueError(f"unknown edition {edition!r}: the site has {', '.join(EDITIONS)}")
    out = Path(out) if out is not None else DEFAULT_OUT[edition]
    shutil.rmtree(out, ignore_errors=True)  # no page or file left over from an older build
    for lang in translations.LANGUAGES:
        target = out if lang == "en" else out / lang
        _build_one(target, out.parent / f"{out.name}-src-{lang}", edition, lang, quiet)
    return out / "index.html"


def _build_one(out: Path, source: Path, edition: str, lang: str, quiet: bool) -> None:
    from sphinx.cmd.build import build_main

    stage(source, edition, lang)
    args = ["-b", "html", "-c", str(HERE), "-W", "--keep-going", "-E", "-t", edition]
    args += ["-t", f"lang_{lang}", "-D", f"language={lang}"]  # the tag: conf.py sees it
    # The notebooks offered for download are the ones the pages show, beside them.
    args += ["-D", f"html_extra_path={source / 'notebooks'}", str(source), str(out)]
    if quiet:
        args.insert(0, "-q")
    status = build_main(args)
    if status != 0:
        raise SystemExit(
            f"the site ({lang}) did not build (Sphinx exited with {status}); see above"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--instructor",
        action="store_true",
        help="the instructor edition, with the solutions (default: the public one, without)",
    )
    parser.add_argument("out", nargs="?", type=Path, help="the folder to build into")
    args = parser.parse_args(argv)
    edition = "instructor" if args.instructor else "public"
    front = build(args.out, edition=edition)
    if edition == "instructor":
        print(f"The instructor edition of the course website, with the solutions: {front}")
        print("Keep it to instructors: do not publish it where learners can read it.")
    else:
        print(f"The course website (what a learner sees, no solutions): {front}")
    print(f"Open it: python -m http.server -d {front.parent} 8000, then http://localhost:8000/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
