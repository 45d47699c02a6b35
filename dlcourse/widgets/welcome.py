"""Notebook 00's demo: a function's tangent, its slope by autograd beside the slope by hand.

Pick a function and a point; the dashed line is the tangent whose slope autograd computed, and
the title compares it with the derivative written out in :mod:`dlcourse.derivatives`.
"""

from __future__ import annotations

from typing import Any

import torch

from dlcourse.derivatives import FUNCTIONS, Tangent, TangentSettings, tangent
from dlcourse.widgets._controls import menu, slider

DEFAULTS = TangentSettings()


def show_tangent(function: str = DEFAULTS.function, x: float = DEFAULTS.x) -> Tangent:
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


def tangent_explorer() -> Any:
    """A function menu and an ``x`` slider wired to :func:`show_tangent`."""
    import ipywidgets as w

    return w.interactive(
        show_tangent,
        function=menu(FUNCTIONS, DEFAULTS.function, description="f"),
        x=slider(DEFAULTS.x, -4.0, 4.0, 0.1, description="x", continuous_update=True),
    )
