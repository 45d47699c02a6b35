r"""Simulated annealing: accept uphill moves with a probability that a falling temperature sets.

Taught in ``notebooks/01_gradient_descent.ipynb`` (claim C1.2). At each step a
candidate :math:`x'` is proposed near the current point :math:`x`; with
:math:`d = f(x') - f(x)` it is accepted with the Metropolis probability

.. math::

    P(\text{accept}) = \min\left(1, e^{-d / T_k}\right)

so downhill moves are always taken and uphill ones sometimes: often while the
temperature :math:`T_k` is high (the search explores), rarely once it is low
(it settles). Kirkpatrick, Gelatt and Vecchi, "Optimization by simulated
annealing", Science 220, 1983; Metropolis et al., J. Chem. Phys. 21, 1953.

Many independent runs go at once: ``x0`` of shape ``(..., dim)`` anneals every
point of the batch, each with its own random draws. For a model, wrap its loss
with :func:`model_objective` (closure style) and anneal the flat parameter vector.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import nn

from dlcourse import landscapes, schedules

Objective = Callable[[torch.Tensor], torch.Tensor]  # (..., dim) -> (...)
Proposal = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
Schedule = Callable[[int], float]


def acceptance_probability(delta: torch.Tensor | float, temperature: float) -> torch.Tensor:
    r"""The Metropolis rule, :math:`\min(1, e^{-d/T})`; at :math:`T = 0`: 1 downhill, 0 uphill."""
    delta = torch.as_tensor(delta, dtype=torch.float64)
    if temperature < 0:
        raise ValueError(f"the temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return (delta <= 0).to(torch.float64)
    return torch.exp(-delta.clamp_min(0) / temperature)  # = min(1, exp(-d / T))


# --------------------------------------------------------------------------- cooling schedules


def exponential_cooling(t0: float, alpha: float) -> Schedule:
    r""":math:`T_k = T_0 \alpha^k`, the usual choice (``0 < alpha < 1``)."""
    if t0 < 0 or not 0 < alpha <= 1:
        raise ValueError(f"need t0 >= 0 and 0 < alpha <= 1, got {t0=}, {alpha=}")
    return lambda k: t0 * alpha**k


def linear_cooling(t0: float, steps: int) -> Schedule:
    r""":math:`T_k = T_0 (1 - k / n)`: reaches 0 at step ``steps``."""
    if t0 < 0 or steps < 1:
        raise ValueError(f"need t0 >= 0 and steps >= 1, got {t0=}, {steps=}")
    return lambda k: max(0.0, t0 * (1 - k / steps))


def logarithmic_cooling(c: float) -> Schedule:
    r""":math:`T_k = c / \ln(k + 2)`: slow enough to find the global minimum in theory
    (Geman and Geman, 1984), too slow for practice."""
    if c < 0:
        raise ValueError(f"c must be >= 0, got {c}")
    return lambda k: c / math.log(k + 2)


def constant_temperature(t: float) -> Schedule:
    """No cooling; ``t = 0`` is greedy random search (only downhill moves)."""
    if t < 0:
        raise ValueError(f"the temperature must be >= 0, got {t}")
    return lambda k: t


def gaussian_proposal(scale: float) -> Proposal:
    """Propose ``x + scale * N(0, I)``."""
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")

    def propose(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=gen, dtype=x.dtype)
        return x + scale * noise.to(x.device)

    return propose


# --------------------------------------------------------------------------- the search


@dataclass
class AnnealResult:
    """What a run visited. Batch dimensions ``...`` are those of ``x0``."""

    trajectory: torch.Tensor  # (steps + 1, ..., dim): the current point after each step
    values: torch.Tensor  # (steps + 1, ...)
    temperatures: torch.Tensor  # (steps,)
    accepted: torch.Tensor  # (steps, ...) bool
    best_x: torch.Tensor  # (..., dim)
    best_value: torch.Tensor  # (...)

    @property
    def acceptance_rate(self) -> torch.Tensor:
        """Fraction of proposals accepted, per run."""
        return self.accepted.to(torch.float64).mean(dim=0)

    @property
    def final_x(self) -> torch.Tensor:
        return self.trajectory[-1]


def simulated_annealing(
    f: Objective,
    x0: torch.Tensor,
    *,
    steps: int,
    temperature: Schedule,
    proposal: Proposal | None = None,
    seed: int = 0,
) -> AnnealResult:
    """Anneal from ``x0`` ``(..., dim)`` for ``steps`` steps, each point of the batch independently.

    Args:
        f: the objective, ``(..., dim) -> (...)``; a :class:`~dlcourse.landscapes.Landscape` is one.
        x0: starting point(s).
        steps: number of proposals per run.
        temperature: the cooling schedule, ``T_k = temperature(k)``.
        proposal: how to propose a candidate; by default ``gaussian_proposal(0.5)``.
        seed: seed of the generator behind every proposal and acceptance draw.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    proposal = proposal or gaussian_proposal(0.5)
    gen = torch.Generator().manual_seed(seed)
    x = x0.detach().clone()
    with torch.no_grad():
        fx = f(x)
        points, values, accepted, temps = [x.clone()], [fx.clone()], [], []
        best_x, best_f = x.clone(), fx.clone()
        for k in range(steps):
            t = float(temperature(k))
            candidate = proposal(x, gen)  # (..., dim)
            fc = f(candidate)  # (...)
            p = acceptance_probability(fc - fx, t).to(fx.device)  # (...)
            take = torch.rand(fx.shape, generator=gen, dtype=torch.float64).to(fx.device) < p
            x = torch.where(take.unsqueeze(-1), candidate, x)
            fx = torch.where(take, fc, fx)
            better = fx < best_f
            best_x = torch.where(better.unsqueeze(-1), x, best_x)
            best_f = torch.where(better, fx, best_f)
            points.append(x.clone())
            values.append(fx.clone())
            accepted.append(take)
            temps.append(t)
    return AnnealResult(
        trajectory=torch.stack(points),
        values=torch.stack(values),
        temperatures=torch.tensor(temps, dtype=torch.float64),
        accepted=torch.stack(accepted),
        best_x=best_x,
        best_value=best_f,
    )


# --------------------------------------------------------------------------- models


def model_objective(model: nn.Module, loss: Callable[[], torch.Tensor]) -> Objective:
    """``f(theta)``: write the flat parameter vector ``theta`` into ``model``, return ``loss()``.

    ``theta`` may carry batch dimensions ``(..., P)``; each row is evaluated in turn.
    Start from ``nn.utils.parameters_to_vector(model.parameters())``; afterwards
    write the best point back with :func:`set_parameters`.
    """
    params = list(model.parameters())
    size = sum(p.numel() for p in params)

    def f(theta: torch.Tensor) -> torch.Tensor:
        if theta.shape[-1] != size:
            raise ValueError(f"the model has {size} parameters, got vectors of {theta.shape[-1]}")
        flat = theta.reshape(-1, size)
        out = []
        with torch.no_grad():
            for row in flat:
                nn.utils.vector_to_parameters(row.to(params[0].dtype), params)
                out.append(loss().detach().to(torch.float64))
        return torch.stack(out).reshape(theta.shape[:-1])

    return f


def set_parameters(model: nn.Module, theta: torch.Tensor) -> None:
    """Write the flat vector ``theta`` into the model's parameters."""
    with torch.no_grad():
        params = list(model.parameters())
        nn.utils.vector_to_parameters(theta.to(params[0].dtype), params)


# ------------------------------------------------------------------------- annealed gradient noise


def langevin_descent(
    grad: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    *,
    steps: int,
    lr: float | Schedule,
    temperature: float | Schedule = 0.0,
    seed: int = 0,
) -> torch.Tensor:
    r"""Gradient descent plus Gaussian noise scaled by a temperature: annealing with gradients.

    .. math::

        x_{k+1} = x_k - \eta_k \nabla f(x_k) + \sqrt{2 \eta_k T_k}\, \xi_k,
        \qquad \xi_k \sim \mathcal N(0, I)

    At :math:`T = 0` this is plain gradient descent. At a fixed :math:`T > 0` and
    small :math:`\eta` the iterates spread out like the Boltzmann distribution
    :math:`\propto e^{-f(x)/T}`, which puts more weight on deeper minima the lower
    :math:`T` is; letting :math:`T_k` fall slowly therefore settles in a deep
    minimum, as simulated annealing does. SGD with step :math:`\eta` and gradient
    noise of variance :math:`\sigma^2` behaves roughly like :math:`T = \eta \sigma^2 / 2`.
    Gelfand and Mitter, "Recursive stochastic algorithms for global optimization
    in R^d", SIAM J. Control Optim. 29, 1991; Welling and Teh, "Bayesian learning
    via stochastic gradient Langevin dynamics", ICML 2011.

    Args:
        grad: the gradient, ``(..., dim) -> (..., dim)``, e.g. ``landscape.grad``.
        x0: starting point(s), ``(..., dim)``; every point of the batch gets its own noise.
        steps: number of updates.
        lr: the step size :math:`\eta`, or a schedule ``lr(k)``.
        temperature: :math:`T`, or a cooling schedule ``T(k)`` (see the ``*_cooling`` functions).
        seed: seed of the noise.

    Returns:
        Every point visited, the start included: ``(steps + 1, ..., dim)``.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    lr_at = lr if callable(lr) else (lambda k: lr)
    temp_at = temperature if callable(temperature) else (lambda k: temperature)
    gen = torch.Generator().manual_seed(seed)
    x = x0.detach().clone()
    points = [x]
    for k in range(steps):
        eta, t = float(lr_at(k)), float(temp_at(k))
        if eta < 0 or t < 0:
            raise ValueError(f"step {k}: lr and temperature must be >= 0, got lr={eta}, T={t}")
        x = x - eta * grad(x)
        if t > 0:
            noise = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
            x = x + math.sqrt(2 * eta * t) * noise
        points.append(x)
    return torch.stack(points)


# --------------------------------------------------------------------------- a race of three

RACE_LANDSCAPES = ("double well", "two basins", "Rastrigin")


@dataclass(frozen=True)
class RaceSettings:
    """The settings of :func:`descent_race`, with their defaults (the demo's sliders start here)."""

    landscape: str = "double well"  # one of RACE_LANDSCAPES
    start_x: float = 1.8
    start_y: float = 1.0  # ignored in 1-D
    lr: float = 0.01
    schedule: str = "constant"  # one of dlcourse.schedules.NAMES
    noise: float = 4.0  # standard deviation of the gradient noise
    temperature: float = 2.0  # annealing's starting temperature
    steps: int = 300
    seed: int = 0


@dataclass(frozen=True)
class Race:
    landscape: str
    start: tuple[float, ...]
    paths: dict[str, torch.Tensor]  # method -> (steps + 1, dim)
    final_loss: dict[str, float]  # method -> f at the last point (nan if it diverged)
    in_global_basin: dict[str, bool]


def descent_race(settings: RaceSettings | None = None, **changes: object) -> Race:
    r"""Run three methods from one start on a landscape of :data:`RACE_LANDSCAPES`.

    - ``GD``: :math:`x \leftarrow x - \eta_k \nabla f(x)`;
    - ``SGD-like``: the same with gradient noise of standard deviation ``noise``,
      :math:`x \leftarrow x - \eta_k (\nabla f(x) + \sigma \xi)`, as a mini-batch
      gradient has (Langevin at :math:`T = \eta_k \sigma^2 / 2`);
    - ``annealing``: simulated annealing with Gaussian proposals a tenth of the box
      wide, cooled exponentially from ``temperature`` to a thousandth of it.

    Settings are :class:`RaceSettings`; ``changes`` override some of them
    (``descent_race(lr=0.05)``). ``lr`` follows ``schedule``
    (:func:`dlcourse.schedules.by_name`); the start is clamped into the landscape's box.
    """
    s = replace(settings or RaceSettings(), **changes)
    if s.landscape not in RACE_LANDSCAPES:
        raise ValueError(
            f"unknown landscape {s.landscape!r}; choose one of {list(RACE_LANDSCAPES)}"
        )
    if s.lr <= 0 or s.noise < 0 or s.temperature < 0:
        raise ValueError(
            f"need lr > 0, noise >= 0, temperature >= 0; got lr={s.lr}, noise={s.noise}, "
            f"temperature={s.temperature}"
        )
    ls = landscapes.LANDSCAPES[s.landscape]
    start = torch.tensor([s.start_x, s.start_y][: ls.dim], dtype=torch.float64)  # (dim,)
    low = torch.tensor([b[0] for b in ls.bounds], dtype=torch.float64)
    high = torch.tensor([b[1] for b in ls.bounds], dtype=torch.float64)
    start = torch.minimum(torch.maximum(start, low), high)  # inside the box
    lr_at = schedules.by_name(s.schedule, s.lr, s.steps)
    width = float((high - low).max())
    paths = {
        "GD": langevin_descent(ls.grad, start, steps=s.steps, lr=lr_at, seed=s.seed),
        "SGD-like": langevin_descent(
            ls.grad,
            start,
            steps=s.steps,
            lr=lr_at,
            temperature=lambda k: lr_at(k) * s.noise**2 / 2,
            seed=s.seed,
        ),
        "annealing": simulated_annealing(
            ls,
            start,
            steps=s.steps,
            temperature=exponential_cooling(s.temperature, 1e-3 ** (1 / s.steps)),
            proposal=gaussian_proposal(width / 10),
            seed=s.seed,
        ).trajectory,
    }
    with torch.no_grad():
        final = {name: ls(p[-1]).item() for name, p in paths.items()}
    return Race(
        landscape=s.landscape,
        start=tuple(start.tolist()),
        paths=paths,
        final_loss={k: (v if math.isfinite(v) else math.nan) for k, v in final.items()},
        in_global_basin={k: bool(ls.in_global_basin(p[-1])) for k, p in paths.items()},
    )
