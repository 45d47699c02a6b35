"""Opening the course in JupyterLab: ``dlcourse lab`` (``make lab``).

For a learner, ``dlcourse lab``:

1. writes the learner's copies of the notebooks that have none yet into
   ``work/`` (:mod:`dlcourse.machinery.workspace`; nothing already there is touched);
2. starts JupyterLab in the course folder at the copy changed last
   (``work/00_welcome.ipynb`` the first time), with
   :class:`CourseContentsManager`, which serves ``notebooks/`` read-only: opening
   a solution notebook by mistake, and JupyterLab's autosave, change nothing that
   git tracks;
3. with the course's JupyterLab defaults (``dlcourse/machinery/jupyter_config/``, put on
   ``JUPYTER_CONFIG_PATH``): no pop-up asking about Jupyter news, no update check.

``dlcourse lab --solutions`` (``make lab-solutions``) is for instructors and
authors: it opens ``notebooks/00_welcome.ipynb`` itself, writable. Arguments that
``dlcourse lab`` does not know go to JupyterLab (``--no-browser``, ``--port 8899``).

This module needs JupyterLab (the ``lab`` extra).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado import web
from traitlets import Unicode

from dlcourse.machinery.notebooks import NOTEBOOK_DIR

COURSE_DIR = NOTEBOOK_DIR.parent
CONFIG_DIR = Path(__file__).resolve().parent / "jupyter_config"

READ_ONLY_MESSAGE = (
    "{path} is one of the course's solution notebooks, which stay as they are (notebooks/ is "
    "read-only here). Your own copy is work/{name}: open it from the work folder. "
    "To keep changes made here, use File > Save Notebook As... into work/. "
    "Instructors and authors edit the solutions with `make lab-solutions`."
)


class CourseContentsManager(AsyncLargeFileManager):
    """JupyterLab's file manager, with the course's solution notebooks read-only.

    Everything under ``notebooks/`` is reported as not writable (JupyterLab then
    opens it read-only) and every save, rename or delete there is refused with a
    message that names the learner's own copy. Everything else is as usual.
    """

    solutions_dir = Unicode(
        str(NOTEBOOK_DIR), config=True, help="The folder served read-only (the solutions)."
    )

    def _in_solutions(self, path: str) -> bool:
        full = Path(self._get_os_path(path.strip("/"))).resolve()
        solutions = Path(self.solutions_dir).resolve()
        return full == solutions or solutions in full.parents

    def _refuse(self, path: str) -> web.HTTPError:
        return web.HTTPError(
            403, READ_ONLY_MESSAGE.format(path=path.strip("/"), name=Path(path).name)
        )

    def is_writable(self, path: str) -> bool:
        return not self._in_solutions(path) and super().is_writable(path)

    async def save(self, model, path=""):
        if self._in_solutions(path):
            raise self._refuse(path)
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


def lab_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with the course's Jupyter config first."""
    env = dict(os.environ if base is None else base)
    paths = [str(CONFIG_DIR), *filter(None, env.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep))]
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def lab_command(
    start: Path,
    *,
    solutions: bool = False,
    extra: Sequence[str] = (),
    course_dir: Path | None = None,
) -> list[str]:
    """The command that starts JupyterLab at the notebook ``start``, run from the course folder."""
    course_dir = COURSE_DIR if course_dir is None else Path(course_dir)
    # The course folder is JupyterLab's root (given only a notebook, it would serve that
    # notebook's folder alone, and the package's code would be out of the learner's reach).
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={course_dir}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in extra:
        command.append("--allow-root")  # containers and cloud machines run as root
    if not solutions:
        manager = f"{CourseContentsManager.__module__}.{CourseContentsManager.__qualname__}"
        command.append(f"--ServerApp.contents_manager_class={manager}")
    command.extend(extra)
    command.append(Path(start).resolve().relative_to(course_dir.resolve()).as_posix())
    return command


def launch(*, solutions: bool = False, extra: Sequence[str] = (), dry_run: bool = False) -> int:
    """Prepare the learner's workspace (unless ``solutions``), then run JupyterLab."""
    from dlcourse.machinery import workspace

    if solutions:
        start = NOTEBOOK_DIR / "00_welcome.ipynb"
        print("Opening the solution notebooks (notebooks/), writable: for instructors and authors.")
    else:
        copies = workspace.prepare()
        print(workspace.describe(copies))
        start = workspace.latest_copy() or copies[0].path
    command = lab_command(start, solutions=solutions, extra=extra)
    env = lab_environment()
    if dry_run:
        print(f"JUPYTER_CONFIG_PATH={env['JUPYTER_CONFIG_PATH']}")
        print(" ".join(command))
        return 0
    os.chdir(COURSE_DIR)
    if os.name == "posix":
        os.execve(command[0], command, env)  # JupyterLab takes over this process (and Ctrl-C)
    import subprocess

    return subprocess.call(command, env=env)
