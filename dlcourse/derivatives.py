"""Slopes by hand and by autograd, side by side (the tangent demo of notebook 00).

Taught in ``notebooks/00_welcome.ipynb`` (the autograd refresher). Each function
in :data:`FUNCTIONS` comes with its derivative written out by hand;
:func:`tangent` evaluates both at a point, the hand-written one and autograd's
(``backward()`` then ``x.grad``), so a learner sees them agree. The widget
``dl.widgets.tangent_explorer()`` draws the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Fn = Callable[[torch.Tensor], torch.Tensor]

# name -> (f, f' written out by hand)
FUNCTIONS: dict[str, tuple[Fn, Fn]] = {
    "x^2": (lambda x: x**2, lambda x: 2 * x),
    "sin(x)": (torch.sin, torch.cos),
    "tanh(x)": (torch.tanh, lambda x: 1 - torch.tanh(x) ** 2),
    "sigmoid(x)": (torch.sigmoid, lambda x: torch.sigmoid(x) * (1 - torch.sigmoid(x))),
    "relu(x)": (torch.relu, lambda x: (x > 0).to(x.dtype)),
}


@dataclass(frozen=True)
class TangentSettings:
    """Where the tangent demo starts: the function and the point."""

    function: str = "sigmoid(x)"
    x: float = 1.0


@dataclass(frozen=True)
class Tangent:
    function: str
    x: float
    value: float  # f(x)
    slope_autograd: float  # df/dx from x.grad after backward()
    slope_by_hand: float  # df/dx from the formula in FUNCTIONS


def tangent(function: str, x: float) -> Tangent:
    """Value and slope of ``function`` at ``x``: by autograd and by the hand-written derivative."""
    if function not in FUNCTIONS:
        raise ValueError(f"unknown function {function!r}; choose one of {sorted(FUNCTIONS)}")
    f, df = FUNCTIONS[function]
    xt = torch.tensor(float(x), dtype=torch.float64, requires_grad=True)
    y = f(xt)
    y.backward()
    return Tangent(function, float(x), y.item(), xt.grad.item(), df(xt.detach()).item())
