"""Interactive demos for the notebooks (ipywidgets), thin over the package's modules.

Each demo is a plain function, the callback, that computes and draws for one
setting of the knobs and returns what it computed, and a small builder that
wires the callback to sliders. Tests call the callbacks directly and drive the
builders' widgets headless.

``tangent_explorer`` (``notebooks/00_welcome.ipynb``): pick a function and a
point; see the tangent whose slope autograd computed, next to the derivative
worked out by hand.

``descent_race_explorer`` (``notebooks/01_gradient_descent.ipynb``): pick a
landscape, a start, a learning rate and its schedule, the gradient noise and the
starting temperature; see gradient descent, noisy (SGD-like) descent and
simulated annealing run from the same start, side by side.

``depth_probe_explorer`` (``notebooks/02_activations_and_init.ipynb``): pick a
depth, an activation and an initialisation; see how the outputs' distribution,
their scale and the gradient change from layer to layer.

``optimizer_race_explorer`` (``notebooks/03_optimizers.ipynb``): SGD, momentum,
Nesterov, RMSprop and Adam race on a 2-D landscape; sliders set the learning
rates, the momentum and the betas.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
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


# --------------------------------------------------------------------------- descent race

RACE_LANDSCAPES = ("double well", "two basins", "Rastrigin")
LR_SCHEDULES = ("constant", "step", "exponential", "cosine")


@dataclass(frozen=True)
class Race:
    landscape: str
    start: tuple[float, ...]
    paths: dict[str, torch.Tensor]  # method -> (steps + 1, dim)
    final_loss: dict[str, float]  # method -> f at the last point (nan if it diverged)
    in_global_basin: dict[str, bool]


def lr_schedule(name: str, lr: float, steps: int) -> Callable[[int], float]:
    """One of :data:`LR_SCHEDULES` as a function ``lr(k)`` over ``steps`` steps.

    ``step`` divides the rate by 10 every ``steps // 2`` steps; all but ``constant`` reach
    ``lr / 100`` at step ``steps``.
    """
    from dlcourse import schedules

    if name not in LR_SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose one of {list(LR_SCHEDULES)}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return {
        "constant": partial(schedules.constant_lr, lr=lr),
        "step": partial(schedules.step_lr, lr=lr, step_size=max(1, steps // 2), gamma=0.1),
        "exponential": partial(schedules.exponential_lr, lr=lr, gamma=0.01 ** (1 / steps)),
        "cosine": partial(schedules.cosine_lr, lr=lr, T_max=steps, eta_min=lr / 100),
    }[name]


def descent_race(
    landscape: str = "double well",
    start_x: float = 1.8,
    start_y: float = 1.0,
    lr: float = 0.01,
    schedule: str = "constant",
    noise: float = 4.0,
    temperature: float = 2.0,
    steps: int = 300,
    seed: int = 0,
) -> Race:
    r"""Run three methods from one start on a landscape of :data:`RACE_LANDSCAPES`.

    - ``GD``: :math:`x \leftarrow x - \eta_k \nabla f(x)`;
    - ``SGD-like``: the same with gradient noise of standard deviation ``noise``,
      :math:`x \leftarrow x - \eta_k (\nabla f(x) + \sigma \xi)`, as a mini-batch
      gradient has (Langevin at :math:`T = \eta_k \sigma^2 / 2`);
    - ``annealing``: simulated annealing with Gaussian proposals a tenth of the box
      wide, cooled exponentially from ``temperature`` to a thousandth of it.

    ``lr`` follows ``schedule`` (see :func:`lr_schedule`); ``start_y`` is ignored in 1-D.
    """
    from dlcourse import anneal, landscapes

    if landscape not in RACE_LANDSCAPES:
        raise ValueError(f"unknown landscape {landscape!r}; choose one of {list(RACE_LANDSCAPES)}")
    if lr <= 0 or noise < 0 or temperature < 0:
        raise ValueError(
            f"need lr > 0, noise >= 0, temperature >= 0; got {lr=}, {noise=}, {temperature=}"
        )
    ls = landscapes.LANDSCAPES[landscape]
    start = torch.tensor([start_x, start_y][: ls.dim], dtype=torch.float64)  # (dim,)
    low = torch.tensor([b[0] for b in ls.bounds], dtype=torch.float64)
    high = torch.tensor([b[1] for b in ls.bounds], dtype=torch.float64)
    start = torch.minimum(torch.maximum(start, low), high)  # inside the box
    lr_at = lr_schedule(schedule, lr, steps)
    width = float((high - low).max())
    paths = {
        "GD": anneal.langevin_descent(ls.grad, start, steps=steps, lr=lr_at, seed=seed),
        "SGD-like": anneal.langevin_descent(
            ls.grad,
            start,
            steps=steps,
            lr=lr_at,
            temperature=lambda k: lr_at(k) * noise**2 / 2,
            seed=seed,
        ),
        "annealing": anneal.simulated_annealing(
            ls,
            start,
            steps=steps,
            temperature=anneal.exponential_cooling(temperature, 1e-3 ** (1 / steps)),
            proposal=anneal.gaussian_proposal(width / 10),
            seed=seed,
        ).trajectory,
    }
    with torch.no_grad():
        final = {name: ls(p[-1]).item() for name, p in paths.items()}
    return Race(
        landscape=landscape,
        start=tuple(start.tolist()),
        paths=paths,
        final_loss={k: (v if math.isfinite(v) else math.nan) for k, v in final.items()},
        in_global_basin={k: bool(ls.in_global_basin(p[-1])) for k, p in paths.items()},
    )


def show_descent_race(
    landscape: str = "double well",
    start_x: float = 1.8,
    start_y: float = 1.0,
    lr: float = 0.01,
    schedule: str = "constant",
    noise: float = 4.0,
    temperature: float = 2.0,
    steps: int = 300,
    seed: int = 0,
) -> Race:
    """Callback of :func:`descent_race_explorer`: draw the three runs of :func:`descent_race`."""
    import matplotlib.pyplot as plt

    from dlcourse.landscapes import LANDSCAPES
    from dlcourse.plot import new_axes, plot_landscape

    race = descent_race(landscape, start_x, start_y, lr, schedule, noise, temperature, steps, seed)
    ls = LANDSCAPES[landscape]
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


def descent_race_explorer() -> ipywidgets.interactive:
    """Menus and sliders wired to :func:`show_descent_race`; redraws when a slider is released."""
    import ipywidgets as w

    return w.interactive(
        show_descent_race,
        landscape=w.Dropdown(options=list(RACE_LANDSCAPES), value="double well"),
        start_x=w.FloatSlider(value=1.8, min=-3.0, max=3.0, step=0.1, continuous_update=False),
        start_y=w.FloatSlider(value=1.0, min=-1.5, max=1.5, step=0.1, continuous_update=False),
        lr=w.FloatLogSlider(
            value=0.01, base=10, min=-4, max=-0.5, step=0.1, continuous_update=False
        ),
        schedule=w.Dropdown(options=list(LR_SCHEDULES), value="constant"),
        noise=w.FloatSlider(value=4.0, min=0.0, max=12.0, step=0.5, continuous_update=False),
        temperature=w.FloatLogSlider(
            value=2.0, base=10, min=-2, max=1, step=0.1, continuous_update=False
        ),
        steps=w.fixed(300),
        seed=w.IntSlider(value=0, min=0, max=9, continuous_update=False),
    )


# --------------------------------------------------------------------------- depth probe

# name -> keyword arguments of dlcourse.init.initialize
INIT_CHOICES: dict[str, dict[str, object]] = {
    "He (kaiming_normal)": {"scheme": "kaiming_normal"},
    "Xavier, gain 1": {"scheme": "xavier_normal"},
    "Xavier, gain 5/3 (tanh)": {"scheme": "xavier_normal", "gain": 5 / 3},
    "too small: N(0, 0.01²)": {"scheme": "normal", "std": 0.01},
    "too large: N(0, 1)": {"scheme": "normal", "std": 1.0},
    "all equal: 0.1": {"scheme": "constant", "value": 0.1},
    "torch's default": {"scheme": "torch_default"},
}
PROBE_ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")


def depth_probe(
    depth: int = 20,
    activation: str = "tanh",
    init: str = "Xavier, gain 1",
    width: int = 64,
    seed: int = 0,
) -> list:
    """Per-layer :class:`~dlcourse.diagnostics.LayerStats` of a fresh deep MLP on random data.

    The network is :func:`dlcourse.activations.deep_mlp` (``depth`` hidden layers of
    ``width``) initialised by one of :data:`INIT_CHOICES`; the data are 512 standard
    normal inputs with random labels of 10 classes, one forward and one backward pass.
    """
    from torch import nn

    from dlcourse.activations import deep_mlp
    from dlcourse.diagnostics import probe
    from dlcourse.init import initialize

    if init not in INIT_CHOICES:
        raise ValueError(f"unknown init {init!r}; choose one of {list(INIT_CHOICES)}")
    gen = torch.Generator().manual_seed(seed)
    model = deep_mlp(width, width, depth, 10, activation)
    initialize(model, **INIT_CHOICES[init], generator=gen)  # type: ignore[arg-type]
    x = torch.randn(512, width, generator=gen)  # (512, width)
    y = torch.randint(0, 10, (512,), generator=gen)  # (512,)
    return probe(model, x, y, nn.CrossEntropyLoss())


def show_depth_probe(
    depth: int = 20, activation: str = "tanh", init: str = "Xavier, gain 1", seed: int = 0
) -> list:
    """Callback of :func:`depth_probe_explorer`: histograms, and std and gradient per layer."""
    import matplotlib.pyplot as plt

    from dlcourse.plot import new_axes

    stats = depth_probe(depth, activation, init, seed=seed)
    fig, (ax1, ax2) = new_axes(2, width=5.0)
    picks = sorted({0, depth // 4, depth // 2, depth - 1})
    for i in picks:
        s = stats[i]
        centres = 0.5 * (s.edges[1:] + s.edges[:-1])
        share = s.histogram / s.histogram.sum()
        ax1.plot(centres.numpy(), share.numpy(), drawstyle="steps-mid", label=f"layer {i + 1}")
    ax1.set_xlabel(f"{activation} output")
    ax1.set_ylabel("share of outputs")
    ax1.legend(fontsize="small")
    layers = range(1, depth + 1)
    floor = 1e-30  # log scale: show a collapsed 0 at the bottom
    ax2.semilogy(layers, [max(s.std, floor) for s in stats], "o-", ms=3, label="output std")
    ax2.semilogy(
        layers, [max(s.grad_norm, floor) for s in stats], "s-", ms=3, label="‖dL/d output‖"
    )
    ax2.set_xlabel("layer (input side first)")
    ax2.legend(fontsize="small")
    saturated = [s.saturated for s in stats if not math.isnan(s.saturated)]
    dead = [s.dead for s in stats if not math.isnan(s.dead)]
    extra = ""
    if saturated:
        extra = f", saturated {sum(saturated) / len(saturated):.0%}"
    elif dead:
        extra = f", dead units {sum(dead) / len(dead):.0%}"
    fig.suptitle(f"{depth} layers of {activation}, init {init}{extra}", fontsize="medium")
    fig.tight_layout()
    plt.show()
    return stats


def depth_probe_explorer() -> ipywidgets.interactive:
    """Depth, activation and initialisation wired to :func:`show_depth_probe`."""
    import ipywidgets as w

    return w.interactive(
        show_depth_probe,
        depth=w.IntSlider(value=20, min=2, max=60, continuous_update=False),
        activation=w.Dropdown(options=list(PROBE_ACTIVATIONS), value="tanh"),
        init=w.Dropdown(options=list(INIT_CHOICES), value="Xavier, gain 1"),
        seed=w.IntSlider(value=0, min=0, max=9, continuous_update=False),
    )


# --------------------------------------------------------------------------- optimizer race

RACE_OPTIMIZERS = ("SGD", "momentum", "Nesterov", "RMSprop", "Adam")
OPTIMIZER_LANDSCAPES = ("Rosenbrock", "quadratic, condition number 100", "two basins", "Rastrigin")


@dataclass(frozen=True)
class OptimizerRace:
    landscape: str
    paths: dict[str, torch.Tensor]  # optimizer -> (steps + 1, 2)
    final_loss: dict[str, float]  # nan where a run diverged


def optimizer_race(
    landscape: str = "Rosenbrock",
    lr: float = 1e-3,
    adaptive_lr: float = 0.05,
    momentum: float = 0.9,
    beta1: float = 0.9,
    beta2: float = 0.999,
    steps: int = 300,
    start_x: float = -1.5,
    start_y: float = 2.0,
) -> OptimizerRace:
    """Run :data:`RACE_OPTIMIZERS` (the course's own, ``dlcourse.optim``) from one start.

    ``lr`` drives SGD, momentum and Nesterov (with ``momentum``); ``adaptive_lr``
    drives RMSprop (smoothing ``beta2``) and Adam (``beta1``, ``beta2``).
    """
    from dlcourse import landscapes, optim

    if landscape not in OPTIMIZER_LANDSCAPES:
        raise ValueError(
            f"unknown landscape {landscape!r}; choose one of {list(OPTIMIZER_LANDSCAPES)}"
        )
    if lr <= 0 or adaptive_lr <= 0 or not 0 <= momentum < 1:
        raise ValueError(
            f"need lr > 0, adaptive_lr > 0 and 0 <= momentum < 1; got {lr}, {adaptive_lr}, "
            f"{momentum}"
        )
    if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
        raise ValueError(f"betas must be in [0, 1), got {beta1}, {beta2}")
    ls = landscapes.LANDSCAPES[landscape]
    start = torch.tensor([start_x, start_y], dtype=torch.float64)
    makers = {
        "SGD": lambda p: optim.SGD(p, lr=lr),
        "momentum": lambda p: optim.SGD(p, lr=lr, momentum=momentum),
        "Nesterov": lambda p: optim.SGD(p, lr=lr, momentum=momentum, nesterov=momentum > 0),
        "RMSprop": lambda p: optim.RMSprop(p, lr=adaptive_lr, alpha=beta2),
        "Adam": lambda p: optim.Adam(p, lr=adaptive_lr, betas=(beta1, beta2)),
    }
    paths = {}
    for name, make in makers.items():
        paths[name] = landscapes.descend(ls, start, make, steps)
    final = {name: ls(p[-1]).item() for name, p in paths.items()}
    return OptimizerRace(
        landscape, paths, {k: (v if math.isfinite(v) else math.nan) for k, v in final.items()}
    )


def show_optimizer_race(
    landscape: str = "Rosenbrock",
    lr: float = 1e-3,
    adaptive_lr: float = 0.05,
    momentum: float = 0.9,
    beta1: float = 0.9,
    beta2: float = 0.999,
    steps: int = 300,
) -> OptimizerRace:
    """Callback of :func:`optimizer_race_explorer`: every path on the landscape, and f per step."""
    import matplotlib.pyplot as plt

    from dlcourse.landscapes import LANDSCAPES
    from dlcourse.plot import new_axes, plot_landscape

    race = optimizer_race(landscape, lr, adaptive_lr, momentum, beta1, beta2, steps)
    ls = LANDSCAPES[landscape]
    fig, (ax1, ax2) = new_axes(2, width=5.0)
    finite = {k: p[torch.isfinite(p).all(dim=-1)] for k, p in race.paths.items()}
    plot_landscape(ls, paths=finite, ax=ax1, resolution=150, log=landscape == "Rosenbrock")
    floor = ls.global_minimum.value
    for name, p in race.paths.items():
        values = (ls(p) - floor).clamp_min(1e-16)
        ax2.semilogy(values.numpy(), label=f"{name}: {race.final_loss[name]:.3g}")
    ax2.set_xlabel("step")
    ax2.set_ylabel("f - f(minimum)")
    ax2.legend(fontsize="small")
    fig.tight_layout()
    plt.show()
    return race


def optimizer_race_explorer() -> ipywidgets.interactive:
    """Sliders for the learning rates, momentum and betas, wired to :func:`show_optimizer_race`."""
    import ipywidgets as w

    def log_slider(value: float, low: int, high: int) -> w.FloatLogSlider:
        return w.FloatLogSlider(
            value=value, base=10, min=low, max=high, step=0.1, continuous_update=False
        )

    def slider(value: float, low: float, high: float, step: float) -> w.FloatSlider:
        decimals = max(0, -math.floor(math.log10(step)))  # the readout shows every step: 0.9990
        return w.FloatSlider(
            value=value, min=low, max=high, step=step, continuous_update=False,
            readout_format=f".{decimals}f",
        )  # fmt: skip

    return w.interactive(
        show_optimizer_race,
        landscape=w.Dropdown(options=list(OPTIMIZER_LANDSCAPES), value="Rosenbrock"),
        lr=log_slider(1e-3, -5, -1),
        adaptive_lr=log_slider(0.05, -4, 0),
        momentum=slider(0.9, 0.0, 0.99, 0.01),
        beta1=slider(0.9, 0.0, 0.99, 0.01),
        beta2=slider(0.999, 0.9, 0.9999, 0.0001),
        steps=w.IntSlider(value=300, min=50, max=2000, step=50, continuous_update=False),
    )
