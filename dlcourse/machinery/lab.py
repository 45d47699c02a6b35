"""Opening the course in JupyterLab: ``dlcourse lab`` (``make lab``).

For a learner, ``dlcourse lab``:

1. writes the learner's copies of the notebooks that have none yet into
   ``work/`` (:mod:`dlcourse.machinery.workspace`; nothing already there is touched);
2. starts JupyterLab in the course folder at the copy changed last
   (``work/00_welcome.ipynb`` the first time): the tab it opens, the URL it prints
   (for a remote or headless learner, or a second browser) and the server's own
   address all land on that notebook, with the file browser in ``work/``;
3. with :class:`CourseContentsManager`, which serves ``notebooks/`` read-only: a
   solution notebook opened by mistake opens under a banner that names the
   learner's copy, its cells locked against typing, and neither the learner nor
   JupyterLab's autosave changes anything git tracks;
4. with the course's environment on the PATH of JupyterLab's terminals (``dlcourse
   doctor`` works there), and the course's JupyterLab defaults
   (``dlcourse/machinery/jupyter_config/``, put on ``JUPYTER_CONFIG_PATH``): no
   pop-up asking about Jupyter news, no update check.

When JupyterLab already runs for this course folder, ``dlcourse lab`` opens that one
(in the browser, and prints its address) instead of starting a second server on
another port.

``dlcourse lab --solutions`` (``make lab-solutions``) is for instructors and
authors: it opens ``notebooks/00_welcome.ipynb`` itself, writable. Arguments that
``dlcourse lab`` does not know go to JupyterLab (``--no-browser``, ``--port 8899``).

This module needs JupyterLab (the ``lab`` extra).
"""

from __future__ import annotations

import os
import sys
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado import web
from traitlets import Unicode

from dlcourse.machinery.notebooks import NOTEBOOK_DIR, WORKSPACE_DIR

COURSE_DIR = NOTEBOOK_DIR.parent
CONFIG_DIR = Path(__file__).resolve().parent / "jupyter_config"
WORKSPACE = WORKSPACE_DIR.name  # work/, beside notebooks/

READ_ONLY_MESSAGE = (
    "{path} is one of the course's solution notebooks, which stay as they are (notebooks/ is "
    "read-only here). Your own copy is work/{name}: open it from the work folder. "
    "To keep changes made here, use File > Save Notebook As... into work/. "
    "Instructors and authors edit the solutions with `make lab-solutions`."
)

# What a solution notebook opened by mistake shows above its first cell (Markdown; the link
# opens the learner's copy in JupyterLab).
BANNER = (
    '<div style="border:2px solid #cf222e;border-radius:4px;padding:8px 12px">\n\n'
    "**This is the course's solution notebook `{path}`: read-only.** "
    "Your own copy is **[work/{name}](../work/{name})**: open it there (click the link, or "
    "find it in the *work* folder on the left), to write the exercises yourself and keep "
    "what you write.\n\n"
    "The cells here are locked. Instructors and authors edit the solutions with "
    "`make lab-solutions`.\n\n</div>"
)
# The same two in Korean, for `dlcourse lab --lang ko` (the learner's copies in work/ko/).
READ_ONLY_MESSAGE_KO = (
    "{path}는 과정의 풀이 노트북이라 그대로 둡니다"
    "(여기서 notebooks/는 읽기 전용입니다). "
    "여러분의 사본은 work/ko/{name}입니다: work/ko 폴더에서 여세요. "
    "여기서 고친 내용을 남기려면 파일 > 다른 이름으로 노트북 저장...으로 "
    "work/ko/ 안에 저장하세요. "
    "강사와 저자는 `make lab-solutions`로 풀이를 고칩니다."
)
BANNER_KO = (
    '<div style="border:2px solid #cf222e;border-radius:4px;padding:8px 12px">\n\n'
    "**과정의 풀이 노트북 `{path}`입니다: 읽기 전용입니다.** "
    "여러분의 사본은 **[work/ko/{name}](../work/ko/{name})**입니다: "
    "연습문제를 직접 풀고 그 내용을 남기려면 그쪽을 여세요"
    "(링크를 누르거나, 왼쪽의 *work/ko* 폴더에서 찾으세요).\n\n"
    "여기의 셀은 잠겨 있습니다. "
    "강사와 저자는 `make lab-solutions`로 풀이를 고칩니다.\n\n</div>"
)
# Where the banner and the locks are marked, so that a copy saved elsewhere drops them.
VIEW_MARK = "solution_view"


class CourseContentsManager(AsyncLargeFileManager):
    """JupyterLab's file manager, with the course's solution notebooks read-only.

    Everything under ``notebooks/`` is reported as not writable (JupyterLab then
    opens it read-only) and every save, rename or delete there is refused with a
    message that names the learner's own copy. Everything else is as usual.
    """

    solutions_dir = Unicode(
        str(NOTEBOOK_DIR), config=True, help="The folder served read-only (the solutions)."
    )
    language = Unicode(
        "en", config=True, help="The language of the learner's copies: en (work/), ko (work/ko/)."
    )

    def _in_solutions(self, path: str) -> bool:
        full = Path(self._get_os_path(path.strip("/"))).resolve()
        solutions = Path(self.solutions_dir).resolve()
        return full == solutions or solutions in full.parents

    def _refuse(self, path: str) -> web.HTTPError:
        message = READ_ONLY_MESSAGE_KO if self.language == "ko" else READ_ONLY_MESSAGE
        return web.HTTPError(403, message.format(path=path.strip("/"), name=Path(path).name))

    def is_writable(self, path: str) -> bool:
        return not self._in_solutions(path) and super().is_writable(path)

    def mark_trusted_cells(self, nb: Any, path: str = "") -> None:
        """The solution notebooks' outputs are the course's own: trusted, without a log line."""
        if self._in_solutions(path):
            self.notary.mark_cells(nb, True)
        else:
            super().mark_trusted_cells(nb, path)

    async def get(self, path, content=True, type=None, format=None, require_hash=False):
        model = await super().get(
            path, content=content, type=type, format=format, require_hash=require_hash
        )
        if model.get("type") == "notebook" and model.get("content") and self._in_solutions(path):
            solution_view(model["content"], path.strip("/"), self.language)
        return model

    async def save(self, model, path=""):
        if self._in_solutions(path):
            raise self._refuse(path)
        if model.get("type") == "notebook" and model.get("content"):
            model = {**model, "content": without_solution_view(model["content"])}
        return await super().save(model, path)

    async def delete_file(self, path):
        if self._in_solutions(path):
            raise self._refuse(path)
        return await super().delete_file(path)

    async def rename_file(self, old_path, new_path):
        for path in (old_path, new_path):
            if self._in_solutions(path):
                raise self._refuse(path)
        return await super().rename_file(old_path, new_path)


def solution_view(nb: Any, path: str, lang: str = "en") -> Any:
    """The solution notebook ``nb`` (at ``path``) as a learner who opened it by mistake sees
    it: under a banner naming their copy, every cell locked (JupyterLab honours ``editable``
    and ``deletable``: typing does nothing). Changes ``nb`` in place and returns it; nothing of
    this reaches the file, which the server never saves."""
    name = Path(path).name
    banner = nbformat.v4.new_markdown_cell(
        (BANNER_KO if lang == "ko" else BANNER).format(path=path, name=name)
    )
    banner.metadata.update(dlcourse={VIEW_MARK: True})
    nb.cells.insert(0, banner)
    for cell in nb.cells:
        cell.metadata.update(editable=False, deletable=False)
    nb.metadata.setdefault("dlcourse", {})[VIEW_MARK] = True
    return nb


def without_solution_view(nb: Any) -> Any:
    """``nb`` without what :func:`solution_view` added (a solution saved as a copy elsewhere
    with File > Save Notebook As...); any other notebook as it is."""
    meta = nb.get("metadata", {}).get("dlcourse", {})
    if not (isinstance(meta, dict) and meta.get(VIEW_MARK)):
        return nb
    nb = nbformat.from_dict(nb)
    nb.cells = [c for c in nb.cells if not c.get("metadata", {}).get("dlcourse", {}).get(VIEW_MARK)]
    for cell in nb.cells:
        for key in ("editable", "deletable"):
            cell.get("metadata", {}).pop(key, None)
    del nb.metadata["dlcourse"][VIEW_MARK]
    if not nb.metadata["dlcourse"]:
        del nb.metadata["dlcourse"]
    return nb


def lab_environment(base: dict[str, str] | None = None, lang: str = "en") -> dict[str, str]:
    """``base`` (default: this process's environment) with the course's Jupyter config first,
    and the course's environment (this Python's scripts: ``dlcourse``) first on ``PATH``, for
    JupyterLab's terminals. With ``lang="ko"``, the Korean defaults come before the others:
    JupyterLab's interface in Korean (the ``jupyterlab-language-pack-ko-KR`` package)."""
    env = dict(os.environ if base is None else base)
    first = [str(CONFIG_DIR / lang)] if lang != "en" and (CONFIG_DIR / lang).is_dir() else []
    paths = [
        *first,
        str(CONFIG_DIR),
        *filter(None, env.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep)),
    ]
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(dict.fromkeys(paths))
    scripts = str(Path(sys.executable).parent)  # .venv/bin (.venv\Scripts): not resolved
    env["PATH"] = os.pathsep.join(
        dict.fromkeys([scripts, *filter(None, env.get("PATH", "").split(os.pathsep))])
    )
    if sys.prefix != sys.base_prefix:  # a virtual environment, as `activate` would say
        env["VIRTUAL_ENV"] = sys.prefix
    return env


def terminal_shell(env: dict[str, str] | None = None) -> list[str] | None:
    """The command of JupyterLab's terminals: the learner's shell, not as a login shell.

    Started without a terminal (headless, by a service), JupyterLab runs a login shell, and on
    Debian and Ubuntu /etc/profile then sets PATH anew: ``dlcourse`` would be "command not
    found". Named here, the shell keeps the PATH :func:`lab_environment` gives it."""
    if os.name == "nt":  # PowerShell, which keeps PATH: JupyterLab's default
        return None
    env = os.environ if env is None else env
    return [env.get("SHELL") or "/bin/sh"]


def running_lab(
    course_dir: Path | None = None, runtime_dir: str | None = None
) -> dict[str, Any] | None:
    """The JupyterLab server already running on this course folder (its runtime info: url,
    token, pid...), or None. ``runtime_dir``: where servers list themselves (default:
    Jupyter's own)."""
    course_dir = (COURSE_DIR if course_dir is None else Path(course_dir)).resolve()
    try:
        from jupyter_server.serverapp import list_running_servers

        for info in list_running_servers(runtime_dir):
            root = info.get("root_dir") or info.get("notebook_dir") or ""
            if root and Path(root).resolve() == course_dir:
                return info
    except Exception:  # unreadable runtime files: start a server of our own
        return None
    return None


def open_url(info: dict[str, Any], start: Path, course_dir: Path | None = None) -> str:
    """The address, with its token, that opens ``start`` in the running server ``info``."""
    course_dir = COURSE_DIR if course_dir is None else Path(course_dir)
    relative = Path(start).resolve().relative_to(course_dir.resolve()).as_posix()
    url = info["url"].rstrip("/") + "/lab/tree/" + urllib.parse.quote(relative)
    return url + (f"?token={info['token']}" if info.get("token") else "")


def lab_command(
    start: Path,
    *,
    solutions: bool = False,
    extra: Sequence[str] = (),
    course_dir: Path | None = None,
    lang: str = "en",
) -> list[str]:
    """The command that starts JupyterLab at the notebook ``start``, run from the course folder."""
    course_dir = COURSE_DIR if course_dir is None else Path(course_dir)
    # The course folder is JupyterLab's root (given only a notebook, it would serve that
    # notebook's folder alone, and the package's code would be out of the learner's reach).
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={course_dir}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in extra:
        command.append("--allow-root")  # containers and cloud machines run as root
    relative = Path(start).resolve().relative_to(course_dir.resolve()).as_posix()
    # Every way in lands on the notebook: the tab opened, the URL printed, the server's "/".
    command.append(f"--LabApp.default_url=/lab/tree/{urllib.parse.quote(relative)}")
    shell = terminal_shell()
    if shell is not None:
        command.append(f"--ServerApp.terminado_settings=shell_command={shell!r}")
    if not solutions:
        manager = f"{CourseContentsManager.__module__}.{CourseContentsManager.__qualname__}"
        command.append(f"--ServerApp.contents_manager_class={manager}")
        if lang != "en":  # the banner and refusals name the copies in work/<lang>/
            command.append(f"--CourseContentsManager.language={lang}")
        folder = WORKSPACE if lang == "en" else f"{WORKSPACE}/{lang}"
        if (course_dir / folder).is_dir():  # the file browser opens in work/ (work/ko/)
            command.append(f"--ContentsManager.preferred_dir={folder}")
    command.extend(extra)
    command.append(relative)
    return command


def _names_a_server(extra: Sequence[str]) -> bool:
    """Whether JupyterLab's arguments ask for a server of their own (a port, a socket...)."""
    return any(a.split("=")[0].split(".")[-1] in ("--port", "port", "sock") for a in extra)


def launch(
    *,
    solutions: bool = False,
    extra: Sequence[str] = (),
    dry_run: bool = False,
    lang: str = "en",
) -> int:
    """Prepare the learner's workspace (unless ``solutions``), then run JupyterLab.

    ``lang``: the language of the learner's copies and of JupyterLab's interface (``en``,
    ``ko``: the copies in ``work/ko/``)."""
    from dlcourse.machinery import workspace
    from dlcourse.machinery.translations import check_language

    lang = check_language(lang)

    if solutions:
        start = NOTEBOOK_DIR / "00_welcome.ipynb"
        print("Opening the solution notebooks (notebooks/), writable: for instructors and authors.")
    else:
        copies = workspace.prepare(lang=lang)
        print(workspace.describe(copies))
        folder = workspace.language_folder(workspace.WORKSPACE_DIR, lang)
        start = workspace.latest_copy(folder) or copies[0].path
        running = None if dry_run or _names_a_server(extra) else running_lab()
        if running is not None:
            url = open_url(running, start)
            print(
                f"JupyterLab already runs for this course (process {running.get('pid')}); "
                f"opening it:\n    {url}\n"
                "(to stop it: Ctrl-C where it runs, or File > Shut Down in JupyterLab)"
            )
            if "--no-browser" not in extra:
                import webbrowser

                webbrowser.open(url)
            return 0
    command = lab_command(start, solutions=solutions, extra=extra, lang=lang)
    env = lab_environment(lang=lang)
    if dry_run:
        print(f"JUPYTER_CONFIG_PATH={env['JUPYTER_CONFIG_PATH']}")
        print(" ".join(command))
        return 0
    os.chdir(COURSE_DIR)
    if os.name == "posix":
        os.execve(command[0], command, env)  # JupyterLab takes over this process (and Ctrl-C)
    import subprocess

    return subprocess.call(command, env=env)
