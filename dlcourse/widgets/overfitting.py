"""Notebook 05's demo: a small network fitted to a few noisy points, with capacity, an L2
penalty and dropout on sliders (computed by :func:`dlcourse.capacity.regression_demo`).

The left panel shows the training points, the curve behind them and the network's fit; the
right one the training and validation errors as training goes on. Watch the validation error
turn up while the training error keeps falling, and what each remedy does to both.
"""

from __future__ import annotations

from typing import Any

from dlcourse.capacity import RegressionDemoSettings, regression_demo
from dlcourse.widgets._controls import int_slider, menu, slider

DEFAULTS = RegressionDemoSettings()
LAMBDAS = ("0", "1e-4", "1e-3", "1e-2", "1e-1")  # the penalty's weight, as the menu shows it


def show_overfitting(
    width: int = DEFAULTS.width,
    depth: int = DEFAULTS.depth,
    lam: str | float = DEFAULTS.lam,
    dropout: float = DEFAULTS.dropout,
    steps: int = DEFAULTS.steps,
) -> dict:
    """Train with these settings, draw the fit and the errors; return the demo's record."""
    import matplotlib.pyplot as plt

    from dlcourse.plot import new_axes

    run = regression_demo(width=width, depth=depth, lam=float(lam), dropout=dropout, steps=steps)
    fig, (left, right) = new_axes(2)
    left.plot(run["grid"], run["target"], "k--", lw=1, label="the curve behind the data")
    left.plot(run["grid"], run["fitted"], "tab:blue", label="the network's fit")
    left.plot(run["x_train"], run["y_train"], "o", color="tab:red", ms=4, label="training points")
    left.set_ylim(-3, 3)
    left.set_title(f"error against the curve: {run['test_error']:.3f}")
    left.legend(fontsize="small")
    right.semilogy(run["steps"], run["train_loss"], label="training error")
    right.semilogy(run["steps"], run["val_loss"], label="validation error")
    best = min(range(len(run["val_loss"])), key=run["val_loss"].__getitem__)
    right.axvline(run["steps"][best], color="grey", ls=":", label="lowest validation error")
    right.set_xlabel("training step")
    right.set_ylabel("mean squared error")
    right.legend(fontsize="small")
    fig.tight_layout()
    plt.show()
    return run


def overfitting_explorer() -> Any:
    """Width, depth, the L2 weight, dropout and the training length, wired to
    :func:`show_overfitting`."""
    import ipywidgets as w

    d = DEFAULTS
    return w.interactive(
        show_overfitting,
        width=int_slider(d.width, 2, 256, 2),
        depth=int_slider(d.depth, 1, 4),
        lam=menu(LAMBDAS, "0", description="lam"),
        dropout=slider(d.dropout, 0.0, 0.8, 0.1),
        steps=int_slider(d.steps, 100, 3000, 100),
    )
