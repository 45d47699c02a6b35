"""Sphinx settings for the course website (``make site``, ``make site-instructor``).

``docs/site/build.py`` lays the pages out in ``build/<edition>-src/`` (this folder's ``index.md``
as the front page, the notebooks as the edition shows them, three pages of ``docs/``) and builds
from there, with this file as the configuration and the edition as a Sphinx tag (``-t public``
or ``-t instructor``). Nothing is executed: myst-nb renders each notebook's stored outputs.
MathJax comes from the ``django-static-mathjax`` package, so the site needs no network, to build
or to read.
"""

from __future__ import annotations

import sys
from pathlib import Path

import mathjax  # the django-static-mathjax package: MathJax's files, no Django needed

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from dlcourse import __version__  # noqa: E402

project = "dlcourse"
author = "the dlcourse authors"
copyright = "the dlcourse authors"
release = __version__

root_doc = "index"

extensions = ["myst_nb"]
nb_execution_mode = "off"  # the stored outputs, produced by `make regenerate`
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header", "mystnb.unknown_mime_type", "misc.highlighting_failure"]

# The edition, from build.py's Sphinx tag: the public site (what a learner sees) or the
# instructor's, with the solutions.
edition = "instructor" if tags.has("instructor") else "public"  # noqa: F821 (Sphinx's tags)

# The language, from build.py's tag (-t lang_ko, with -D language=ko for Sphinx's own words).
korean = tags.has("lang_ko")  # noqa: F821

html_theme = "furo"
html_title = "dlcourse: making deep networks trainable"
if korean:
    html_title = "dlcourse: 깊은 신경망을 학습시키는 기법"
if edition == "instructor":
    html_title += " (강사용: 정답 포함)" if korean else " (instructor edition, with solutions)"
    html_theme_options = {
        "announcement": (
            "강사용 판: 연습문제의 정답이 보입니다. 학습자용이 아닙니다. 공개 사이트는 "
            "<code>make site</code>입니다."
            if korean
            else "Instructor edition: the exercises' solutions are shown. "
            "Not for learners; the public site is <code>make site</code>."
        )
    }
templates_path = ["_templates"]
html_copy_source = False
html_show_sourcelink = False
# The notebooks as the pages show them, beside the pages, for "download the notebook": build.py
# names the folder it laid them out in (``-D html_extra_path=...``).
html_extra_path: list[str] = []
# MathJax 3, served from the site itself: one self-contained file (SVG output needs no fonts).
# And the script of the "open in JupyterLab" links (this folder's _static/).
html_static_path = [
    str(Path(mathjax.__file__).parent / "static" / "mathjax" / "es5" / "tex-svg.js"),
    str(HERE / "_static"),
]
mathjax_path = "tex-svg.js"
html_js_files = ["lab-address.js"]
# "Open in JupyterLab": the address JupyterLab has when it is the only one running; the page
# lets the learner give the one `make lab` printed (another port, a remote machine).
html_context = {"edition": edition, "lab_address": "http://localhost:8888"}
