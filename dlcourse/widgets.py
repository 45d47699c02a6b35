"""Interactive demos for the notebooks (ipywidgets), thin over the package's modules.

Each demo is a plain function, the callback, that computes and draws for one
setting of the knobs and returns what it computed, and a small builder that
wires the callback to sliders. Tests call the callbacks directly and drive the
builders' widgets headless.

``tangent_explorer`` (``notebooks/00_welcome.ipynb``): pick a function and a
point; see the tangent whose slope autograd computed, next to the derivative
worked out by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    import ipywidgets

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


def show_tangent(function: str = "sigmoid(x)", x: float = 1.0) -> Tangent:
    """Callback of :func:`tangent_explorer`: plot the function and its tangent at ``x``."""
    import matplotlib.pyplot as plt

    from dlcourse.plot import new_axes, plot_tangent

    t = tangent(function, x)
    f, _ = FUNCTIONS[function]
    xs = torch.linspace(-4, 4, 401, dtype=torch.float64)
    _, (ax,) = new_axes()
    plot_tangent(ax, xs.tolist(), f(xs).tolist(), t.x, t.value, t.slope_autograd, label=function)
    ax.set_title(
        f"slope at x={t.x:.2f}: autograd {t.slope_autograd:.4f}, by hand {t.slope_by_hand:.4f}"
    )
    plt.show()
    return t


def tangent_explorer() -> ipywidgets.interactive:
    """A function menu and an ``x`` slider wired to :func:`show_tangent`."""
    import ipywidgets as w

    return w.interactive(
        show_tangent,
        function=w.Dropdown(options=list(FUNCTIONS), value="sigmoid(x)", description="f"),
        x=w.FloatSlider(value=1.0, min=-4.0, max=4.0, step=0.1, description="x"),
    )
