"""The course on a JupyterHub: docs/hub/Dockerfile, docs/hub/config.yaml (Zero to JupyterHub),
Binder's environment.yml and postBuild, and docs/hub.md agree with the lock and pyproject.toml.

Nothing here builds the image (that needs a Docker engine) or installs the chart (a Kubernetes
cluster): these read the files, and check what would make a build or a hub go wrong: a Python
the lock does not cover, an install that is not pinned by the lock or lacks an extra the hub
needs, a JupyterHub major version that differs between the hub and the learners' servers, an
image name the docs do not build, resources below what the course was measured to need.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
from functools import cache
from pathlib import Path

import pytest
import yaml
from packaging.markers import Marker
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from dlcourse.machinery import lab, server_extension
from tests._compat import tomllib

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "docs" / "hub" / "Dockerfile"
CONFIG = ROOT / "docs" / "hub" / "config.yaml"
HUB_PAGE = ROOT / "docs" / "hub.md"
POSTBUILD = ROOT / "postBuild"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# The JupyterHub major version each Zero to JupyterHub chart major ships (z2jh's changelog:
# 2.0.0 brought JupyterHub 3, 3.0.0 JupyterHub 4, 4.0.0 JupyterHub 5; its 4.x branch stayed on
# JupyterHub 5 after 6.0, so 5 is the chart of JupyterHub 6). A new major goes here.
CHART_JUPYTERHUB = {2: 3, 3: 4, 4: 5, 5: 6}
# Where the image's Python keeps its Jupyter configuration: sys.prefix of the python images.
IMAGE_PREFIX = "/usr/local"


# --------------------------------------------------------------------------- reading the files


@cache
def _instructions() -> tuple[tuple[str, str], ...]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined, comments and
    parser directives left out."""
    found: list[tuple[str, str]] = []
    current = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            keyword, _, rest = current.strip().partition(" ")
            found.append((keyword.upper(), " ".join(rest.split())))
            current = ""
    assert not current, "the Dockerfile ends inside a continued line"
    return tuple(found)


def _args(keyword: str) -> list[str]:
    return [rest for kw, rest in _instructions() if kw == keyword]


def _arg_default(name: str) -> str:
    for rest in _args("ARG"):
        key, _, value = rest.partition("=")
        if key == name:
            assert value, f"ARG {name} needs a default"
            return value
    raise AssertionError(f"the Dockerfile has no ARG {name}")


def _pip_installs() -> list[list[str]]:
    """Every ``pip install`` of the Dockerfile's RUN steps, as its words."""
    found = []
    for rest in _args("RUN"):
        for command in rest.split("&&"):
            if "pip install" not in command:
                continue
            words = shlex.split(command)
            if "pip" in words and words[words.index("pip") + 1 : words.index("pip") + 2] == [
                "install"
            ]:
                found.append(words[words.index("pip") + 2 :])
    return found


def _constrained_by_the_lock(words: list[str]) -> bool:
    pairs = itertools.pairwise(words)
    return ("-c", "constraints.txt") in pairs or "--constraint=constraints.txt" in words


@cache
def _config() -> dict:
    return yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


def _hub_page() -> str:
    return HUB_PAGE.read_text(encoding="utf-8")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


@cache
def _lock() -> list[tuple[str, str, Marker | None]]:
    """constraints.txt as (name, version, marker) for each pin."""
    pins = []
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        spec, _, marker = line.partition(";")
        name, _, version = spec.strip().partition("==")
        assert version, f"constraints.txt: {line!r} is not an exact pin"
        pins.append(
            (re.sub(r"[-_.]+", "-", name).lower(), version, Marker(marker) if marker else None)
        )
    return pins


def _locked_for(python: str, machine: str) -> dict[str, str]:
    """The pins the lock gives a Linux machine with this Python (``3.11.14``), one per package."""
    env = {
        "python_version": ".".join(python.split(".")[:2]),
        "python_full_version": python,
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": machine,
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }
    chosen: dict[str, str] = {}
    for name, version, marker in _lock():
        if marker is None or marker.evaluate(env):
            assert name not in chosen, (
                f"constraints.txt gives Python {python} on {machine} two pins of {name}: "
                f"{chosen[name]} and {version}"
            )
            chosen[name] = version
    return chosen


def _lock_pin(name: str) -> str:
    (version,) = {v for n, v, _ in _lock() if n == name}
    return version


def _shell_commands(text: str, program: str) -> list[str]:
    """The lines of ``text`` (a shell block or a comment) that run ``program``, without a
    leading ``#``, whitespace normalised."""
    found = []
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line.startswith(program + " "):
            found.append(" ".join(line.split()))
    return found


# --------------------------------------------------------------------------- the image


def test_the_image_runs_a_python_the_lock_covers() -> None:
    python = _arg_default("PYTHON_VERSION")
    assert re.fullmatch(r"3\.\d+", python), python
    (base,) = _args("FROM")
    assert base in ("python:${PYTHON_VERSION}-slim", "python:${PYTHON_VERSION}-slim-trixie"), base
    requires = _pyproject()["project"]["requires-python"]
    assert SpecifierSet(requires).contains(python + ".0"), f"{python} is outside {requires}"
    markers = " ".join(str(m) for _, _, m in _lock() if m is not None)
    named = rf"python_(?:full_)?version [<>=!~]+ [\"']{re.escape(python)}[\"'.]"
    assert re.search(named, markers), f"the lock's markers never name Python {python}: make lock"
    for machine in ("x86_64", "aarch64"):
        for patch in ("0", "99"):  # the image's Python is whichever patch release is current
            locked = _locked_for(f"{python}.{patch}", machine)
            for package in ("torch", "jupyterhub", "jupyterlab", "nbgitpuller", "numpy"):
                assert package in locked, f"the lock has no {package} for Python {python}"


def test_the_image_installs_torch_and_the_course_from_the_lock() -> None:
    installs = _pip_installs()
    assert installs, "the Dockerfile installs nothing with pip"
    for words in installs:
        assert _constrained_by_the_lock(words), (
            f"pip install {' '.join(words)}: add -c constraints.txt"
        )
    torch = [w for w in installs if any(re.fullmatch(r"torch(==.*)?", a) for a in w)]
    assert len(torch) == 1, "one step installs torch, before the course"
    (spec,) = [a for a in torch[0] if a.startswith("torch")]
    assert spec in ("torch", f"torch=={_lock_pin('torch')}"), f"{spec}: the lock's torch"
    assert torch[0][torch[0].index("--index-url") + 1] == "${TORCH_INDEX}"
    assert _arg_default("TORCH_INDEX") == CPU_INDEX, "the CPU build is the default"
    course = [w for w in installs if any(a.startswith(".[") for a in w)]
    assert len(course) == 1, "one step installs the course"
    assert "-e" in course[0], "editable, as make lab installs it: dlcourse finds data/ beside it"
    (target,) = [a for a in course[0] if a.startswith(".[")]
    extras = set(target.removeprefix(".[").removesuffix("]").split(","))
    assert {"lab", "hub"} <= extras, f"{target}: a hub's server needs the lab and hub extras"
    assert extras <= set(_pyproject()["project"]["optional-dependencies"]), extras
    steps = [f"{kw} {rest}" for kw, rest in _instructions()]
    copied = min(i for i, s in enumerate(steps) if s.startswith("COPY constraints.txt"))
    assert copied < min(i for i, s in enumerate(steps) if s.startswith("RUN pip install --no-deps"))


def test_the_lock_has_the_jupyterhub_singleuser_the_image_starts() -> None:
    assert _args("CMD") == ['["jupyterhub-singleuser"]']
    assert _args("ENTRYPOINT") == ['["tini", "-g", "--"]']
    hub = _pyproject()["project"]["optional-dependencies"]["hub"]
    assert any(re.split(r"[<>=;\[ ]", spec)[0] == "jupyterhub" for spec in hub)
    assert Version(_lock_pin("jupyterhub")).major >= 5


def test_the_image_copies_what_the_course_has_and_runs_as_a_learner() -> None:
    for rest in _args("COPY"):
        *sources, _ = rest.split()
        for source in sources:
            assert not source.startswith("--"), f"COPY {rest}: copy from the build context only"
            assert (ROOT / source).exists(), f"COPY {source}: not in the course's folder"
            assert source not in (".", ".venv", "work", "build"), f"COPY {source}: too much"
    users = _args("USER")
    assert users and users[-1] not in ("root", "0"), "the server runs as a learner, not root"
    (useradd,) = [r for r in _args("RUN") if "useradd" in r]
    uid = re.search(r"--uid (\d+)", useradd)[1]
    gid = re.search(r"--gid (\d+)", useradd)[1]
    assert users[-1] in (uid, "jovyan")
    singleuser = _config()["singleuser"]
    assert (singleuser["uid"], singleuser["fsGid"]) == (int(uid), int(gid))
    assert shlex.split(singleuser["cmd"]) == json.loads(_args("CMD")[-1])


def _server_extension_file() -> tuple[str, str]:
    """What pyproject.toml's data-files put where: (source, folder under sys.prefix)."""
    data_files = _pyproject()["tool"]["setuptools"]["data-files"]
    (folder,) = [f for f in data_files if f.endswith("jupyter_server_config.d")]
    (source,) = data_files[folder]
    return source, folder


def test_the_image_gives_its_servers_the_courses_jupyter_config() -> None:
    """As ``dlcourse lab`` and ``make hub`` do: the course's config folder on
    JUPYTER_CONFIG_PATH (an editable install skips the data-files a wheel would install)."""
    source, _ = _server_extension_file()
    enabled = json.loads((ROOT / source).read_text(encoding="utf-8"))
    assert enabled["ServerApp"]["jpserver_extensions"] == {server_extension.EXTENSION: True}
    assert (ROOT / source).parent.parent == lab.CONFIG_DIR
    (workdir,) = [w for w in _args("WORKDIR") if w.startswith("/opt/")]
    config_path = dict(e.split("=", 1) for rest in _args("ENV") for e in rest.split())
    expected = f"{workdir}/{lab.CONFIG_DIR.relative_to(ROOT).as_posix()}"
    assert config_path.get("JUPYTER_CONFIG_PATH") == expected, "the course's Jupyter config"
    (check,) = [r for r in _args("RUN") if "get_jpserver_extensions" in r]
    assert f"name = '{server_extension.EXTENSION}'" in check, "the build checks the extension"
    assert "assert ExtensionPackage(name=name).validate()" in check


def test_binder_enables_the_server_extension() -> None:
    """Binder's postBuild copies the file a wheel install would put under sys.prefix."""
    source, folder = _server_extension_file()
    target = f"{folder}/{Path(source).name}"
    text = POSTBUILD.read_text(encoding="utf-8").replace("\\\n", " ")
    commands = [" ".join(line.split()) for line in text.splitlines() if not line.startswith("#")]
    assert any(
        c.startswith(f"install -D -m 644 {source} ") and c.endswith(f'/{target}"') for c in commands
    ), f"postBuild: copy {source} to <sys.prefix>/{target}"
    assert "print(sys.prefix)" in text, "postBuild: under this Python's sys.prefix"
    listed = server_extension.EXTENSION.replace(".", "\\.") + " .*OK"
    assert f"jupyter server extension list 2>&1 | grep -E '{listed}'" in commands, (
        f"postBuild must fail unless the server lists {server_extension.EXTENSION}"
    )


# --------------------------------------------------------------------------- Binder


def test_binder_installs_the_course_and_only_the_course() -> None:
    environment = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip, "environment.yml installs the course (repo2docker runs it)"
    assert os.access(POSTBUILD, os.X_OK), "postBuild must be executable"
    text = POSTBUILD.read_text(encoding="utf-8")
    assert text.startswith("#!/bin/bash\n")
    assert "\nset -euo pipefail\n" in text
    commands = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert not any("pip install" in c or "jupyterhub" in c for c in commands), (
        "Binder's hub brings its own jupyterhub-singleuser: postBuild installs nothing"
    )
    for other in ("Dockerfile", "binder", ".binder"):  # each would replace environment.yml
        assert not (ROOT / other).exists(), f"a top-level {other} hides environment.yml from Binder"


# --------------------------------------------------------------------------- the hub's config


def _helm_install(text: str) -> str:
    (command,) = [c for c in _shell_commands(text, "helm") if " upgrade " in f" {c} "]
    return command


def test_the_chart_runs_the_jupyterhub_major_of_the_lock() -> None:
    command = _helm_install(CONFIG.read_text(encoding="utf-8"))
    assert command == _helm_install(_hub_page()), "config.yaml and docs/hub.md install alike"
    words = shlex.split(command)
    assert words[words.index("--values") + 1] == "config.yaml"
    assert "jupyterhub/jupyterhub" in words
    version = words[words.index("--version") + 1]
    match = re.fullmatch(r"[\^~]?(\d+)\.\d+\.\d+", version)
    assert match, f"--version {version}: a chart version or caret range"
    chart_major = int(match[1])
    assert chart_major in CHART_JUPYTERHUB, f"chart {chart_major}: add its JupyterHub major"
    hub_major = CHART_JUPYTERHUB[chart_major]
    singleuser_major = Version(_lock_pin("jupyterhub")).major
    assert hub_major == singleuser_major, (
        f"chart {chart_major} runs JupyterHub {hub_major}, the image's jupyterhub-singleuser is "
        f"{singleuser_major}: a hub and its servers must share a major version"
    )


def _build_commands(text: str) -> list[str]:
    return [c for c in _shell_commands(text, "docker") if c.startswith("docker build")]


def test_config_names_the_image_the_docs_build() -> None:
    dockerfile_text = DOCKERFILE.read_text(encoding="utf-8")
    builds = _build_commands(dockerfile_text)
    assert len(builds) == 2, "the Dockerfile says how to build the CPU and the CUDA image"
    page_builds = _build_commands(_hub_page())
    assert builds == page_builds, "docs/hub.md builds the image as the Dockerfile says"
    cpu, cuda = builds
    for command in builds:
        assert command.startswith("docker build -f docs/hub/Dockerfile "), command
        assert command.endswith(" ."), f"{command}: the build context is the course's root"
    assert "--build-arg" not in cpu, "the CPU image is the Dockerfile's default"
    assert "--build-arg TORCH_INDEX=https://pypi.org/simple " in cuda
    commit = "$(git rev-parse --short HEAD)"
    names = [re.search(r" -t (\S+):(cpu|cuda)-(\$\([^)]*\)) ", c).groups() for c in builds]
    assert names == [(names[0][0], "cpu", commit), (names[0][0], "cuda", commit)], names
    image = _config()["singleuser"]["image"]
    assert image["name"] == names[0][0], "config.yaml pulls the image docs/hub.md builds"
    assert re.fullmatch(r"cpu-[0-9a-f]{7,40}", str(image["tag"])), image["tag"]


def _mebibytes(text: str) -> float:
    """``"1G"``, ``"512M"`` (JupyterHub's units, powers of 1024) in MiB."""
    number, unit = re.fullmatch(r"([\d.]+)([KMGT])", str(text)).groups()
    return float(number) * 1024.0 ** ("KMGT".index(unit) - 1)


def _measured() -> dict[str, float]:
    """docs/hub.md's table of what a learner's server took, in MiB."""
    rows = re.findall(r"^\| ([^|]+?) \| (\d+) MiB \|$", _hub_page(), re.MULTILINE)
    return {what: float(size) for what, size in rows}


def test_config_gives_each_learner_what_the_course_was_measured_to_need() -> None:
    measured = _measured()
    server = next(v for k, v in measured.items() if "server, idle" in k)
    open_kernel = next(v for k, v in measured.items() if "after `import" in k)
    peak = max(v for k, v in measured.items() if "at its peak" in k)
    assert len([k for k in measured if "at its peak" in k]) >= 2, "two notebooks measured"
    singleuser = _config()["singleuser"]
    memory, cpu = singleuser["memory"], singleuser["cpu"]
    guarantee, limit = _mebibytes(memory["guarantee"]), _mebibytes(memory["limit"])
    assert guarantee >= server + peak, f"{memory['guarantee']} < one running notebook's need"
    assert limit >= server + peak + 2 * open_kernel, f"{memory['limit']}: room for open kernels"
    assert guarantee <= limit
    assert 0 < cpu["guarantee"] <= cpu["limit"]
    capacity = singleuser["storage"]["capacity"]
    assert re.fullmatch(r"\d+Gi", capacity) and int(capacity[:-2]) >= 1


def test_config_lands_on_the_learners_copy_culls_and_logs_in() -> None:
    config = _config()
    singleuser = config["singleuser"]
    assert server_extension.nobody_chose(singleuser["defaultUrl"]), (
        "a page of the hub's choosing would keep the extension from opening the learner's copy"
    )
    assert config["cull"]["enabled"] and config["cull"]["timeout"] > 0
    (culling,) = singleuser["extraFiles"].values()
    assert culling["mountPath"].startswith(f"{IMAGE_PREFIX}/etc/jupyter/jupyter_server_config.d/")
    assert culling["mountPath"].endswith(".json")
    kernels = culling["data"]["MappingKernelManager"]
    assert kernels["cull_idle_timeout"] > 0 and kernels["cull_connected"] is False
    hub = config["hub"]["config"]
    assert hub["JupyterHub"]["authenticator_class"]
    assert hub["Authenticator"]["admin_users"], "an instructor account"


# --------------------------------------------------------------------------- the docs


def test_the_hub_page_links_what_exists_and_the_guide_links_it() -> None:
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", _hub_page())
    local = [link for link in links if not re.match(r"https?://", link)]
    assert local, "docs/hub.md links the files it describes"
    for link in local:
        assert (HUB_PAGE.parent / link).exists(), f"docs/hub.md links {link}, which is missing"
    for path in ("hub/Dockerfile", "hub/config.yaml", "../postBuild", "../environment.yml"):
        assert path in local, f"docs/hub.md should link {path}"
    guide = (ROOT / "docs" / "instructor-guide.md").read_text(encoding="utf-8")
    # the guide is also a page of the website (make site), where docs/hub.md is none: a link
    # would be a broken reference there, so the guide names the file, as it names others
    assert "`docs/hub.md`" in guide, "the instructor guide points to docs/hub.md"


@pytest.mark.parametrize("size", ["20", "200", "2,000"])
def test_the_hub_page_says_how_to_deploy_for_each_size_and_what_it_costs(size: str) -> None:
    text = _hub_page()
    section = rf"^## About {size} learners\b[^\n]*\n(.*?)(?=^## )"
    match = re.search(section, text, re.MULTILINE | re.DOTALL)
    assert match, f"docs/hub.md needs a '## About {size} learners' section"
    assert re.search(r"\$\d", match[1]), f"the {size} section says what it costs"
