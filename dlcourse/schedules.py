r"""Learning-rate schedules as pure functions of the step: ``lr = schedule(step)``.

Taught in ``notebooks/01_gradient_descent.ipynb`` (claim C1.3: start large, reduce
gradually). Each agrees step by step with its ``torch.optim.lr_scheduler``
counterpart (``tests/test_schedules.py``), and ``dlcourse.callbacks.LRScheduler``
accepts either::

    LRScheduler(lambda step: cosine_lr(step, lr=0.1, T_max=1000), interval="step")
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial


def _check(step: int, lr: float) -> None:
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if lr < 0:
        raise ValueError(f"lr must be >= 0, got {lr}")


def constant_lr(step: int, *, lr: float) -> float:
    """The same rate at every step."""
    _check(step, lr)
    return lr


def step_lr(step: int, *, lr: float, step_size: int, gamma: float = 0.1) -> float:
    r"""Multiply by ``gamma`` every ``step_size`` steps. Matches ``StepLR``.

    .. math:: \eta_t = \eta_0 \gamma^{\lfloor t / s \rfloor}
    """
    _check(step, lr)
    if step_size < 1:
        raise ValueError(f"step_size must be >= 1, got {step_size}")
    return lr * gamma ** (step // step_size)


def exponential_lr(step: int, *, lr: float, gamma: float) -> float:
    r"""Multiply by ``gamma`` every step. Matches ``ExponentialLR``.

    .. math:: \eta_t = \eta_0 \gamma^t
    """
    _check(step, lr)
    if gamma <= 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    return lr * gamma**step


def cosine_lr(step: int, *, lr: float, T_max: int, eta_min: float = 0.0) -> float:
    r"""Half a cosine from ``lr`` down to ``eta_min`` over ``T_max`` steps.

    .. math::
        \eta_t = \eta_{min}
            + \tfrac12 (\eta_0 - \eta_{min}) \left(1 + \cos\frac{\pi t}{T_{max}}\right)

    Matches ``torch.optim.lr_scheduler.CosineAnnealingLR`` (which, past ``T_max``,
    climbs back up along the same cosine; so does this). Loshchilov and Hutter,
    "SGDR: Stochastic gradient descent with warm restarts", ICLR 2017.
    """
    _check(step, lr)
    if T_max < 1:
        raise ValueError(f"T_max must be >= 1, got {T_max}")
    return eta_min + 0.5 * (lr - eta_min) * (1 + math.cos(math.pi * step / T_max))


NAMES = ("constant", "step", "exponential", "cosine")


def by_name(name: str, lr: float, steps: int) -> Callable[[int], float]:
    """One of :data:`NAMES` as a function ``lr(k)`` over ``steps`` steps.

    ``step`` divides the rate by 10 every ``steps // 2`` steps; all but ``constant`` reach
    ``lr / 100`` at step ``steps``.
    """
    if name not in NAMES:
        raise ValueError(f"unknown schedule {name!r}; choose one of {list(NAMES)}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return {
        "constant": partial(constant_lr, lr=lr),
        "step": partial(step_lr, lr=lr, step_size=max(1, steps // 2), gamma=0.1),
        "exponential": partial(exponential_lr, lr=lr, gamma=0.01 ** (1 / steps)),
        "cosine": partial(cosine_lr, lr=lr, T_max=steps, eta_min=lr / 100),
    }[name]
