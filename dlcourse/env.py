r"""The environment: seeding, determinism, device choice, and the ``doctor`` report.

Taught in ``notebooks/00_welcome.ipynb``; every notebook's setup cell calls
:func:`setup`.

Device choice, in order:

1. the ``device`` argument of :func:`setup` / :func:`pick_device`, when given;
2. the environment variable ``DLCOURSE_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``,
   ``mps`` or ``auto``), when set and not empty;
3. otherwise the fastest device present: CUDA, then Apple MPS, then the CPU.

Asking for a device that is not there (``DLCOURSE_DEVICE=cuda`` on a laptop
without an NVIDIA GPU) or for a name torch does not know raises
:class:`DeviceError`, whose message lists the devices that *are* available.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import random
import re
import sys
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from dlcourse import threads as _threads
from dlcourse._validate import integer

if TYPE_CHECKING:
    from collections.abc import Sequence

DEVICE_ENV_VAR = "DLCOURSE_DEVICE"
DEVICE_TYPES = ("cpu", "cuda", "mps")
_DEVICE_PATTERN = re.compile(r"^(?P<type>[a-z]+)(?::(?P<index>\d+))?$")

# What the course needs, with the lowest version it is tested with. These lower
# bounds are the ones in pyproject.toml (tests/test_env.py checks they agree).
# (distribution name, import name, lowest version, what it is for)
REQUIREMENTS: tuple[tuple[str, str, str, str], ...] = (
    ("torch", "torch", "2.1", "tensors, autograd, devices"),
    ("numpy", "numpy", "1.24", "arrays"),
    ("matplotlib", "matplotlib", "3.7", "plots"),
    ("ipywidgets", "ipywidgets", "8.0", "interactive demos"),
    ("tqdm", "tqdm", "4.64", "progress bars"),
    ("mnist1d", "mnist1d", "0.0.2", "generating the MNIST-1D dataset"),
    ("babel", "babel", "2.12", "the Korean edition's text (gettext catalogues)"),
    ("jupyterlab", "jupyterlab", "4.0", "the course's notebooks in the browser"),
    ("ipykernel", "ipykernel", "6.25", "the Python kernel JupyterLab runs the notebooks in"),
    (
        "jupyterlab-language-pack-ko-KR",
        "jupyterlab_language_pack_ko_KR",
        "4.0",
        "JupyterLab's menus in Korean (make lab LANG=ko)",
    ),
    ("nbgitpuller", "nbgitpuller", "1.2", "the course link on a JupyterHub (dlcourse class link)"),
)
MIN_PYTHON = (3, 10)


class DeviceError(ValueError):
    """A device was asked for that this machine does not have, or that does not exist."""


# --------------------------------------------------------------------------- devices


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """Names of the devices torch can use here, fastest kind last: ``['cpu', 'cuda:0', 'mps']``."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("mps")
    return names


def _why_no_cuda() -> str:
    if torch.version.cuda is None:
        return (
            f"this torch ({torch.__version__}) is a CPU-only build; install a CUDA build "
            "of torch to use an NVIDIA GPU"
        )
    return "torch has CUDA support but finds no NVIDIA GPU or driver on this machine"


def _resolve(spec: str, source: str) -> torch.device:
    """Turn a device name into a ``torch.device``, checking it exists here."""
    text = spec.strip().lower()
    available = available_devices()
    listing = ", ".join(available)
    match = _DEVICE_PATTERN.match(text)
    if match is None or match["type"] not in DEVICE_TYPES:
        raise DeviceError(
            f"{source}={spec!r} is not a device name. Use one of {', '.join(DEVICE_TYPES)} "
            f"(optionally with an index such as cuda:1) or 'auto'. "
            f"Available on this machine: {listing}."
        )
    kind, index = match["type"], match["index"]
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"{source}={spec!r} asks for CUDA, but {_why_no_cuda()}. "
                f"Available on this machine: {listing}. "
                f"Unset {DEVICE_ENV_VAR} (or set it to 'auto') to pick the best one."
            )
        count = torch.cuda.device_count()
        if index is not None and int(index) >= count:
            raise DeviceError(
                f"{source}={spec!r} asks for CUDA device {index}, but this machine has "
                f"{count} (cuda:0 to cuda:{count - 1}). Available on this machine: {listing}."
            )
    elif kind == "mps":
        if not _mps_available():
            raise DeviceError(
                f"{source}={spec!r} asks for Apple's MPS, which needs an Apple-silicon Mac "
                f"and a torch build with MPS. Available on this machine: {listing}."
            )
        if index not in (None, "0"):
            raise DeviceError(f"{source}={spec!r}: there is only one MPS device, 'mps'.")
    elif index not in (None, "0"):
        raise DeviceError(f"{source}={spec!r}: the CPU has no index; use 'cpu'.")
    return torch.device(text)


def _fastest() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """Choose the device: the argument, else ``$DLCOURSE_DEVICE``, else CUDA > MPS > CPU.

    Raises :class:`DeviceError` naming the available devices when the requested
    one is unknown or absent.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if device is not None and device.strip().lower() != "auto":
        return _resolve(device, "device")
    requested = os.environ.get(DEVICE_ENV_VAR, "").strip()
    if requested and requested.lower() != "auto":
        return _resolve(requested, DEVICE_ENV_VAR)
    return _fastest()


def device_description(device: torch.device) -> str:
    """A short human description, with torch's CPU threads and how they wait
    (:func:`dlcourse.threads.describe`): ``'cpu (1 thread, OpenMP wait passive)'``,
    ``'cuda:0 (NVIDIA H200, 139.8 GiB; CPU: 1 thread, OpenMP wait passive)'``."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return (
            f"cuda:{index} ({props.name}, {props.total_memory / 2**30:.1f} GiB; "
            f"CPU: {_threads.describe()})"
        )
    cpu = _threads.describe()
    if device.type == "mps":
        return f"mps (Apple GPU; CPU: {cpu})"
    return f"cpu ({cpu})"


# --------------------------------------------------------------------------- seeding


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every GPU)."""
    seed = integer(seed, "seed", error=TypeError)
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}; NumPy accepts no other seeds")
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA and MPS device


def set_deterministic(enabled: bool = True) -> None:
    """Ask torch for deterministic kernels (warning, not failing, where none exists).

    On CUDA this also sets ``CUBLAS_WORKSPACE_CONFIG``, which cuBLAS needs for
    reproducible matrix products; it takes effect only if set before the first
    cuBLAS call, so call this early (``setup`` does).
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled


SEED_ENV_VAR = "DLCOURSE_SEED"
_run_seed: int | None = None


def _seed_override() -> int | None:
    value = os.environ.get(SEED_ENV_VAR, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{SEED_ENV_VAR}={value!r} is not an integer seed; unset it") from None


def run_seed() -> int:
    """The seed :func:`setup` used: what a notebook derives every other seed from.

    A notebook seeds its data split, batch order and weight generators with
    ``run_seed()`` (plus a constant per use), so ``dlcourse robustness`` can run it with
    another seed (``$DLCOURSE_SEED``) and every random choice changes together.
    """
    if _run_seed is None:
        raise RuntimeError("run_seed() is known once dl.setup(seed=...) has run: call it first")
    return _run_seed


def summary_line(device: torch.device, seed: int, deterministic: bool) -> str:
    """The one line :func:`setup` prints (``dlcourse/machinery/nbval_sanitize.cfg`` masks its
    varying parts)."""
    from dlcourse._version import __version__

    return (
        f"[dlcourse {__version__}] seed={seed} deterministic={deterministic} "
        f"device={device_description(device)} torch={torch.__version__}"
    )


def setup(
    seed: int = 0,
    device: str | torch.device | None = None,
    *,
    deterministic: bool = True,
    threads: int | None = None,
    verbose: bool = True,
) -> torch.device:
    """Seed everything, make results reproducible, pick the device and return it.

    Every notebook's setup cell is ``device = dl.setup(seed=0)``.

    Args:
        seed: seed for Python, NumPy and torch; ``$DLCOURSE_SEED``, when set, replaces it
            (the robustness runs), and :func:`run_seed` returns the one used.
        device: ``'cpu'``, ``'cuda'``, ``'cuda:1'``, ``'mps'`` or ``'auto'``; by
            default ``$DLCOURSE_DEVICE`` or the fastest device present.
        deterministic: use deterministic kernels (slightly slower on GPUs).
        threads: number of CPU threads for torch; by default ``OMP_NUM_THREADS`` when you set
            it, else one (:data:`dlcourse.threads.DEFAULT_THREADS`: the notebooks' operations
            are small, and a second thread makes them wait for each other on a busy machine).
        verbose: print the one-line summary, which names the device, the thread count and
            OpenMP's wait policy (with how to fix it when torch was imported before dlcourse).
    """
    chosen = pick_device(device)
    _threads.choose_threads(threads)
    global _run_seed
    override = _seed_override()
    seed = seed if override is None else override
    seed_everything(seed)
    _run_seed = seed
    set_deterministic(deterministic)
    if verbose:
        print(summary_line(chosen, seed, deterministic))
    return chosen


# --------------------------------------------------------------------------- doctor


@dataclass
class Check:
    """One line of the doctor's report."""

    name: str
    value: str
    ok: bool
    note: str = ""
    fix: str = ""  # what to do when not ok


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def fixes(self) -> list[str]:
        return [c.fix for c in self.checks if not c.ok]

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks], "fixes": self.fixes}

    def as_text(self) -> str:
        width = max(len(c.name) for c in self.checks)
        vwidth = min(28, max(len(c.value) for c in self.checks))
        lines = ["dlcourse doctor"]
        for c in self.checks:
            mark = "ok " if c.ok else "FIX"
            note = f"  {c.note}" if c.note else ""
            lines.append(f"  {mark}  {c.name:<{width}}  {c.value:<{vwidth}}{note}")
        lines.append("")
        if self.ok:
            lines.append("OK: everything the course needs is here.")
        else:
            n = len(self.fixes)
            lines.append(f"Fix {'this' if n == 1 else f'these {n} things'} before the course:")
            lines += [f"  {i}. {fix}" for i, fix in enumerate(self.fixes, 1)]
        return "\n".join(lines)


def _version_tuple(text: str) -> tuple[int, ...]:
    match = re.match(r"\d+(?:\.\d+)*", text)
    return tuple(int(p) for p in match.group(0).split(".")) if match else ()


def _check_package(dist: str, module: str, minimum: str, purpose: str) -> Check:
    install = "run `make lab` in the course folder (or `pip install -e '.[lab]'`)"
    try:
        importlib.import_module(module)
    except Exception as exc:  # ImportError, or a broken install raising anything
        return Check(
            dist,
            "missing",
            False,
            f"needed for {purpose}",
            f"{dist} cannot be imported ({type(exc).__name__}: {exc}); {install}.",
        )
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        version = str(getattr(sys.modules[module], "__version__", "unknown"))
    if _version_tuple(version) < _version_tuple(minimum):
        return Check(
            dist,
            version,
            False,
            f"needs >= {minimum}",
            f"{dist} {version} is older than {minimum}; upgrade it: "
            f"pip install --upgrade '{dist}>={minimum}'.",
        )
    return Check(dist, version, True, f"needs >= {minimum}")


def _check_device() -> list[Check]:
    try:
        device = pick_device()
    except DeviceError as exc:
        return [Check("device", os.environ.get(DEVICE_ENV_VAR, "?"), False, "", str(exc))]
    checks = [Check("device", str(device), True, f"available: {', '.join(available_devices())}")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            checks.append(
                Check(f"GPU {i}", props.name, True, f"{props.total_memory / 2**30:.1f} GiB memory")
            )
    elif _mps_available():
        checks.append(Check("GPU", "Apple MPS", True, "shares the Mac's memory"))
    else:
        checks.append(
            Check("GPU", "none", True, "fine: every notebook runs on the CPU within its budget")
        )
    # A tiny computation on the chosen device, compared with the CPU's: catches
    # broken drivers that pass is_available() but fail on first use.
    try:
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(64, 64, generator=gen)
        got = (a.to(device) @ a.to(device)).cpu()
        good = torch.allclose(got, a @ a, rtol=1e-3, atol=1e-3)
        checks.append(
            Check(
                "compute test",
                "passed" if good else "wrong result",
                good,
                f"64x64 matmul on {device}",
                f"a matrix product on {device} disagrees with the CPU's; update the GPU "
                f"driver or run with {DEVICE_ENV_VAR}=cpu.",
            )
        )
    except Exception as exc:
        checks.append(
            Check(
                "compute test",
                "failed",
                False,
                "",
                f"a matrix product on {device} failed ({type(exc).__name__}: {exc}); "
                f"update the GPU driver or run with {DEVICE_ENV_VAR}=cpu.",
            )
        )
    return checks


def doctor(requirements: Sequence[tuple[str, str, str, str]] = REQUIREMENTS) -> Report:
    """Check everything the course needs; see ``dlcourse doctor``."""
    report = Report()
    py = platform.python_version()
    py_ok = sys.version_info[:2] >= MIN_PYTHON
    report.checks.append(
        Check(
            "Python",
            py,
            py_ok,
            f"needs >= {MIN_PYTHON[0]}.{MIN_PYTHON[1]}",
            f"Python {py} is too old; install Python 3.10 or newer and run `make lab` again.",
        )
    )
    for dist, module, minimum, purpose in requirements:
        report.checks.append(_check_package(dist, module, minimum, purpose))
    report.checks.extend(_check_device())
    return report
