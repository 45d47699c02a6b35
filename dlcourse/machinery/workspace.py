"""The learner's workspace: their own copies of the notebooks, in ``work/``.

``notebooks/`` holds the course's solution notebooks: tracked by git, checked by
nbval, rewritten only by the authors' ``make regenerate``. A learner works on
copies of them in ``work/``, a git-ignored folder beside ``notebooks/``:

- each copy is the notebook's student version (:mod:`dlcourse.exercises.student`):
  solutions replaced by ``raise NotImplementedError``, the stored outputs kept so
  the notebook reads like a book, except those of the exercise and check cells;
- a copy is written once, when it is missing, and never overwritten: work
  survives ``git pull`` and every later ``make lab``;
- ``dlcourse reset NN`` replaces one copy with a fresh one and keeps the old one
  in ``work/backups/``;
- when a solution notebook changes after its copy was made (a ``git pull`` that
  brought a new version), the copy is kept and :func:`prepare` says so;
- in another language than English (``dlcourse lab --lang ko``), the copies live in
  ``work/<lang>/`` (``work/ko/``), with the prose of that language
  (:mod:`dlcourse.machinery.translations`) and the same code and outputs. A copy in one
  language is made, the first time, from the learner's copy in the other if there is one
  (the markdown cells swapped, the learner's code kept), so switching language loses
  nothing; after that the two are separate files.

The manifest ``work/.dlcourse-workspace.json`` marks the folder as a workspace
(the exercise checks record progress only in one, see
:mod:`dlcourse.exercises.progress`) and remembers which version of each solution
notebook every copy was made from.

``dlcourse lab`` (``make lab``) prepares the workspace and opens it in JupyterLab;
see :mod:`dlcourse.machinery.lab`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from dlcourse.exercises.student import write_student_version
from dlcourse.machinery.atomic import write_bytes_atomically
from dlcourse.machinery.notebooks import (
    MANIFEST,
    NOTEBOOK_DIR,
    WORKSPACE_DIR,
    course_notebooks,
    is_workspace,
)

__all__ = [
    "MANIFEST",
    "WORKSPACE_DIR",
    "Copy",
    "WorkspaceError",
    "course_here",
    "describe",
    "describe_reset",
    "find_course",
    "find_notebook",
    "is_course",
    "is_workspace",
    "latest_copy",
    "open_sessions",
    "prepare",
    "reset",
    "trust",
]

BACKUPS = "backups"


class WorkspaceError(ValueError):
    """A workspace command that cannot do what was asked; the message says why and what to do."""


@dataclass(frozen=True)
class Copy:
    """One learner copy and what :func:`prepare` did with it.

    ``status``: ``created`` (written now), ``created from work/`` (or ``work/ko/``: written now
    from the learner's copy in the other language), ``kept`` (the learner's, left as it is) or
    ``outdated`` (kept, but its solution notebook changed since the copy was made).
    """

    source: Path
    path: Path
    status: str


def _digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _sources(notebooks: Path | None) -> list[Path]:
    directory = NOTEBOOK_DIR if notebooks is None else Path(notebooks)
    found = course_notebooks(directory)
    if not found:
        raise WorkspaceError(
            f"no course notebooks in {directory}: the workspace commands work in a clone of the "
            "course (git clone ..., then make lab), not from an installed package alone"
        )
    return found


def _load_manifest(workspace: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads((workspace / MANIFEST).read_text(encoding="utf-8"))
        return {str(k): dict(v) for k, v in data["copies"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _save_manifest(workspace: Path, copies: dict[str, dict[str, str]]) -> None:
    data = {
        "about": "Your copies of the course notebooks (dlcourse lab). Nothing here is tracked by "
        "git; `dlcourse reset NN` gives a fresh copy of notebook NN.",
        "copies": copies,
    }
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    write_bytes_atomically(workspace / MANIFEST, text.encode("utf-8"))


def trust(path: Path) -> bool:
    """Sign the notebook ``path`` as trusted, as Jupyter does when it saves one.

    A learner's copy is made by the course, so its outputs (HTML, widgets) are the course's:
    signed, JupyterLab shows them at once and its server logs no "not trusted" at every open.
    The signature goes to Jupyter's own store (``nbsignatures.db`` in its data folder); without
    nbformat (the package installed without the lab extra) nothing is signed. Returns whether
    the notebook is signed.
    """
    try:
        import nbformat
        from nbformat.sign import NotebookNotary
    except ImportError:
        return False
    try:
        notary = NotebookNotary()
        notary.sign(nbformat.read(path, as_version=nbformat.NO_CONVERT))
    except Exception:  # a read-only or broken signature store: the copy is good without
        return False
    return True


def kernel_language_info() -> dict | None:
    """What this environment's Python kernel reports about its language when it starts (None
    without ipykernel). JupyterLab writes it into a notebook's metadata when the kernel is
    ready; a copy that has it already is not changed by that, and opens without the
    unsaved-changes dot (the stored notebooks keep only the parts that do not vary by machine)."""
    try:
        from ipykernel.ipkernel import IPythonKernel
    except ImportError:
        return None
    return json.loads(json.dumps(IPythonKernel.language_info))


def language_folder(workspace: Path, lang: str) -> Path:
    """Where the copies in ``lang`` live: ``work/`` for English, ``work/<lang>/`` otherwise."""
    from dlcourse.machinery.translations import check_language

    lang = check_language(lang)
    return workspace if lang == "en" else workspace / lang


def _other_copy(source: Path, workspace: Path, lang: str) -> Path | None:
    """The learner's copy of ``source`` in another language, to carry their work over."""
    from dlcourse.machinery.translations import LANGUAGES

    for other in LANGUAGES:
        if other == lang:
            continue
        path = language_folder(workspace, other) / source.name
        if path.is_file():
            return path
    return None


def _write_copy(
    source: Path,
    target: Path,
    manifest: dict[str, dict[str, str]],
    lang: str = "en",
    from_copy: Path | None = None,
) -> None:
    """Write the learner's copy ``target`` of the solution ``source``: its student version, or,
    given ``from_copy`` (the learner's copy in another language), that copy with its prose
    swapped into ``lang``."""
    if from_copy is None:
        write_student_version(source, target, keep_outputs=True)
    nb = json.loads((target if from_copy is None else from_copy).read_text(encoding="utf-8"))
    if from_copy is not None or lang != "en":
        from dlcourse.machinery.translations import translate_notebook

        nb, _ = translate_notebook(nb, source, lang)
    language = kernel_language_info()
    if language is not None:
        nb.setdefault("metadata", {})["language_info"] = language
    text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    target.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(target, text.encode("utf-8"))
    trust(target)
    manifest[target.name] = {
        "made": time.strftime("%Y-%m-%d %H:%M:%S"),
        "source_sha256": _digest(source),
        "written_ns": str(target.stat().st_mtime_ns),  # as written, before the learner's saves
    }


def prepare(
    workspace: Path | None = None, notebooks: Path | None = None, lang: str = "en"
) -> list[Copy]:
    """Write the learner's copy of every course notebook that has none; overwrite nothing.

    ``lang``: the language of the copies (``en`` in ``work/``, ``ko`` in ``work/ko/``). A
    missing copy is made from the learner's copy in the other language when there is one.
    """
    root = WORKSPACE_DIR if workspace is None else Path(workspace)
    workspace = language_folder(root, lang)
    sources = _sources(notebooks)
    workspace.mkdir(parents=True, exist_ok=True)
    manifest = _load_manifest(workspace)
    copies = []
    for source in sources:
        target = workspace / source.name
        if not target.exists():
            other = _other_copy(source, root, lang)
            try:
                _write_copy(source, target, manifest, lang, from_copy=other)
            except (ValueError, KeyError, TypeError, AttributeError, OSError):
                if other is None:
                    raise
                # the other copy is not a notebook we can read (hand-edited, truncated): a fresh
                # copy instead, and the other one stays as it is
                other = None
                _write_copy(source, target, manifest, lang)
            if other is None:
                status = "created"
            else:  # "created from work/" or "created from work/ko/"
                where = "" if other.parent == root else f"{other.parent.name}/"
                status = f"created from {root.name}/{where}"
        elif manifest.get(source.name, {}).get("source_sha256") not in (None, _digest(source)):
            status = "outdated"
        else:
            status = "kept"
        copies.append(Copy(source, target, status))
    _save_manifest(workspace, manifest)
    return copies


def is_course(folder: Path) -> bool:
    """Whether ``folder`` is a copy of the course: a clone, or one pulled onto a JupyterHub by
    nbgitpuller. It holds the solution notebooks (``notebooks/NN_*.ipynb``) and the package
    beside them (``dlcourse/__init__.py``); a folder of notebooks alone is not one."""
    folder = Path(folder)
    try:
        return (folder / "dlcourse" / "__init__.py").is_file() and bool(
            course_notebooks(folder / NOTEBOOK_DIR.name)
        )
    except OSError:  # unreadable: not one we can use
        return False


def find_course(root: Path) -> Path | None:
    """The copy of the course a Jupyter server rooted at ``root`` serves, or None.

    ``root`` itself when it is one (``dlcourse lab``, Binder); else one folder below it (a
    JupyterHub learner's home, where nbgitpuller pulls the course into ``~/dlcourse`` or
    another name): the one whose workspace was used last, else the one named ``dlcourse``,
    else the first by name. Folders whose names start with a dot are not looked into."""
    root = Path(root)
    if is_course(root):
        return root
    try:
        children = sorted(p for p in root.iterdir() if not p.name.startswith(".") and p.is_dir())
    except OSError:
        return None
    found = [p for p in children if not p.is_symlink() and is_course(p)]
    if not found:
        return None

    def last_used(course: Path) -> float:
        try:
            return (course / WORKSPACE_DIR.name / MANIFEST).stat().st_mtime
        except OSError:
            return float("-inf")

    used = [p for p in found if last_used(p) > float("-inf")]
    if used:
        return max(used, key=last_used)
    named = [p for p in found if p.name == "dlcourse"]
    return (named or found)[0]


def course_here(start: Path | None = None) -> Path | None:
    """The copy of the course a learner's command means (``dlcourse reset``, ``dlcourse
    progress``) when it is not this package's own clone, else None (the defaults:
    :data:`WORKSPACE_DIR`, :data:`NOTEBOOK_DIR`).

    On a hub the package is installed once for everyone (the image's, or ``make hub``'s
    ``.venv``), so its own clone is not the learner's: theirs is the course folder ``start``
    (default: the current directory) is in, or the one :func:`find_course` finds one folder
    below it (a hub learner's terminal opens in their home, the course in ``~/dlcourse``)."""
    start = Path.cwd() if start is None else Path(start)
    found = next((f for f in (start, *start.parents) if is_course(f)), None) or find_course(start)
    own = NOTEBOOK_DIR.parent.resolve()
    return None if found is None or found.resolve() == own else found


def find_notebook(which: str, notebooks: Path | None = None) -> Path:
    """The course notebook ``which`` names: ``3``, ``03``, ``03_optimizers`` or its file name."""
    sources = _sources(notebooks)
    text = Path(str(which)).name.removesuffix(".ipynb")
    if re.fullmatch(r"\d{1,2}", text):
        matches = [p for p in sources if p.name[:2] == f"{int(text):02d}"]
    else:
        matches = [p for p in sources if p.stem == text]
    if not matches:
        names = ", ".join(p.stem for p in sources)
        raise WorkspaceError(f"no notebook {which!r}: the course has {names}")
    return matches[0]


def reset(
    which: str, workspace: Path | None = None, notebooks: Path | None = None, lang: str = "en"
) -> tuple[Path, Path | None]:
    """Replace the learner's copy of notebook ``which`` (in ``lang``) with a fresh one.

    The old copy, if any, moves to ``backups/`` beside it with the time in its name. Returns
    ``(fresh copy, backup or None)``.
    """
    root = WORKSPACE_DIR if workspace is None else Path(workspace)
    source = find_notebook(which, notebooks)
    prepare(root, notebooks, lang)  # the manifest and any other missing copies
    workspace = language_folder(root, lang)
    target = workspace / source.name
    backup = None
    if target.exists():
        backups = workspace / BACKUPS
        backups.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        backup = backups / f"{source.stem}.{stamp}.ipynb"
        n = 1
        while backup.exists():
            n += 1
            backup = backups / f"{source.stem}.{stamp}-{n}.ipynb"
        target.replace(backup)
    manifest = _load_manifest(workspace)
    _write_copy(source, target, manifest, lang)
    _save_manifest(workspace, manifest)
    return target, backup


def open_sessions(path: Path, runtime_dir: str | None = None) -> list[str]:
    """Where the notebook ``path`` is open now: one line per running JupyterLab (or other
    Jupyter server) that has a session on it, naming the server and the kernel. Empty when it
    is open nowhere, or without Jupyter. ``runtime_dir``: where servers list themselves
    (default: Jupyter's own)."""
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:
        return []
    import urllib.request

    path = Path(path).resolve()
    found = []
    for info in list_running_servers(runtime_dir):
        try:
            relative = path.relative_to(Path(info.get("root_dir", "")).resolve()).as_posix()
            url = f"{info['url'].rstrip('/')}/api/sessions"
            request = urllib.request.Request(url)
            if info.get("token"):
                request.add_header("Authorization", f"token {info['token']}")
            with urllib.request.urlopen(request, timeout=5) as response:
                sessions = json.loads(response.read())
        except (ValueError, OSError, KeyError):  # elsewhere, or not answering
            continue
        for session in sessions:
            if session.get("path") == relative:
                kernel = session.get("kernel") or {}
                found.append(
                    f"JupyterLab at {info['url']} (process {info.get('pid')}), "
                    f"kernel {kernel.get('name', '?')}, {kernel.get('execution_state', 'open')}"
                )
    return found


def _shown(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when it is inside it (as the terminal shows paths)."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def describe_reset(fresh: Path, backup: Path | None, root: Path | None = None) -> str:
    """What :func:`reset` did, for the terminal; and, when the notebook is open in JupyterLab,
    what to do there, since its next save would write the old notebook over the fresh copy."""
    root = WORKSPACE_DIR.parent if root is None else root
    shown = functools.partial(_shown, root=root)
    lines = [f"fresh copy: {shown(fresh)}"]
    if backup is not None:
        lines.append(f"  your old copy is kept as {shown(backup)}")
    sessions = open_sessions(fresh)
    if sessions:
        lines.append(f"  {shown(fresh)} is open in " + "; ".join(sessions) + ".")
        lines.append(
            "  In JupyterLab, choose File > Reload Notebook from Disk in its tab now (or close "
            "the tab without saving). If JupyterLab says the file changed on disk, choose "
            "Revert: Overwrite would write your old notebook over the fresh copy."
        )
    return "\n".join(lines)


def latest_copy(workspace: Path | None = None) -> Path | None:
    """The copy the learner saved last (where they left off); None before their first save."""
    workspace = WORKSPACE_DIR if workspace is None else Path(workspace)
    if not workspace.is_dir():
        return None
    manifest = _load_manifest(workspace)
    saved = [
        p
        for p in course_notebooks(workspace)
        if str(p.stat().st_mtime_ns) != manifest.get(p.name, {}).get("written_ns")
    ]
    return max(saved, key=lambda p: p.stat().st_mtime_ns, default=None)


def describe(copies: list[Copy], root: Path | None = None) -> str:
    """What :func:`prepare` did, in a few lines for the terminal."""
    root = WORKSPACE_DIR.parent if root is None else root
    shown = functools.partial(_shown, root=root)
    if not copies:
        return ""
    folder = shown(copies[0].path.parent)
    lines = [f"Your notebooks are in {folder}/ (notebooks/ holds the solutions)."]
    created = [c.path.name[:2] for c in copies if c.status == "created"]
    if created:
        lines.append(f"  new copies: {', '.join(created)}")
    carried = [c for c in copies if c.status.startswith("created from")]
    if carried:
        numbers = ", ".join(c.path.name[:2] for c in carried)
        lines.append(
            f"  made from your copies in {carried[0].status.removeprefix('created from ')} "
            f"(your code kept, the text in this language): {numbers}"
        )
    for c in copies:
        if c.status == "outdated":
            lines.append(
                f"  {shown(c.source)} has changed since your copy was made; yours is kept. "
                f"`dlcourse reset {c.path.name[:2]}` gives the new version "
                "(and moves yours to backups/)."
            )
    return "\n".join(lines)
