"""The link that hands the course out on a JupyterHub: nbgitpuller's ``git-pull`` link.

::

    dlcourse class link --hub https://hub.example.org --open 01

prints::

    https://hub.example.org/hub/user-redirect/git-pull?repo=https%3A%2F%2Fgithub.com%2F...
    &branch=main&urlpath=lab%2Ftree%2Fdlcourse%2Fwork%2F01_gradient_descent.ipynb

A learner who opens it logs in to the hub; their server starts, nbgitpuller (installed with the
course's ``lab`` extra) clones the repository into their home, or, when it is there already,
merges the new commits without overwriting what they changed; then their browser opens
``urlpath``: their own copy of the notebook in ``work/``, which the course's server extension
makes when it is missing (:mod:`dlcourse.machinery.workspace`).

nbgitpuller clones into a folder named after the repository URL's last part, as it is
(``.../dlcourse.git`` gives ``dlcourse.git``; see ``UIHandler.get`` in
``nbgitpuller/handlers.py``), under ``NBGITPULLER_PARENTPATH`` when the hub sets it:
:func:`clone_folder` follows the same rule, so ``urlpath`` names the right folder. On GitHub,
GitLab, Codeberg and Bitbucket, which serve a repository with and without ``.git``, the link
leaves the ``.git`` out (the folder is ``dlcourse``); an SSH address becomes the HTTPS one, which
learners' servers can clone without a key.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

from dlcourse.i18n import _
from dlcourse.machinery.notebooks import NOTEBOOK_DIR, WORKSPACE_DIR

__all__ = ["LinkError", "clone_folder", "course_link", "origin_url"]

REPOSITORY = NOTEBOOK_DIR.parent  # this clone of the course


class LinkError(ValueError):
    """A link that cannot be made; the message says why and what to do."""


def _git(*args: str) -> str:
    """``git -C <this clone> ARGS``'s output, or "" when git or the clone is not there."""
    try:
        done = subprocess.run(
            ["git", "-C", str(REPOSITORY), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


# Hosts that serve a repository at its address with and without ".git": the link leaves it out,
# so that nbgitpuller's folder is "dlcourse", not "dlcourse.git".
_BOTH_SPELLINGS = ("github.com", "gitlab.com", "codeberg.org", "bitbucket.org")


def _https(url: str) -> str:
    """An SSH address of a repository (``git@github.com:me/dlcourse.git``) as the HTTPS one
    that learners' servers can clone without a key; others unchanged. On the hosts that serve
    both spellings, without the ``.git``."""
    found = re.fullmatch(r"(?:ssh://)?git@([^:/]+)[:/](.+)", url)
    url = f"https://{found[1]}/{found[2]}" if found else url
    if urlsplit(url).hostname in _BOTH_SPELLINGS:
        url = url.rstrip("/").removesuffix(".git")
    return url


def origin_url() -> str | None:
    """This clone's ``origin`` remote as an HTTPS address, or None when there is none."""
    return _https(_git("remote", "get-url", "origin")) or None


def clone_folder(repo: str) -> str:
    """The folder nbgitpuller clones ``repo`` into: its URL's last part, as it is."""
    return repo.rstrip("/").split("/")[-1]


def _notebook(which: str) -> str:
    from dlcourse.course import NOTEBOOKS

    text = str(which).removesuffix(".ipynb")
    for nb in NOTEBOOKS:
        stem = nb.filename.removesuffix(".ipynb")
        if text in (stem, f"{nb.number:02d}", str(nb.number)):
            return nb.filename
    choices = ", ".join(f"{nb.number:02d}" for nb in NOTEBOOKS)
    raise LinkError(_("no notebook {which}: give one of {choices}").format(
        which=which, choices=choices))  # fmt: skip


def course_link(
    hub: str,
    *,
    repo: str | None = None,
    branch: str | None = None,
    notebook: str = "00",
    app: str = "lab",
    lang: str = "en",
) -> str:
    """The nbgitpuller link for the course on the hub at ``hub``.

    ``repo``: the repository to pull (default: this clone's ``origin``, as HTTPS); ``branch``:
    default this clone's current branch, else ``main``; ``notebook``: the one to open
    (``01``, ``01_gradient_descent``); ``app``: ``lab`` (JupyterLab) or ``notebook``
    (Jupyter Notebook 7); ``lang``: the edition the hub's servers give (``ko`` when they run
    with ``DLCOURSE_LANG=ko``, as ``make hub LANG=ko`` does): the copy opened is in ``work/ko/``.
    Every value is URL-encoded.
    """
    from dlcourse.machinery.translations import LANGUAGES
    from dlcourse.machinery.workspace import language_folder

    parts = urlsplit(hub.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise LinkError(
            _("--hub must be the hub's address, like https://hub.example.org; got {hub}").format(
                hub=hub
            )
        )
    base = hub.strip().rstrip("/")
    base = base.removesuffix("/hub").rstrip("/")  # the hub's root, whichever was given
    if repo is None:
        repo = origin_url()
        if repo is None:
            raise LinkError(
                _(
                    "this clone has no origin remote to hand out: give the course's repository "
                    "with --repo https://... (one the learners' servers can clone)"
                )
            )
    repo = _https(repo.strip()).rstrip("/")
    if not clone_folder(repo) or clone_folder(repo) in (".", ".."):
        raise LinkError(_("--repo {repo} names no repository").format(repo=repo))
    branch = branch or _git("branch", "--show-current") or "main"
    if lang not in LANGUAGES:
        raise LinkError(
            _("--lang must be one of {choices}, got {lang}").format(
                choices=", ".join(LANGUAGES), lang=lang
            )
        )
    work = language_folder(Path(WORKSPACE_DIR.name), lang).as_posix()  # work or work/ko
    page = f"{clone_folder(repo)}/{work}/{_notebook(notebook)}"
    if app == "lab":
        urlpath = f"lab/tree/{page}"
    elif app == "notebook":
        urlpath = f"notebooks/{page}"
    else:
        raise LinkError(_("--app must be lab or notebook, got {app}").format(app=app))
    query = urlencode(
        {"repo": repo, "branch": branch, "urlpath": urlpath}, quote_via=quote, safe=""
    )
    return f"{base}/hub/user-redirect/git-pull?{query}"
