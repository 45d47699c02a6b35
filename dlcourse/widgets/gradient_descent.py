"""Notebook 01's demo: gradient descent, noisy (SGD-like) descent and simulated annealing,
run from the same start side by side (computed by :func:`dlcourse.anneal.descent_race`).

Pick a landscape, a start, a learning rate and its schedule, the gradient noise and the
starting temperature.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from dlcourse.anneal import RACE_LANDSCAPES, Race, RaceSettings, descent_race
from dlcourse.schedules import NAMES as SCHEDULES
from dlcourse.widgets._controls import int_slider, log_slider, menu, slider

DEFAULTS = RaceSettings()


def show_descent_race(**settings: Any) -> Race:
    """Callback of :func:`descent_race_explorer`: draw the three runs of
    :func:`~dlcourse.anneal.descent_race` (keywords: :class:`~dlcourse.anneal.RaceSettings`)."""
    import matplotlib.pyplot as plt

    from dlcourse.landscapes import LANDSCAPES
    from dlcourse.plot import new_axes, plot_landscape

    race = descent_race(**settings)
    ls = LANDSCAPES[race.landscape]
    fig, axes = new_axes(3, width=4.0)
    for ax, (name, path) in zip(axes, race.paths.items(), strict=True):
        finite = path[torch.isfinite(path).all(dim=-1)]  # a diverged run: draw what is finite
        plot_landscape(ls, paths={name: finite}, ax=ax, resolution=120)
        loss = race.final_loss[name]
        if math.isnan(loss):
            outcome = "diverged: lower lr"
        else:
            outcome = f"f = {loss:.2f}, " + (
                "global" if race.in_global_basin[name] else "not global"
            )
        ax.set_title(f"{name}: {outcome}", fontsize="medium")
        ax.set_ylim(*ax.get_ylim())  # keep the landscape's box, not a diverged path's
    fig.tight_layout()
    plt.show()
    return race


def descent_race_explorer() -> Any:
    """Menus and sliders wired to :func:`show_descent_race`; redraws when a slider is released."""
    import ipywidgets as w

    d = DEFAULTS
    return w.interactive(
        show_descent_race,
        landscape=menu(RACE_LANDSCAPES, d.landscape, description="landscape"),
        start_x=slider(d.start_x, -3.0, 3.0, 0.1, description="start_x"),
        start_y=slider(d.start_y, -1.5, 1.5, 0.1, description="start_y"),
        lr=log_slider(d.lr, -4, -0.5),
        schedule=menu(SCHEDULES, d.schedule, description="schedule"),
        noise=slider(d.noise, 0.0, 12.0, 0.5, description="noise"),
        temperature=log_slider(d.temperature, -2, 1),
        steps=w.fixed(d.steps),
        seed=int_slider(d.seed, 0, 9),
    )
