r"""The course in two languages from one source: gettext catalogues for the notebooks' prose.

The English notebooks in ``notebooks/`` are the source. The prose of every markdown cell is a
message of a gettext catalogue, one catalogue per notebook and language,
``locale/<lang>/notebooks/<notebook>.po``, the format Poedit, Weblate and Sphinx read:

- ``msgctxt`` is the notebook and the cell's id (``"03_optimizers#7c1d2e9a"``), so two cells with
  the same English text are two messages, and a cell keeps its translation when cells move;
- ``msgid`` is the English cell, whole; ``msgstr`` its translation.

When an English cell changes, :func:`update_catalogue` (``dlcourse translations update``) merges
the new text in with Babel's own ``Catalog.update``: the old translation is kept but marked
*fuzzy*, and a fuzzy or empty message is never used. A learner's Korean copy shows the English
cell instead, marked as waiting for its translation, and the tests fail on it: a translation
can be missing, never silently stale.

Code cells and their stored outputs are not translated (as in d2l's translation): the Korean
copy of a notebook runs the same code and prints the same numbers.

Reads and writes through Babel (``babel.messages``), the library Sphinx's i18n tooling uses.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlcourse.i18n import merge_template
from dlcourse.machinery.notebooks import NOTEBOOK_DIR, cell_source, course_notebooks

__all__ = [
    "LANGUAGES",
    "LOCALE_DIR",
    "PAGES",
    "UNTRANSLATED_MARK",
    "CatalogueStatus",
    "TranslationError",
    "catalogue_path",
    "cell_context",
    "check_language",
    "invariants",
    "load_catalogue",
    "markdown_blocks",
    "notebook_template",
    "page_catalogue_path",
    "page_status",
    "page_template",
    "status",
    "translate_notebook",
    "translate_page",
    "update_catalogue",
    "update_page_catalogue",
]

LOCALE_DIR = NOTEBOOK_DIR.parent / "locale"
# The languages the course is taught in; English is the source and needs no catalogue.
LANGUAGES: dict[str, str] = {"en": "English", "ko": "한국어 (Korean)"}
# Placed before an English cell in a translated copy whose translation is missing or fuzzy.
UNTRANSLATED_MARK: dict[str, str] = {
    "ko": "> *(아직 번역되지 않은 셀입니다: 영어 원문을 그대로 보여 줍니다.)*\n\n",
}
PROJECT = "dlcourse"


class TranslationError(ValueError):
    """A language the course is not taught in, or a catalogue that cannot be read."""


def check_language(lang: str) -> str:
    """``lang`` if the course is taught in it (``en``, ``ko``), else a readable error."""
    code = str(lang).strip().lower().replace("-", "_").split("_")[0].split(".")[0]
    if code not in LANGUAGES:
        known = ", ".join(f"{k} ({v})" for k, v in LANGUAGES.items())
        raise TranslationError(f"the course is not taught in {lang!r}; it is taught in {known}")
    return code


def cell_context(notebook: Path | str, cell: dict[str, Any]) -> str:
    """The message context of one markdown cell: ``"<notebook stem>#<cell id>"``."""
    cell_id = cell.get("id")
    if not cell_id:
        raise TranslationError(
            f"a markdown cell of {Path(notebook).name} has no id (nbformat 4.5 gives every cell "
            "one): open and save the notebook in JupyterLab, or run `dlcourse regenerate` on it"
        )
    return f"{Path(notebook).stem}#{cell_id}"


def catalogue_path(notebook: Path | str, lang: str, locale_dir: Path | None = None) -> Path:
    """Where the catalogue of ``notebook`` in ``lang`` lives."""
    base = LOCALE_DIR if locale_dir is None else Path(locale_dir)
    return base / check_language(lang) / "notebooks" / f"{Path(notebook).stem}.po"


def _read_notebook(path: Path) -> dict[str, Any]:
    import json

    return json.loads(Path(path).read_text(encoding="utf-8"))


def notebook_template(notebook: Path | str) -> Any:
    """The notebook's prose as a Babel ``Catalog`` with no translations (a ``.pot``)."""
    from babel.messages.catalog import Catalog

    path = Path(notebook)
    nb = _read_notebook(path)
    template = Catalog(project=PROJECT, charset="utf-8", fuzzy=False)
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        source = cell_source(cell)
        if not source.strip():
            continue
        template.add(
            source,
            context=cell_context(path, cell),
            locations=[(f"notebooks/{path.name}", index)],
        )
    return template


def load_catalogue(path: Path, lang: str) -> Any:
    """The catalogue at ``path`` (a Babel ``Catalog``), or an empty one if there is none."""
    from babel.messages.catalog import Catalog

    from dlcourse.i18n import read_po_file

    if not Path(path).is_file():
        return Catalog(locale=check_language(lang), project=PROJECT, charset="utf-8", fuzzy=False)
    try:
        with open(path, "rb") as handle:
            return read_po_file(handle, locale=check_language(lang), abort_invalid=True)
    except Exception as exc:  # babel raises several kinds on a broken file
        raise TranslationError(
            f"{path} is not a readable gettext catalogue ({exc}); restore it with "
            f"`git checkout -- {path}` or open it in Poedit to repair it"
        ) from exc


def _write_catalogue(catalogue: Any, path: Path) -> None:
    from dlcourse.i18n import write_po_file

    write_po_file(catalogue, path)


def update_catalogue(
    notebook: Path | str, lang: str, locale_dir: Path | None = None
) -> CatalogueStatus:
    """Merge the notebook's current English cells into its catalogue in ``lang`` and save it.

    New cells come in untranslated; a changed cell keeps its old translation marked fuzzy (Babel's
    ``Catalog.update``); cells that are gone are dropped (kept as obsolete ``#~`` entries).
    """
    path = catalogue_path(notebook, lang, locale_dir)
    catalogue = load_catalogue(path, lang)
    template = notebook_template(notebook)
    merge_template(catalogue, template)  # a removed cell's text is in git's history, not here
    _write_catalogue(catalogue, path)
    return _status_of(Path(notebook), catalogue, template)


@dataclass(frozen=True)
class CatalogueStatus:
    """How much of one notebook is translated: cells with a current translation, fuzzy, missing."""

    notebook: str
    translated: int
    fuzzy: int
    missing: int

    @property
    def total(self) -> int:
        return self.translated + self.fuzzy + self.missing

    @property
    def complete(self) -> bool:
        return self.fuzzy == 0 and self.missing == 0

    def __str__(self) -> str:
        line = f"{self.notebook}: {self.translated}/{self.total} cells translated"
        if self.fuzzy:
            line += f", {self.fuzzy} fuzzy (the English changed: review them)"
        if self.missing:
            line += f", {self.missing} missing"
        return line


def _current(catalogue: Any, context: str, source: str) -> str | None:
    """The translation of one cell if it is current: present, not fuzzy, for this very text."""
    message = catalogue.get(source, context=context)
    if message is None or message.fuzzy or not message.string:
        return None
    return message.string


def _status_of(notebook: Path, catalogue: Any, template: Any) -> CatalogueStatus:
    translated = fuzzy = missing = 0
    for message in template:
        if not message.id:
            continue
        found = catalogue.get(message.id, context=message.context)
        if found is not None and found.string and not found.fuzzy:
            translated += 1
        elif found is not None and found.string:
            fuzzy += 1
        else:
            missing += 1
    return CatalogueStatus(notebook.stem, translated, fuzzy, missing)


def status(
    lang: str, notebooks: Path | None = None, locale_dir: Path | None = None
) -> list[CatalogueStatus]:
    """Each notebook's translation status in ``lang``, without writing anything."""
    lang = check_language(lang)
    found = []
    for path in course_notebooks(notebooks):
        catalogue = load_catalogue(catalogue_path(path, lang, locale_dir), lang)
        found.append(_status_of(path, catalogue, notebook_template(path)))
    return found


def _shown(text: str, context: str, lang: str, catalogue: Any) -> tuple[str, bool]:
    """What a copy in ``lang`` shows for the English cell ``text``, and whether it is translated."""
    if lang == "en" or not text.strip():
        return text, True
    found = _current(catalogue, context, text)
    if found is None:
        return UNTRANSLATED_MARK[lang] + text, False
    return found, True


def translate_notebook(
    nb: dict[str, Any],
    solution: Path | str,
    lang: str,
    locale_dir: Path | None = None,
    source_lang: str | None = None,
) -> tuple[dict[str, Any], int]:
    """A copy of ``nb`` (a solution notebook, or a learner's copy of it), its prose in ``lang``.

    Markdown cells are matched to the solution notebook's by cell id; each gets the ``lang``
    text of that solution cell (English for ``en``). Code cells, outputs and any cell the
    solution does not have (one the learner added) stay as they are, so a learner's work
    carries over from one language to the other. ``source_lang``: the language ``nb`` is in
    (default: its metadata's, else English); a markdown cell whose text is not that language's
    version of the cell (the learner wrote in it) is kept as it is too. Returns the new
    notebook and the number of cells left in English for want of a current translation (each
    marked as such).
    """
    lang = check_language(lang)
    solution = Path(solution)
    metadata = nb.get("metadata")
    meta = metadata.get("dlcourse", {}) if isinstance(metadata, dict) else {}
    if source_lang is None:  # what the copy says it is in; anything odd there counts as English
        try:
            source_lang = check_language(
                (meta.get("language") if isinstance(meta, dict) else None) or "en"
            )
        except TranslationError:
            source_lang = "en"
    source_lang = check_language(source_lang)
    catalogues = {
        code: None
        if code == "en"
        else load_catalogue(catalogue_path(solution, code, locale_dir), code)
        for code in {lang, source_lang}
    }
    english: dict[str, tuple[str, str]] = {}  # cell id -> (context, English text)
    for cell in _read_notebook(solution)["cells"]:
        if cell["cell_type"] == "markdown" and cell.get("id"):
            english[cell["id"]] = (cell_context(solution, cell), cell_source(cell))
    out = copy.deepcopy(nb)
    untranslated = 0
    for cell in out["cells"]:
        if not isinstance(cell, dict) or cell.get("cell_type") != "markdown":
            continue
        if not isinstance(cell.get("id"), str) or cell["id"] not in english:
            continue
        context, text = english[cell["id"]]
        before, _ = _shown(text, context, source_lang, catalogues[source_lang])
        if cell_source(cell) != before:
            continue  # the learner's own words: kept
        after, translated = _shown(text, context, lang, catalogues[lang])
        untranslated += not translated
        cell["source"] = after
    out.setdefault("metadata", {})["dlcourse"] = {
        **(meta if isinstance(meta, dict) else {}),
        "language": lang,
    }
    return out, untranslated


# --------------------------------------------------------------------------- pages

# The course's Markdown pages with a Korean version: the website's front page and the docs it
# shows. Each block (paragraph, list, table, fenced block: text between blank lines) is one
# message, its context the page's name and the block's number among those with the same text.
PAGES: dict[str, Path] = {
    "index": NOTEBOOK_DIR.parent / "docs" / "site" / "index.md",
    "course-map": NOTEBOOK_DIR.parent / "docs" / "course-map.md",
    "glossary": NOTEBOOK_DIR.parent / "docs" / "glossary.md",
    "instructor-guide": NOTEBOOK_DIR.parent / "docs" / "instructor-guide.md",
    "readme": NOTEBOOK_DIR.parent / "README.md",
}
# The README's learner sections (its start, up to this heading) are translated; the rest is for
# course authors, in English. `dlcourse translations update` writes them to README.ko.md.
README_LEARNER_END = "\n## The course\n"
README_KO_FOOTER = (
    "\n---\n\n이 문서는 `README.md`의 학습자용 부분을 옮긴 것입니다"
    "(`dlcourse translations update`가 `locale/ko/pages/readme.po`에서 만듭니다). "
    "과정 목록, 개발과 테스트에 관한 나머지 내용은 영어 "
    "[README.md](README.md)를 보세요.\n"
)


def _page_text(name: str, path: Path | None = None) -> str:
    text = (PAGES[name] if path is None else Path(path)).read_text(encoding="utf-8")
    if name == "readme" and README_LEARNER_END in text:
        text = text[: text.index(README_LEARNER_END) + 1]
    return text


def markdown_blocks(text: str) -> list[str]:
    """``text`` cut into blocks at blank lines, a fenced block (``` or :::) kept whole."""
    blocks: list[str] = []
    current: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        marker = re.match(r"(`{3,}|~{3,}|:{3,})", stripped)
        if fence is None and marker:
            fence = marker.group(1)
        elif fence is not None and stripped == fence:
            fence = None
        if not stripped and fence is None:
            if current:
                blocks.append("\n".join(current))
                current = []
            continue
        current.append(line)
    if current:
        blocks.append("\n".join(current))
    return blocks


def _block_contexts(name: str, blocks: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    contexts = []
    for block in blocks:
        seen[block] = seen.get(block, 0) + 1
        contexts.append(f"{name}#{seen[block]}")
    return contexts


def page_template(name: str, path: Path | None = None) -> Any:
    """The page ``name``'s blocks as a Babel ``Catalog`` with no translations."""
    from babel.messages.catalog import Catalog

    path = PAGES[name] if path is None else Path(path)
    blocks = markdown_blocks(_page_text(name, path))
    template = Catalog(project=PROJECT, charset="utf-8", fuzzy=False)
    contexts = _block_contexts(name, blocks)
    for number, (block, context) in enumerate(zip(blocks, contexts, strict=True)):
        template.add(block, context=context, locations=[(path.name, number + 1)])
    return template


def page_catalogue_path(name: str, lang: str, locale_dir: Path | None = None) -> Path:
    base = LOCALE_DIR if locale_dir is None else Path(locale_dir)
    return base / check_language(lang) / "pages" / f"{name}.po"


def update_page_catalogue(
    name: str, lang: str, locale_dir: Path | None = None, path: Path | None = None
) -> CatalogueStatus:
    """As :func:`update_catalogue`, for the Markdown page ``name``."""
    target = page_catalogue_path(name, lang, locale_dir)
    catalogue = load_catalogue(target, lang)
    template = page_template(name, path)
    merge_template(catalogue, template)
    _write_catalogue(catalogue, target)
    return _status_of(Path(name), catalogue, template)


def page_status(lang: str, locale_dir: Path | None = None) -> list[CatalogueStatus]:
    lang = check_language(lang)
    return [
        _status_of(
            Path(name),
            load_catalogue(page_catalogue_path(name, lang, locale_dir), lang),
            page_template(name),
        )
        for name in PAGES
    ]


def translate_page(
    name: str, lang: str, locale_dir: Path | None = None, path: Path | None = None
) -> tuple[str, int]:
    """The page ``name`` in ``lang`` (Markdown), and how many blocks were left in English."""
    lang = check_language(lang)
    text = _page_text(name, path)
    if lang == "en":
        return text, 0
    catalogue = load_catalogue(page_catalogue_path(name, lang, locale_dir), lang)
    blocks = markdown_blocks(text)
    out, untranslated = [], 0
    for block, context in zip(blocks, _block_contexts(name, blocks), strict=True):
        found = _current(catalogue, context, block)
        untranslated += found is None
        out.append(block if found is None else found)
    return "\n\n".join(out) + "\n", untranslated


# --------------------------------------------------------------------------- invariants

_FENCE_LINE = re.compile(r"^[ \t]*(?:`{3,}|~{3,}|:{3,}).*$", re.M)  # ```python, ```{only} public
_CODE = re.compile(r"(`+)(.+?)\1", re.S)
_DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$", re.S)
_INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\$)(.+?)(?<![\\$])\$", re.S)
_LINK_TARGET = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_NUMBER = re.compile(r"(?<![\w.])[-−]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")


def _without(pattern: re.Pattern[str], text: str) -> str:
    return pattern.sub(" ", text)


def invariants(text: str) -> dict[str, list[str]]:
    """What must be the same in both languages of a cell: inline code, maths, link targets, numbers.

    Each as a sorted list (order may change between languages; a count may not). Numbers are
    read from the prose outside code and maths, with thousands separators removed.
    """
    fences = [m.group(0).strip() for m in _FENCE_LINE.finditer(text)]
    rest = _FENCE_LINE.sub(" ", text)
    code = fences + [m.group(2).strip() for m in _CODE.finditer(rest)]
    rest = _CODE.sub(" ", rest)
    display = [m.group(1).strip() for m in _DISPLAY_MATH.finditer(rest)]
    rest = _without(_DISPLAY_MATH, rest)
    inline = [m.group(1).strip() for m in _INLINE_MATH.finditer(rest)]
    rest = _without(_INLINE_MATH, rest)
    links = _LINK_TARGET.findall(rest)
    rest = _LINK_TARGET.sub("]", rest)
    rest = re.sub(r"<[^>]+>", " ", rest)  # HTML tags and their attributes
    numbers = [n.replace(",", "").replace("−", "-") for n in _NUMBER.findall(rest)]
    return {
        "code": sorted(code),
        "maths": sorted(display + inline),
        "links": sorted(links),
        "numbers": sorted(numbers),
    }


def write_korean_readme(locale_dir: Path | None = None, out: Path | None = None) -> Path:
    """README.ko.md: the README's learner sections in Korean (blocks not yet translated stay
    English), then a footer pointing to the English README for the rest."""
    from dlcourse.machinery.atomic import write_bytes_atomically

    text, _ = translate_page("readme", "ko", locale_dir)
    out = NOTEBOOK_DIR.parent / "README.ko.md" if out is None else Path(out)
    write_bytes_atomically(out, (text + README_KO_FOOTER).encode("utf-8"))
    return out
