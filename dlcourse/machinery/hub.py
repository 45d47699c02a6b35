"""A JupyterHub for one room on this machine: ``make hub`` (``python -m dlcourse.machinery.hub``).

For a workshop or a demo: learners on the room's network open the address it prints, type a
name of their choosing and the room's password, and get their own JupyterLab with their own
copy of the course. The instructor logs in with their own password and has JupyterHub's admin
page (every learner's server: open, stop, start). ``dlcourse class progress`` and ``dlcourse
class collect`` then read the learners' homes (``build/hub/homes/*``).

What it is made of, each piece chosen for one trusted room:

- **JupyterHub** (the ``hub`` extra) and its proxy, **configurable-http-proxy** from npm, at the
  version of :data:`PROXY_VERSION`, installed by :func:`install_proxy` with ``npm ci`` from the
  lock file this package ships (``jupyter_config/hub/package-lock.json``) into
  ``build/hub/node/``: nothing global, every dependency pinned. It needs Node 20 or newer.
- **SharedPasswordAuthenticator**: one password for the room (written on the board), any name
  (a new name makes a new learner), and a separate, long password for the instructor's account,
  the only admin. Nothing to set up per learner, no accounts to create on the machine.
  NativeAuthenticator (sign-up, then the instructor approves each learner) suits a class that
  meets for weeks; a room that meets for an afternoon does not want twenty approvals.
- **SimpleLocalProcessSpawner**: each learner's JupyterLab is a process of this machine's user,
  with its own home folder, ``build/hub/homes/<name>/``. When a learner's server first starts,
  :func:`prepare_home` makes the course there with ``git clone`` of this course folder
  (``~/dlcourse``: what is committed, not uncommitted edits); the course's server extension
  then writes the learner's copies into ``~/dlcourse/work/`` and opens the latest one, with
  ``notebooks/`` read-only, as ``dlcourse lab`` does. A clone (rather than an nbgitpuller link
  followed in the browser) exists before the server starts, whatever the learner clicks first;
  ``git pull`` in it, or a ``dlcourse class link`` link, later brings the instructor's updates,
  and never overwrites a learner's copies (``work/`` is not tracked).
- The servers run in the course's environment (this ``.venv``: its JupyterLab, its kernel, its
  ``dlcourse``), with the course's JupyterLab defaults.

**Isolation: none between learners.** Every learner's server, kernel and terminal runs as the
same Unix user as the hub itself. Separate home folders keep learners from getting in each
other's way by accident, not on purpose: any learner can read and change any other learner's
files from a notebook or a terminal, and can read the hub's own state in ``build/hub/`` (its
database, its cookie secret, the passwords), and so become the instructor. Anyone with the
room's password can also log in under any learner's name. Use it only in a room whose people
you trust, on a network you trust (plain HTTP). For anything else: The Littlest JupyterHub (one
Unix user per learner) or Zero to JupyterHub on Kubernetes (one container each); see
``docs/hub.md``.

State lives in ``build/hub/`` (made readable by this user only): ``hub.json`` (the settings and
passwords, 0600), JupyterHub's sqlite database and cookie secret (0600), the learners' homes.
Stopping the hub (Ctrl-C) stops every learner's server; their files stay for the next start.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dlcourse.machinery.atomic import write_bytes_atomically
from dlcourse.machinery.notebooks import NOTEBOOK_DIR

COURSE_DIR = NOTEBOOK_DIR.parent
HUB_DIR = COURSE_DIR / "build" / "hub"
PROXY_DIR = HUB_DIR / "node"  # where npm installs the proxy
PROXY_PACKAGE = Path(__file__).resolve().parent / "jupyter_config" / "hub"  # package.json, lock
PROXY_NAME = "configurable-http-proxy"
PROXY_VERSION = "5.3.0"  # the version package.json pins; configurable-http-proxy needs Node 20+
NODE_MIN_MAJOR = 20
NODE_INSTALL_HINT = (
    "make hub needs Node.js 20 or newer and npm: on Debian 13 or Ubuntu 24.04, "
    "`sudo apt-get install nodejs npm`; elsewhere https://nodejs.org (or NodeSource's packages)"
)

COURSE_FOLDER = "dlcourse"  # the course's folder in a learner's home, as `git clone` names it
SETTINGS_FILE = "hub.json"
CONFIG_FILE = "jupyterhub_config.py"
ADMIN_SERVICE = "dlcourse-admin"  # an API token with the admin role, for scripts (and the test)
DEFAULT_PORT = 8000
DEFAULT_INSTRUCTOR = "instructor"
USER_PASSWORD_MIN = 8  # SharedPasswordAuthenticator's own minimum lengths
ADMIN_PASSWORD_MIN = 32
# A learner's name is a folder name: letters (any script: names in Hangul too), digits, "_",
# "." and "-", not starting with a dot; JupyterHub makes it lower case.
USERNAME_PATTERN = r"^\w[\w.-]{0,39}$"
LOGIN_MESSAGE = (
    "Choose a name for yourself (letters and digits) and type the room's password. "
    "Use the same name next time to find your notebooks again."
)


class HubError(Exception):
    """The hub cannot start: the message says what is wrong and what to do."""


# --------------------------------------------------------------------------- the proxy


def proxy_executable(target: Path = PROXY_DIR) -> Path:
    """Where :func:`install_proxy` puts the ``configurable-http-proxy`` command."""
    return Path(target) / "node_modules" / ".bin" / PROXY_NAME


def proxy_installed(target: Path = PROXY_DIR) -> bool:
    """Whether the pinned proxy is installed in ``target``, from this package's lock file."""
    target = Path(target)
    try:
        installed = json.loads(
            (target / "node_modules" / PROXY_NAME / "package.json").read_text(encoding="utf-8")
        )
        lock_here = (target / "package-lock.json").read_bytes()
    except (OSError, ValueError):
        return False
    return (
        installed.get("version") == PROXY_VERSION
        and lock_here == (PROXY_PACKAGE / "package-lock.json").read_bytes()
        and proxy_executable(target).is_file()
    )


def node_major(node: str | None = None) -> int | None:
    """The major version of Node.js (``node`` on the PATH, or the executable ``node``); None
    without one."""
    node = node or shutil.which("node")
    if node is None:
        return None
    try:
        said = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.match(r"v(\d+)\.", said.strip())
    return int(found.group(1)) if found else None


def install_proxy(target: Path = PROXY_DIR, quiet: bool = False) -> Path:
    """Install configurable-http-proxy :data:`PROXY_VERSION` into ``target`` with ``npm ci``
    (every dependency at the lock file's version), unless it is there already: then nothing is
    done and nothing is downloaded. Returns the proxy's executable.

    Raises :class:`HubError` without Node.js 20+ and npm, or when npm fails (offline)."""
    target = Path(target)
    if proxy_installed(target):
        return proxy_executable(target)
    npm, major = shutil.which("npm"), node_major()
    if npm is None or major is None:
        raise HubError(f"no {'npm' if major is not None else 'Node.js'} here: {NODE_INSTALL_HINT}")
    if major < NODE_MIN_MAJOR:
        raise HubError(
            f"Node.js {major} is too old for {PROXY_NAME} {PROXY_VERSION}: {NODE_INSTALL_HINT}"
        )
    target.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(PROXY_PACKAGE / name, target / name)
    if not quiet:
        print(f"Installing {PROXY_NAME} {PROXY_VERSION} with npm into {target} ...", flush=True)
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--omit=dev", "--loglevel=error"],
        cwd=target, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0 or not proxy_installed(target):
        said = (done.stderr or done.stdout).strip()[-2000:]
        raise HubError(
            f"npm could not install {PROXY_NAME} {PROXY_VERSION} into {target} (it needs the "
            f"npm registry: is this machine online?):\n{said}"
        )
    return proxy_executable(target)


# --------------------------------------------------------------------------- settings


@dataclasses.dataclass
class HubSettings:
    """One room's hub: what :func:`configure` makes of it. Saved as ``hub.json`` (0600: it
    holds the passwords) in ``folder``, which the generated ``jupyterhub_config.py`` reads."""

    course: Path  # the course folder (a git clone) that each learner's home gets a clone of
    folder: Path  # the hub's state: database, cookie secret, the learners' homes
    user_password: str  # the room's password (any name, not the instructor's)
    admin_password: str  # the instructor's password (at least 32 characters)
    port: int = DEFAULT_PORT  # the address learners open: http://<this machine>:<port>/
    ip: str = ""  # the interface it listens on ("": all, for the room; 127.0.0.1: this machine)
    instructor: str = DEFAULT_INSTRUCTOR  # the admin account's name
    idle_minutes: int = 0  # stop kernels and servers idle this long (0: never)
    lang: str = "en"  # the course's language: en, or ko (copies in work/ko/, JupyterLab in Korean)
    hub_api_port: int = 8081  # JupyterHub's own API, on 127.0.0.1
    proxy_api_port: int = 8001  # the proxy's API, on 127.0.0.1
    proxy: Path = dataclasses.field(default_factory=proxy_executable)
    admin_token: str | None = None  # an API token with the admin role (service dlcourse-admin)

    @property
    def homes(self) -> Path:
        """The learners' home folders: ``<folder>/homes/<name>/``."""
        return Path(self.folder) / "homes"

    def save(self) -> Path:
        """Write ``hub.json`` in ``folder``, readable by this user only."""
        data = {
            key: str(value) if isinstance(value, Path) else value
            for key, value in dataclasses.asdict(self).items()
        }
        path = Path(self.folder) / SETTINGS_FILE
        text = json.dumps(data, indent=1, sort_keys=True) + "\n"
        write_bytes_atomically(path, text.encode("utf-8"))
        path.chmod(0o600)
        return path

    @classmethod
    def load(cls, path: Path) -> HubSettings:
        """The settings in ``hub.json`` at ``path``."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        known = {f.name: f for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("course", "folder", "proxy"):
            values[key] = Path(values[key])
        return cls(**values)


def _room_password() -> str:
    """A password to write on the board: three groups of four letters and digits, none of
    them easily confused (no 0/o, 1/l/i)."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(3))


def room_passwords(
    folder: Path, environ: Mapping[str, str] | None = None
) -> tuple[str, str, list[str]]:
    """The room's and the instructor's passwords: ``HUB_PASSWORD`` and ``HUB_ADMIN_PASSWORD``
    from the environment, else the ones of the previous start (``hub.json``), else new ones.
    Returns ``(room, instructor, names of those made now)``."""
    environ = os.environ if environ is None else environ
    try:
        previous = json.loads((Path(folder) / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        previous = {}
    made = []
    user = environ.get("HUB_PASSWORD") or previous.get("user_password")
    if not user:
        user = _room_password()
        made.append("user_password")
    admin = environ.get("HUB_ADMIN_PASSWORD") or previous.get("admin_password")
    if not admin:
        admin = secrets.token_urlsafe(30)  # 40 characters
        made.append("admin_password")
    if len(user) < USER_PASSWORD_MIN:
        raise HubError(f"HUB_PASSWORD needs at least {USER_PASSWORD_MIN} characters")
    if len(admin) < ADMIN_PASSWORD_MIN:
        raise HubError(
            f"HUB_ADMIN_PASSWORD needs at least {ADMIN_PASSWORD_MIN} characters (JupyterHub's "
            "rule for an admin's shared password); leave it unset to have one made"
        )
    if user == admin:
        raise HubError("HUB_PASSWORD and HUB_ADMIN_PASSWORD must differ")
    return user, admin, made


def free_port(ip: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- JupyterHub's config


def configure(c: Any, settings: HubSettings) -> None:
    """Make JupyterHub's configuration ``c`` (``get_config()`` in a ``jupyterhub_config.py``)
    the room's hub of ``settings``."""
    from dlcourse.machinery import lab

    folder = Path(settings.folder).resolve()
    # where JupyterHub listens: the public address (its proxy), its own API, the proxy's API
    c.JupyterHub.ip = settings.ip
    c.JupyterHub.port = settings.port
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = settings.hub_api_port
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings.proxy_api_port}"
    c.ConfigurableHTTPProxy.command = [str(settings.proxy)]
    c.ConfigurableHTTPProxy.pid_file = str(folder / "jupyterhub-proxy.pid")
    # its state, in the hub's folder
    c.JupyterHub.db_url = f"sqlite:///{folder / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(folder / "jupyterhub_cookie_secret")  # 0600
    c.JupyterHub.pid_file = str(folder / "jupyterhub.pid")
    c.JupyterHub.template_vars = {"announcement_login": LOGIN_MESSAGE}

    # who logs in: anyone with the room's password, under a name of their choice; the instructor
    # with theirs, as the only admin
    c.JupyterHub.authenticator_class = "shared-password"
    c.SharedPasswordAuthenticator.user_password = settings.user_password
    c.SharedPasswordAuthenticator.admin_password = settings.admin_password
    c.Authenticator.admin_users = {settings.instructor}
    c.Authenticator.allow_all = True
    c.Authenticator.username_pattern = USERNAME_PATTERN
    if settings.admin_token:
        c.JupyterHub.services = [{"name": ADMIN_SERVICE, "api_token": settings.admin_token}]
        c.JupyterHub.load_roles = [{"name": "admin", "services": [ADMIN_SERVICE]}]

    # each learner's JupyterLab: a process of this user in its own home, the course cloned there
    c.JupyterHub.spawner_class = "simple"
    homes = folder / "homes"
    c.SimpleLocalProcessSpawner.home_dir_template = str(homes / "{username}")
    c.Spawner.notebook_dir = str(homes / "{username}")
    c.Spawner.pre_spawn_hook = functools.partial(prepare_home, course=Path(settings.course))
    c.Spawner.cmd = [str(Path(sys.executable).parent / "jupyterhub-singleuser")]
    c.Spawner.start_timeout = 180  # a busy 2-core machine starting twenty servers at once
    c.Spawner.http_timeout = 180
    # the course's environment and JupyterLab defaults; nothing else of the hub's environment
    # (its PYTHONPATH, its test settings) reaches the learners
    c.Spawner.env_keep = ["LANG", "LC_ALL", "LD_LIBRARY_PATH"]
    env = lab.lab_environment({"PATH": os.environ.get("PATH", os.defpath)}, lang=settings.lang)
    c.Spawner.environment = {
        key: env[key] for key in ("PATH", "JUPYTER_CONFIG_PATH", "VIRTUAL_ENV") if key in env
    }
    if settings.lang != "en":  # the server extension writes the copies in this language
        c.Spawner.environment["DLCOURSE_LANG"] = settings.lang
    # the learners' terminals: bash (as SimpleLocalProcessSpawner's SHELL says), not as a login
    # shell, which would put the system's PATH before the course's
    shell = lab.terminal_shell({"SHELL": shutil.which("bash") or "/bin/sh"})
    args = [f"--ServerApp.terminado_settings=shell_command={shell!r}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--allow-root")  # a container, or a cloud machine's root
    if settings.idle_minutes > 0:
        seconds = 60 * settings.idle_minutes
        args += [
            f"--MappingKernelManager.cull_idle_timeout={seconds}",
            "--MappingKernelManager.cull_interval=60",
            f"--ServerApp.shutdown_no_activity_timeout={seconds}",
        ]
    c.Spawner.args = args


async def prepare_home(spawner: Any, course: Path) -> None:
    """JupyterHub's ``pre_spawn_hook``: before a learner's server starts, give their home the
    course (``git clone`` of ``course`` into ``~/dlcourse``) if it has none yet. A home that has
    it is left as it is: the learner's copies and any update they pulled stay."""
    home = Path(spawner.home_dir)
    await asyncio.get_running_loop().run_in_executor(None, clone_course, course, home)


def clone_course(course: Path, home: Path) -> Path:
    """The course in ``home`` (``home/dlcourse``): cloned from ``course`` when missing."""
    from dlcourse.machinery.workspace import is_course

    target = Path(home) / COURSE_FOLDER
    if is_course(target):
        return target
    if target.exists():
        raise HubError(
            f"{target} is there but is not the course (no notebooks/ and dlcourse/ in it): "
            f"move it away, and the course is cloned there at the learner's next start"
        )
    Path(home).mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["git", "clone", "--quiet", str(course), str(target)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise HubError(f"git clone {course} {target} failed: {done.stderr.strip()}")
    return target


# --------------------------------------------------------------------------- starting


def check_course(course: Path) -> str:
    """The commit of ``course`` that learners' homes get (``git clone``). Raises
    :class:`HubError` when ``course`` is not a git clone of the course."""
    from dlcourse.machinery.workspace import is_course

    if not is_course(course):
        raise HubError(f"{course} is not the course (no notebooks/ and dlcourse/ there)")
    done = subprocess.run(
        ["git", "-C", str(course), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise HubError(
            f"make hub gives each learner a git clone of {course}, which is not a git clone of "
            f"the course: git clone the course, then run make hub there ({done.stderr.strip()})"
        )
    return done.stdout.strip()


def uncommitted(course: Path) -> list[str]:
    """Files of the course's notebooks and package changed but not committed: the learners'
    clones will not have these changes."""
    done = subprocess.run(
        ["git", "-C", str(course), "status", "--porcelain", "--", "notebooks", "dlcourse"],
        capture_output=True, text=True,
    )  # fmt: skip
    return [line[3:] for line in done.stdout.splitlines() if line.strip()]


def write_config(settings: HubSettings) -> Path:
    """Save the settings and write the ``jupyterhub_config.py`` that reads them, both in the
    hub's folder (made readable by this user only). Returns the config file."""
    folder = Path(settings.folder)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    settings.save()
    config = folder / CONFIG_FILE
    text = (
        "# JupyterHub's configuration for `make hub`, written by dlcourse.machinery.hub at each\n"
        "# start: every setting is made by its configure(); this room's values (the port, the\n"
        f"# passwords, the course) are in {SETTINGS_FILE} beside this file.\n"
        "from pathlib import Path\n\n"
        "from dlcourse.machinery.hub import HubSettings, configure\n\n"
        f"configure(get_config(), HubSettings.load(Path(__file__).parent / {SETTINGS_FILE!r}))\n"
    )
    write_bytes_atomically(config, text.encode("utf-8"))
    return config


def hub_command(settings: HubSettings) -> list[str]:
    """The command that runs JupyterHub for ``settings`` (after :func:`write_config`), from
    the hub's folder."""
    return [sys.executable, "-m", "jupyterhub", "-f", str(Path(settings.folder) / CONFIG_FILE)]


def hub_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment JupyterHub runs in: ``base`` (default: this process's) with this
    environment's scripts first on PATH."""
    env = dict(os.environ if base is None else base)
    scripts = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(dict.fromkeys([scripts, *env.get("PATH", "").split(os.pathsep)]))
    return env


def lan_address() -> str:
    """This machine's address on its network (the one a learner's laptop would use), else its
    name. Nothing is sent: a UDP socket "connected" only picks its outgoing interface."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed anywhere
            return s.getsockname()[0]
    except OSError:
        return socket.gethostname()


def hub_urls(settings: HubSettings) -> list[str]:
    """The addresses where the hub answers: for the room first, then this machine's."""
    if settings.ip in ("", "0.0.0.0", "::"):
        return [f"http://{lan_address()}:{settings.port}/", f"http://localhost:{settings.port}/"]
    return [f"http://{settings.ip}:{settings.port}/"]


def describe(settings: HubSettings, commit: str, made: Sequence[str]) -> str:
    """What the instructor needs to know when the hub starts, for the terminal."""
    urls = hub_urls(settings)
    lines = [
        f"JupyterHub for this room: {urls[0]}",
        *(f"  (also {url})" for url in urls[1:]),
        f"  learners: any name, and the room's password: {settings.user_password}",
    ]
    if "admin_password" in made:
        lines.append(
            f"  instructor: {settings.instructor}, password {settings.admin_password} "
            "(shown this once; kept in "
            f"{Path(settings.folder) / SETTINGS_FILE}), with JupyterHub's admin page at /hub/admin"
        )
    else:
        lines.append(
            f"  instructor: {settings.instructor}, with the password in "
            f"{Path(settings.folder) / SETTINGS_FILE} (admin page: /hub/admin)"
        )
    lines += [
        f"  each learner gets a git clone of {settings.course} (commit {commit}) in "
        f"{settings.homes}/<name>/{COURSE_FOLDER}",
        "  No isolation between learners: for one trusted room only (see docs/hub.md).",
        "  Ctrl-C stops the hub and every learner's server; their files stay.",
    ]
    if settings.lang != "en":
        lines.append(
            f"  the course in {settings.lang}: the learners' copies in work/{settings.lang}/"
        )
    if settings.idle_minutes > 0:
        lines.append(f"  kernels and servers idle for {settings.idle_minutes} min are stopped")
    changed = uncommitted(settings.course)
    if changed:
        lines.append(
            "  Not committed, so not in the learners' clones: "
            + ", ".join(changed[:5])
            + (" ..." if len(changed) > 5 else "")
        )
    return "\n".join(lines)


def room_settings(
    *,
    course: Path = COURSE_DIR,
    folder: Path = HUB_DIR,
    port: int = DEFAULT_PORT,
    ip: str = "",
    instructor: str = DEFAULT_INSTRUCTOR,
    idle_minutes: int = 0,
    lang: str = "en",
    environ: Mapping[str, str] | None = None,
) -> tuple[HubSettings, list[str]]:
    """The settings of ``make hub``: passwords from :func:`room_passwords`, the hub's own API
    and the proxy's on free ports of 127.0.0.1. Returns ``(settings, passwords made now)``."""
    from dlcourse.machinery.translations import TranslationError, check_language

    if not re.match(USERNAME_PATTERN, instructor):
        raise HubError(f"{instructor!r} cannot be a name on the hub: letters, digits, _ . -")
    try:
        lang = check_language(lang)
    except TranslationError as exc:
        raise HubError(str(exc)) from exc
    user, admin, made = room_passwords(folder, environ)
    settings = HubSettings(
        course=Path(course).resolve(),
        folder=Path(folder).resolve(),
        user_password=user,
        admin_password=admin,
        port=port,
        ip=ip,
        instructor=instructor.lower(),
        idle_minutes=idle_minutes,
        lang=lang,
        hub_api_port=free_port(),
        proxy_api_port=free_port(),
    )
    return settings, made


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dlcourse.machinery.hub``: install the proxy if needed, then run the hub."""
    parser = argparse.ArgumentParser(
        prog="python -m dlcourse.machinery.hub",
        description="A JupyterHub for one trusted room on this machine (make hub). Passwords: "
        "HUB_PASSWORD (the room's, 8+ characters) and HUB_ADMIN_PASSWORD (the instructor's, "
        "32+), else those of the last start, else new ones, printed.",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="default %(default)s")
    parser.add_argument(
        "--ip", default="", help="interface to listen on (default: all; 127.0.0.1: this machine)"
    )
    parser.add_argument("--instructor", default=DEFAULT_INSTRUCTOR, help="the admin's name")
    parser.add_argument(
        "--idle-minutes", type=int, default=0, help="stop idle kernels and servers (0: never)"
    )
    parser.add_argument(
        "--lang",
        default=os.environ.get("DLCOURSE_LANG") or "en",
        help="the course's language: en, or ko (the learners' copies in work/ko/, JupyterLab in "
        "Korean); default: $DLCOURSE_LANG, else en",
    )
    parser.add_argument("--folder", type=Path, default=HUB_DIR, help="the hub's state")
    parser.add_argument(
        "--install-proxy", action="store_true", help="install the proxy (npm) and exit"
    )
    args = parser.parse_args(argv)
    try:
        if args.install_proxy:
            print(f"{PROXY_NAME} {PROXY_VERSION}: {install_proxy()}")
            return 0
        commit = check_course(COURSE_DIR)
        install_proxy()
        settings, made = room_settings(
            folder=args.folder,
            port=args.port,
            ip=args.ip,
            instructor=args.instructor,
            idle_minutes=args.idle_minutes,
            lang=args.lang,
        )
        write_config(settings)
    except HubError as exc:
        print(f"make hub: {exc}", file=sys.stderr)
        return 1
    print(describe(settings, commit, made), flush=True)
    command, env = hub_command(settings), hub_environment()
    os.chdir(settings.folder)
    if os.name == "posix":
        os.execve(command[0], command, env)  # JupyterHub takes over this process (and Ctrl-C)
    return subprocess.call(command, env=env)


if __name__ == "__main__":
    raise SystemExit(main())
