"""Notebook 02's demo: inside a deep network, layer by layer (computed by
:func:`dlcourse.diagnostics.depth_probe`).

Pick a depth, an activation and an initialisation; see how the outputs' distribution, their
scale and the gradient change from layer to layer.
"""

from __future__ import annotations

import math
from typing import Any

from dlcourse.diagnostics import PROBE_ACTIVATIONS, DepthProbeSettings, LayerStats, depth_probe
from dlcourse.init import PRESETS
from dlcourse.widgets._controls import int_slider, menu

DEFAULTS = DepthProbeSettings()


def show_depth_probe(**settings: Any) -> list[LayerStats]:
    """Callback of :func:`depth_probe_explorer`: histograms, and std and gradient per layer
    (keywords: :class:`~dlcourse.diagnostics.DepthProbeSettings`)."""
    import matplotlib.pyplot as plt

    from dlcourse.plot import new_axes

    stats = depth_probe(**settings)
    depth = len(stats)
    s = DepthProbeSettings(**settings)
    fig, (ax1, ax2) = new_axes(2, width=5.0)
    picks = sorted({0, depth // 4, depth // 2, depth - 1})
    for i in picks:
        layer = stats[i]
        centres = 0.5 * (layer.edges[1:] + layer.edges[:-1])
        share = layer.histogram / layer.histogram.sum()
        ax1.plot(centres.numpy(), share.numpy(), drawstyle="steps-mid", label=f"layer {i + 1}")
    ax1.set_xlabel(f"{s.activation} output")
    ax1.set_ylabel("share of outputs")
    ax1.legend(fontsize="small")
    layers = range(1, depth + 1)
    floor = 1e-30  # log scale: show a collapsed 0 at the bottom
    ax2.semilogy(layers, [max(x.std, floor) for x in stats], "o-", ms=3, label="output std")
    ax2.semilogy(
        layers, [max(x.grad_norm, floor) for x in stats], "s-", ms=3, label="‖dL/d output‖"
    )
    ax2.set_xlabel("layer (input side first)")
    ax2.legend(fontsize="small")
    saturated = [x.saturated for x in stats if not math.isnan(x.saturated)]
    dead = [x.dead for x in stats if not math.isnan(x.dead)]
    extra = ""
    if saturated:
        extra = f", saturated {sum(saturated) / len(saturated):.0%}"
    elif dead:
        extra = f", dead units {sum(dead) / len(dead):.0%}"
    norm = " + batch norm" if s.batch_norm else ""
    trained = f", after {s.train_steps} steps at rate {s.lr:g}" if s.train_steps else ""
    fig.suptitle(
        f"{depth} layers of {s.activation}{norm}, init {s.init}{trained}{extra}",
        fontsize="medium",
    )
    fig.tight_layout()
    plt.show()
    return stats


def depth_probe_explorer() -> Any:
    """Depth, activation and initialisation wired to :func:`show_depth_probe`."""
    import ipywidgets as w

    d = DEFAULTS
    return w.interactive(
        show_depth_probe,
        depth=int_slider(d.depth, 2, 60),
        activation=menu(PROBE_ACTIVATIONS, d.activation, description="activation"),
        init=menu(PRESETS, d.init, description="init"),
        seed=int_slider(d.seed, 0, 9),
    )
