r"""Second-order methods: curvature from the Hessian, exactly or through Hessian-vector products.

Taught in ``notebooks/03_optimizers.ipynb`` (claim C2.8). Near a point
:math:`\theta`, a loss is close to its quadratic model

.. math::

    f(\theta + d) \approx f(\theta) + g^\top d + \tfrac12 d^\top H d,

whose minimum is the **Newton step** :math:`d = -H^{-1} g`: one step to the
minimum of a quadratic, and quadratic convergence (the error squares at every
step) near the minimum of a smooth function. Its price is :math:`H`: for
:math:`n` parameters, :math:`n^2` numbers to store and :math:`O(n^3)` work to
solve, which is what limits its practical use (the notes: 계산 시간이 길어
실질적 사용에 한계).

The practical route never forms :math:`H`. A **Hessian-vector product**
:math:`Hv` costs about two gradients (Pearlmutter's trick: differentiate
:math:`g^\top v` once more), and **conjugate gradients** solves :math:`H d = -g`
from such products alone, in at most :math:`n` of them and often far fewer.

Pearlmutter, "Fast exact multiplication by the Hessian", Neural Computation 6,
1994; Nocedal and Wright, "Numerical optimization", 2nd ed., 2006, ch. 5 and 7;
Martens, "Deep learning via Hessian-free optimization", ICML 2010.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Objective = Callable[[torch.Tensor], torch.Tensor]  # (n,) -> 0-d


def _flat(x: torch.Tensor) -> torch.Tensor:
    if x.dim() != 1:
        raise ValueError(
            f"pass the parameters as one flat vector of shape (n,), got {tuple(x.shape)}"
        )
    return x.detach().requires_grad_(True)


def gradient(f: Objective, x: torch.Tensor) -> torch.Tensor:
    """:math:`\\nabla f(x)` for ``x`` of shape ``(n,)``."""
    x = _flat(x)
    (g,) = torch.autograd.grad(f(x), x)
    return g


def hessian(f: Objective, x: torch.Tensor) -> torch.Tensor:
    r"""The full Hessian :math:`H_{ij} = \partial^2 f / \partial x_i \partial x_j`, ``(n, n)``.

    Row by row: each row is the gradient of one component of :math:`\nabla f`, so
    this costs :math:`n` backward passes and :math:`n^2` numbers: fine for the
    small models of the notebooks, hopeless for a real network.
    """
    x = _flat(x)
    (g,) = torch.autograd.grad(f(x), x, create_graph=True)  # (n,), differentiable
    rows = [torch.autograd.grad(g[i], x, retain_graph=True)[0] for i in range(x.numel())]
    return torch.stack(rows)  # (n, n)


def hvp(f: Objective, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    r""":math:`H v` without forming :math:`H`: the gradient of :math:`\nabla f(x)^\top v`.

    Pearlmutter's trick by double backward: one gradient with ``create_graph``,
    then one more backward through it. Costs about two gradient evaluations.
    """
    x = _flat(x)
    if v.shape != x.shape:
        raise ValueError(f"v must have the shape of x, {tuple(x.shape)}; got {tuple(v.shape)}")
    (g,) = torch.autograd.grad(f(x), x, create_graph=True)
    (hv,) = torch.autograd.grad(g @ v.detach(), x)
    return hv


@dataclass
class CGResult:
    x: torch.Tensor  # the solution
    iterations: int  # matrix-vector products used
    residual: float  # ||b - A x|| at the end
    converged: bool


def conjugate_gradient(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    *,
    max_iter: int | None = None,
    tol: float = 1e-10,
) -> CGResult:
    r"""Solve :math:`A x = b` for symmetric positive-definite :math:`A`, given ``matvec(v) = A v``.

    Each iteration moves along a direction conjugate to all earlier ones
    (:math:`p_i^\top A p_j = 0`), so in exact arithmetic it finishes in at most
    :math:`n` iterations (rounding erodes the conjugacy, so by default it may take up to
    :math:`10n`, as SciPy allows); stops once :math:`\lVert r \rVert \le` ``tol``
    :math:`\cdot \lVert b \rVert`. Hestenes and Stiefel, J. Res. NBS 49, 1952.
    """
    if tol <= 0:
        raise ValueError(f"tol must be positive, got {tol}")
    n = b.numel()
    max_iter = 10 * n if max_iter is None else max_iter  # rounding can cost a few beyond n
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    x = torch.zeros_like(b)
    r = b.clone()  # residual b - A x
    p = r.clone()  # search direction
    rr = r @ r
    target = tol * b.norm()
    iterations = 0
    while iterations < max_iter and rr.sqrt() > target:
        ap = matvec(p)
        curvature = p @ ap
        if curvature <= 0:
            raise ValueError(
                "conjugate gradients needs a positive-definite matrix, but found a direction "
                f"with curvature {curvature.item():.3g} <= 0; add damping (H + lambda I)"
            )
        alpha = rr / curvature
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
        iterations += 1
    residual = float(rr.sqrt())
    return CGResult(x, iterations, residual, residual <= float(target))


def newton_step(
    f: Objective,
    x: torch.Tensor,
    *,
    damping: float = 0.0,
    method: str = "solve",
    max_iter: int | None = None,
) -> torch.Tensor:
    r"""The damped Newton step :math:`d = -(H + \lambda I)^{-1} \nabla f(x)`, ``(n,)``.

    ``method='solve'`` forms :math:`H` and solves (Cholesky-free ``torch.linalg.solve``);
    ``method='cg'`` uses :func:`conjugate_gradient` on Hessian-vector products and
    never forms :math:`H` ("Hessian-free"). Damping :math:`\lambda > 0` shortens the
    step and makes an indefinite :math:`H` usable (Levenberg-Marquardt).
    """
    if damping < 0:
        raise ValueError(f"damping must be >= 0, got {damping}")
    g = gradient(f, x)
    if method == "solve":
        h = hessian(f, x)
        h = h + damping * torch.eye(h.shape[0], dtype=h.dtype, device=h.device)
        return -torch.linalg.solve(h, g)
    if method == "cg":
        result = conjugate_gradient(lambda v: hvp(f, x, v) + damping * v, -g, max_iter=max_iter)
        return result.x
    raise ValueError(f"method must be 'solve' or 'cg', got {method!r}")
