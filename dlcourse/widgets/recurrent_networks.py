"""Notebook 07's demo: back-propagation through time, measured (computed by
:func:`dlcourse.rnn.gradient_flow`).

Choose the cell (a tanh RNN or an LSTM), the sequence length, the scale of the recurrent weights
and the LSTM's forget-gate bias: the plot shows how large the gradient of the last step's loss is
at every earlier step, on a log scale. Watch it vanish with torch's initialisation, explode when
the recurrent weights stretch every direction by more than 1, and survive through the LSTM's
cell state when the forget gate is open.
"""

from __future__ import annotations

from typing import Any

from dlcourse.rnn import GradientFlowSettings, gradient_flow
from dlcourse.widgets._controls import int_slider, menu, slider

DEFAULTS = GradientFlowSettings()
SCALES = ("torch's default", "0.5", "0.9", "1.0", "1.1", "1.5", "2.0")


def show_gradient_flow(
    kind: str = DEFAULTS.kind,
    length: int = DEFAULTS.length,
    scale: str = "torch's default",
    forget_bias: float = DEFAULTS.forget_bias,
) -> dict:
    """Measure and draw the gradient norms over the steps; return the demo's record."""
    import matplotlib.pyplot as plt

    from dlcourse.plot import new_axes
    from dlcourse.report import number

    value = None if scale == "torch's default" else float(scale)
    run = gradient_flow(kind=kind, length=length, scale=value, forget_bias=forget_bias)
    _, (ax,) = new_axes(1, width=6.0)
    ax.semilogy(run["distance"], run["hidden"].clamp_min(1e-30), "o-", ms=3, label="|dL/dh_t|")
    if "cell" in run:
        ax.semilogy(run["distance"], run["cell"].clamp_min(1e-30), "s-", ms=3, label="|dL/dc_t|")
    ax.set_xlabel("steps before the end (T - t)")
    # A float32 gradient that fell below ~1e-38 is 0: drawn at the floor, and the ratio says so.
    ax.set_ylabel("gradient norm (floor 1e-30)")
    ratio = number(run["ratio"], floor=1e-30)
    ax.set_title(f"{kind}, weights {scale}: first step / last step = {ratio}")
    ax.legend(fontsize="small")
    plt.show()
    return run


def gradient_flow_explorer() -> Any:
    """Cell, length, recurrent scale and forget bias, wired to :func:`show_gradient_flow`."""
    import ipywidgets as w

    d = DEFAULTS
    return w.interactive(
        show_gradient_flow,
        kind=menu(("rnn", "lstm"), d.kind, description="kind"),
        length=int_slider(d.length, 5, 200, 5),
        scale=menu(SCALES, "torch's default", description="scale"),
        forget_bias=slider(d.forget_bias, 0.0, 5.0, 0.5),
    )
