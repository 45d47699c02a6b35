r"""Exercises of ``notebooks/00_welcome.ipynb``: a gradient by hand; shapes and broadcasting."""

from __future__ import annotations

import torch

from dlcourse.exercises.engine import Exercise, Wrong
from dlcourse.i18n import N_

# --------------------------------------------------------------------------- mse_gradient


def mse_gradient(
    w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Gradient of :math:`L = \frac1N \sum_i (w x_i + b - y_i)^2` with respect to ``w`` and ``b``.

    ``w``, ``b``: scalars (0-d tensors); ``x``, ``y``: ``(N,)``. Returns ``(dL/dw, dL/db)``.
    """
    residual = w * x + b - y  # (N,)
    return 2 * (residual * x).mean(), 2 * residual.mean()


def _mse_cases(gen: torch.Generator) -> list[tuple[torch.Tensor, ...]]:
    def case(n: int, dtype: torch.dtype, scale: float = 1.0) -> tuple[torch.Tensor, ...]:
        w, b = scale * torch.randn(2, generator=gen, dtype=torch.float64)
        x = scale * torch.randn(n, generator=gen, dtype=torch.float64)
        y = 3 * x - 1 + 0.1 * torch.randn(n, generator=gen, dtype=torch.float64)
        return tuple(t.to(dtype) for t in (w, b, x, y))

    return [
        case(50, torch.float64),
        case(1, torch.float64),  # a single sample
        case(7, torch.float32),
        case(20, torch.float64, scale=-5.0),  # negative, larger values
    ]


def _mse_no_two(w, b, x, y):
    r = w * x + b - y
    return (r * x).mean(), r.mean()


def _mse_sum(w, b, x, y):
    r = w * x + b - y
    return 2 * (r * x).sum(), 2 * r.sum()


def _mse_sign(w, b, x, y):
    r = y - (w * x + b)
    return 2 * (r * x).mean(), 2 * r.mean()


def _mse_no_x(w, b, x, y):
    r = w * x + b - y
    return 2 * r.mean(), 2 * r.mean()


def _mse_dot(w, b, x, y):
    r = w * x + b - y
    n = x.shape[0]
    return 2 * torch.dot(r, x) / n, 2 * r.sum() / n


MSE_GRADIENT = Exercise(
    name="mse_gradient",
    notebook=0,
    task=(
        N_(
            "Write `mse_gradient(w, b, x, y)` returning `(dL_dw, dL_db)` for "
            "$L = \\frac1N \\sum_i (w x_i + b - y_i)^2$, by hand (no autograd). "
            "`w`, `b` are 0-d tensors, `x`, `y` have shape `(N,)`; return two 0-d tensors."
        )
    ),
    reference=mse_gradient,
    cases=_mse_cases,
    wrong=(
        Wrong(_mse_no_two, N_("The derivative of r² is 2r: a factor 2 is missing.")),
        Wrong(
            _mse_sum,
            N_(
                "L is a mean over the N samples, so its gradient is a mean too: use .mean(), "
                "not .sum()."
            ),
        ),
        Wrong(
            _mse_sign,
            N_(
                "Check the sign of the residual: differentiate (prediction − target)², with "
                "prediction = w·x + b."
            ),
        ),
        Wrong(
            _mse_no_x,
            N_(
                "Chain rule: the residual depends on w through w·x, so ∂r/∂w = x. Each residual is "
                "multiplied by its own x in dL/dw (but not in dL/db)."
            ),
        ),
    ),
    hints=(
        N_("Write r = w * x + b - y, one residual per sample. Then L = mean(r²)."),
        N_("By the chain rule, ∂L/∂w = mean(2 r · ∂r/∂w) and ∂L/∂b = mean(2 r · ∂r/∂b)."),
        N_("∂r/∂w = x and ∂r/∂b = 1: return 2 * (r * x).mean(), 2 * r.mean()."),
    ),
    alternatives=(_mse_dot,),
)


# --------------------------------------------------------------------------- pairwise_sq_dists


def pairwise_sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Squared Euclidean distances between the rows of ``a`` ``(N, D)`` and of ``b`` ``(M, D)``.

    Returns ``(N, M)`` with :math:`d_{ij} = \sum_k (a_{ik} - b_{jk})^2`, by broadcasting, no loops.
    """
    diff = a[:, None, :] - b[None, :, :]  # (N, 1, D) - (1, M, D) -> (N, M, D)
    return (diff**2).sum(dim=-1)  # (N, M)


def _dist_cases(gen: torch.Generator) -> list[tuple[torch.Tensor, ...]]:
    def case(n: int, m: int, d: int, dtype: torch.dtype = torch.float32, scale: float = 1.0):
        a = scale * torch.randn(n, d, generator=gen, dtype=dtype)
        b = scale * torch.randn(m, d, generator=gen, dtype=dtype)
        return a, b

    return [
        case(5, 4, 3),
        case(1, 1, 2),  # one point each
        case(7, 3, 1),  # one feature
        case(2, 6, 5, torch.float64),  # more points in b than in a
        case(4, 4, 8, scale=-3.0),  # square result, negative values
    ]


def _dist_transposed(a, b):
    return ((b[:, None, :] - a[None, :, :]) ** 2).sum(dim=-1)


def _dist_abs(a, b):
    return (a[:, None, :] - b[None, :, :]).abs().sum(dim=-1)


def _dist_wrong_dim(a, b):
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(dim=1)


def _dist_sqrt(a, b):
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(dim=-1).sqrt()


def _dist_detached(a, b):
    return ((a[:, None, :] - b.detach()[None, :, :]) ** 2).sum(dim=-1)


def _dist_expanded(a, b):
    # |a|² + |b|² - 2 a·b: another summation order, the same distances
    return (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T


PAIRWISE_SQ_DISTS = Exercise(
    name="pairwise_sq_dists",
    notebook=0,
    task=(
        N_(
            "Write `pairwise_sq_dists(a, b)`: for `a` of shape `(N, D)` and `b` of shape `(M, "
            "D)`, return the `(N, M)` tensor of squared distances $d_{ij} = \\sum_k (a_{ik} - "
            "b_{jk})^2$, with broadcasting and no Python loops (and without `torch.cdist`)."
        )
    ),
    reference=pairwise_sq_dists,
    cases=_dist_cases,
    grad=True,
    forbidden=(torch.cdist,),
    wrong=(
        Wrong(
            _dist_transposed,
            N_(
                "Row i belongs to a, column j to b: the result is (N, M). Give a the new axis "
                "in the middle: a[:, None, :] - b[None, :, :]."
            ),
        ),
        Wrong(
            _dist_abs,
            N_("Squared distances: square the differences (** 2), not their absolute value."),
        ),
        Wrong(
            _dist_wrong_dim,
            N_("Sum over the features, the last dimension (dim=-1), not over the points of b."),
        ),
        Wrong(_dist_sqrt, N_("The task asks for squared distances: leave out the square root.")),
        Wrong(
            _dist_detached,
            N_(
                "The values are right but no gradient reaches b: something cuts b out of "
                "autograd's graph (.detach(), .data, torch.no_grad())."
            ),
        ),
    ),
    hints=(
        N_("Broadcasting lines up shapes from the right: (N, 1, D) and (1, M, D) give (N, M, D)."),
        N_("a[:, None, :] has shape (N, 1, D); b[None, :, :] has shape (1, M, D)."),
        N_("Subtract them, square, and sum over the last dimension: (diff ** 2).sum(dim=-1)."),
    ),
    alternatives=(_dist_expanded,),
)

EXERCISES = (MSE_GRADIENT, PAIRWISE_SQ_DISTS)
