"""Plotting helpers shared by the notebooks (drawing only: no algorithm code here).

Matplotlib is imported when a function here first runs, so ``import dlcourse``
stays fast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
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


# --------------------------------------------------------------------------- training curves


def plot_history(
    histories: object,
    *,
    keys: Sequence[str] = ("loss", "accuracy"),
    axes: Sequence[Axes] | None = None,
    title: str = "",
) -> Figure:
    """Curves of one or several runs (``History`` objects) against the epoch, one panel per key.

    Training curves are solid, validation curves dashed, one colour per run;
    runs are named by ``history.label``. Panels for keys no run recorded are left out.
    """
    runs = list(histories) if isinstance(histories, list | tuple) else [histories]
    keys = [k for k in keys if any(f"train_{k}" in h.epochs for h in runs)]
    if not keys:
        raise ValueError("these histories record none of the requested keys")
    if axes is None:
        fig, axes = new_axes(len(keys))
    else:
        fig = axes[0].figure
    for ax, key in zip(axes, keys, strict=False):
        for i, h in enumerate(runs):
            color = f"C{i}"
            name = h.label or (f"run {i + 1}" if len(runs) > 1 else "")
            epochs = [e + 1 for e in h.epochs["epoch"]]
            for split, style in (("train", "-"), ("val", "--")):
                series = h.epochs.get(f"{split}_{key}")
                if series:
                    label = f"{name} {split}".strip()
                    ax.plot(epochs, series, style, color=color, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _interactive_frontend() -> bool:
    """True inside a Jupyter kernel, unless ``DLCOURSE_HEADLESS`` is set (nbval, regenerate)."""
    import os

    if os.environ.get("DLCOURSE_HEADLESS"):
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


class LiveFigure:
    """Training curves redrawn in place in JupyterLab; one static figure when headless.

    Drawn by the :class:`dlcourse.callbacks.LivePlot` callback (``fit(..., live_plot=True)``);
    redraws at most every ``min_interval`` seconds.
    """

    def __init__(self, *, min_interval: float = 0.5) -> None:
        self.interactive = _interactive_frontend()
        self.min_interval = min_interval
        self.handle = None
        self.last = 0.0

    def _figure(self, history: object) -> Figure:
        return plot_history(history)

    def update(self, history: object) -> None:
        import time

        if not self.interactive or time.perf_counter() - self.last < self.min_interval:
            return
        import matplotlib.pyplot as plt
        from IPython.display import display

        fig = self._figure(history)
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        plt.close(fig)
        self.last = time.perf_counter()

    def close(self, history: object) -> None:
        """Draw the final curves: update the live figure, or show one static figure."""
        import matplotlib.pyplot as plt

        if not history.epochs.get("epoch"):
            return
        fig = self._figure(history)
        if self.handle is not None:
            self.handle.update(fig)
            plt.close(fig)
        elif "agg" not in plt.get_backend().lower():  # a notebook's inline backend, or a window
            plt.show()
        else:  # a script with a file-only backend: nothing can be shown
            plt.close(fig)


# --------------------------------------------------------------------------- data


def image_grid(
    images: object,
    labels: Sequence[object] | None = None,
    *,
    ncols: int = 10,
    cmap: str = "gray_r",
    size: float = 0.9,
) -> Figure:
    """Show images ``(N, H, W)`` or ``(N, 1, H, W)`` in a grid, each titled with its label."""
    import matplotlib.pyplot as plt
    import torch

    x = torch.as_tensor(images).detach().cpu()
    if x.dim() == 4 and x.shape[1] == 1:
        x = x[:, 0]  # (N, 1, H, W) -> (N, H, W)
    if x.dim() != 3:
        raise ValueError(f"images must be (N, H, W) or (N, 1, H, W), got {tuple(x.shape)}")
    n = len(x)
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, size * nrows * 1.15), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(x[i].numpy(), cmap=cmap)
            if labels is not None:
                ax.set_title(str(labels[i]), fontsize="small")
    fig.tight_layout()
    return fig


def decision_boundary(
    classify: Callable[[torch.Tensor], torch.Tensor],
    x: object,
    y: object,
    *,
    ax: Axes | None = None,
    resolution: int = 200,
    margin: float = 0.25,
) -> Axes:
    """Colour the plane by a 2-D classifier's predicted class and scatter the data on top.

    ``classify`` maps points ``(M, 2)`` to class scores ``(M, C)`` or to classes ``(M,)``,
    e.g. ``lambda p: dl.train.predict(model, p)``.
    """
    import torch

    x = torch.as_tensor(x).detach().cpu()
    y = torch.as_tensor(y).detach().cpu()
    if x.dim() != 2 or x.shape[1] != 2:
        raise ValueError(f"decision_boundary needs 2-D points (N, 2), got {tuple(x.shape)}")
    if not callable(classify):
        raise TypeError(
            "decision_boundary needs a function from points (M, 2) to class scores, e.g. "
            f"lambda p: dl.train.predict(model, p); got a {type(classify).__name__}"
        )
    if ax is None:
        _, (ax,) = new_axes()
    lo, hi = x.min(0).values - margin, x.max(0).values + margin
    gx = torch.linspace(float(lo[0]), float(hi[0]), resolution)
    gy = torch.linspace(float(lo[1]), float(hi[1]), resolution)
    xx, yy = torch.meshgrid(gx, gy, indexing="xy")  # (R, R) each
    grid = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)  # (R*R, 2)
    scores = torch.as_tensor(classify(grid)).detach().cpu()
    pred = scores.argmax(1) if scores.dim() == 2 else scores  # (R*R,)
    pred = pred.reshape(resolution, resolution)  # (R, R)
    levels = [v - 0.5 for v in range(int(pred.max()) + 2)]
    ax.contourf(xx.numpy(), yy.numpy(), pred.numpy(), levels=levels, alpha=0.25, cmap="tab10",
                vmin=0, vmax=9)  # fmt: skip
    ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), c=y.numpy(), cmap="tab10", vmin=0, vmax=9, s=8)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    return ax


# --------------------------------------------------------------------------- landscapes


def plot_path_in_time(
    ax: Axes, path: object, *, every: int = 1, cmap: str = "plasma", label: str = "step"
) -> object:
    """A long 2-D path ``(T, 2)`` as dots coloured by step, with its start and end marked.

    Lines joining thousands of steps tangle into a scribble; colour shows where the path
    was early (dark) and late (light). Every ``every``-th point is drawn. Returns the
    scatter, for ``fig.colorbar(..., label=label)``.
    """
    import torch

    p = torch.as_tensor(path, dtype=torch.float64).reshape(-1, 2)  # (T, 2)
    steps = torch.arange(len(p))[::every]
    q = p[::every]
    dots = ax.scatter(q[:, 0].numpy(), q[:, 1].numpy(), c=steps.numpy(), cmap=cmap, s=7,
                      zorder=3, label=label)  # fmt: skip
    ax.plot(*p[0].tolist(), "s", ms=8, mfc="white", mec="black", zorder=4, label="start")
    ax.plot(*p[-1].tolist(), "X", ms=9, mfc="red", mec="black", zorder=4, label="end")
    return dots


def plot_landscape(
    landscape: object,
    *,
    paths: dict[str, object] | None = None,
    ax: Axes | None = None,
    resolution: int = 200,
    levels: int = 30,
    log: bool = False,
    box: Sequence[tuple[float, float]] | None = None,
) -> Axes:
    """Draw a 1-D or 2-D :class:`~dlcourse.landscapes.Landscape`, its minima and optimisation paths.

    ``paths`` maps a label to a trajectory of shape ``(T, dim)``. Global minima are
    stars, local ones circles. ``log=True`` spaces 2-D contour levels
    logarithmically (for valleys like Rosenbrock's). ``box``, ``((x0, x1), (y0, y1))``,
    draws another region than the landscape's own, e.g. one that holds every path.
    """
    import torch

    if ax is None:
        _, (ax,) = new_axes()
    dim = landscape.dim
    if dim == 1:
        ((lo, hi),) = landscape.bounds
        xs = torch.linspace(lo, hi, resolution * 2, dtype=torch.float64)
        ax.plot(xs.numpy(), landscape(xs.unsqueeze(1)).numpy(), color="gray", lw=1.5)
        for m in landscape.minima:
            ax.plot(m.point[0], m.value, "*" if m.kind == "global" else "o", color="black", ms=9)
        for label, path in (paths or {}).items():
            p = torch.as_tensor(path, dtype=torch.float64).reshape(-1, 1)
            ax.plot(p[:, 0].numpy(), landscape(p).numpy(), ".-", ms=4, label=label)
        ax.set_xlabel("x")
        ax.set_ylabel("f(x)")
    elif dim == 2:
        (x0, x1), (y0, y1) = landscape.bounds if box is None else box
        gx = torch.linspace(x0, x1, resolution, dtype=torch.float64)
        gy = torch.linspace(y0, y1, resolution, dtype=torch.float64)
        xx, yy = torch.meshgrid(gx, gy, indexing="xy")  # (R, R) each
        zz = landscape(torch.stack([xx, yy], dim=-1))  # (R, R)
        if log:
            zz = torch.log10(zz - zz.min() + 1e-3)
        ax.contour(
            xx.numpy(), yy.numpy(), zz.numpy(), levels=levels, cmap="viridis", linewidths=0.7
        )
        for m in landscape.minima:
            ax.plot(*m.point, "*" if m.kind == "global" else "o", color="black", ms=9)
        for label, path in (paths or {}).items():
            p = torch.as_tensor(path, dtype=torch.float64).reshape(-1, 2)
            (line,) = ax.plot(p[:, 0].numpy(), p[:, 1].numpy(), ".-", ms=3, lw=1, label=label)
            ax.plot(p[0, 0].item(), p[0, 1].item(), "s", color=line.get_color(), ms=5)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    else:
        raise ValueError(f"only 1-D and 2-D landscapes can be drawn, not {dim}-D")
    ax.set_title(landscape.name)
    if paths:
        ax.legend(fontsize="small")
    return ax
