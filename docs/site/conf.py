"""Sphinx settings for the course website (``make site``): the stored notebooks, as they are.

``docs/site/build.py`` copies the pages into ``build/site-src/`` (this folder's ``index.md`` as
the front page, ``notebooks/``, three pages of ``docs/``) and builds from there into
``build/site/``, with this file as the configuration. Nothing is executed:
myst-nb renders each notebook's stored outputs. MathJax comes from the ``django-static-mathjax``
package, so the site needs no network, to build or to read.
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

html_theme = "furo"
html_title = "dlcourse: making deep networks trainable"
templates_path = ["_templates"]
html_copy_source = False
html_show_sourcelink = False
# The notebooks themselves, beside their pages, for "download the notebook".
html_extra_path = [str(ROOT / "notebooks")]
# MathJax 3, served from the site itself: one self-contained file (SVG output needs no fonts).
html_static_path = [
    str(Path(mathjax.__file__).parent / "static" / "mathjax" / "es5" / "tex-svg.js")
]
mathjax_path = "tex-svg.js"
html_context = {"lab_url": "http://localhost:8888/lab/tree/work/"}
