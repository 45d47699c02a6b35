"""The course website's two editions (docs/site/build.py): ``make site``, ``make site-instructor``.

The public edition shows what a learner sees: every exercise's reference lines are looked for in
every file it serves (the pages as text, the notebooks to download, the search index) and none
may be there; the instructor edition, built the same way, must hold every one (so the search
finds them when they are there). Neither shows the lines only the tests read (nbval's markers).
In a real Chromium: the "open in JupyterLab" link follows the address the learner gives, and
opens the learner's copy in a JupyterLab on a port that is not 8888.
"""

from __future__ import annotations

import html
import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dlcourse.exercises.student import BEGIN, END, STUB, solution_regions, student_notebook
from dlcourse.machinery.notebooks import cell_source, course_notebooks
from tests import _browser
from tests.test_packaging import _make_dry_run

NOTEBOOKS = course_notebooks()
BINARY = {".png", ".jpg", ".svg", ".gif", ".ico", ".woff", ".woff2", ".ttf", ".inv"}


def _load_builder() -> Any:
    spec = importlib.util.spec_from_file_location(
        "site_build", _browser.ROOT / "docs" / "site" / "build.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _load_builder()


# --------------------------------------------------------------------------- what a page shows


def test_the_lines_only_tests_and_tools_read_are_left_out() -> None:
    source = "\n".join([
        "# NBVAL_IGNORE_OUTPUT",
        "x = f(1,2)  # fmt: skip",
        "    # NBVAL_SKIP",
        "import os  # noqa: E402, F401",
        "y = g()  # type: ignore[attr-defined]",
        'z = "kept  # noqa"',
        "# fmt: off",
        "# a comment for the learner",
    ])  # fmt: skip
    assert build.without_tool_comments(source).splitlines() == [
        "x = f(1,2)",
        "import os",
        "y = g()",
        'z = "kept  # noqa"',
        "# a comment for the learner",
    ]


def test_the_public_edition_shows_the_learners_copy_and_the_instructors_the_solutions() -> None:
    path = NOTEBOOKS[0]
    nb = json.loads(path.read_text(encoding="utf-8"))
    before = json.dumps(nb)
    public = build.shown_notebook(nb, path.name, "public")
    instructor = build.shown_notebook(nb, path.name, "instructor")
    assert json.dumps(nb) == before  # the stored notebook is left alone
    code = [cell_source(c) for c in public["cells"] if c["cell_type"] == "code"]
    assert sum(s.count(STUB) for s in code) == solution_regions(nb) > 0
    assert not any(BEGIN in s or "NBVAL" in s for s in code)
    solutions = [cell_source(c) for c in instructor["cells"] if c["cell_type"] == "code"]
    assert sum(s.count(BEGIN) for s in solutions) == solution_regions(nb)
    assert not any("NBVAL" in s for s in solutions)
    with pytest.raises(ValueError, match=r"unknown edition 'teacher'.*public, instructor"):
        build.shown_notebook(nb, path.name, "teacher")


def test_make_builds_each_edition() -> None:
    build_py = "/nonexistent/venv/bin/python docs/site/build.py"
    assert _make_dry_run("site")[-1] == build_py
    assert _make_dry_run("site-instructor")[-1] == f"{build_py} --instructor"


# --------------------------------------------------------------------------- the built sites


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_nb")
    folder = tmp_path_factory.mktemp("sites")
    return {
        edition: build.build(folder / edition, edition=edition).parent for edition in build.EDITIONS
    }


def _solution_lines() -> dict[str, set[str]]:
    """Each notebook's reference lines (inside its solution regions) that appear nowhere in the
    student versions: the lines that give an answer away."""
    inside_regions: dict[str, set[str]] = {}
    student: set[str] = set()
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text(encoding="utf-8"))
        for cell in student_notebook(nb, path.name)["cells"]:
            student.update(line.strip() for line in cell_source(cell).splitlines())
        lines = inside_regions.setdefault(path.name, set())
        for cell in nb["cells"]:
            inside = False
            for line in cell_source(cell).splitlines():
                if line.strip() in (BEGIN, END):
                    inside = line.strip() == BEGIN
                elif inside and line.strip() and not line.strip().startswith("#"):
                    lines.add(build.without_tool_comments(line).strip())
    return {name: lines - student for name, lines in inside_regions.items()}


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def _served_lines(folder: Path) -> dict[str, set[str]]:
    """Every file the site serves, as the lines a reader could see in it: a page's text (tags
    dropped, entities decoded), every string of a notebook (sources and outputs), other text files
    as they are."""
    served: dict[str, set[str]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix in BINARY:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if path.suffix == ".html":
            text = html.unescape(re.sub(r"<[^>]*>", "", text))
        elif path.suffix == ".ipynb":
            text = "\n".join(_strings(json.loads(text)))
        served[path.relative_to(folder).as_posix()] = {line.strip() for line in text.splitlines()}
    return served


@pytest.mark.slow
def test_the_public_site_has_no_solution_on_a_page_or_in_a_download(sites: dict[str, Path]) -> None:
    answers = _solution_lines()
    assert sum(map(len, answers.values())) >= 90  # the 24 exercises' reference lines
    served = _served_lines(sites["public"])
    assert {p.name for p in NOTEBOOKS} <= set(served)  # the notebooks to download
    leaks = [
        f"{notebook}: {line!r} in {where}"
        for notebook, lines in answers.items()
        for line in sorted(lines)
        for where, shown in served.items()
        if line in shown
    ]
    assert not leaks, "the public site gives solutions away:\n" + "\n".join(leaks)


def _words(text: str) -> list[str]:
    """The phrases the instructor's title is looked for as: "instructor edition", "강사용"."""
    return ["instructor edition"] * ("instructor edition" in text) + ["강사용"] * ("강사용" in text)


@pytest.mark.slow
def test_the_instructor_site_has_every_solution_and_says_it_is_the_instructors(
    sites: dict[str, Path],
) -> None:
    served = _served_lines(sites["instructor"])
    for notebook, lines in _solution_lines().items():
        page = served[f"notebooks/{Path(notebook).stem}.html"]
        download = served[notebook]
        missing = sorted(line for line in lines if line not in page or line not in download)
        assert not missing, f"{notebook}: solution lines not on the instructor edition: {missing}"
    pages = sorted(sites["instructor"].rglob("*.html"))
    untitled = [
        p.name
        for p in pages
        if not {"instructor edition", "강사용"} & set(_words(p.read_text(encoding="utf-8").lower()))
    ]
    assert len(pages) >= 12 and not untitled, f"pages not titled as the instructor's: {untitled}"
    public = (sites["public"] / "index.html").read_text(encoding="utf-8").lower()
    assert "instructor edition" not in public


@pytest.mark.slow
def test_both_sites_show_the_stored_outputs_without_test_markers(sites: dict[str, Path]) -> None:
    # The figures the learner's copies keep: all but those of exercise and check cells.
    figures = {"public": 0, "instructor": 0}
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text(encoding="utf-8"))
        for edition, shown in (("public", student_notebook(nb, path.name, keep_outputs=True)),
                               ("instructor", nb)):  # fmt: skip
            figures[edition] += sum(
                "image/png" in out.get("data", {})
                for cell in shown["cells"]
                for out in cell.get("outputs", [])
            )
    assert 20 <= figures["public"] <= figures["instructor"]
    for edition, folder in sites.items():
        drawn = sum(
            page.read_text(encoding="utf-8").count("<img")
            for page in (folder / "notebooks").glob("*.html")
        )
        assert drawn == figures[edition], f"{edition}: {drawn} figures on the pages"
        for where, lines in _served_lines(folder).items():
            marked = sorted(line for line in lines if "NBVAL_" in line or "# fmt:" in line)
            assert not marked, f"{edition}, {where}: test-only lines shown: {marked}"


# --------------------------------------------------------------------------- in a browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from _browser.browser_fixture()


LINK = "a.dlcourse-lab-link"


@pytest.mark.browser
@pytest.mark.slow
def test_the_open_in_jupyterlab_link_follows_the_address_the_learner_gives(
    browser: Any, sites: dict[str, Path]
) -> None:
    context = browser.new_context()
    page = context.new_page()
    try:
        with _browser.static_site(sites["public"]) as site:
            page.goto(f"{site}/notebooks/01_gradient_descent.html")
            link = page.locator(LINK)
            default = "http://localhost:8888/lab/tree/work/01_gradient_descent.ipynb"
            assert link.get_attribute("href") == default
            page.click("details.dlcourse-lab-other summary")
            page.fill("form.dlcourse-lab-form input", "not an address at all")
            page.click("form.dlcourse-lab-form button")
            assert "not an address" in page.inner_text(".dlcourse-lab-note")
            assert link.get_attribute("href") == default
            printed = "http://127.0.0.1:8889/lab/tree/work/00_welcome.ipynb?token=0123abcd"
            page.fill("form.dlcourse-lab-form input", printed)
            page.click("form.dlcourse-lab-form button")
            moved = "http://127.0.0.1:8889/lab/tree/work/01_gradient_descent.ipynb"
            assert link.get_attribute("href") == moved
            # Kept for the other pages of the site (without the token).
            page.goto(f"{site}/notebooks/07_recurrent_networks.html")
            assert page.locator(LINK).get_attribute("href") == (
                "http://127.0.0.1:8889/lab/tree/work/07_recurrent_networks.ipynb"
            )
            kept = page.evaluate("() => JSON.stringify(window.localStorage)")
            assert "8889" in kept and "0123abcd" not in kept
            # A hub's address keeps its base path.
            page.click("details.dlcourse-lab-other summary")
            page.fill("form.dlcourse-lab-form input", "https://hub.example/user/ana/lab?token=x")
            page.click("form.dlcourse-lab-form button")
            assert page.locator(LINK).get_attribute("href") == (
                "https://hub.example/user/ana/lab/tree/work/07_recurrent_networks.ipynb"
            )
    finally:
        context.close()


@pytest.mark.browser
@pytest.mark.slow
def test_the_link_opens_the_learners_copy_in_a_jupyterlab_on_another_port(
    browser: Any, sites: dict[str, Path], tmp_path: Path
) -> None:
    name = "01_gradient_descent.ipynb"
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        with _browser.static_site(sites["public"]) as site:
            # The learner's copy: the notebook the page offers for download.
            page.goto(f"{site}/notebooks/01_gradient_descent.html")
            download = page.evaluate(
                "() => document.querySelector('.dlcourse-open a[download]').href"
            )
            copy = page.request.get(download).body()
            (tmp_path / "root" / "work").mkdir(parents=True)
            (tmp_path / "root" / "work" / name).write_bytes(copy)
            (tmp_path / "home").mkdir()
            with _browser.jupyterlab(tmp_path / "root", tmp_path / "home") as (base, token):
                assert not base.endswith(":8888")
                page.goto(f"{base}/lab?token={token}")  # the browser make lab opened: logged in
                page.goto(f"{site}/notebooks/01_gradient_descent.html")
                page.click("details.dlcourse-lab-other summary")
                page.fill("form.dlcourse-lab-form input", f"{base}/lab?token={token}")
                page.click("form.dlcourse-lab-form button")
                page.click(LINK)
                page.wait_for_url(f"{base}/lab/tree/work/{name}*", timeout=60_000)
                notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")
                notebook.get_by_text("your code here").first.wait_for(timeout=120_000)
                tab = page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")
                assert name in tab.inner_text()
                _browser.SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(_browser.SCREENSHOTS / "site-open-in-jupyterlab.png"))
    finally:
        context.close()


# --------------------------------------------------------------------------- the Korean site


@pytest.mark.slow
def test_every_page_is_in_both_languages_with_a_switch_to_the_other(
    sites: dict[str, Path],
) -> None:
    from dlcourse.machinery.translations import UNTRANSLATED_MARK

    for edition, folder in sites.items():
        english = sorted(
            p.relative_to(folder)
            for p in folder.rglob("*.html")
            if p.parts[len(folder.parts)] != "ko"
        )
        for relative in english:
            if relative.name in ("search.html", "genindex.html"):
                continue
            korean = folder / "ko" / relative
            assert korean.is_file(), f"{edition}: no Korean page for {relative}"
            en_text = (folder / relative).read_text(encoding="utf-8")
            ko_text = korean.read_text(encoding="utf-8")
            assert (
                'lang="ko"' in ko_text.split(">", 2)[1]
                or '<html class="no-js" lang="ko"' in ko_text
            )
            # each links to the other, and the link resolves
            ko_link = re.search(r'hreflang="ko"\s+href="([^"]+)"', en_text)
            en_link = re.search(r'hreflang="en"\s+href="([^"]+)"', ko_text)
            assert ko_link and en_link, f"{edition}: {relative}: no language switch"
            assert ((folder / relative).parent / ko_link[1]).resolve() == korean.resolve()
            assert (korean.parent / en_link[1]).resolve() == (folder / relative).resolve()
            if relative.parts[0] == "notebooks":
                text = html.unescape(re.sub(r"<[^>]*>", "", ko_text))
                assert re.search(r"[가-힣]{2,}", text), f"{relative}: no Korean on the page"
                assert UNTRANSLATED_MARK["ko"].strip()[:12] not in text, f"{relative}: untranslated"
    page = (sites["public"] / "ko" / "notebooks" / "03_optimizers.html").read_text(encoding="utf-8")
    assert "make lab LANG=ko" in page and "work/ko/03_optimizers.ipynb" in page
