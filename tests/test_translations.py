"""dlcourse.machinery.translations: the Korean edition from one source.

Every markdown cell of every notebook has a current Korean translation (none missing, none
fuzzy) whose inline code, maths, link targets and numbers are the English cell's; the
catalogues are gettext files Babel reads, in step with the notebooks; a changed English cell
turns fuzzy and is not used; the Korean learner copies are the English ones with the prose
swapped (code, outputs, stubs and checks the same), made from the learner's copy in the other
language when there is one, so switching language loses nothing; `dlcourse lab --lang ko` and
`make lab LANG=ko` choose the Korean copies and JupyterLab's Korean interface.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from dlcourse.machinery import translations as tr
from dlcourse.machinery import workspace
from dlcourse.machinery.notebooks import NOTEBOOK_DIR, cell_source, course_notebooks

ROOT = NOTEBOOK_DIR.parent
NOTEBOOKS = course_notebooks()
IDS = [p.stem for p in NOTEBOOKS]


# --------------------------------------------------------------------------- the catalogues


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=IDS)
def test_every_markdown_cell_has_a_current_korean_translation(notebook: Path) -> None:
    catalogue = tr.load_catalogue(tr.catalogue_path(notebook, "ko"), "ko")
    template = tr.notebook_template(notebook)
    problems = []
    for message in template:
        if not message.id:
            continue
        found = catalogue.get(message.id, context=message.context)
        if found is None or not found.string:
            problems.append(f"{message.context}: missing")
        elif found.fuzzy:
            problems.append(f"{message.context}: fuzzy (the English changed since)")
    assert not problems, (
        f"{notebook.name}: {len(problems)} cells without a current Korean translation "
        f"(`dlcourse translations update`, then translate them in "
        f"{tr.catalogue_path(notebook, 'ko').relative_to(ROOT)}):\n" + "\n".join(problems)
    )


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=IDS)
def test_code_maths_links_and_numbers_are_the_same_in_both_languages(notebook: Path) -> None:
    catalogue = tr.load_catalogue(tr.catalogue_path(notebook, "ko"), "ko")
    differences = []
    for message in tr.notebook_template(notebook):
        found = catalogue.get(message.id, context=message.context) if message.id else None
        if found is None or not found.string:
            continue
        english, korean = tr.invariants(message.id), tr.invariants(found.string)
        for kind in english:
            if english[kind] != korean[kind]:
                differences.append(f"{message.context} {kind}: {english[kind]} vs {korean[kind]}")
    assert not differences, "\n".join(differences)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=IDS)
def test_the_catalogue_is_in_step_with_its_notebook(notebook: Path, tmp_path: Path) -> None:
    """Only messages of cells that exist (no stale ones), and update_catalogue changes nothing."""
    path = tr.catalogue_path(notebook, "ko")
    catalogue = tr.load_catalogue(path, "ko")
    contexts = {m.context for m in tr.notebook_template(notebook) if m.id}
    assert {m.context for m in catalogue if m.id} <= contexts
    assert not catalogue.obsolete
    shutil.copytree(ROOT / "locale", tmp_path / "locale")
    tr.update_catalogue(notebook, "ko", locale_dir=tmp_path / "locale")
    rewritten = tr.catalogue_path(notebook, "ko", tmp_path / "locale")
    assert rewritten.read_bytes() == path.read_bytes()  # an update with nothing new: no churn
    again = tr.load_catalogue(rewritten, "ko")
    assert [(m.context, m.id, m.string, m.fuzzy) for m in again if m.id] == [
        (m.context, m.id, m.string, m.fuzzy) for m in catalogue if m.id
    ]


def test_the_catalogues_are_gettext_files_a_translator_can_open() -> None:
    """Standard PO: a header naming the language and UTF-8, one msgctxt per message."""
    for notebook in NOTEBOOKS:
        text = tr.catalogue_path(notebook, "ko").read_text(encoding="utf-8")
        assert '"Language: ko\\n"' in text
        assert "charset=utf-8" in text
        assert text.count("\nmsgctxt ") == len([m for m in tr.notebook_template(notebook) if m.id])


def test_the_korean_prose_uses_the_notes_terms() -> None:
    """The glossary's Korean terms appear in the notebook that teaches them."""
    from dlcourse.course import GLOSSARY

    missing = []
    for entry in GLOSSARY:
        notebook = next(p for p in NOTEBOOKS if p.name.startswith(f"{entry.notebook:02d}"))
        catalogue = tr.load_catalogue(tr.catalogue_path(notebook, "ko"), "ko")
        korean = "\n".join(m.string for m in catalogue if m.id)
        term = entry.korean.split(" (")[0]
        if term not in korean:
            missing.append(f"{entry.notebook:02d}: {term} ({entry.english})")
    assert not missing, "terms of the notes not used in their notebook:\n" + "\n".join(missing)


PAGE_NAMES = list(tr.PAGES)


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_every_page_block_has_a_current_korean_translation(name: str) -> None:
    catalogue = tr.load_catalogue(tr.page_catalogue_path(name, "ko"), "ko")
    problems, differences = [], []
    for message in tr.page_template(name):
        if not message.id:
            continue
        found = catalogue.get(message.id, context=message.context)
        if found is None or not found.string or found.fuzzy:
            problems.append(f"{message.context}: {message.id[:60]!r}")
            continue
        english, korean = tr.invariants(message.id), tr.invariants(found.string)
        differences += [
            f"{message.context} {kind}: {english[kind]} vs {korean[kind]}"
            for kind in english
            if english[kind] != korean[kind]
        ]
    assert not problems, (
        f"{name}: blocks without a current Korean translation (`dlcourse translations update`, "
        f"then translate them in locale/ko/pages/{name}.po):\n" + "\n".join(problems)
    )
    assert not differences, "\n".join(differences)


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_the_page_catalogue_is_in_step_with_its_page(name: str) -> None:
    catalogue = tr.load_catalogue(tr.page_catalogue_path(name, "ko"), "ko")
    wanted = {(m.context, m.id) for m in tr.page_template(name) if m.id}
    assert {(m.context, m.id) for m in catalogue if m.id} <= wanted
    assert not catalogue.obsolete


def test_the_korean_readme_is_written_from_its_catalogue(tmp_path: Path) -> None:
    made = tr.write_korean_readme(out=tmp_path / "README.ko.md").read_text(encoding="utf-8")
    stored = (ROOT / "README.ko.md").read_text(encoding="utf-8")
    assert stored == made, "README.ko.md is stale: run `dlcourse translations update`"
    assert "make lab LANG=ko" in stored and "## " in stored
    english = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "README.ko.md" in english.split("\n## ", 1)[0], "README.md does not point to it"


def test_a_page_block_changed_in_english_turns_fuzzy(tmp_path: Path) -> None:
    page = tmp_path / "index.md"
    page.write_text(
        tr.PAGES["index"].read_text(encoding="utf-8").replace("trainable", "trainable, fast"),
        encoding="utf-8",
    )
    shutil.copytree(ROOT / "locale", tmp_path / "locale")
    status = tr.update_page_catalogue("index", "ko", tmp_path / "locale", page)
    assert status.fuzzy == 1
    text, untranslated = tr.translate_page("index", "ko", tmp_path / "locale", page)
    assert untranslated == 1 and "trainable, fast" in text


def test_markdown_blocks_keep_fenced_blocks_whole() -> None:
    text = "# T\n\npara one\nline two\n\n```{only} public\nA\n\nB\n```\n\n- a\n- b\n"
    assert tr.markdown_blocks(text) == [
        "# T",
        "para one\nline two",
        "```{only} public\nA\n\nB\n```",
        "- a\n- b",
    ]


# --------------------------------------------------------------------------- behaviour


def _tiny_course(tmp_path: Path) -> tuple[Path, Path]:
    """A course of one notebook (a copy of 00) and its Korean catalogue, under tmp_path."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    shutil.copy(NOTEBOOKS[0], notebooks / NOTEBOOKS[0].name)
    locale = tmp_path / "locale"
    shutil.copytree(ROOT / "locale" / "ko", locale / "ko")
    return notebooks / NOTEBOOKS[0].name, locale


def test_a_changed_english_cell_turns_fuzzy_and_is_not_used(tmp_path: Path) -> None:
    notebook, locale = _tiny_course(tmp_path)
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    cell["source"] = cell_source(cell) + "\nOne more sentence.\n"
    notebook.write_text(json.dumps(nb), encoding="utf-8")
    status = tr.update_catalogue(notebook, "ko", locale_dir=locale)
    assert status.fuzzy == 1 and not status.complete
    catalogue = tr.load_catalogue(tr.catalogue_path(notebook, "ko", locale), "ko")
    message = catalogue.get(cell_source(cell), context=tr.cell_context(notebook, cell))
    assert message.fuzzy and message.string  # the old translation kept, for the translator
    translated, untranslated = tr.translate_notebook(nb, notebook, "ko", locale_dir=locale)
    assert untranslated == 1
    shown = translated["cells"][nb["cells"].index(cell)]["source"]
    assert shown.startswith(tr.UNTRANSLATED_MARK["ko"]) and "One more sentence." in shown


def test_a_fuzzy_message_survives_updates_and_rewrites_unchanged(tmp_path: Path) -> None:
    # Babel writes a fuzzy message's previous English as `#| msgid` lines but reads them back as
    # comments: the next write once garbled them into `# |` lines that grew with every update.
    notebook, locale = _tiny_course(tmp_path)
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    old = cell_source(cell)
    cell["source"] = (
        old + "\nOne more sentence, long enough to wrap the comment line once or twice.\n"
    )
    notebook.write_text(json.dumps(nb), encoding="utf-8")
    path = tr.catalogue_path(notebook, "ko", locale)
    tr.update_catalogue(notebook, "ko", locale_dir=locale)
    first = path.read_bytes()
    assert b"\n#| msgid " in first and b"\n# |" not in first
    tr.update_catalogue(notebook, "ko", locale_dir=locale)  # nothing changed since: same bytes
    assert path.read_bytes() == first
    catalogue = tr.load_catalogue(path, "ko")
    message = catalogue.get(cell_source(cell), context=tr.cell_context(notebook, cell))
    assert message.fuzzy and not message.user_comments
    assert " ".join(message.previous_id[0].split()) == " ".join(old.split())
    tr._write_catalogue(catalogue, path)  # a translator's tool loads and saves it: same bytes
    assert path.read_bytes() == first


def test_translating_swaps_the_prose_and_keeps_code_and_outputs() -> None:
    for notebook in NOTEBOOKS:
        nb = json.loads(notebook.read_text(encoding="utf-8"))
        korean, untranslated = tr.translate_notebook(nb, notebook, "ko")
        assert untranslated == 0, notebook.name
        assert len(korean["cells"]) == len(nb["cells"])
        for en, ko in zip(nb["cells"], korean["cells"], strict=True):
            assert en.get("id") == ko.get("id") and en["cell_type"] == ko["cell_type"]
            if en["cell_type"] == "code":
                assert en == ko
            elif cell_source(en).strip():
                assert cell_source(ko) != cell_source(en)
        back, _ = tr.translate_notebook(korean, notebook, "en")
        assert [cell_source(c) for c in back["cells"]] == [cell_source(c) for c in nb["cells"]]
        assert korean["metadata"]["dlcourse"]["language"] == "ko"


def test_a_markdown_cell_the_learner_wrote_in_is_kept(tmp_path: Path) -> None:
    notebook = NOTEBOOKS[3]
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    index = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "markdown")
    nb["cells"][index]["source"] = "My answer: the steps zig-zag.\n"
    korean, _ = tr.translate_notebook(nb, notebook, "ko")
    assert korean["cells"][index]["source"] == "My answer: the steps zig-zag.\n"


def test_unknown_language_and_broken_catalogue_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(tr.TranslationError, match=r"taught in en .* ko"):
        tr.check_language("fr")
    assert tr.check_language("ko_KR.UTF-8") == "ko"
    notebook, locale = _tiny_course(tmp_path)
    path = tr.catalogue_path(notebook, "ko", locale)
    path.write_text('msgid "unterminated\n', encoding="utf-8")
    with pytest.raises(tr.TranslationError, match="git checkout"):
        tr.load_catalogue(path, "ko")


# --------------------------------------------------------------------------- learner copies


def test_korean_copies_are_the_english_student_copies_with_korean_prose(tmp_path: Path) -> None:
    root = tmp_path / "work"
    english = workspace.prepare(tmp_path / "english")  # untouched English copies, to compare
    korean = workspace.prepare(root, lang="ko")
    assert {c.status for c in korean} == {"created"}
    assert all(c.path.parent == root / "ko" for c in korean)
    for en_copy, ko_copy in zip(english, korean, strict=True):
        en = json.loads(en_copy.path.read_text(encoding="utf-8"))
        ko = json.loads(ko_copy.path.read_text(encoding="utf-8"))
        assert [c["cell_type"] for c in en["cells"]] == [c["cell_type"] for c in ko["cells"]]
        for a, b in zip(en["cells"], ko["cells"], strict=True):
            if a["cell_type"] == "code":  # the same stubs, check cells and stored outputs
                assert a == b, ko_copy.path.name
        assert "raise NotImplementedError" in json.dumps(ko) or ko_copy.source.name.startswith("08")
        assert not any(tr.UNTRANSLATED_MARK["ko"] in cell_source(c) for c in ko["cells"]), (
            f"{ko_copy.path.name}: a cell left in English"
        )
    # the Korean copies are a workspace of their own, and record progress into work/
    assert workspace.is_workspace(root / "ko")


def test_switching_language_carries_the_learners_code_over(tmp_path: Path) -> None:
    root = tmp_path / "work"
    workspace.prepare(root)
    copy = root / NOTEBOOKS[1].name
    nb = json.loads(copy.read_text(encoding="utf-8"))
    code = next(c for c in nb["cells"] if "raise NotImplementedError" in cell_source(c))
    code["source"] = cell_source(code).replace("raise NotImplementedError", "return 42  # mine")
    copy.write_text(json.dumps(nb), encoding="utf-8")
    copies = workspace.prepare(root, lang="ko")
    assert {c.status for c in copies} == {"created from work/"}
    assert "made from your copies in work/" in workspace.describe(copies, tmp_path)
    ko = (root / "ko" / NOTEBOOKS[1].name).read_text(encoding="utf-8")
    assert "return 42  # mine" in ko
    # the English copy is never touched, and a second prepare keeps the Korean one
    assert "return 42  # mine" in copy.read_text(encoding="utf-8")
    assert {c.status for c in workspace.prepare(root, lang="ko")} == {"kept"}
    # and back: an English copy deleted is made again from the Korean one, code kept
    copy.unlink()
    again = {c.path.name: c.status for c in workspace.prepare(root)}
    assert again[NOTEBOOKS[1].name] == "created from work/ko/"
    assert "return 42  # mine" in copy.read_text(encoding="utf-8")
    english = json.loads(copy.read_text(encoding="utf-8"))
    assert english["cells"][0]["source"] == cell_source(
        json.loads(NOTEBOOKS[1].read_text(encoding="utf-8"))["cells"][0]
    )


@pytest.mark.parametrize(
    "damage",
    ["{not json", '{"cells": 3}', '{"cells": [{"id": 5}], "metadata": []}', "[]", ""],
    ids=["truncated", "cells-not-a-list", "odd-cells", "a-list", "empty"],
)
def test_an_unreadable_copy_in_the_other_language_gives_a_fresh_copy(
    tmp_path: Path, damage: str
) -> None:
    root = tmp_path / "work"
    workspace.prepare(root)
    broken = root / NOTEBOOKS[2].name
    broken.write_text(damage, encoding="utf-8")
    copies = {c.path.name: c.status for c in workspace.prepare(root, lang="ko")}
    assert copies[NOTEBOOKS[2].name] == "created"  # fresh, not from the broken one
    assert broken.read_text(encoding="utf-8") == damage  # which is left as it is
    ko = json.loads((root / "ko" / NOTEBOOKS[2].name).read_text(encoding="utf-8"))
    assert ko["metadata"]["dlcourse"]["language"] == "ko"


@pytest.mark.parametrize("language", ["fr", ["ko"], None, 7, "en_GB", "ko_KR"])
def test_a_copys_odd_language_mark_is_read_as_english_or_korean(language: object) -> None:
    """An unknown mark counts as English; ``ko_KR`` as Korean, so the English cells of this copy
    then look like the learner's own words and are kept."""
    notebook = NOTEBOOKS[0]
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    nb["metadata"]["dlcourse"] = {"language": language}
    korean, _ = tr.translate_notebook(nb, notebook, "ko")
    first = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "markdown")
    catalogue = tr.load_catalogue(tr.catalogue_path(notebook, "ko"), "ko")
    english = cell_source(nb["cells"][first])
    wanted = catalogue.get(english, context=tr.cell_context(notebook, nb["cells"][first])).string
    expected = english if language == "ko_KR" else wanted
    assert cell_source(korean["cells"][first]) == expected


def test_reset_in_korean_backs_up_and_writes_a_fresh_korean_copy(tmp_path: Path) -> None:
    root = tmp_path / "work"
    workspace.prepare(root, lang="ko")
    fresh, backup = workspace.reset("03", root, lang="ko")
    assert fresh == root / "ko" / NOTEBOOKS[3].name and backup is not None
    assert backup.parent == root / "ko" / "backups"
    assert json.loads(fresh.read_text(encoding="utf-8"))["metadata"]["dlcourse"]["language"] == "ko"


def test_progress_from_a_korean_copy_is_recorded_with_the_english_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dlcourse.exercises import progress

    root = tmp_path / "work"
    workspace.prepare(root, lang="ko")
    workspace.prepare(root)
    monkeypatch.delenv(progress.PROGRESS_ENV_VAR, raising=False)
    monkeypatch.setenv("JPY_SESSION_NAME", str(root / "ko" / NOTEBOOKS[1].name))
    assert progress.progress_path() == root / progress.PROGRESS_FILE
    monkeypatch.setenv("JPY_SESSION_NAME", str(root / NOTEBOOKS[1].name))
    assert progress.progress_path() == root / progress.PROGRESS_FILE


# --------------------------------------------------------------------------- commands


def test_lab_in_korean_uses_the_korean_copies_and_interface(tmp_path: Path) -> None:
    pytest.importorskip("jupyterlab")
    from dlcourse.machinery import lab

    env = lab.lab_environment({"PATH": "/usr/bin"}, lang="ko")
    paths = env["JUPYTER_CONFIG_PATH"].split(":")
    assert paths[:2] == [str(lab.CONFIG_DIR / "ko"), str(lab.CONFIG_DIR)]
    overrides = json.loads(
        (lab.CONFIG_DIR / "ko" / "labconfig" / "default_setting_overrides.json").read_text()
    )
    assert overrides["@jupyterlab/translation-extension:plugin"]["locale"] == "ko_KR"
    pytest.importorskip("jupyterlab_language_pack_ko_KR")  # the lab extra installs it
    assert lab.lab_environment({"PATH": "/usr/bin"})["JUPYTER_CONFIG_PATH"] == str(lab.CONFIG_DIR)
    (tmp_path / "work" / "ko").mkdir(parents=True)
    start = tmp_path / "work" / "ko" / "00_welcome.ipynb"
    command = lab.lab_command(start, course_dir=tmp_path, lang="ko")
    assert "--ContentsManager.preferred_dir=work/ko" in command
    assert "--CourseContentsManager.language=ko" in command
    assert command[-1] == "work/ko/00_welcome.ipynb"
    # a solution notebook opened by mistake names the learner's Korean copy, in Korean
    import nbformat

    nb = nbformat.read(str(NOTEBOOKS[3]), as_version=4)
    banner = lab.solution_view(nb, f"notebooks/{NOTEBOOKS[3].name}", "ko").cells[0].source
    assert f"work/ko/{NOTEBOOKS[3].name}" in banner and "읽기 전용" in banner


def test_the_commands_take_a_language() -> None:
    from dlcourse.machinery.cli import build_parser, main

    args = build_parser().parse_args(["lab", "--lang", "ko"])
    assert args.lang == "ko"
    assert build_parser().parse_args(["reset", "03", "--lang", "ko"]).lang == "ko"
    assert main(["lab", "--lang", "fr", "--dry-run"]) == 1


def test_translations_status_command(capsys: pytest.CaptureFixture[str]) -> None:
    from dlcourse.machinery.cli import main

    code = main(["translations", "status"])
    out = capsys.readouterr().out
    pages = len(tr.PAGES)
    assert f"of {len(NOTEBOOKS) + pages} notebooks and pages fully translated" in out
    complete = all(s.complete for s in tr.status("ko") + tr.page_status("ko"))
    assert code == (0 if complete else 1)


def test_make_lab_lang_ko_opens_the_korean_edition() -> None:
    def dry(*extra: str) -> str:
        return subprocess.run(
            ["make", "--no-print-directory", "-n", "-W", "pyproject.toml", "VENV=.venv",
             "lab", *extra],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip

    korean = dry("LANG=ko")
    assert "dlcourse lab --lang ko" in korean and "env LANG=C.UTF-8" in korean
    english = dry()
    assert "--lang" not in english and "LANG=C.UTF-8" not in english
