r"""The capstone: MNIST-1D's published table, reproduced and then beaten with the course's parts.

Taught in ``notebooks/08_capstone.ipynb``; ``benchmarks/mnist1d.py`` runs it at full scale.

**The benchmark.** S. Greydanus, D. Kobak, "Scaling down deep learning with MNIST-1D", ICML
2024 (https://arxiv.org/abs/2011.14439). Ten digits drawn as 1-D signals of 40 points, then
padded, shifted, sheared, scaled, blurred and corrupted with noise, so that, unlike MNIST, a
linear model and an MLP do badly and the inductive biases of convolutions and recurrence
matter. The paper's table (test accuracy, :data:`PAPER`) comes from one recipe for every
model (:data:`PAPER_STEPS`, :data:`PAPER_LR`, :data:`PAPER_BATCH`): Adam with learning rate
:math:`10^{-2}`, batches of 100, 6,000 steps, 4,000 training and 1,000 test examples.

**The models** are the paper's, written with the course's layers (:func:`paper_model`):
logistic regression (one linear layer); an MLP of two hidden layers of 100 ReLU units, the
second with a skip connection, :math:`h_2 = h_1 + \mathrm{ReLU}(W_2 h_1 + b_2)`; a CNN of three
convolutions (:class:`dlcourse.conv.Conv1d`, 25 channels, kernel 5 then 3, stride 2, padding
1) and a linear layer on the flattened :math:`25 \times 5` features; a bidirectional GRU
(:class:`dlcourse.rnn.GRU`, 6 units each way) and a linear layer on all 40 steps' states.

**The recipe** (:class:`Recipe`) adds the course's techniques one switch at a time: batch
normalisation (notebook 04), a cosine learning-rate schedule (01), decoupled weight decay
(:class:`dlcourse.optim.AdamW`; 05), dropout (05), shift and scale augmentation (05, 06), an
initialisation scheme (02), gradient clipping (07) and early stopping (05). :func:`train` runs
one recipe with one seed; :func:`ablation` runs a list of them over several seeds.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from dlcourse import augment, callbacks, init, optim, schedules
from dlcourse._validate import choice, integer, number
from dlcourse.conv import Conv1d
from dlcourse.data import Batches
from dlcourse.env import seed_everything
from dlcourse.norm import BatchNorm1d
from dlcourse.regularization import Dropout
from dlcourse.rnn import GRU
from dlcourse.train import History, evaluate, fit

#: The paper's test accuracies (its table; one run each), and the human score it reports.
PAPER: dict[str, float] = {"logistic": 0.32, "mlp": 0.68, "cnn": 0.94, "gru": 0.91}
HUMAN = 0.96
#: The recipe behind every row of the paper's table.
PAPER_STEPS, PAPER_LR, PAPER_BATCH = 6000, 1e-2, 100
KINDS: tuple[str, ...] = tuple(PAPER)
LENGTH, CLASSES = 40, 10  # MNIST-1D: signals of 40 points, 10 digits


# --------------------------------------------------------------------------- the paper's models


class MLP(nn.Module):
    """The paper's MLP: 40 -> 100 -> 100 -> 10, ReLU, the second hidden layer residual."""

    def __init__(self, in_features: int = LENGTH, hidden: int = 100, classes: int = CLASSES):
        super().__init__()
        self.linear1 = nn.Linear(in_features, hidden)
        self.linear2 = nn.Linear(hidden, hidden)
        self.linear3 = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, 40)
        h = self.linear1(x).relu()  # (N, 100)
        h = h + self.linear2(h).relu()  # (N, 100): the skip connection
        return self.linear3(h)  # (N, 10)


class CNN(nn.Module):
    """The paper's CNN from :class:`~dlcourse.conv.Conv1d`: three strided convolutions with ReLU,
    then a linear layer on the flattened maps. ``batch_norm`` puts a
    :class:`~dlcourse.norm.BatchNorm1d` between each convolution (then without bias, which
    the normalisation would cancel) and its ReLU; ``dropout`` a
    :class:`~dlcourse.regularization.Dropout` before the linear layer."""

    def __init__(
        self, channels: int = 25, *, batch_norm: bool = False, dropout: float = 0.0
    ) -> None:
        super().__init__()
        channels = integer(channels, "channels", minimum=1)
        layers: list[nn.Module] = []
        for c_in, kernel in ((1, 5), (channels, 3), (channels, 3)):
            layers.append(Conv1d(c_in, channels, kernel, stride=2, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(BatchNorm1d(channels))
            layers.append(nn.ReLU())
        self.features = nn.Sequential(*layers)  # (N, 1, 40) -> 19 -> 10 -> (N, C, 5)
        self.dropout = Dropout(dropout) if dropout > 0 else nn.Identity()
        self.linear = nn.Linear(channels * 5, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, 40)
        maps = self.features(x.unsqueeze(1))  # (N, C, 5)
        return self.linear(self.dropout(maps.flatten(1)))  # (N, 10)


class GRUClassifier(nn.Module):
    """The paper's GRU: a bidirectional :class:`~dlcourse.rnn.GRU` of ``hidden_size`` units each
    way reads the signal one point per step; a linear layer reads every step's states."""

    def __init__(self, hidden_size: int = 6, *, length: int = LENGTH) -> None:
        super().__init__()
        self.gru = GRU(1, hidden_size, batch_first=True, bidirectional=True)
        self.linear = nn.Linear(2 * hidden_size * length, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, 40)
        states, _ = self.gru(x.unsqueeze(-1))  # (N, 40, 2 H)
        return self.linear(states.flatten(1))  # (N, 10)


def paper_model(kind: str, *, batch_norm: bool = False, dropout: float = 0.0) -> nn.Module:
    """The paper's ``kind`` of model (``'logistic'``, ``'mlp'``, ``'cnn'``, ``'gru'``), built
    from the course's layers with torch's default initialisation. ``batch_norm`` and
    ``dropout`` apply to the CNN only."""
    choice(kind, "kind", KINDS)
    if (batch_norm or dropout) and kind != "cnn":
        raise ValueError(f"batch_norm and dropout are switches of the CNN, not of the {kind}")
    if kind == "logistic":
        return nn.Linear(LENGTH, CLASSES)
    if kind == "mlp":
        return MLP()
    if kind == "gru":
        return GRUClassifier()
    return CNN(batch_norm=batch_norm, dropout=dropout)


def count_parameters(model: nn.Module) -> int:
    """The number of trainable numbers in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --------------------------------------------------------------------------- the recipe

SCHEDULES = (None, "cosine")
INITS = (None, "kaiming_uniform", "kaiming_normal", "xavier_uniform", "xavier_normal")


@dataclass(frozen=True)
class Recipe:
    """How to train one model: the paper's recipe by default, each field one technique.

    Args:
        model: ``'logistic'``, ``'mlp'``, ``'cnn'`` or ``'gru'``.
        steps: optimiser steps (the paper: 6,000, i.e. 150 passes over 4,000 examples).
        lr: Adam's learning rate (the largest, with a schedule).
        batch_size: examples per step.
        batch_norm: batch normalisation after each convolution (notebook 04; CNN only).
        schedule: ``None`` (constant rate) or ``'cosine'`` (down to 0 at the last step; 01).
        weight_decay: AdamW's decoupled decay (05); 0 keeps plain Adam.
        dropout: drop probability before the CNN's linear layer (05).
        augment: shift by up to ``max_shift`` points and rescale by ``scale`` (05, 06).
        max_shift, scale: the augmentation's ranges (scale: factors ``1 -+ scale``).
        init: a scheme of :func:`dlcourse.init.initialize` (02), or torch's default.
        clip: the largest gradient norm (07), or no clipping.
        early_stopping: patience in epochs: hold out ``holdout`` of the training examples,
            stop when their loss has not improved for that long and keep the best epoch (05).
        holdout: the share of training examples held out for early stopping.
    """

    model: str = "cnn"
    steps: int = PAPER_STEPS
    lr: float = PAPER_LR
    batch_size: int = PAPER_BATCH
    batch_norm: bool = False
    schedule: str | None = None
    weight_decay: float = 0.0
    dropout: float = 0.0
    augment: bool = False
    max_shift: int = 3
    scale: float = 0.1
    init: str | None = None
    clip: float | None = None
    early_stopping: int | None = None
    holdout: float = 0.1

    def __post_init__(self) -> None:
        choice(self.model, "model", KINDS)
        integer(self.steps, "steps", minimum=1)
        number(self.lr, "lr", low=0, low_open=True)
        integer(self.batch_size, "batch_size", minimum=1)
        for name in ("batch_norm", "augment"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} is a switch, True or False; got {getattr(self, name)!r}")
        choice(self.schedule, "schedule", SCHEDULES)
        number(self.weight_decay, "weight_decay", low=0)
        number(self.dropout, "dropout (a drop probability)", low=0, high=1, high_open=True)
        integer(self.max_shift, "max_shift", minimum=0)
        number(self.scale, "scale (factors 1 - scale to 1 + scale)", low=0, high=1, high_open=True)
        choice(self.init, "init", INITS)
        if self.clip is not None:
            number(self.clip, "clip", low=0, low_open=True)
        if self.early_stopping is not None:
            integer(self.early_stopping, "early_stopping", minimum=0)
        number(
            self.holdout,
            "holdout (a share of the training set)",
            low=0,
            high=1,
            low_open=True,
            high_open=True,
        )
        if self.model != "cnn" and (self.batch_norm or self.dropout):
            raise ValueError(
                f"batch_norm and dropout are switches of the CNN; the {self.model} has no place "
                "for them: set them only with model='cnn'"
            )

    def but(self, **changes: object) -> Recipe:
        """A copy with ``changes``: ``recipe.but(batch_norm=True)``."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def describe(self) -> str:
        """The fields that differ from the paper's recipe, e.g. ``'batch_norm, schedule=cosine'``
        (the augmentation's ranges and the held-out share only where they matter)."""
        base = Recipe(model=self.model)
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            unused = (f.name in ("max_shift", "scale") and not self.augment) or (
                f.name == "holdout" and self.early_stopping is None
            )
            if f.name == "model" or unused or value == getattr(base, f.name):
                continue
            parts.append(f.name if value is True else f"{f.name}={value}")
        return ", ".join(parts) or "the paper's recipe"


@dataclass
class Result:
    """One training run: the test accuracy, the trained model, its history and wall time."""

    recipe: Recipe
    seed: int
    accuracy: float
    model: nn.Module
    history: History
    seconds: float
    epochs: int  # epochs run (fewer than planned when early stopping stopped)


Data = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _check_data(data: Data) -> None:
    if not (isinstance(data, tuple | list) and len(data) == 4):
        raise TypeError(
            "data must be (x_train, y_train, x_test, y_test), as dl.data.load_mnist1d() returns"
        )
    x, y, xt, yt = data
    for name, t in (("x_train", x), ("x_test", xt)):
        if not isinstance(t, torch.Tensor) or t.dim() != 2 or t.shape[1] != LENGTH:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must be (N, {LENGTH}) signals, got {shape}")
    if len(x) != len(y) or len(xt) != len(yt):
        raise ValueError(
            f"inputs and labels differ in length: {len(x)}/{len(y)}, {len(xt)}/{len(yt)}"
        )


def _check_output(net: nn.Module, x: torch.Tensor) -> None:
    """A clear error before training when ``net`` does not map ``(N, 40)`` to ``(N, 10)``."""
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            out = net(x)
    except Exception as exc:
        raise ValueError(
            f"the model fails on a batch of signals {tuple(x.shape)}: {type(exc).__name__}: "
            f"{exc}. It receives (N, {LENGTH}) signals; a convolution wants (N, channels, "
            f"length): add x.unsqueeze(1) (or nn.Unflatten(1, (1, {LENGTH}))) first"
        ) from exc
    finally:
        net.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(x), CLASSES):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"the model must return (N, {CLASSES}) scores, one per digit; for {len(x)} signals "
            f"it returned {got}: end with a layer of {CLASSES} outputs (nn.Linear(..., {CLASSES}))"
        )


def train(
    recipe: Recipe,
    data: Data,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    label: str = "",
    model: Callable[[], nn.Module] | None = None,
) -> Result:
    """Train ``recipe``'s model on ``data`` (``x_train, y_train, x_test, y_test``) with ``seed``
    (weights, batch order, augmentation, dropout); return its test accuracy and the model.

    ``model``, when given, builds the network instead of the paper's (a function of no
    arguments returning a module that maps ``(N, 40)`` signals to ``(N, 10)`` scores); it is
    called after seeding, so its initial weights follow ``seed`` too. ``recipe.batch_norm``
    and ``recipe.dropout`` are then yours to build in.

    The steps are run as whole passes over the training set (the nearest number of epochs, at
    least one). Without early stopping nothing but the training set is seen until the test
    set is scored once at the end.
    """
    _check_data(data)
    x, y, x_test, y_test = data
    device = torch.device(device)
    seed_everything(seed)
    val = None
    if recipe.early_stopping is not None:
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        held = max(1, round(recipe.holdout * len(x)))
        val = (x[order[:held]].to(device), y[order[:held]].to(device))
        x, y = x[order[held:]], y[order[held:]]
    if model is None:
        net = paper_model(recipe.model, batch_norm=recipe.batch_norm, dropout=recipe.dropout)
    else:
        if isinstance(model, nn.Module):
            raise TypeError(
                "model must be a function that builds the network, not the network itself: "
                "pass model=my_model (no brackets), or model=lambda: net"
            )
        if not callable(model):
            raise TypeError(f"model must be a function that builds the network, got {model!r}")
        net = model()
        if not isinstance(net, nn.Module):
            raise TypeError(
                f"model() must return an nn.Module, got {type(net).__name__}: "
                "end your function with `return nn.Sequential(...)` or your module"
            )
    if recipe.init is not None:
        init.initialize(net, recipe.init, generator=torch.Generator().manual_seed(seed))
    net = net.to(device)
    _check_output(net, x[:2].to(device))
    transform = None
    if recipe.augment:
        transform = augment.Compose(
            augment.RandomShift(recipe.max_shift),
            augment.RandomScale(1 - recipe.scale, 1 + recipe.scale),
        )
    batches = Batches(x, y, recipe.batch_size, seed=seed, device=device, transform=transform)
    epochs = max(1, round(recipe.steps / len(batches)))
    steps = epochs * len(batches)
    if recipe.weight_decay > 0:
        opt: torch.optim.Optimizer = optim.AdamW(
            net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay
        )
    else:
        opt = optim.Adam(net.parameters(), lr=recipe.lr)
    extra: list[callbacks.Callback] = []
    if recipe.schedule == "cosine":
        lr = recipe.lr
        extra.append(
            callbacks.LRScheduler(
                lambda t: schedules.cosine_lr(min(t, steps), lr=lr, T_max=steps), interval="step"
            )
        )
    if recipe.clip is not None:
        extra.append(callbacks.GradientClipping(recipe.clip))
    if recipe.early_stopping is not None:
        extra.append(callbacks.EarlyStopping("val_loss", patience=recipe.early_stopping))
    start = time.perf_counter()
    history = fit(
        net,
        nn.CrossEntropyLoss(),
        opt,
        batches,
        val,
        epochs=epochs,
        callbacks=extra,
        progress=False,
        live_plot=False,
        label=label or recipe.describe(),
    )
    seconds = time.perf_counter() - start
    scores = evaluate(net, nn.CrossEntropyLoss(), (x_test.to(device), y_test.to(device)))
    return Result(
        recipe=recipe,
        seed=seed,
        accuracy=scores["accuracy"],
        model=net,
        history=history,
        seconds=seconds,
        epochs=history.num_epochs,
    )


# --------------------------------------------------------------------------- the ablation


@dataclass
class Row:
    """One recipe over several seeds: the accuracies, their mean and spread."""

    name: str
    recipe: Recipe
    accuracies: list[float]
    seconds: float  # wall time of all its runs
    best: Result  # the run with the highest accuracy, kept to look at
    base: str | None = None  # the row it adds one technique to (None: the first row)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def worst(self) -> float:
        return min(self.accuracies)

    @property
    def spread(self) -> float:
        """The sample standard deviation over seeds (0 for one seed)."""
        return statistics.stdev(self.accuracies) if len(self.accuracies) > 1 else 0.0


def run_recipe(
    name: str,
    recipe: Recipe,
    data: Data,
    seeds: Sequence[int],
    *,
    device: torch.device | str = "cpu",
    base: str | None = None,
) -> Row:
    """``recipe`` trained once per seed; ``base`` names the row it is compared with."""
    if not seeds:
        raise ValueError("give at least one seed")
    results = [train(recipe, data, seed=s, device=device, label=name) for s in seeds]
    return Row(
        name=name,
        recipe=recipe,
        accuracies=[r.accuracy for r in results],
        seconds=sum(r.seconds for r in results),
        best=max(results, key=lambda r: r.accuracy),
        base=base,
    )


Step = tuple[str, Recipe] | tuple[str, Recipe, str]


def ablation(
    steps: Sequence[Step],
    data: Data,
    seeds: Sequence[int],
    *,
    device: torch.device | str = "cpu",
) -> list[Row]:
    """Each step trained once per seed, in order. A step is ``(name, recipe)``, compared with
    the step before it (a path that adds one technique at a time), or ``(name, recipe,
    base)``, compared with the earlier step called ``base`` (one technique tried on top of
    it)."""
    rows: list[Row] = []
    names = [step[0] for step in steps]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"each step needs its own name; repeated: {', '.join(repeated)}")
    for step in steps:
        name, recipe, *rest = step
        base = rest[0] if rest else (rows[-1].name if rows else None)
        if base is not None and base not in {r.name for r in rows}:
            raise ValueError(f"step {name!r} builds on {base!r}, which is not an earlier step")
        rows.append(run_recipe(name, recipe, data, seeds, device=device, base=base))
    return rows


def gains(rows: Sequence[Row]) -> dict[str, float]:
    """Each row's mean accuracy minus its base row's (the first row has none)."""
    by_name = {r.name: r for r in rows}
    return {r.name: r.mean - by_name[r.base].mean for r in rows if r.base is not None}


def ablation_table(rows: Sequence[Row], *, against: float | None = None) -> str:
    """The rows as a text table: mean, spread and worst seed in percent, the gain over the row
    each builds on, and the wall time of its runs."""
    gain = gains(rows)
    width = max([len("recipe"), *(len(r.name) for r in rows)])
    header = (
        f"{'recipe':{width}s} {'mean':>5s} {'sd':>4s} {'worst':>5s} {'gain':>5s}  {'over':{width}s}"
    )
    lines = [f"{header} {'time':>5s}"]
    for row in rows:
        g = f"{100 * gain[row.name]:+5.1f}" if row.name in gain else ""
        lines.append(
            f"{row.name:{width}s} {100 * row.mean:5.1f} {100 * row.spread:4.1f} "
            f"{100 * row.worst:5.1f} {g:>5s}  {(row.base or ''):{width}s} {row.seconds:4.0f}s"
        )
    if against is not None:
        lines.append(f"{'the paper (one run)':{width}s} {100 * against:5.1f}")
    return "\n".join(lines)


def epochs_for(steps: int, train_size: int, batch_size: int = PAPER_BATCH) -> int:
    """The whole passes :func:`train` runs for ``steps`` steps."""
    return max(1, round(steps / math.ceil(train_size / batch_size)))
