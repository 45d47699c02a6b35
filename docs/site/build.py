"""Build the course website: ``make site`` (or ``python docs/site/build.py [OUT]``).

Copies the front page (``docs/site/index.md``), the stored notebooks and the reference pages into
``build/site-src/``, then runs Sphinx with myst-nb (``docs/site/conf.py``) into ``build/site/``.
Nothing is executed: the pages show the outputs the notebooks were stored with.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PAGES = ("course-map.md", "glossary.md", "instructor-guide.md")  # docs/ pages on the site


def stage(source: Path) -> Path:
    """Lay out the site's sources in ``source`` (emptied first); return it."""
    shutil.rmtree(source, ignore_errors=True)
    (source / "notebooks").mkdir(parents=True)
    (source / "docs").mkdir()
    shutil.copy2(HERE / "index.md", source / "index.md")
    for notebook in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        shutil.copy2(notebook, source / "notebooks" / notebook.name)
    for page in PAGES:
        shutil.copy2(ROOT / "docs" / page, source / "docs" / page)
    return source


def build(out: Path | None = None, *, quiet: bool = True) -> Path:
    """Build the site into ``out`` (default ``build/site``); return the front page's path.
    Sphinx's warnings are errors: a broken reference fails the build."""
    from sphinx.cmd.build import build_main

    out = Path(out) if out is not None else ROOT / "build" / "site"
    source = stage(out.parent / f"{out.name}-src")
    shutil.rmtree(out, ignore_errors=True)  # no page or file left over from an older build
    args = ["-b", "html", "-c", str(HERE), "-W", "--keep-going", "-E", str(source), str(out)]
    if quiet:
        args.insert(0, "-q")
    status = build_main(args)
    if status != 0:
        raise SystemExit(f"the site did not build (Sphinx exited with {status}); see above")
    return out / "index.html"


if __name__ == "__main__":
    front = build(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    print(f"The course website: {front}")
    print(f"Open it: python -m http.server -d {front.parent} 8000, then http://localhost:8000/")
