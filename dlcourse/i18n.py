"""The package's own messages in the learner's language: standard ``gettext``, domain ``dlcourse``.

::

    from dlcourse.i18n import N_, _

    _("your function took more than {seconds} s on {label}").format(seconds=10, label=label)
    HINT = N_("a factor 2 is missing.")  # marked where it is defined (data) ...
    _(HINT)                              # ... translated where it is shown

English is the source: in English :func:`gettext` returns its message unchanged, byte for
byte (class grading compares messages word for word). Placeholders are named (``{name}``),
so a translation can put them in its own word order.

The language (:func:`current_language`): ``DLCOURSE_LANG`` when set (``ko``, ``ko_KR.UTF-8``
and ``en`` all work: the part before ``_``, ``.`` or ``@``); else ``ko`` when the notebook
this kernel runs is a Korean copy (JupyterLab names it in ``JPY_SESSION_NAME``, a path like
``.../work/ko/03_optimizers.ipynb``: its folder is named ``ko``); else ``en``. It is read at
every call, so one process can show both languages.

The catalogue: ``dlcourse/locale/<lang>/LC_MESSAGES/dlcourse.po``, read with Babel, compiled
to MO in memory (fuzzy entries left out) and loaded as :class:`gettext.GNUTranslations`, once
per language (:func:`clear_cache` forgets them). A missing or broken catalogue means English;
it never breaks a check.

Keeping the catalogue in step with the code (after a message changed or was added)::

    python -m dlcourse.i18n extract     # re-extract; new messages empty, changed ones fuzzy
    python -m dlcourse.i18n status      # how many messages lack a current translation

``extract`` reads every module of the package for ``_``, ``N_``, ``gettext`` and ``ngettext``
(Babel's Python extractor), merges into each language's ``.po`` (Babel's ``Catalog.update``)
and writes it back with ``write_po(width=0)``; then translate the empty and fuzzy entries
(Poedit, Weblate or a text editor). ``tests/test_i18n.py`` fails while any is left.
"""

from __future__ import annotations

import gettext as _gettext
import io
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any

DOMAIN = "dlcourse"
LANG_ENV_VAR = "DLCOURSE_LANG"
SOURCE_LANGUAGE = "en"
PACKAGE_DIR = Path(__file__).resolve().parent
LOCALE_DIR = PACKAGE_DIR / "locale"
# What Babel looks for when it extracts: the function names and which arguments are messages.
KEYWORDS: dict[str, Any] = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}

_cache: dict[str, _gettext.NullTranslations] = {}
_lock = threading.Lock()


def _normalised(value: str) -> str:
    """``ko_KR.UTF-8`` -> ``ko``; ``EN`` -> ``en``."""
    return re.split(r"[_.@-]", value.strip(), maxsplit=1)[0].lower()


def current_language() -> str:
    """The language of messages now: ``DLCOURSE_LANG``, else ``ko`` in a Korean copy's kernel,
    else ``en`` (see the module docstring)."""
    chosen = _normalised(os.environ.get(LANG_ENV_VAR, ""))
    if chosen:
        return chosen
    session = os.environ.get("JPY_SESSION_NAME", "")
    if session.endswith(".ipynb"):
        folder = os.path.basename(os.path.dirname(session.replace("\\", "/")))
        if folder == "ko":
            return "ko"
    return SOURCE_LANGUAGE


def catalogue_path(language: str) -> Path:
    """Where the ``.po`` of ``language`` lives (it may not exist)."""
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def _load(language: str) -> _gettext.NullTranslations:
    """The translations of ``language``; English (``NullTranslations``) when it has none, or
    its catalogue cannot be read."""
    if language == SOURCE_LANGUAGE:
        return _gettext.NullTranslations()
    try:
        from babel.messages.mofile import write_mo

        with open(catalogue_path(language), "rb") as f:
            catalog = read_po_file(f, locale=language, domain=DOMAIN)
        buffer = io.BytesIO()
        write_mo(buffer, catalog, use_fuzzy=False)
        buffer.seek(0)
        return _gettext.GNUTranslations(buffer)
    except Exception:  # missing, corrupt, Babel absent: English, never a crash
        return _gettext.NullTranslations()


def translations(language: str | None = None) -> _gettext.NullTranslations:
    """The (cached) translations of ``language`` (default: :func:`current_language`)."""
    language = current_language() if language is None else language
    found = _cache.get(language)
    if found is None:
        with _lock:
            found = _cache.get(language)
            if found is None:
                found = _cache[language] = _load(language)
    return found


def clear_cache() -> None:
    """Forget the loaded catalogues (after a catalogue changed, or in tests)."""
    with _lock:
        _cache.clear()


def gettext(message: str) -> str:
    """``message`` in the current language; unchanged in English or when it has no translation.
    The empty string stays empty (gettext would give the catalogue's header)."""
    if not message:
        return message
    return translations().gettext(message)


_ = gettext


def ngettext(singular: str, plural: str, n: int) -> str:
    """The form of ``singular``/``plural`` for ``n`` in the current language."""
    return translations().ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark ``message`` for translation where it is defined (a hint, a task): returned
    unchanged, translated by :func:`gettext` where it is shown."""
    return message


# --------------------------------------------------------------------------- the catalogues


def extract() -> Any:
    """Every message marked in the package, as a Babel ``Catalog`` (the template)."""
    from babel.messages.catalog import Catalog
    from babel.messages.extract import extract_from_dir

    template = Catalog(domain=DOMAIN, project="dlcourse", charset="utf-8")
    found = extract_from_dir(
        str(PACKAGE_DIR),
        method_map=[("**.py", "python")],
        keywords=KEYWORDS,
        comment_tags=("TRANSLATORS:",),
        strip_comment_tags=True,
    )
    for filename, lineno, message, comments, context in found:
        path = f"dlcourse/{filename}".replace(os.sep, "/")
        template.add(message, None, [(path, lineno)], auto_comments=comments, context=context)
    # The notebooks' titles (data in the course map, shown by the progress report)
    from dlcourse.course import NOTEBOOKS

    for nb in NOTEBOOKS:
        template.add(nb.title, None, [("dlcourse/course.py", 0)], auto_comments=["notebook title"])
    return template


def read_catalogue(language: str) -> Any:
    """The ``.po`` of ``language`` as a Babel ``Catalog``."""
    with open(catalogue_path(language), "rb") as f:
        return read_po_file(f, locale=language, domain=DOMAIN)


_PO_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def read_po_file(handle: Any, **options: Any) -> Any:
    """Babel's ``read_po``, with a fuzzy message's previous English read back.

    :func:`write_po_file` keeps it as ``#| msgid "..."`` lines; Babel writes those but reads
    them as translator comments, and the next write wrapped them into comment lines that no
    longer parse: each update of a catalogue with fuzzy messages added a garbled copy. Here the
    ``#|`` lines become ``previous_id`` again (a line break Babel's wrapping made at a hyphen
    comes back as a space: the text is a hint for the translator)."""
    from babel.messages.pofile import read_po, unescape

    catalog = read_po(handle, **options)
    for message in [*catalog, *catalog.obsolete.values()]:
        previous = [c for c in message.user_comments if c.startswith("|")]
        if not previous:
            continue
        message.user_comments = [c for c in message.user_comments if not c.startswith("|")]
        text = " ".join(c[1:].strip() for c in previous)
        ids = [part.strip() for part in text.split("msgid_plural")]
        if ids[0].startswith("msgid"):
            ids[0] = ids[0][len("msgid") :]
            message.previous_id = [
                "".join(unescape(f'"{piece}"') for piece in _PO_STRING.findall(part))
                for part in ids
            ]
    return catalog


def write_po_file(catalog: Any, path: Path) -> Path:
    """Write ``catalog`` to ``path`` as a ``.po``, atomically: Babel's ``write_po`` with no
    re-wrapping (``width=0``: a message's lines stay lines, diffs stay small) and a fuzzy
    message's previous English kept (``#| msgid``), for the translator to compare. Also used
    for the notebooks' catalogues (:mod:`dlcourse.machinery.translations`)."""
    from babel.messages.pofile import write_po

    from dlcourse.machinery.atomic import write_bytes_atomically

    buffer = io.BytesIO()
    write_po(buffer, catalog, width=0, sort_output=False, include_previous=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(path, buffer.getvalue())
    return path


def write_catalogue(catalog: Any, language: str) -> Path:
    """Write ``catalog`` as the ``.po`` of ``language``."""
    return write_po_file(catalog, catalogue_path(language))


def update(language: str = "ko") -> Path:
    """Re-extract and merge into the ``.po`` of ``language`` (a new one when it has none):
    new messages empty, changed ones fuzzy, removed ones obsolete."""
    from babel.messages.catalog import Catalog

    template = extract()
    try:
        catalog = read_catalogue(language)
    except FileNotFoundError:
        catalog = Catalog(locale=language, domain=DOMAIN, project="dlcourse", charset="utf-8")
    merge_template(catalog, template)  # removed messages: gone from the code, gone from here
    return write_catalogue(catalog, language)


def merge_template(catalog: Any, template: Any) -> None:
    """Merge ``template``'s messages into ``catalog`` in place (Babel's ``Catalog.update``): new
    messages empty, changed ones fuzzy with their previous English, removed ones dropped (they
    are in git's history). A message still fuzzy from an earlier merge keeps its previous
    English (Babel's update forgets it once the English matches again), and nothing else in the
    file changes: no new creation date, no header rewritten."""
    previous = {(m.id, m.context): m.previous_id for m in catalog if m.id and m.fuzzy}
    catalog.update(template, update_header_comment=False, update_creation_date=False)
    catalog.obsolete.clear()
    for message in catalog:
        if message.fuzzy and not message.previous_id:
            message.previous_id = previous.get((message.id, message.context)) or []


def missing(language: str = "ko") -> list[str]:
    """The messages of the code with no current translation in ``language`` (empty or fuzzy)."""
    catalog = read_catalogue(language)
    lacking = []
    for message in extract():
        if not message.id:
            continue
        found = catalog.get(message.id)
        strings = found.string if found is not None else None
        if isinstance(strings, tuple | list):
            strings = "".join(strings) if all(strings) else ""
        if found is None or not strings or found.fuzzy:
            lacking.append(message.id if isinstance(message.id, str) else message.id[0])
    return lacking


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command, languages = (args[0] if args else "status"), (args[1:] or ["ko"])
    if command == "extract":
        for language in languages:
            print(f"wrote {update(language)}")
        return 0
    if command == "status":
        total = sum(1 for m in extract() if m.id)
        for language in languages:
            lacking = missing(language)
            print(f"{language}: {total - len(lacking)} of {total} messages translated")
            for message in lacking:
                print(f"  missing: {message[:70]!r}")
        return 0
    print("usage: python -m dlcourse.i18n extract|status [LANG ...]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
