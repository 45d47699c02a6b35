"""The course on any Jupyter server: a JupyterHub's, Binder's, a plain ``jupyter lab``.

``dlcourse lab`` prepares the learner's copies and starts JupyterLab with the course's
settings (:mod:`dlcourse.machinery.lab`). On a hub or on Binder nobody runs it: the server is
started by the hub, and the course arrives in the learner's home by nbgitpuller
(``~/dlcourse``). This Jupyter server extension does the same work there. It is enabled
wherever the package is installed (``jupyter_server_config.d/dlcourse.json``, installed into
``{sys.prefix}/etc/jupyter/``), and when a server starts it:

1. finds the course the server serves: its root, or one folder below it
   (:func:`dlcourse.machinery.workspace.find_course`); with none, it logs one line and does
   nothing else;
2. writes the learner's copies that are missing into the course's ``work/`` (``work/ko/``
   with ``DLCOURSE_LANG=ko``): :func:`dlcourse.machinery.workspace.prepare`, which never
   overwrites a copy and adds copies of new notebooks;
3. serves the course's ``notebooks/`` read-only, with the banner that names the learner's
   copy (:class:`~dlcourse.machinery.lab.CourseContentsManager`);
4. opens the learner's latest copy (the server's default URL, and the file browser in
   ``work/``), unless a page was chosen (a hub's ``default_url``, Binder's ``urlpath``,
   ``dlcourse lab``'s own);
5. never stops the server from starting: whatever goes wrong is logged with what to do.

When nbgitpuller pulls the course into a running server (a learner's first click on the
course link starts their server before the course is there), the copies are written at the
end of the pull, before the browser is sent on (:func:`pull_handler_class`).

Who decides what, when the server is configured already:

- the contents manager: the course's (:class:`ServerContentsManager`, which is
  jupyter_server's default file manager until a course is found) unless a configuration
  names one (``ServerApp.contents_manager_class``: ``dlcourse lab`` names the course's; an
  administrator's choice is kept). It has to be chosen before the server builds it, when the
  course may not be there yet, so it does not depend on the course: a server with no course
  behaves as without the extension. A server started on a solution notebook
  (``jupyter lab notebooks/03_optimizers.ipynb``, as ``dlcourse lab --solutions`` does) is an
  author's: the extension does nothing there;
- the language: ``CourseContentsManager.language`` when a configuration names the course's
  contents manager (``dlcourse lab --lang ko``), else ``DLCOURSE_LANG``, else English;
- the page: ``/`` and ``/lab`` are what every server lands on when nobody chose; anything else
  is a choice and stays.

Nothing here imports torch. Measured on 2 CPU cores: importing the extension in a server takes
about 20 ms; preparing the course adds 0.8 s to the start that writes the 9 copies, 0.02 s to
every later one (the copies are there: a few file reads); the server logs the time it took.
"""

from __future__ import annotations

import functools
import os
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlcourse.machinery import workspace

__all__ = [
    "EXTENSION",
    "Course",
    "ServerContentsManager",
    "course_language",
    "is_solution_notebook",
    "landing_url",
    "nobody_chose",
    "pull_handler_class",
    "set_up_course",
]

EXTENSION = "dlcourse.machinery.server_extension"
LOG_PREFIX = "dlcourse: "
# The pages a server lands on when nobody chose one: jupyter_server's own and JupyterLab's.
UNCHOSEN_PAGES = ("/", "/lab")
RESTART = (
    "restart your server to try again (on a JupyterHub: File > Hub Control Panel > "
    "Stop My Server, then Start My Server)"
)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Where Jupyter finds this extension (the module itself)."""
    return [{"module": EXTENSION}]


# --------------------------------------------------------------------------- the pure parts


@dataclass(frozen=True)
class Course:
    """What :func:`set_up_course` did for a server rooted at ``root``."""

    root: Path  # the server's root
    folder: Path  # the course: root itself or one folder below it
    lang: str  # the language of the copies
    copies: list[workspace.Copy]
    start: Path  # the copy to open: the one saved last, else the first

    @property
    def work(self) -> Path:
        """The folder of the copies in this language: ``work/`` or ``work/ko/``."""
        return workspace.language_folder(self.folder / workspace.WORKSPACE_DIR.name, self.lang)

    def relative(self, path: Path) -> str:
        """``path`` as the server names it: relative to its root, with ``/``."""
        return Path(path).relative_to(self.root).as_posix()


def course_language(configured: str | None = None, env: dict[str, str] | None = None) -> str:
    """The language of the learner's copies: ``configured`` (the course's contents manager's,
    when a configuration names it: ``dlcourse lab --lang ko``), else ``DLCOURSE_LANG``, else
    English. Raises :class:`~dlcourse.machinery.translations.TranslationError`, which says
    which languages there are, for one the course is not taught in."""
    from dlcourse.i18n import LANG_ENV_VAR
    from dlcourse.machinery.translations import check_language

    env = os.environ if env is None else env
    return check_language(configured or env.get(LANG_ENV_VAR, "").strip() or "en")


def is_solution_notebook(path: str | os.PathLike[str] | None) -> bool:
    """Whether ``path`` is one of a course's solution notebooks (``<course>/notebooks/*``).

    A server started on one (``jupyter lab notebooks/03_optimizers.ipynb``; ``dlcourse lab
    --solutions``) is an author's, who edits the solutions: the extension leaves it alone."""
    if not path:
        return False
    path = Path(path).resolve()
    return path.parent.name == "notebooks" and workspace.is_course(path.parent.parent)


def nobody_chose(default_url: str, base_url: str = "/") -> bool:
    """Whether the server's ``default_url`` is one it lands on when nobody chose a page (``/``
    or ``/lab``, under the server's ``base_url``: ``/user/ada/lab`` on a hub)."""
    path = default_url
    if base_url != "/" and path.startswith(base_url.rstrip("/")):
        path = path[len(base_url.rstrip("/")) :]
    return (path.rstrip("/") or "/") in UNCHOSEN_PAGES


def landing_url(course: Course, base_url: str = "/") -> str:
    """The URL that opens ``course.start`` in JupyterLab: ``{base_url}lab/tree/<path>``."""
    return base_url.rstrip("/") + "/lab/tree/" + urllib.parse.quote(course.relative(course.start))


def set_up_course(root: Path, lang: str = "en") -> Course | None:
    """Find the course a server rooted at ``root`` serves, and write the learner's missing
    copies in ``lang`` (never overwriting one). None when ``root`` holds no course."""
    root = Path(root).resolve()
    folder = workspace.find_course(root)
    if folder is None:
        return None
    copies = workspace.prepare(folder / workspace.WORKSPACE_DIR.name, folder / "notebooks", lang)
    found = Course(root, folder, lang, copies, copies[0].path)
    start = workspace.latest_copy(found.work) or copies[0].path
    return Course(root, folder, lang, copies, start)


def describe(course: Course) -> str:
    """One line for the server's log: where the copies are and what was written."""
    created = [c.path.name[:2] for c in course.copies if c.status != "kept"]
    outdated = [c.path.name[:2] for c in course.copies if c.status == "outdated"]
    line = f"the course in {course.folder}: the learner's copies in {course.relative(course.work)}/"
    line += f" (new: {', '.join(created)})" if created else " (all there)"
    if outdated:
        numbers = ", ".join(outdated)
        line += f"; solutions changed since these copies were made: {numbers} (kept as they are)"
    return line


# --------------------------------------------------------------------------- the server's parts


try:  # the contents manager needs JupyterLab's server (the lab extra): there with any server
    from dlcourse.machinery.lab import CourseContentsManager
except ImportError:  # pragma: no cover - only imported by a Jupyter server
    CourseContentsManager = None  # type: ignore[assignment,misc]

if CourseContentsManager is not None:
    from traitlets import Unicode

    class ServerContentsManager(CourseContentsManager):
        """The course's contents manager on a server rooted anywhere: nothing is read-only until
        the extension finds the course (``solutions_dir`` empty: JupyterLab's usual file
        manager, for a server whose root holds no course, or before nbgitpuller's first pull);
        then the course's ``notebooks/`` is."""

        solutions_dir = Unicode(
            "", config=True, help="The folder served read-only (the solutions); empty: none."
        )

        def _in_solutions(self, path: str) -> bool:
            return bool(self.solutions_dir) and super()._in_solutions(path)


def _log(serverapp: Any) -> Any:
    return serverapp.log


def _names_contents_manager(serverapp: Any) -> bool:
    """Whether a configuration (a file, the command line, a hub) named the contents manager."""
    return "contents_manager_class" in serverapp.config.get("ServerApp", {})


def _keep_the_kernels_environment() -> None:
    """Take out what ``import dlcourse`` put into this server's environment.

    Importing the package sets ``OMP_WAIT_POLICY`` in the environment of the process that
    imports it (:mod:`dlcourse.threads`), and the server's kernels inherit its environment:
    the extension must not change what they start with."""
    from dlcourse import threads

    if threads.wait_policy().origin == "dlcourse":
        os.environ.pop(threads.WAIT_POLICY[0], None)


def _link_jupyter_server_extension(serverapp: Any) -> None:
    """Before the server builds its parts: choose the course's contents manager."""
    try:
        _keep_the_kernels_environment()
        if is_solution_notebook(serverapp.file_to_run):
            return
        if CourseContentsManager is not None and not _names_contents_manager(serverapp):
            serverapp.contents_manager_class = ServerContentsManager
    except Exception as exc:  # the server starts anyway
        _log(serverapp).error(
            f"{LOG_PREFIX}could not choose the course's file manager ({exc!r}); the course's "
            "solutions are not read-only in this server. Please report this to your instructor."
        )


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """When the server starts: the learner's copies, read-only solutions, the landing page."""
    began = time.perf_counter()
    log = _log(serverapp)
    try:
        if is_solution_notebook(serverapp.file_to_run):
            log.info(f"{LOG_PREFIX}a server started on a solution notebook: left as it is")
            return
        course = _set_up(serverapp)
    except Exception as exc:  # the server starts anyway
        log.error(
            f"{LOG_PREFIX}could not prepare the course in {serverapp.root_dir} "
            f"({type(exc).__name__}: {exc}). The server runs without the learner's copies. "
            "Check that the course's notebooks/ are whole (`git status` in the course folder; "
            "`git checkout -- notebooks/` restores them) and that its work/ folder can be "
            f"written (disk space, permissions), then {RESTART}."
        )
        return
    seconds = time.perf_counter() - began
    if course is None:
        log.info(f"{LOG_PREFIX}no course in {serverapp.root_dir} or one folder below: nothing done")
    else:
        log.info(f"{LOG_PREFIX}{describe(course)} ({seconds:.2f} s)")


def _set_up(serverapp: Any) -> Course | None:
    """Steps 1 to 4 of the module docstring, on ``serverapp``."""
    manager = serverapp.contents_manager
    ours = CourseContentsManager is not None and isinstance(manager, CourseContentsManager)
    named = ours and _names_contents_manager(serverapp)
    try:
        lang = course_language(manager.language if named else None)
    except ValueError as exc:  # a language the course is not taught in: English, and say so
        serverapp.log.error(
            f"{LOG_PREFIX}{exc}: the copies are in English. Set DLCOURSE_LANG to one of those "
            f"languages in the server's environment, then {RESTART}."
        )
        lang = "en"
    course = set_up_course(Path(serverapp.root_dir).expanduser(), lang)
    _register_pull_handler(serverapp, lang)  # also when the course is not there yet
    if course is None:
        return None
    if ours:
        configured = serverapp.config.get("CourseContentsManager", {})
        if "solutions_dir" not in configured:
            manager.solutions_dir = str(course.folder / "notebooks")
        if "language" not in configured:
            manager.language = lang
    _open_the_latest_copy(serverapp, course)
    return course


def _open_the_latest_copy(serverapp: Any, course: Course) -> None:
    """Land on ``course.start``, with the file browser in the copies' folder, unless a page
    (or a file to open, or a folder for the file browser) was chosen."""
    base_url = serverapp.base_url
    extensions = serverapp.extension_manager.extensions
    if "jupyterlab" not in extensions or serverapp.file_to_run:
        return  # no JupyterLab to open it in; or a file chosen on the command line
    manager = serverapp.contents_manager
    if not getattr(manager, "preferred_dir", "x"):
        try:
            manager.preferred_dir = course.relative(course.work)
        except Exception as exc:  # an older server, or the folder unreadable: the root is fine
            _log(serverapp).info(f"{LOG_PREFIX}the file browser stays at the root ({exc})")
    if not nobody_chose(serverapp.default_url, base_url):
        return
    url = landing_url(course, base_url)
    serverapp.default_url = url
    serverapp.web_app.settings["default_url"] = url
    from jupyter_server.base.handlers import RedirectWithParams
    from jupyter_server.utils import url_path_join

    # the server's "/" redirect was made with the old default URL; this one comes first
    serverapp.web_app.add_handlers(
        ".*$",
        [(url_path_join(base_url, "/?"), RedirectWithParams, {"url": url, "permanent": False})],
    )


# --------------------------------------------------------------------------- after a pull


def _register_pull_handler(serverapp: Any, lang: str) -> None:
    """Put the course's pull handler (:func:`pull_handler_class`) before nbgitpuller's own,
    when nbgitpuller is enabled in this server."""
    if "nbgitpuller" not in serverapp.extension_manager.extensions:
        return
    from jupyter_server.utils import url_path_join

    settings = serverapp.web_app.settings
    settings["dlcourse_lang"] = lang
    pattern = url_path_join(settings["base_url"], "git-pull", "api")
    # Handlers added later come after: this extension loads before nbgitpuller (by name).
    serverapp.web_app.add_handlers(".*$", [(pattern, pull_handler_class(serverapp))])


@functools.cache
def pull_handler_class(serverapp: Any) -> type:
    """nbgitpuller's handler of ``/git-pull/api``, which then writes the learner's copies of
    what the pull brought before the browser is sent on: a learner's first click on the
    course link starts their server before the course is there."""
    from nbgitpuller._compat import get_base_handler

    get_base_handler(serverapp)  # as nbgitpuller does, before importing its handlers
    from nbgitpuller.handlers import SyncHandler

    class PullHandler(SyncHandler):
        async def emit(self, data: Any) -> None:
            if isinstance(data, dict) and data.get("phase") == "finished":
                try:
                    course = _after_pull(serverapp)
                except Exception as exc:  # the pull itself worked: say so, and what to do
                    line = f"the learner's copies could not be written: {exc}; {RESTART}"
                else:
                    line = "no course here" if course is None else describe(course)
                serverapp.log.info(f"{LOG_PREFIX}after the pull: {line}")
                await super().emit({"output": f"{LOG_PREFIX}{line}\n", "phase": "syncing"})
            await super().emit(data)

    return PullHandler


def _after_pull(serverapp: Any) -> Course | None:
    """Steps 1 to 3 again after a pull: copies of what came, the solutions read-only."""
    lang = serverapp.web_app.settings.get("dlcourse_lang", "en")
    course = set_up_course(Path(serverapp.root_dir).expanduser(), lang)
    manager = serverapp.contents_manager
    found = course is not None and isinstance(manager, ServerContentsManager)
    if found and not manager.solutions_dir:  # the course came with this pull
        manager.solutions_dir = str(course.folder / "notebooks")
        manager.language = lang
    return course
