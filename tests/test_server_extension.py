"""dlcourse.machinery.server_extension: the learner's copies, read-only solutions and the latest
copy opened, on any Jupyter server; and updates pulled by nbgitpuller never overwrite a copy."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dlcourse.machinery import lab, server_extension
from dlcourse.machinery.notebooks import course_notebooks
from tests._compat import tomllib
from tests.test_lab import _free_port, _Server

ROOT = Path(__file__).resolve().parent.parent
CONFIG = lab.CONFIG_DIR / "jupyter_server_config.d" / "dlcourse.json"
SOURCES = course_notebooks()[:3]  # 00, 01, 02: real notebooks, enough for every case


@pytest.fixture(autouse=True)
def _jupyter_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Jupyter data folder of the test's own: the copies' signatures go there, not to yours."""
    folder = tmp_path / "jupyter" / "data"
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(folder))
    monkeypatch.delenv("DLCOURSE_LANG", raising=False)
    return folder


def _course(folder: Path, sources: list[Path] = SOURCES[:2]) -> Path:
    """A small copy of the course: the package's marker, some real notebooks, its .gitignore."""
    (folder / "dlcourse").mkdir(parents=True)
    (folder / "dlcourse" / "__init__.py").write_text("")
    (folder / "notebooks").mkdir()
    for path in sources:
        shutil.copy(path, folder / "notebooks" / path.name)
    shutil.copy(ROOT / ".gitignore", folder / ".gitignore")  # work/ is git-ignored
    return folder


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --------------------------------------------------------------------------- the pure parts


def test_jupyter_finds_the_extension_in_the_config_file_the_package_installs() -> None:
    enabled = json.loads(CONFIG.read_text(encoding="utf-8"))["ServerApp"]["jpserver_extensions"]
    assert enabled == {server_extension.EXTENSION: True}
    points = server_extension._jupyter_server_extension_points()
    assert points == [{"module": "dlcourse.machinery.server_extension"}]
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    data_files = settings["tool"]["setuptools"]["data-files"]
    assert data_files["etc/jupyter/jupyter_server_config.d"] == [
        CONFIG.relative_to(ROOT).as_posix()
    ]


def test_the_extension_does_not_import_torch() -> None:
    """A Jupyter server loads it at every start: it must stay light."""
    code = "import dlcourse.machinery.server_extension, sys; print('torch' in sys.modules)"
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
        check=True, cwd=ROOT,
    )  # fmt: skip
    assert run.stdout.strip() == "False"
    assert not [line for line in run.stderr.splitlines() if line.endswith(" torch")]


def test_the_language_is_the_configured_one_else_dlcourse_lang_else_english() -> None:
    assert server_extension.course_language(None, {}) == "en"
    assert server_extension.course_language(None, {"DLCOURSE_LANG": "ko_KR.UTF-8"}) == "ko"
    assert server_extension.course_language("en", {"DLCOURSE_LANG": "ko"}) == "en"
    from dlcourse.machinery.translations import TranslationError

    with pytest.raises(TranslationError, match="taught in"):
        server_extension.course_language(None, {"DLCOURSE_LANG": "fr"})
    assert issubclass(TranslationError, ValueError)  # the extension falls back to English


def test_only_the_unchosen_landing_pages_are_replaced() -> None:
    chose = server_extension.nobody_chose
    assert chose("/") and chose("/lab") and chose("/lab/")
    assert chose("/user/ada/lab", "/user/ada/") and chose("/user/ada/", "/user/ada/")
    assert not chose("/tree")  # the classic interface, chosen
    assert not chose("/lab/tree/dlcourse/notebooks")  # Binder's urlpath, a hub's default_url
    assert not chose("/user/ada/lab/tree/x.ipynb", "/user/ada/")


def test_a_server_started_on_a_solution_notebook_is_an_authors(tmp_path: Path) -> None:
    course = _course(tmp_path / "dlcourse")
    solution = course / "notebooks" / SOURCES[0].name
    assert server_extension.is_solution_notebook(solution)  # dlcourse lab --solutions
    assert not server_extension.is_solution_notebook(None)
    (course / "work").mkdir()
    assert not server_extension.is_solution_notebook(course / "work" / SOURCES[0].name)
    other = tmp_path / "elsewhere" / "notebooks" / "00_x.ipynb"  # not a course's
    other.parent.mkdir(parents=True)
    other.write_text("{}")
    assert not server_extension.is_solution_notebook(other)


def test_set_up_course_writes_the_copies_once_and_opens_the_latest(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    assert server_extension.set_up_course(home) is None
    assert list(home.iterdir()) == []  # no course: nothing written
    course = _course(home / "deep-learning")
    first = server_extension.set_up_course(home)
    assert first is not None and first.folder == course
    assert [c.status for c in first.copies] == ["created", "created"]
    assert first.start == course / "work" / SOURCES[0].name  # before any save: the first
    assert server_extension.landing_url(first, "/user/ada/") == (
        f"/user/ada/lab/tree/deep-learning/work/{SOURCES[0].name}"
    )
    assert "deep-learning/work/ (new: 00, 01)" in server_extension.describe(first)
    mine = course / "work" / SOURCES[1].name
    mine.write_bytes(mine.read_bytes().replace(b"NotImplementedError", b"ValueError"))
    edited = mine.read_bytes()
    again = server_extension.set_up_course(home)
    assert [c.status for c in again.copies] == ["kept", "kept"]
    assert again.start == mine and mine.read_bytes() == edited
    assert "(all there)" in server_extension.describe(again)
    korean = server_extension.set_up_course(course, "ko")  # rooted at the course itself
    assert korean.work == course / "work" / "ko" and korean.start.parent == course / "work" / "ko"
    assert server_extension.landing_url(korean).startswith("/lab/tree/work/ko/")


# --------------------------------------------------------------------------- real servers


@contextlib.contextmanager
def _jupyter(
    tmp_path: Path, root: Path, *args: str, env: dict[str, str] | None = None, name: str = "lab"
) -> Iterator[tuple[_Server, Path]]:
    """A JupyterLab server rooted at ``root``, on a free port, with the course's server config
    (the file the package installs) and Jupyter folders of the test's own; killed at the end.
    Yields the server and its log."""
    port, token = _free_port(), uuid.uuid4().hex
    jupyter = tmp_path / "jupyter"
    environment = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(jupyter / "config"),
        "JUPYTER_DATA_DIR": str(jupyter / "data"),
        "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
        "JUPYTER_CONFIG_PATH": str(lab.CONFIG_DIR),
        "IPYTHONDIR": str(jupyter / "ipython"),
    }
    environment.pop("DLCOURSE_LANG", None)  # the learner's own setting: none, unless given
    environment.update(env or {})
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
        f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={token}",
        "--ServerApp.port_retries=0", *args,
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log = tmp_path / f"{name}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, cwd=tmp_path, env=environment, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        server = _Server(port, token)
        try:
            server.wait_until_up(proc, log)
            yield server, log
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


def _landing(server: _Server) -> str:
    """Where the server's "/" sends a browser (the path, without the query)."""
    request = urllib.request.Request(f"{server.base}/?token={server.token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return urllib.parse.urlsplit(response.geturl()).path


def _text_file(text: str) -> dict:
    return {"type": "file", "format": "text", "content": text}


@pytest.mark.slow
def test_a_server_rooted_at_a_home_prepares_the_course_one_folder_below(tmp_path: Path) -> None:
    """As on a JupyterHub: the server's root is the learner's home, the course in ~/dlcourse.
    The copies appear, "/" opens the latest, notebooks/ refuses a save and work/ takes one; at
    the next start an edited copy is kept byte for byte and a new notebook gets its copy."""
    home = tmp_path / "home"
    course = _course(home / "dlcourse")
    solutions = _tree(course / "notebooks")
    with _jupyter(tmp_path, home) as (server, log):
        work = course / "work"
        assert sorted(p.name for p in work.glob("*.ipynb")) == [p.name for p in SOURCES[:2]]
        assert _landing(server) == f"/lab/tree/dlcourse/work/{SOURCES[0].name}"
        status, refused = server.request(
            "PUT", f"/api/contents/dlcourse/notebooks/{SOURCES[0].name}", _text_file("x")
        )
        assert status == 403 and f"Your own copy is work/{SOURCES[0].name}" in refused["message"]
        status, _ = server.request(
            "PUT", "/api/contents/dlcourse/notebooks/new.txt", _text_file("x")
        )
        assert status == 403
        path = f"dlcourse/work/{SOURCES[1].name}"
        model = server.request("GET", f"/api/contents/{path}")[1]
        model["content"]["cells"][0]["source"] = "# my notes\n"
        body = {"type": "notebook", "format": "json", "content": model["content"]}
        assert server.request("PUT", f"/api/contents/{path}", body)[0] == 200
        lab_page = urllib.request.Request(f"{server.base}/lab?token={server.token}")
        with urllib.request.urlopen(lab_page, timeout=30) as response:  # the file browser: work/
            assert '"preferredPath": "dlcourse/work"' in response.read().decode()
        logged = log.read_text()
        assert "dlcourse: the course in" in logged and "(new: 00, 01)" in logged
    edited = (course / path.removeprefix("dlcourse/")).read_bytes()
    assert b"# my notes" in edited
    assert _tree(course / "notebooks") == solutions  # nothing under notebooks/ changed

    shutil.copy(SOURCES[2], course / "notebooks" / SOURCES[2].name)  # a new notebook came
    with _jupyter(tmp_path, home, name="again") as (server, log):
        assert (course / path.removeprefix("dlcourse/")).read_bytes() == edited
        assert (course / "work" / SOURCES[2].name).is_file()
        assert _landing(server) == f"/lab/tree/{path}"  # where the learner left off
        assert "(new: 02)" in log.read_text()


@pytest.mark.slow
def test_a_root_with_no_course_starts_fine_and_nothing_is_written(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "notebooks").mkdir(parents=True)  # a folder of notebooks alone is not a course
    shutil.copy(SOURCES[0], home / "notebooks" / SOURCES[0].name)
    before = _tree(home)
    with _jupyter(tmp_path, home) as (server, log):
        assert _landing(server) == "/lab"
        saved = server.request("PUT", "/api/contents/notebooks/new.txt", _text_file("mine"))
        assert saved[0] == 201  # a folder named notebooks here is the learner's own
        assert "dlcourse: no course in" in log.read_text()
    (home / "notebooks" / "new.txt").unlink()
    assert _tree(home) == before


@pytest.mark.slow
def test_korean_copies_and_a_chosen_page_is_kept(tmp_path: Path) -> None:
    """DLCOURSE_LANG=ko puts the copies in work/ko/; a default URL chosen (a hub's or Binder's)
    stays; the refusal names the Korean copy."""
    course = _course(tmp_path / "dlcourse")
    chosen = "/lab/tree/notebooks"
    with _jupyter(
        tmp_path, course, f"--LabApp.default_url={chosen}", env={"DLCOURSE_LANG": "ko"}
    ) as (server, _log):
        assert sorted(p.name for p in (course / "work" / "ko").glob("*.ipynb")) == [
            p.name for p in SOURCES[:2]
        ]
        assert not list((course / "work").glob("*.ipynb"))  # no English copies
        assert _landing(server) == chosen
        status, refused = server.request(
            "PUT", f"/api/contents/notebooks/{SOURCES[0].name}", _text_file("x")
        )
        assert status == 403 and f"work/ko/{SOURCES[0].name}" in refused["message"]


@pytest.mark.slow
def test_the_start_up_cost_is_small(tmp_path: Path) -> None:
    """What the extension adds to a server's start, as it logs it: writing the copies the first
    time, reading them after."""
    course = _course(tmp_path / "dlcourse", SOURCES)
    times = []
    for name in ("first", "second"):
        with _jupyter(tmp_path, course, name=name) as (_, log):
            line = next(x for x in log.read_text().splitlines() if "dlcourse: the course" in x)
            times.append(float(line.rsplit("(", 1)[1].removesuffix(" s)")))
    print(f"the extension at start-up: {times[0]:.2f} s writing 3 copies, {times[1]:.2f} s after")
    assert times[1] < 1.0 and times[0] < 10.0


# --------------------------------------------------------------------------- nbgitpuller


def _git(*args: str, cwd: Path) -> str:
    git = ["git", "-c", "user.name=instructor", "-c", "user.email=i@example.com"]
    return subprocess.run(
        [*git, *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout  # fmt: skip


def _upstream(tmp_path: Path) -> tuple[Path, Path]:
    """The instructor's repository (a working clone) and the bare one learners pull from."""
    author = _course(tmp_path / "author")
    _git("init", "-q", "-b", "main", cwd=author)
    _git("add", "-A", cwd=author)
    _git("commit", "-q", "-m", "course", cwd=author)
    bare = tmp_path / "course.git"
    _git("clone", "-q", "--bare", str(author), str(bare), cwd=tmp_path)
    _git("remote", "add", "origin", str(bare), cwd=author)
    return author, bare


def test_updates_pulled_by_nbgitpuller_never_overwrite_the_learners_copies(
    tmp_path: Path,
) -> None:
    from nbgitpuller.pull import GitPuller

    author, bare = _upstream(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    target = home / "dlcourse"

    def pull() -> None:
        for _ in GitPuller(str(bare), str(target), branch="main").pull():
            pass

    pull()  # the learner's first click on the course link
    first = server_extension.set_up_course(home)
    mine = target / "work" / SOURCES[0].name
    mine.write_bytes(mine.read_bytes().replace(b"NotImplementedError", b"KeyError"))
    edited = mine.read_bytes()
    assert first is not None and b"KeyError" in edited

    # the instructor changes notebook 00, adds notebook 02 (and a stray work/ would be ignored)
    solution = author / "notebooks" / SOURCES[0].name
    solution.write_bytes(solution.read_bytes().replace(b"\n", b"\n", 1) + b"\n")
    shutil.copy(SOURCES[2], author / "notebooks" / SOURCES[2].name)
    _git("add", "-A", cwd=author)
    _git("commit", "-q", "-m", "update", cwd=author)
    _git("push", "-q", "origin", "main", cwd=author)

    pull()  # a later click: nbgitpuller merges the update
    assert (target / "notebooks" / SOURCES[2].name).is_file()
    assert (target / "notebooks" / SOURCES[0].name).read_bytes() == solution.read_bytes()
    assert mine.read_bytes() == edited  # the learner's copy: untouched by the pull
    assert _git("status", "--porcelain", cwd=target) == ""  # work/ is git-ignored

    again = server_extension.set_up_course(home)  # the next server start
    status = {c.path.name: c.status for c in again.copies}
    assert status == {
        SOURCES[0].name: "outdated",
        SOURCES[1].name: "kept",
        SOURCES[2].name: "created",
    }
    assert mine.read_bytes() == edited


@pytest.mark.slow
def test_the_first_pull_into_a_running_server_writes_the_copies_at_once(tmp_path: Path) -> None:
    """A learner's first click on the course link: the hub starts their server (no course in
    their home yet), then nbgitpuller pulls it; the copies are there when the pull says it is
    finished, and the solutions are read-only from then on."""
    _, bare = _upstream(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    with _jupyter(tmp_path, home) as (server, log):
        query = urllib.parse.urlencode(
            {"repo": str(bare), "branch": "main", "targetpath": "dlcourse"}
        )
        request = urllib.request.Request(
            f"{server.base}/git-pull/api?{query}",
            headers={"Authorization": f"token {server.token}"},
        )
        events = []
        with urllib.request.urlopen(request, timeout=120) as response:
            for raw in response:
                line = raw.decode().strip()
                if line.startswith("data: "):
                    events.append(json.loads(line.removeprefix("data: ")))
                    if events[-1].get("phase") in ("finished", "error"):
                        work = sorted(p.name for p in (home / "dlcourse" / "work").glob("*.ipynb"))
                        break
        assert events[-1]["phase"] == "finished", events
        assert work == [p.name for p in SOURCES[:2]]  # before the browser is sent on
        assert any("dlcourse: the course in" in e.get("output", "") for e in events)
        status, _ = server.request(
            "PUT", f"/api/contents/dlcourse/notebooks/{SOURCES[0].name}", _text_file("x")
        )
        assert status == 403
        assert "after the pull" in log.read_text()


@pytest.mark.slow
def test_a_server_started_on_a_solution_is_left_to_the_author(tmp_path: Path) -> None:
    """As `dlcourse lab --solutions` starts it (the course's root, a solution notebook to open,
    no contents manager named): the solutions stay writable and no copies are made."""
    course = _course(tmp_path / "dlcourse")
    solution = course / "notebooks" / SOURCES[0].name
    with _jupyter(tmp_path, course, str(solution)) as (server, log):
        saved = server.request("PUT", "/api/contents/notebooks/new.txt", _text_file("x"))
        assert saved[0] == 201
        assert "a server started on a solution notebook: left as it is" in log.read_text()
    assert not (course / "work").exists()


# --------------------------------------------------------------------------- the hooks, alone


class _FakeServer:
    """What the extension's hooks read of a Jupyter server, without one."""

    def __init__(self, root: Path, config: dict | None = None, file_to_run: str = "") -> None:
        import logging

        from traitlets.config import Config

        self.root_dir, self.file_to_run = str(root), file_to_run
        self.config = Config(config or {})
        self.contents_manager_class = None
        self.log = logging.getLogger("test_server_extension")


def test_the_contents_manager_is_the_courses_unless_one_was_named(tmp_path: Path) -> None:
    server = _FakeServer(tmp_path)
    server_extension._link_jupyter_server_extension(server)
    assert server.contents_manager_class is server_extension.ServerContentsManager
    named = _FakeServer(tmp_path, {"ServerApp": {"contents_manager_class": "x.Mine"}})
    server_extension._link_jupyter_server_extension(named)
    assert named.contents_manager_class is None  # an administrator's choice (or dlcourse lab's)
    course = _course(tmp_path / "dlcourse")
    author = _FakeServer(course, file_to_run=str(course / "notebooks" / SOURCES[0].name))
    server_extension._link_jupyter_server_extension(author)
    assert author.contents_manager_class is None


def test_with_no_course_the_courses_contents_manager_is_jupyters_own(tmp_path: Path) -> None:
    import asyncio

    (tmp_path / "notebooks").mkdir()
    manager = server_extension.ServerContentsManager(root_dir=str(tmp_path))
    assert asyncio.run(manager.get("notebooks", content=False))["writable"] is True
    manager.solutions_dir = str(tmp_path / "notebooks")  # the course found: read-only
    assert asyncio.run(manager.get("notebooks", content=False))["writable"] is False


def test_an_error_is_logged_with_what_to_do_and_the_server_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    course = _course(tmp_path / "dlcourse", [])
    (course / "notebooks" / "00_broken.ipynb").write_text("{ not json")
    server = _FakeServer(tmp_path)
    server.contents_manager = server_extension.ServerContentsManager(root_dir=str(tmp_path))
    with caplog.at_level("INFO"):
        server_extension._load_jupyter_server_extension(server)  # does not raise
    assert f"dlcourse: could not prepare the course in {tmp_path} (JSONDecodeError" in caplog.text
    assert "git checkout -- notebooks/" in caplog.text
    assert "Start My Server" in caplog.text
