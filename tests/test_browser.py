"""The course in a real browser: every notebook run in JupyterLab, and the course website.

Chromium (a system one, see tests/_browser.py) opens each notebook in a JupyterLab server of this
environment, runs all its cells, and checks what a learner would see: no error output, every
figure drawn, the exercise feedback boxes, a widget that answers its slider, Korean text in a real
font. Then it reads the website ``make site`` builds: no broken internal link or anchor, every
image present, the maths typeset. Screenshots go to build/browser/ for a person to look at.

Run alone with ``make test-browser``. Without Chromium these tests are skipped with the command
that installs it (``make test-browser`` fails instead).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import time
import urllib.parse
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dlcourse.machinery.notebooks import course_notebooks
from tests import _browser

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NOTEBOOKS = course_notebooks()
RUN_TIMEOUT_MS = 300_000  # a notebook's cells; each runs in 60 s under nbval
CHECK_BOX = "border-left:4px solid"  # the exercise feedback box (CheckResult._repr_html_)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from _browser.browser_fixture()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[tuple[str, str]]:
    """JupyterLab over copies of the notebooks (its autosave never touches the stored ones)."""
    root = tmp_path_factory.mktemp("lab-root")
    for path in NOTEBOOKS:
        shutil.copy2(path, root / path.name)
    with _browser.jupyterlab(root, tmp_path_factory.mktemp("lab-home")) as server:
        yield server


def _stored(path: Path) -> dict[str, int]:
    """What the stored notebook shows: figures and feedback boxes outside widgets."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    figures = boxes = 0
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            figures += "image/png" in data
            boxes += "".join(data.get("text/html", "")).count(CHECK_BOX)
    return {"figures": figures, "boxes": boxes}


def _has_exercises(path: Path) -> bool:
    """Whether the course map gives the notebook an exercise module (08, the capstone, has
    none: its learner's turn is not checked)."""
    from dlcourse.course import NOTEBOOKS
    from dlcourse.exercises.registry import exercise_modules

    slug = next(nb.slug for nb in NOTEBOOKS if nb.filename == path.name)
    return f"dlcourse.exercises.{slug}" in exercise_modules()


# The menu bar's labels in JupyterLab's Korean interface (jupyterlab-language-pack-ko-KR).
MENUS_KO = {"Edit": "편집", "Kernel": "커널", "Run": "실행", "File": "파일"}


def _menu(page: Any, menu: str, command: str) -> str:
    """Choose ``command`` in the menu bar's ``menu`` (its English label; the Korean one when the
    interface is Korean); say what happened."""
    try:
        korean = page.locator(f"li.lm-MenuBar-item:has-text('{MENUS_KO.get(menu, menu)}')")
        label = MENUS_KO[menu] if menu in MENUS_KO and korean.count() else menu
        page.click(f"li.lm-MenuBar-item:has-text('{label}')", timeout=10_000)
        item = page.locator(f"li.lm-Menu-item[data-command='{command}']")
        item.wait_for(state="visible", timeout=10_000)
        if "lm-mod-disabled" in (item.get_attribute("class") or ""):
            page.keyboard.press("Escape")
            return f"{command} greyed out"
        item.click(timeout=10_000)
    except Exception as exc:  # Playwright's TimeoutError: something covers the menus
        page.keyboard.press("Escape")
        return f"{command} not reached ({str(exc).splitlines()[0]})"
    return f"{command} chosen"


def _answer_dialogs(page: Any) -> list[str]:
    """Answer any dialog over the page as a learner would: its default button (for JupyterLab's
    "Select Kernel", the preselected Python 3 kernel). Returns what each dialog said."""
    said: list[str] = []
    for _ in range(3):
        dialog = page.locator(".jp-Dialog").first
        if not dialog.count():
            break
        said.append(" ".join(dialog.inner_text().split())[:200])
        dialog.locator(".jp-Dialog-button.jp-mod-accept").first.click(timeout=10_000)
        dialog.wait_for(state="detached", timeout=10_000)
    return said


# The notebook on show (panels of other notebooks may stay in the page, hidden).
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
IDLE = ".jp-Notebook-ExecutionIndicator[data-status='idle']"

# The code cells' prompts of the notebook on show ("[ ]:", "[*]:", "[3]:"), in page scripts.
_PROMPTS = "[...document.querySelectorAll(panel + ' .jp-CodeCell .jp-InputPrompt')]" \
    ".map(p => p.textContent)"  # fmt: skip

# What the notebook on show looks like from outside: its prompts, the tab in front, any dialog.
STATE_JS = f"""
(panel) => {{
  const prompts = {_PROMPTS};
  return {{
    prompts: prompts.length,
    queued: prompts.filter(p => p.includes('*')).length,
    numbered: prompts.filter(p => /\\d/.test(p)).length,
    front: [...document.querySelectorAll('#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current')]
      .map(t => t.textContent),
    dialogs: [...document.querySelectorAll('.jp-Dialog')].map(d => d.innerText.slice(0, 200)),
    kernel: document.querySelector(panel + ' .jp-Notebook-ExecutionIndicator')
      ?.getAttribute('data-status') ?? null,
  }};
}}
"""
# The outputs are cleared: no code cell shows a number or [*].
CLEARED_JS = f"(panel) => {{ const prompts = {_PROMPTS}; " \
    "return prompts.length > 0 && !prompts.some(p => /[\\d*]/.test(p)); }"  # fmt: skip
# Run All has started (from cleared prompts): a cell is queued, or every cell has its number.
STARTED_JS = f"(panel) => {{ const prompts = {_PROMPTS}; " \
    "return prompts.some(p => p.includes('*')) || prompts.every(p => /\\d/.test(p)); }"  # fmt: skip
# The queue is empty: no cell shows [*] (an error clears the rest of the queue).
FINISHED_JS = f"(panel) => !{_PROMPTS}.some(p => p.includes('*'))"


def _run_all(page: Any, name: str, tries: int = 3) -> float:
    """Run every cell from the menus, as a learner does; return the run's seconds.

    With both cores busy, a fresh JupyterLab now and then puts up a "Select Kernel" dialog over
    the first notebook it opens although its kernel reads idle (once the server's log showed two
    kernels started for it and one dropped at once), before Run All or in the middle of it.
    Behind a dialog the menus do nothing (CI once waited a minute for Run All to start), and a
    dialog in mid-run empties the queue. So each try answers a dialog as a learner would (its
    default: the preselected Python 3 kernel), brings the notebook's tab to the front, clears
    the outputs (after the first try: restarts the kernel and clears) and checks they are gone,
    chooses Run All, waits 20 s for a queued cell and then for the queue to empty. A run that a
    dialog interrupted is tried again. A dialog or a second try is reported as a warning; three
    failed tries fail the test with what each one saw.
    """
    seen: list[str] = []
    for attempt in range(1, tries + 1):
        seen += [f"try {attempt}: a dialog said {text!r}" for text in _answer_dialogs(page)]
        page.wait_for_selector(IDLE, timeout=120_000)
        page.click(f"#jp-main-dock-panel .lm-TabBar-tab:has-text('{name}')")
        if attempt == 1:
            did = _menu(page, "Edit", "editmenu:clear-all")
        else:  # a fresh kernel: the last try may have run some cells
            did = _menu(page, "Kernel", "kernelmenu:restart-and-clear")
            with contextlib.suppress(Exception):  # "Restart Kernel?": yes
                page.wait_for_selector(".jp-Dialog", timeout=10_000)
                _answer_dialogs(page)
        try:
            page.wait_for_function(CLEARED_JS, arg=PANEL, timeout=30_000)
            page.wait_for_selector(IDLE, timeout=120_000)
            did += "; " + _menu(page, "Run", "runmenu:run-all")
            page.wait_for_function(STARTED_JS, arg=PANEL, timeout=20_000)
        except Exception:  # Playwright's TimeoutError
            seen.append(f"try {attempt}: {did}; then {page.evaluate(STATE_JS, PANEL)}")
            continue
        start = time.monotonic()
        page.wait_for_function(FINISHED_JS, arg=PANEL, timeout=RUN_TIMEOUT_MS, polling=500)
        ran = time.monotonic() - start
        late = _answer_dialogs(page)
        if late:
            seen += [f"try {attempt}: during the run, a dialog said {text!r}" for text in late]
            continue
        if seen:
            warnings.warn(f"{name}: " + "; ".join(seen) + f" (ran on try {attempt})",
                          stacklevel=2)  # fmt: skip
        return ran
    raise AssertionError(f"{name}: Run All did not run in {tries} tries:\n" + "\n".join(seen))


# Per cell of the notebook on show: its number, first line, and what its outputs show.
CELLS_JS = """
([panel, box, STDERR]) => [...document.querySelectorAll(panel + ' .jp-Cell')].map((cell, index) => {
  const outputs = [...cell.querySelectorAll('.jp-OutputArea-output')];
  const inWidget = (el) => el.closest('.jupyter-widgets, .widget-output') !== null;
  return {
    index: index + 1,
    code: cell.classList.contains('jp-CodeCell'),
    prompt: cell.querySelector('.jp-InputPrompt')?.textContent ?? '',
    first: (cell.querySelector('.jp-InputArea .cm-line')?.textContent ?? '').slice(0, 80),
    errors: outputs.filter(o => o.getAttribute('data-mime-type') === STDERR)
                   .map(o => o.innerText.slice(0, 600)),
    images: [...cell.querySelectorAll('.jp-OutputArea-output img')].filter(i => !inWidget(i))
                   .map(i => i.complete ? i.naturalWidth : 0),
    boxes: [...cell.querySelectorAll('.jp-OutputArea-output div')]
                   .filter(d => (d.getAttribute('style') || '').includes(box)).length,
  };
})
"""


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_a_notebook_runs_in_jupyterlab_and_shows_what_it_should(
    path: Path, browser: Any, lab: tuple[str, str]
) -> None:
    base, token = lab
    name = path.name
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        # A workspace of its own, reset: no notebook opened earlier is restored beside it.
        page.goto(f"{base}/lab/workspaces/{path.stem}/tree/{name}?token={token}&reset")
        ran = _run_all(page, name)
        cells = page.evaluate(CELLS_JS, [PANEL, CHECK_BOX, "application/vnd.jupyter.stderr"])
        code = [c for c in cells if c["code"]]

        errors = [f"cell {c['index']} ({c['first']!r}): {e}" for c in cells for e in c["errors"]]
        assert not errors, f"{name}: error output:\n" + "\n".join(errors)
        not_run = [
            f"cell {c['index']} ({c['first']!r})" for c in code if not re.search(r"\d", c["prompt"])
        ]
        assert not not_run, f"{name}: cells that did not run: {', '.join(not_run)}"
        blank = [f"cell {c['index']} ({c['first']!r})" for c in cells if 0 in c["images"]]
        assert not blank, f"{name}: figures that did not load: {', '.join(blank)}"
        stored = _stored(path)
        figures = sum(len(c["images"]) for c in cells)
        assert figures == stored["figures"], (
            f"{name}: {figures} figures drawn, the stored notebook has {stored['figures']}"
        )
        boxes = sum(c["boxes"] for c in cells)
        assert boxes == stored["boxes"], (
            f"{name}: {boxes} exercise feedback boxes shown, the stored notebook has "
            f"{stored['boxes']}"
        )
        assert (boxes > 0) == _has_exercises(path), (
            f"{name}: {boxes} exercise feedback boxes, and its exercise module "
            f"{'exists' if _has_exercises(path) else 'does not'}"
        )

        # One widget answers: its first slider to the end, and its output is drawn anew.
        widget = page.locator(f"{PANEL} .widget-interact").first
        output = widget.locator(".widget-output").first
        before = output.inner_html()
        widget.locator(".noUi-handle").first.focus()
        page.keyboard.press("End")
        try:
            page.wait_for_function(
                "([el, before]) => el.innerHTML !== before && !el.querySelector('img:not([src])')",
                arg=[output.element_handle(), before],
                timeout=30_000,
            )
        except Exception as exc:  # Playwright's TimeoutError
            raise AssertionError(
                f"{name}: the widget's output did not change when its slider moved"
            ) from exc

        if re.search("[\uac00-\ud7a3]", path.read_text(encoding="utf-8")):  # Hangul in it
            glyphs = page.evaluate(_browser.KOREAN_GLYPHS_JS)
            assert glyphs["inked"] > 0 and not glyphs["same"], (
                f"{name}: Korean text renders as empty boxes: no CJK font ({_browser.INSTALL_HINT})"
            )

        _browser.SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        widget.scroll_into_view_if_needed()
        page.screenshot(path=str(_browser.SCREENSHOTS / f"{path.stem}.png"))
        print(f"{name}: ran in {ran:.0f} s; {len(code)} code cells, {figures} figures, "
              f"{boxes} feedback boxes")  # fmt: skip
    except BaseException:
        _browser.failure_screenshot(page, path.stem)
        raise
    finally:
        page.close()


# --------------------------------------------------------------------------- the learner's way in


@pytest.fixture(scope="module")
def course_lab(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[tuple[str, str]]:
    """JupyterLab as `dlcourse lab` starts it, over a course in miniature: notebooks/ with the
    welcome notebook, work/ with the learner's copy, written (and signed) as `make lab` does."""
    from unittest import mock

    from dlcourse.machinery import lab, workspace

    root, home = tmp_path_factory.mktemp("course"), tmp_path_factory.mktemp("course-home")
    (root / "notebooks").mkdir()
    shutil.copy2(NOTEBOOKS[0], root / "notebooks" / NOTEBOOKS[0].name)
    with mock.patch.dict(os.environ, {"JUPYTER_DATA_DIR": str(home / "data")}):
        (copy,) = workspace.prepare(root / "work", root / "notebooks")
    command = lab.lab_command(copy.path, course_dir=root)
    arguments = [a for a in command[4:-1] if a != "--allow-root"]  # what dlcourse lab adds
    arguments.append(f"--CourseContentsManager.solutions_dir={root / 'notebooks'}")
    with _browser.jupyterlab(root, home, arguments) as server:
        yield server


CURRENT_TAB = "#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current"


def _wait_in_front(page: Any, path: str) -> None:
    """Wait until the document in front is ``path`` (its tab's tooltip says "Path: ...", in
    the Korean interface "경로: ...")."""
    try:
        page.wait_for_function(
            "([sel, want]) => (document.querySelector(sel)?.title || '').includes(want)",
            arg=[CURRENT_TAB, f": {path}\n"], timeout=60_000,
        )  # fmt: skip
    except Exception as exc:  # Playwright's TimeoutError
        front = (
            page.locator(CURRENT_TAB).get_attribute("title")
            if page.locator(CURRENT_TAB).count()
            else None
        )
        raise AssertionError(f"{path} is not in front: {front!r}") from exc
    page.wait_for_selector(f"{PANEL} .jp-Cell", timeout=60_000)


def test_the_address_dlcourse_lab_prints_opens_the_learners_copy(
    browser: Any, course_lab: tuple[str, str]
) -> None:
    """The printed address (the server's "/" with its token), as a remote or headless learner
    opens it: the learner's copy in front, the file browser in work/, trusted: no unsaved-changes
    dot. A solution notebook opened by mistake: a banner naming the copy, typing does nothing,
    and the banner's link opens the copy."""
    base, token = course_lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    name = NOTEBOOKS[0].name
    try:
        page.goto(f"{base}/?token={token}")
        _wait_in_front(page, f"work/{name}")
        crumbs = page.locator(".jp-FileBrowser-crumbs").first
        page.wait_for_function("(el) => el.innerText.includes('work')", arg=crumbs.element_handle(),
                               timeout=30_000)  # fmt: skip
        page.wait_for_selector(IDLE, timeout=120_000)
        time.sleep(2)  # what JupyterLab does after opening has had its time
        tab_class = page.locator(CURRENT_TAB).get_attribute("class") or ""
        assert "jp-mod-dirty" not in tab_class, "the learner's copy shows unsaved changes at once"

        page.goto(f"{base}/lab/tree/notebooks/{name}?token={token}")
        _wait_in_front(page, f"notebooks/{name}")
        banner = page.locator(f"{PANEL} .jp-MarkdownCell").first
        text = banner.inner_text()
        assert "solution notebook" in text and f"work/{name}" in text, text
        _browser.SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(_browser.SCREENSHOTS / "solution-opened-by-mistake.png"))
        cell = page.locator(f"{PANEL} .jp-CodeCell").first
        before = cell.locator(".jp-InputArea").inner_text()
        cell.locator(".cm-content").click()
        page.keyboard.type("zzz")
        page.keyboard.press("Enter")
        assert cell.locator(".jp-InputArea").inner_text() == before, "a locked cell took typing"

        banner.locator(f"a:has-text('work/{name}')").click()
        _wait_in_front(page, f"work/{name}")
    except BaseException:
        _browser.failure_screenshot(page, "way-in")
        raise
    finally:
        page.close()


# --------------------------------------------------------------------------- the Korean edition


@pytest.fixture(scope="module")
def korean_lab(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[tuple[str, str]]:
    """JupyterLab as `dlcourse lab --lang ko` starts it, over a course of two notebooks: the
    learner's Korean copies in work/ko/, the Korean defaults first on JUPYTER_CONFIG_PATH."""
    from unittest import mock

    from dlcourse.machinery import lab, workspace

    root, home = tmp_path_factory.mktemp("course-ko"), tmp_path_factory.mktemp("course-ko-home")
    (root / "notebooks").mkdir()
    for path in (NOTEBOOKS[0], NOTEBOOKS[3]):
        shutil.copy2(path, root / "notebooks" / path.name)
    with mock.patch.dict(os.environ, {"JUPYTER_DATA_DIR": str(home / "data")}):
        copies = workspace.prepare(root / "work", root / "notebooks", lang="ko")
    command = lab.lab_command(copies[1].path, course_dir=root, lang="ko")
    arguments = [a for a in command[4:-1] if a != "--allow-root"]
    arguments.append(f"--CourseContentsManager.solutions_dir={root / 'notebooks'}")
    config_path = lab.lab_environment({}, lang="ko")["JUPYTER_CONFIG_PATH"]
    with _browser.jupyterlab(root, home, arguments, {"JUPYTER_CONFIG_PATH": config_path}) as server:
        yield server


def test_a_korean_notebook_in_a_korean_jupyterlab(
    browser: Any, korean_lab: tuple[str, str]
) -> None:
    """The learner's Korean copy opens in front, in JupyterLab's Korean interface: its menus in
    Korean, every markdown cell in Korean (none left in English), Hangul drawn with a real font;
    its code cell runs and the exercise check answers."""
    from dlcourse.machinery.translations import UNTRANSLATED_MARK

    base, token = korean_lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    name = NOTEBOOKS[3].name
    try:
        page.goto(f"{base}/lab/tree/work/ko/{name}?token={token}")
        page.wait_for_selector(f"{PANEL} .jp-MarkdownCell", timeout=120_000)
        page.wait_for_function(
            "() => (document.querySelector('#jp-menu-panel, .lm-MenuBar')?.innerText || '')"
            ".includes('파일')",
            timeout=60_000,
        )
        menus = page.locator(".lm-MenuBar").first.inner_text()
        assert "파일" in menus and "File" not in menus, f"menus not in Korean: {menus!r}"
        cells = page.locator(f"{PANEL} .jp-MarkdownCell").all_inner_texts()
        assert cells and all(re.search("[\uac00-\ud7a3]", c) for c in cells if c.strip()), (
            "a markdown cell without Korean"
        )
        assert not any(UNTRANSLATED_MARK["ko"][3:20] in c for c in cells), "an untranslated cell"
        glyphs = page.evaluate(_browser.KOREAN_GLYPHS_JS)
        assert glyphs["inked"] > 0 and not glyphs["same"], (
            f"Korean text renders as empty boxes: no CJK font ({_browser.INSTALL_HINT})"
        )
        _browser.SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(_browser.SCREENSHOTS / f"lab-ko-{NOTEBOOKS[3].stem}.png"))
        # Run it: the checks' feedback (the learner's stubs: not attempted yet) is in Korean,
        # because the kernel runs a notebook in work/ko/.
        page.wait_for_selector(IDLE, timeout=120_000)
        _run_all(page, name)
        boxes = page.evaluate(
            "([panel, box]) => [...document.querySelectorAll(panel + ' .jp-OutputArea-output div')]"
            ".filter(d => (d.getAttribute('style') || '').includes(box)).map(d => d.innerText)",
            [PANEL, CHECK_BOX],
        )
        assert boxes, "no exercise feedback box after running the Korean copy"
        english = [b for b in boxes if not re.search("[\uac00-\ud7a3]", b)]
        assert not english, f"feedback not in Korean: {english[:2]}"
        page.locator(
            f"{PANEL} .jp-OutputArea-output div[style*='border-left']"
        ).first.scroll_into_view_if_needed()
        page.screenshot(path=str(_browser.SCREENSHOTS / f"lab-ko-{NOTEBOOKS[3].stem}-check.png"))
        # the solution opened by mistake: the banner, in Korean, names the Korean copy
        page.goto(f"{base}/lab/tree/notebooks/{name}?token={token}")
        _wait_in_front(page, f"notebooks/{name}")
        banner = page.locator(f"{PANEL} .jp-MarkdownCell").first.inner_text()
        assert "읽기 전용" in banner and f"work/ko/{name}" in banner, banner
    except BaseException:
        _browser.failure_screenshot(page, "lab-ko")
        raise
    finally:
        page.close()


# --------------------------------------------------------------------------- the website


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[str]:
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_nb")
    build = _load_site_builder()
    front = build.build(tmp_path_factory.mktemp("site") / "site")
    with _browser.static_site(front.parent) as url:
        yield url


def _load_site_builder() -> Any:
    spec = importlib.util.spec_from_file_location(
        "site_build", _browser.ROOT / "docs" / "site" / "build.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_website_has_no_broken_link_and_shows_its_images_and_maths(
    browser: Any, site: str
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    failed: list[str] = []
    page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.status} {r.url}"))
    todo, seen, anchors = ["/index.html"], set(), []
    pages_with_maths = images = 0
    other_files: set[str] = set()
    try:
        while todo:
            path = todo.pop(0)
            if path in seen:
                continue
            seen.add(path)
            page.goto(site + path)
            page.wait_for_load_state("load")
            for src, width in page.evaluate(
                "() => [...document.images]"
                ".map(i => [i.getAttribute('src'), i.complete ? i.naturalWidth : 0])"
            ):
                images += 1
                assert width > 0, f"{path}: image {src} did not load"
            if page.locator(".math").count():
                pages_with_maths += 1
                page.wait_for_function(
                    "() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                    timeout=30_000,
                )
                page.evaluate("() => MathJax.startup.promise")
                typeset = page.locator("mjx-container").count()
                errors = page.locator("mjx-merror, [data-mjx-error]").count()
                raw = page.evaluate(
                    "() => [...document.querySelectorAll('.math')].filter(m => "
                    "!m.querySelector('mjx-container') && m.tagName !== 'MJX-CONTAINER').length"
                )
                assert typeset > 0 and errors == 0 and raw == 0, (
                    f"{path}: maths not typeset ({typeset} typeset, {errors} errors, "
                    f"{raw} left as TeX)"
                )
            for href in page.evaluate(
                "() => [...document.querySelectorAll('a[href]')].map(a => a.href)"
            ):
                url = urllib.parse.urlsplit(href)
                if f"{url.scheme}://{url.netloc}" != site:
                    continue  # external: papers, the learner's own JupyterLab
                target = url.path if url.path != "/" else "/index.html"
                if url.fragment:
                    anchors.append((path, target, url.fragment))
                if target.endswith(".html"):
                    todo.append(target)
                else:
                    other_files.add(target)
            if path == "/index.html":
                _browser.SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(_browser.SCREENSHOTS / "site-index.png"))
            if path.endswith("01_gradient_descent.html"):
                page.screenshot(path=str(_browser.SCREENSHOTS / "site-01_gradient_descent.png"))
            if path.startswith("/ko/"):
                text = page.locator("article").first.inner_text()
                assert re.search("[\uac00-\ud7a3]{2,}", text), f"{path}: no Korean on the page"
                if path == "/ko/notebooks/03_optimizers.html":
                    glyphs = page.evaluate(_browser.KOREAN_GLYPHS_JS)
                    assert glyphs["inked"] > 0 and not glyphs["same"], "Hangul as empty boxes"
                    page.screenshot(path=str(_browser.SCREENSHOTS / "site-ko-03_optimizers.png"))
        for target in sorted(other_files):
            status = page.request.get(site + target).status
            assert status == 200, f"a link to {target} answers {status}"
        broken = []
        by_target: dict[str, set[tuple[str, str]]] = {}
        for source, target, fragment in anchors:
            by_target.setdefault(target, set()).add((source, fragment))
        for target, links in sorted(by_target.items()):
            page.goto(site + target)
            ids = set(page.evaluate(
                "() => [...document.querySelectorAll('[id], [name]')]"
                ".map(e => e.id || e.getAttribute('name'))"
            ))  # fmt: skip
            broken += [f"{source} -> {target}#{fragment}" for source, fragment in links
                       if urllib.parse.unquote(fragment) not in ids]  # fmt: skip
        assert not broken, "links to anchors that do not exist:\n" + "\n".join(sorted(set(broken)))
        assert not failed, "requests that failed:\n" + "\n".join(sorted(set(failed)))
    finally:
        page.close()
    notebook_pages = [p for p in seen if p.startswith("/notebooks/")]
    assert len(notebook_pages) == len(NOTEBOOKS), sorted(seen)
    korean_pages = [p for p in seen if p.startswith("/ko/notebooks/")]  # through the switch
    assert len(korean_pages) == len(NOTEBOOKS), sorted(seen)
    assert {"/docs/glossary.html", "/docs/course-map.html", "/docs/instructor-guide.html"} <= seen
    assert {f"/{p.name}" for p in NOTEBOOKS} <= other_files  # every notebook downloadable
    assert pages_with_maths >= 7 and images >= 20
    print(f"site: {len(seen)} pages, {images} images, maths on {pages_with_maths} pages, "
          f"{len(anchors)} anchor links checked")  # fmt: skip
