"""Notebook 03's demo: SGD, momentum, Nesterov, RMSprop and Adam (the course's own) race on a
2-D landscape (computed by :func:`dlcourse.landscapes.optimizer_race`); sliders set the
learning rates, the momentum and the betas.
"""

from __future__ import annotations

import math
from typing import Any

from dlcourse.landscapes import (
    LANDSCAPES,
    OPTIMIZER_LANDSCAPES,
    OptimizerRace,
    OptimizerRaceSettings,
    optimizer_race,
)
from dlcourse.widgets._controls import int_slider, log_slider, menu, slider

DEFAULTS = OptimizerRaceSettings()


def show_optimizer_race(**settings: Any) -> OptimizerRace:
    """Callback of :func:`optimizer_race_explorer`: every path on the landscape, and f per step
    (keywords: :class:`~dlcourse.landscapes.OptimizerRaceSettings`)."""
    import matplotlib.pyplot as plt
    import torch

    from dlcourse.plot import new_axes, plot_landscape

    race = optimizer_race(**settings)
    ls = LANDSCAPES[race.landscape]
    fig, (ax1, ax2) = new_axes(2, width=5.0)
    finite = {k: p[torch.isfinite(p).all(dim=-1)] for k, p in race.paths.items()}
    plot_landscape(ls, paths=finite, ax=ax1, resolution=150, log=race.landscape == "Rosenbrock")
    floor = ls.global_minimum.value
    start = 0.0
    for name, p in race.paths.items():
        values = (ls(p) - floor).clamp_min(1e-16)
        start = max(start, float(values[0]))
        loss = race.final_loss[name]
        ax2.semilogy(values.numpy(), label=f"{name}: {loss:.3g}" if math.isfinite(loss) else
                     f"{name}: diverged")  # fmt: skip
    # A run that diverges would stretch the axis to 1e300 and flatten the others: cut it at 1000
    # times where they all started.
    ax2.set_ylim(top=1e3 * start)
    ax2.set_xlabel("step")
    ax2.set_ylabel("f - f(minimum)")
    ax2.legend(fontsize="small")
    fig.tight_layout()
    plt.show()
    return race


def optimizer_race_explorer() -> Any:
    """Sliders for the learning rates, momentum and betas, wired to :func:`show_optimizer_race`."""
    import ipywidgets as w

    d = DEFAULTS
    return w.interactive(
        show_optimizer_race,
        landscape=menu(OPTIMIZER_LANDSCAPES, d.landscape, description="landscape"),
        lr=log_slider(d.lr, -5, -1),
        adaptive_lr=log_slider(d.adaptive_lr, -4, 0),
        momentum=slider(d.momentum, 0.0, 0.99, 0.01, description="momentum"),
        beta1=slider(d.beta1, 0.0, 0.99, 0.01, description="beta1"),
        beta2=slider(d.beta2, 0.9, 0.9999, 0.0001, description="beta2"),
        steps=int_slider(d.steps, 50, 2000, 50),
    )
