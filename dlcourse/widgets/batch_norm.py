"""Notebook 04's demo: the depth probe with a batch-norm switch (computed by
:func:`dlcourse.diagnostics.depth_probe`, drawn as in notebook 02's demo).

Choose a depth, an activation, a learning rate and a number of training steps, with and without
a :class:`dlcourse.norm.BatchNorm1d` before each activation: the left panel shows a few layers'
outputs, the right one every layer's spread and gradient, and the title the saturated share.
"""

from __future__ import annotations

from typing import Any

from dlcourse.diagnostics import PROBE_ACTIVATIONS, DepthProbeSettings
from dlcourse.init import PRESETS
from dlcourse.widgets._controls import int_slider, log_slider, menu
from dlcourse.widgets.activations_and_init import show_depth_probe

# Trained hard enough that, without batch norm, tanh units drift into saturation.
DEFAULTS = DepthProbeSettings(depth=10, activation="tanh", train_steps=50, lr=3.0, batch_norm=True)


def batch_norm_probe_explorer() -> Any:
    """Depth, activation, rate, steps and the batch-norm switch, wired to
    :func:`~dlcourse.widgets.activations_and_init.show_depth_probe`."""
    import ipywidgets as w

    d = DEFAULTS
    return w.interactive(
        show_depth_probe,
        depth=int_slider(d.depth, 2, 40),
        activation=menu(PROBE_ACTIVATIONS, d.activation, description="activation"),
        init=menu(PRESETS, d.init, description="init"),
        lr=log_slider(d.lr, -2, 1),
        train_steps=int_slider(d.train_steps, 0, 200, 10),
        batch_norm=w.Checkbox(value=d.batch_norm, description="batch norm"),
    )
