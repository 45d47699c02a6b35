"""Plotting helpers shared by the notebooks (drawing only: no algorithm code here).

Matplotlib is imported when a function here first runs, so ``import dlcourse``
stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def new_axes(
    ncols: int = 1, *, width: float = 4.5, height: float = 3.2
) -> tuple[Figure, list[Axes]]:
    """A figure with ``ncols`` side-by-side axes, sized for a notebook column."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, list(axes[0])


def plot_tangent(
    ax: Axes,
    xs: Sequence[float],
    ys: Sequence[float],
    x0: float,
    y0: float,
    slope: float,
    *,
    label: str = "f(x)",
) -> None:
    """Draw a curve and its tangent line at ``(x0, y0)`` with the given slope."""
    ax.plot(xs, ys, label=label)
    half = 0.25 * (max(xs) - min(xs))
    ax.plot(
        [x0 - half, x0 + half],
        [y0 - slope * half, y0 + slope * half],
        "--",
        label=f"tangent, slope {slope:.3g}",
    )
    ax.plot([x0], [y0], "o", color="black")
    ax.set_xlabel("x")
    ax.legend(loc="best", fontsize="small")
