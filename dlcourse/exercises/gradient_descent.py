r"""Exercises of ``notebooks/01_gradient_descent.ipynb``: descent, Metropolis, cosine schedule."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from dlcourse.exercises.engine import Exercise, Wrong
from dlcourse.i18n import N_
from dlcourse.landscapes import DOUBLE_WELL, ILL_CONDITIONED, TWO_BASINS

# --------------------------------------------------------------------------- gradient_descent_path


def gradient_descent_path(
    grad: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, lr: float, steps: int
) -> torch.Tensor:
    r"""Plain gradient descent, :math:`x_{k+1} = x_k - \eta \nabla f(x_k)`, from ``x0`` ``(dim,)``.

    Returns every point visited, the start included: ``(steps + 1, dim)``.
    """
    points = [x0]
    x = x0
    for _ in range(steps):
        x = x - lr * grad(x)
        points.append(x)
    return torch.stack(points)


def _gd_cases(gen: torch.Generator) -> list[tuple]:
    def start(landscape) -> torch.Tensor:
        return landscape.uniform_starts(1, seed=int(torch.randint(0, 1000, (1,), generator=gen)))[0]

    return [
        (DOUBLE_WELL.grad, start(DOUBLE_WELL), 0.01, 50),
        (TWO_BASINS.grad, start(TWO_BASINS), 0.05, 30),
        (ILL_CONDITIONED.grad, torch.tensor([8.0, 1.0], dtype=torch.float64), 0.019, 40),
        (DOUBLE_WELL.grad, start(DOUBLE_WELL), 0.01, 1),  # a single step
        (DOUBLE_WELL.grad, start(DOUBLE_WELL), 0.01, 0),  # no step: just the start
    ]


def _gd_ascent(grad, x0, lr, steps):
    points, x = [x0], x0
    for _ in range(steps):
        x = x + lr * grad(x)
        points.append(x)
    return torch.stack(points)


def _gd_frozen_gradient(grad, x0, lr, steps):
    points, x, g = [x0], x0, grad(x0)
    for _ in range(steps):
        x = x - lr * g  # the gradient at the start, never re-evaluated
        points.append(x)
    return torch.stack(points)


def _gd_no_start(grad, x0, lr, steps):
    points, x = [], x0
    for _ in range(max(steps, 1)):
        x = x - lr * grad(x)
        points.append(x)
    return torch.stack(points)


def _gd_preallocated(grad, x0, lr, steps):
    path = x0.new_empty(steps + 1, x0.shape[0])
    path[0] = x0
    for k in range(steps):
        path[k + 1] = path[k] - lr * grad(path[k])
    return path


GRADIENT_DESCENT_PATH = Exercise(
    name="gradient_descent_path",
    notebook=1,
    task=(
        N_(
            "Write `gradient_descent_path(grad, x0, lr, steps)`: starting at `x0` (shape "
            "`(dim,)`), take `steps` steps $x_{k+1} = x_k - \\eta \\nabla f(x_k)$ and return "
            "every point, the start included, as a `(steps + 1, dim)` tensor. `grad(x)` returns "
            "$\\nabla f(x)$."
        )
    ),
    reference=gradient_descent_path,
    cases=_gd_cases,
    wrong=(
        Wrong(_gd_ascent, N_("Descent steps against the gradient: x - lr * grad(x), not +.")),
        Wrong(
            _gd_frozen_gradient,
            N_("Evaluate the gradient at the current point on every step: it changes as x moves."),
        ),
        Wrong(
            _gd_no_start,
            N_("Include the starting point: steps steps visit steps + 1 points, x0 first."),
        ),
    ),
    hints=(
        N_("Keep a list of points that starts as [x0]; loop steps times."),
        N_("In the loop: x = x - lr * grad(x), then append x."),
        N_("torch.stack(points) turns the list of (dim,) tensors into (steps + 1, dim)."),
    ),
    alternatives=(_gd_preallocated,),
)


# --------------------------------------------------------------------------- metropolis_acceptance


def metropolis_acceptance(delta: torch.Tensor, temperature: float) -> torch.Tensor:
    r"""Probability of accepting a move that changes the loss by ``delta`` at ``temperature`` > 0.

    :math:`\min(1, e^{-d/T})`: 1 for downhill moves, :math:`e^{-d/T}` uphill. Any shape.
    """
    return torch.exp(-delta / temperature).clamp(max=1.0)


def _metropolis_cases(gen: torch.Generator) -> list[tuple]:
    return [
        (torch.linspace(-2, 2, 9, dtype=torch.float64), 1.0),
        (torch.rand(5, 3, generator=gen, dtype=torch.float64) * 4, 0.3),  # uphill only
        (torch.tensor([0.5], dtype=torch.float64), 10.0),  # one move, hot
        (torch.tensor([-0.1, 0.0, 0.1], dtype=torch.float64), 0.01),  # nearly frozen
    ]


def _metropolis_plus(delta, temperature):
    return torch.exp(delta / temperature).clamp(max=1.0)


def _metropolis_no_min(delta, temperature):
    return torch.exp(-delta / temperature)


def _metropolis_t_numerator(delta, temperature):
    return torch.exp(-delta * temperature).clamp(max=1.0)


def _metropolis_where(delta, temperature):
    return torch.where(delta <= 0, torch.ones_like(delta), torch.exp(-delta / temperature))


METROPOLIS_ACCEPTANCE = Exercise(
    name="metropolis_acceptance",
    notebook=1,
    task=(
        N_(
            "Write `metropolis_acceptance(delta, temperature)`: the probability "
            "$\\min(1, e^{-\\Delta / T})$ of accepting a move that changes the loss by `delta`, "
            "elementwise for a tensor of moves."
        )
    ),
    reference=metropolis_acceptance,
    cases=_metropolis_cases,
    wrong=(
        Wrong(
            _metropolis_plus,
            N_("Uphill moves (delta > 0) should become less likely: the exponent is -delta / T."),
        ),
        Wrong(
            _metropolis_no_min,
            N_(
                "A probability is at most 1: for downhill moves e^(-delta/T) exceeds 1, so cap it "
                "(min with 1, or .clamp(max=1))."
            ),
        ),
        Wrong(
            _metropolis_t_numerator,
            N_("A higher temperature must make uphill moves more likely: divide delta by T."),
        ),
    ),
    hints=(
        N_(
            "Two cases: downhill moves are always accepted, uphill ones with probability "
            "e^(-delta/T)."
        ),
        N_("torch.exp(-delta / temperature) is right for uphill moves."),
        N_("Cap it at 1 for the downhill ones: .clamp(max=1.0)."),
    ),
    alternatives=(_metropolis_where,),
)


# --------------------------------------------------------------------------- cosine_schedule


def cosine_schedule(step: torch.Tensor, lr: float, T_max: int, eta_min: float) -> torch.Tensor:
    r"""Cosine annealing of the learning rate at each step in ``step`` (an integer tensor).

    .. math:: \eta_t = \eta_{min} + \tfrac12 (\eta_0 - \eta_{min})(1 + \cos(\pi t / T_{max}))
    """
    return eta_min + 0.5 * (lr - eta_min) * (1 + torch.cos(math.pi * step / T_max))


def _cosine_cases(gen: torch.Generator) -> list[tuple]:
    return [
        (torch.arange(101, dtype=torch.float64), 0.1, 100, 0.001),
        (torch.tensor([0.0], dtype=torch.float64), 1.0, 10, 0.0),  # the first step
        (torch.arange(0, 300, 7, dtype=torch.float64), 0.5, 250, 0.05),  # past T_max
        (torch.randint(0, 50, (4, 3), generator=gen).to(torch.float64), 0.2, 50, 0.02),
    ]


def _cosine_off_by_one(step, lr, T_max, eta_min):
    return eta_min + 0.5 * (lr - eta_min) * (1 + torch.cos(math.pi * (step + 1) / T_max))


def _cosine_no_minimum(step, lr, T_max, eta_min):
    return 0.5 * lr * (1 + torch.cos(math.pi * step / T_max))


def _cosine_degrees(step, lr, T_max, eta_min):
    return eta_min + 0.5 * (lr - eta_min) * (1 + torch.cos(180 * step / T_max))


def _cosine_sin_form(step, lr, T_max, eta_min):
    # 1 + cos(theta) = 2 cos^2(theta / 2)
    return eta_min + (lr - eta_min) * torch.cos(math.pi * step / (2 * T_max)) ** 2


COSINE_SCHEDULE = Exercise(
    name="cosine_schedule",
    notebook=1,
    task=(
        N_(
            "Write `cosine_schedule(step, lr, T_max, eta_min)`: the learning rate "
            "$\\eta_{min} + \\frac12(\\eta_0 - \\eta_{min})(1 + \\cos(\\pi t / T_{max}))$ at every "
            "step in the tensor `step` (step 0 gives `lr`, step `T_max` gives `eta_min`)."
        )
    ),
    reference=cosine_schedule,
    cases=_cosine_cases,
    wrong=(
        Wrong(
            _cosine_off_by_one,
            N_("Step 0 must give the full rate lr: use t, not t + 1, in the cosine."),
        ),
        Wrong(
            _cosine_no_minimum,
            N_("The rate falls to eta_min, not to 0: eta_min + (lr - eta_min) * ..."),
        ),
        Wrong(
            _cosine_degrees,
            N_("torch.cos works in radians: half a period is pi, not 180."),
        ),
    ),
    hints=(
        N_("At t = 0 the cosine is 1, at t = T_max it is -1: (1 + cos) / 2 goes from 1 to 0."),
        N_("Scale that factor to the range you want: eta_min + (lr - eta_min) * factor."),
        N_("factor = 0.5 * (1 + torch.cos(math.pi * step / T_max))."),
    ),
    alternatives=(_cosine_sin_form,),
)

EXERCISES = (GRADIENT_DESCENT_PATH, METROPOLIS_ACCEPTANCE, COSINE_SCHEDULE)
