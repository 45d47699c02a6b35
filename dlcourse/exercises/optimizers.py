r"""Exercises of ``notebooks/03_optimizers.ipynb``: a momentum step, an Adam step, a Newton step."""

from __future__ import annotations

import torch

from dlcourse.exercises.engine import Exercise, Wrong
from dlcourse.i18n import N_

Tensors = tuple[torch.Tensor, ...]


def _vectors(gen: torch.Generator, n: int, k: int) -> list[torch.Tensor]:
    return [torch.randn(n, generator=gen, dtype=torch.float64) for _ in range(k)]


# --------------------------------------------------------------------------- momentum_step


def momentum_step(
    theta: torch.Tensor, velocity: torch.Tensor, grad: torch.Tensor, lr: float, momentum: float
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Heavy-ball momentum in torch's form.

    :math:`v \leftarrow \mu v + g`, then :math:`\theta \leftarrow \theta - \eta v`.
    Returns ``(new_theta, new_velocity)``; the inputs are left alone.
    """
    velocity = momentum * velocity + grad
    return theta - lr * velocity, velocity


def _momentum_cases(gen: torch.Generator) -> list[tuple]:
    cases = []
    for n, lr, mu in ((5, 0.1, 0.9), (1, 0.5, 0.5), (8, 0.01, 0.99)):
        theta, velocity, grad = _vectors(gen, n, 3)
        cases.append((theta, velocity, grad, lr, mu))
    theta, grad = _vectors(gen, 4, 2)
    cases.append((theta, torch.zeros(4, dtype=torch.float64), grad, 0.1, 0.9))  # the first step
    return cases


def _momentum_sign(theta, velocity, grad, lr, momentum):
    velocity = momentum * velocity + grad
    return theta + lr * velocity, velocity


def _momentum_forgets(theta, velocity, grad, lr, momentum):
    return theta - lr * grad, grad  # the old velocity is dropped


def _momentum_dampened(theta, velocity, grad, lr, momentum):
    velocity = momentum * velocity + (1 - momentum) * grad
    return theta - lr * velocity, velocity


def _momentum_addcmul(theta, velocity, grad, lr, momentum):
    v = velocity.mul(momentum).add(grad)
    return theta.sub(v, alpha=lr), v


MOMENTUM_STEP = Exercise(
    name="momentum_step",
    notebook=3,
    task=(
        N_(
            "Write `momentum_step(theta, velocity, grad, lr, momentum)`: one step of heavy-ball "
            "momentum in torch's form, $v \\leftarrow \\mu v + g$, then "
            "$\\theta \\leftarrow \\theta - \\eta v$. Return `(new_theta, new_velocity)` without "
            "changing the inputs."
        )
    ),
    reference=momentum_step,
    cases=_momentum_cases,
    wrong=(
        Wrong(_momentum_sign, N_("Step against the velocity: theta - lr * v, not +.")),
        Wrong(
            _momentum_forgets,
            N_(
                "The velocity must carry the past: v = momentum * velocity + grad, and return that "
                "new v so the next step can use it."
            ),
        ),
        Wrong(
            _momentum_dampened,
            N_(
                "torch's SGD adds the whole gradient (dampening 0): v = momentum * v + grad, not "
                "momentum * v + (1 - momentum) * grad."
            ),
        ),
    ),
    hints=(
        N_("Two lines: update the velocity, then the parameters."),
        N_("velocity = momentum * velocity + grad (a new tensor, not in place)."),
        N_("return theta - lr * velocity, velocity"),
    ),
    alternatives=(_momentum_addcmul,),
)


# --------------------------------------------------------------------------- adam_step


def adam_step(
    theta: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    grad: torch.Tensor,
    t: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Adam's step number ``t`` (counting from 1). Returns ``(new_theta, new_m, new_v)``.

    .. math::

        m \leftarrow \beta_1 m + (1 - \beta_1) g, \quad
        v \leftarrow \beta_2 v + (1 - \beta_2) g^2, \\
        \theta \leftarrow \theta
            - \eta \frac{m / (1 - \beta_1^t)}{\sqrt{v / (1 - \beta_2^t)} + \epsilon}
    """
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    return theta - lr * m_hat / (v_hat.sqrt() + eps), m, v


def _adam_cases(gen: torch.Generator) -> list[tuple]:
    cases = []
    for n, t in ((5, 1), (3, 2), (6, 10), (1, 1)):
        theta, grad = _vectors(gen, n, 2)
        m = 0.1 * torch.randn(n, generator=gen, dtype=torch.float64) if t > 1 else theta * 0
        v = 0.1 * torch.rand(n, generator=gen, dtype=torch.float64) if t > 1 else theta * 0
        cases.append((theta, m, v, grad, t, 1e-3, 0.9, 0.999, 1e-8))
    theta, grad = _vectors(gen, 4, 2)
    zeros = torch.zeros(4, dtype=torch.float64)
    cases.append(
        (theta, zeros, zeros, grad, 1, 0.1, 0.5, 0.9, 0.1)
    )  # a large eps shows where it goes
    return cases


def _adam_no_correction(theta, m, v, grad, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    return theta - lr * m / (v.sqrt() + eps), m, v


def _adam_eps_inside(theta, m, v, grad, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    return theta - lr * m_hat / (v_hat + eps).sqrt(), m, v


def _adam_t_off_by_one(theta, m, v, grad, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    m_hat, v_hat = m / (1 - beta1 ** (t + 1)), v / (1 - beta2 ** (t + 1))
    return theta - lr * m_hat / (v_hat.sqrt() + eps), m, v


def _adam_lerp(theta, m, v, grad, t, lr, beta1, beta2, eps):
    m = torch.lerp(m, grad, 1 - beta1)
    v = torch.lerp(v, grad * grad, 1 - beta2)
    step = lr / (1 - beta1**t)
    denom = v.sqrt() / (1 - beta2**t) ** 0.5 + eps
    return theta - step * m / denom, m, v


ADAM_STEP = Exercise(
    name="adam_step",
    notebook=3,
    task=(
        N_(
            "Write `adam_step(theta, m, v, grad, t, lr, beta1, beta2, eps)`: Adam's step number "
            "`t` (the first step is `t = 1`). Update the averages $m$ and $v$, correct their "
            "bias with $1 - \\beta_1^t$ and $1 - \\beta_2^t$, then step $\\theta - \\eta\\, "
            "\\hat m / (\\sqrt{\\hat v} + \\epsilon)$. Return `(new_theta, new_m, new_v)`; "
            "`new_m` and `new_v` are the uncorrected averages."
        )
    ),
    reference=adam_step,
    cases=_adam_cases,
    wrong=(
        Wrong(
            _adam_no_correction,
            N_(
                "m and v start at 0, so they are too small early on: divide by 1 - beta1**t and "
                "1 - beta2**t (the bias correction) before the step."
            ),
        ),
        Wrong(
            _adam_eps_inside,
            N_(
                "eps goes outside the square root: sqrt(v_hat) + eps, as in the paper and in torch."
            ),
        ),
        Wrong(
            _adam_t_off_by_one,
            N_("t is the number of this step, 1 for the first: use beta**t, not beta**(t + 1)."),
        ),
    ),
    hints=(
        N_(
            "First the two running averages, each a mix of the old value and the new gradient (or "
            "its square)."
        ),
        N_("Then m_hat = m / (1 - beta1**t) and v_hat = v / (1 - beta2**t)."),
        N_("new_theta = theta - lr * m_hat / (v_hat.sqrt() + eps); return it with m and v."),
    ),
    alternatives=(_adam_lerp,),
)


# --------------------------------------------------------------------------- newton_step


def newton_step(grad: torch.Tensor, hessian: torch.Tensor) -> torch.Tensor:
    r"""The Newton step :math:`d = -H^{-1} g`, by solving :math:`H d = -g`: ``(n,)``."""
    return -torch.linalg.solve(hessian, grad)


def _newton_cases(gen: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    def spd(n: int) -> torch.Tensor:
        a = torch.randn(n, n, generator=gen, dtype=torch.float64)
        return a @ a.T + n * torch.eye(n, dtype=torch.float64)

    cases = []
    for n in (3, 5, 1):
        cases.append((torch.randn(n, generator=gen, dtype=torch.float64), spd(n)))
    # an ill-conditioned diagonal-dominant case and a strongly coupled one
    cases.append(
        (
            torch.tensor([1.0, 1.0], dtype=torch.float64),
            torch.diag(torch.tensor([1.0, 100.0], dtype=torch.float64)),
        )
    )
    coupled = torch.tensor([[2.0, 1.9], [1.9, 2.0]], dtype=torch.float64)
    cases.append((torch.tensor([1.0, -0.5], dtype=torch.float64), coupled))
    return cases


def _newton_multiply(grad, hessian):
    return -hessian @ grad


def _newton_sign(grad, hessian):
    return torch.linalg.solve(hessian, grad)


def _newton_diagonal(grad, hessian):
    return -grad / torch.diagonal(hessian)


def _newton_inverse(grad, hessian):
    return -torch.linalg.inv(hessian) @ grad


NEWTON_STEP = Exercise(
    name="newton_step",
    notebook=3,
    task=(
        N_(
            "Write `newton_step(grad, hessian)`: the Newton step $d = -H^{-1} g$ for a gradient "
            "`grad` of shape `(n,)` and a positive-definite Hessian of shape `(n, n)`."
        )
    ),
    reference=newton_step,
    cases=_newton_cases,
    wrong=(
        Wrong(
            _newton_multiply,
            N_(
                "Divide by the curvature, do not multiply: solve H d = -g "
                "(torch.linalg.solve(hessian, -grad)), not -H @ g."
            ),
        ),
        Wrong(_newton_sign, N_("The step goes downhill: d = -H^-1 g, with a minus.")),
        Wrong(
            _newton_diagonal,
            N_(
                "Dividing by the diagonal ignores how the coordinates are coupled: solve the whole "
                "system H d = -g."
            ),
        ),
    ),
    hints=(
        N_("The quadratic model g.d + d.H.d / 2 is smallest where its gradient g + H d is 0."),
        N_("So d solves the linear system H d = -g."),
        N_("return -torch.linalg.solve(hessian, grad)"),
    ),
    alternatives=(_newton_inverse,),
)

EXERCISES = (MOMENTUM_STEP, ADAM_STEP, NEWTON_STEP)
