r"""Capacity and overfitting on a curve you can see: polynomial fits, and a small network fitted
to the same few noisy points with the remedies switched on or off.

Taught in ``notebooks/05_overfitting.ipynb`` (claim C3.1, 과다 적합): a model with room to
spare fits the noise of its few training points as well as the function behind them, so its
training error keeps falling while its error on new points rises. The data are
:func:`dlcourse.data.make_regression_1d`'s noisy samples of :math:`\sin 3x + x/2` on
:math:`[-2, 2]`.

**Polynomials** of degree :math:`d` are fitted by least squares in the Legendre basis
:math:`P_0, \dots, P_d` on :math:`[-2, 2]` (mapped to :math:`[-1, 1]`), in float64: the same
fits as in the monomials :math:`1, x, \dots, x^d`, whose columns are nearly parallel at high
degree, but well conditioned. With :math:`n` points, degree :math:`n - 1` passes through all of
them: zero training error, whatever the noise.

**The network demo** (:func:`regression_demo`, drawn by ``dl.widgets.overfitting_explorer``)
trains :func:`dlcourse.models.deep_mlp` on the same kind of points, full batch, with a width,
an L2 weight ``lam`` (:class:`dlcourse.regularization.L2PenalizedLoss`) and a dropout rate,
and records the training and validation errors as it goes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from dlcourse._validate import integer
from dlcourse.data import make_regression_1d, regression_target
from dlcourse.models import deep_mlp
from dlcourse.regularization import L2PenalizedLoss

LOW, HIGH = -2.0, 2.0  # make_regression_1d's interval


def legendre_features(x: torch.Tensor, degree: int) -> torch.Tensor:
    """Points ``(N, 1)`` or ``(N,)`` on [-2, 2] -> Legendre features ``(N, degree + 1)``."""
    degree = integer(degree, "degree", minimum=0)
    t = (2 * x.double().reshape(-1) - (LOW + HIGH)) / (HIGH - LOW)  # (N,) in [-1, 1]
    columns = [torch.ones_like(t), t]
    for k in range(1, degree):  # Bonnet: (k + 1) P_{k+1} = (2k + 1) t P_k - k P_{k-1}
        columns.append(((2 * k + 1) * t * columns[k] - k * columns[k - 1]) / (k + 1))
    return torch.stack(columns[: degree + 1], dim=1)  # (N, degree + 1)


def fit_polynomial(x: torch.Tensor, y: torch.Tensor, degree: int) -> torch.Tensor:
    """Least-squares coefficients ``(degree + 1,)`` of a polynomial through ``(x, y)``."""
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} and {len(y)}")
    features = legendre_features(x, degree)  # (N, d + 1)
    return torch.linalg.lstsq(features, y.double().reshape(-1, 1)).solution.reshape(-1)


def polynomial(coefficients: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The fitted polynomial's values at ``x``: ``(N,)``, float64."""
    return legendre_features(x, len(coefficients) - 1) @ coefficients


# --------------------------------------------------------------------------- the network demo


@dataclass(frozen=True)
class RegressionDemoSettings:
    width: int = 64  # units in each of the hidden layers
    depth: int = 2  # hidden layers
    lam: float = 0.0  # L2 penalty weight: loss + lam * sum of squared weights
    dropout: float = 0.0  # dropout rate after each hidden activation
    steps: int = 1000  # full-batch Adam steps
    lr: float = 0.01
    n_train: int = 16  # noisy training points
    noise: float = 0.3  # their noise's standard deviation
    seed: int = 0


def regression_demo(settings: RegressionDemoSettings | None = None, **changes: Any) -> dict:
    """Train a ``deep_mlp`` on a few noisy points of the curve; return what the demo draws.

    Returns a dict: ``steps`` (where the errors were recorded), ``train_loss`` and
    ``val_loss`` (mean squared error on the training points, and on 200 fresh noisy points),
    ``test_error`` (against the noise-free curve), ``x_train``, ``y_train``, ``grid``,
    ``target`` and ``fitted`` (the network's curve on the grid, in evaluation mode).
    """
    s = replace(settings or RegressionDemoSettings(), **changes)
    if s.width < 1 or s.depth < 1 or s.steps < 1 or s.n_train < 2:
        raise ValueError(f"width, depth and steps must be >= 1 and n_train >= 2: {s}")
    x_train, y_train = make_regression_1d(s.n_train, noise=s.noise, seed=s.seed)
    x_val, y_val = make_regression_1d(200, noise=s.noise, seed=s.seed + 1)
    torch.manual_seed(s.seed)  # the weights and the dropout masks
    model = deep_mlp(1, s.width, s.depth, 1, "tanh", dropout=s.dropout)
    loss_fn = L2PenalizedLoss(nn.MSELoss(), model, s.lam)
    opt = torch.optim.Adam(model.parameters(), lr=s.lr)
    every = max(1, s.steps // 100)
    record: dict[str, list[float]] = {"steps": [], "train_loss": [], "val_loss": []}
    for step in range(1, s.steps + 1):
        model.train()
        opt.zero_grad()
        loss_fn(model(x_train), y_train).backward()
        opt.step()
        if step % every == 0 or step == s.steps:
            model.eval()
            with torch.no_grad():
                record["steps"].append(step)
                record["train_loss"].append(nn.functional.mse_loss(model(x_train), y_train).item())
                record["val_loss"].append(nn.functional.mse_loss(model(x_val), y_val).item())
    grid = torch.linspace(LOW, HIGH, 300).unsqueeze(1)  # (300, 1)
    model.eval()
    with torch.no_grad():
        fitted = model(grid)
    target = regression_target(grid)
    return {
        **record,
        "test_error": nn.functional.mse_loss(fitted, target).item(),
        "x_train": x_train,
        "y_train": y_train,
        "grid": grid,
        "target": target,
        "fitted": fitted,
        "settings": s,
    }
