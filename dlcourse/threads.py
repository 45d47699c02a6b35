"""How many CPU threads torch runs with, and how its idle threads wait: the course's choice.

Used by :func:`dlcourse.env.setup` (taught in ``notebooks/00_welcome.ipynb``), whose one line
says what was chosen.

The course's operations are small (a 64x64 product, one step of a recurrent network), and torch
splits each over a team of OpenMP threads that meet at a barrier when it ends. By default an idle
thread *spins* there for a few milliseconds before sleeping. On a busy laptop (a browser, a video
call and an IDE on the same cores) a spinning thread is often descheduled, and every small
operation waits for it: a loop of 3,000 small products took 0.08 s on one thread and 2.8 s on two
(``benchmarks/notebook_times.py`` measures every notebook both ways). So:

- **Threads**: :func:`setup` uses :data:`DEFAULT_THREADS` (one), unless you ask for another count
  (``dl.setup(threads=2)``) or set ``OMP_NUM_THREADS`` yourself, which it then keeps.
- **Waiting**: importing ``dlcourse`` sets :data:`WAIT_POLICY` (``OMP_WAIT_POLICY=PASSIVE``:
  idle threads sleep at once) in the environment, unless you set ``OMP_WAIT_POLICY`` or
  ``GOMP_SPINCOUNT`` yourself. OpenMP reads it once, when torch loads, so it works only when
  ``import dlcourse`` comes before ``import torch``; with one thread there is no team and the
  policy does not matter, which is why the thread count is the main choice.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

#: The environment variable and value the course sets before torch loads (``setdefault``).
WAIT_POLICY: tuple[str, str] = ("OMP_WAIT_POLICY", "PASSIVE")
#: Either of these, set by you, is left alone (``GOMP_SPINCOUNT`` wins over the policy in GNU
#: OpenMP, which torch's Linux wheels use).
WAIT_VARS: tuple[str, ...] = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
#: The thread count :func:`dlcourse.env.setup` chooses when neither you nor the environment did.
DEFAULT_THREADS = 1
#: The variables that say you chose the thread count yourself.
THREAD_VARS: tuple[str, ...] = ("OMP_NUM_THREADS",)


@dataclass(frozen=True)
class WaitPolicy:
    """What OpenMP's idle threads do in this process, and why."""

    setting: str | None  # "OMP_WAIT_POLICY=PASSIVE", or None: OpenMP's default
    origin: str  # "dlcourse", "environment" (set before dlcourse was imported), "too late"

    @property
    def effective(self) -> bool:
        """Whether the setting reached OpenMP (it was in the environment when torch loaded)."""
        return self.setting is not None and self.origin != "too late"

    def describe(self) -> str:
        """A few words for setup's line: ``OpenMP wait passive``, or what to do about it."""
        if self.effective:
            name, _, value = (self.setting or "").partition("=")
            return (
                f"OpenMP wait {value.lower()}"
                if name == "OMP_WAIT_POLICY"
                else f"OpenMP {name}={value}"
            )
        return (
            "OpenMP threads spin: torch was imported before dlcourse, "
            "put `import dlcourse` first or set OMP_WAIT_POLICY=PASSIVE"
        )


_policy: WaitPolicy | None = None


def _current_setting() -> str | None:
    for name in WAIT_VARS:
        if os.environ.get(name, "").strip():
            return f"{name}={os.environ[name].strip()}"
    return None


def set_wait_policy() -> WaitPolicy:
    """Put :data:`WAIT_POLICY` in the environment unless torch is loaded or you set one.

    ``dlcourse/__init__.py`` calls it on import; calling it again changes nothing. Returns
    what OpenMP will do (also :func:`wait_policy`).
    """
    global _policy
    if _policy is not None:
        return _policy
    setting = _current_setting()
    torch_loaded = "torch" in sys.modules
    if setting is not None:
        # yours (or a parent process's); it reached OpenMP unless torch loaded before it was
        # set, which cannot be told apart from here: assume it came with the process
        _policy = WaitPolicy(setting, "environment")
    elif torch_loaded:
        _policy = WaitPolicy(None, "too late")
    else:
        name, value = WAIT_POLICY
        os.environ.setdefault(name, value)
        _policy = WaitPolicy(f"{name}={value}", "dlcourse")
    return _policy


def wait_policy() -> WaitPolicy:
    """What OpenMP's idle threads do in this process (decided when ``dlcourse`` was imported)."""
    return set_wait_policy()


def threads_from_environment() -> bool:
    """Whether you chose the thread count through the environment (``OMP_NUM_THREADS``)."""
    return any(os.environ.get(name, "").strip() for name in THREAD_VARS)


def choose_threads(threads: int | None = None) -> tuple[int, str]:
    """Set torch's thread count; return it and why: ``(1, "course default")``.

    ``threads`` wins; else ``OMP_NUM_THREADS``, which torch already applied, is kept; else
    :data:`DEFAULT_THREADS`.
    """
    import torch

    from dlcourse._validate import integer

    if threads is not None:
        torch.set_num_threads(integer(threads, "threads", minimum=1))
        return torch.get_num_threads(), "asked"
    if threads_from_environment():
        return torch.get_num_threads(), "OMP_NUM_THREADS"
    torch.set_num_threads(DEFAULT_THREADS)
    return torch.get_num_threads(), "course default"


def describe(count: int | None = None) -> str:
    """The CPU part of setup's line: ``1 thread, OpenMP wait passive``.

    With one thread there is no team to wait for, so a policy that came too late is no
    problem; with more, the line says how to fix it.
    """
    import torch

    count = torch.get_num_threads() if count is None else count
    policy = wait_policy()
    threads = f"{count} thread{'s' if count != 1 else ''}"
    if count == 1 and not policy.effective:
        return f"{threads}, OpenMP default wait"
    return f"{threads}, {policy.describe()}"
