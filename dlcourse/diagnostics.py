r"""Look inside a network while it runs: per-layer activation statistics and gradient norms.

Taught in ``notebooks/02_activations_and_init.ipynb`` (claims C2.1-C2.4). An
:class:`ActivationProbe` puts forward hooks on a model's layers (by default
its activation layers) and records, for every forward pass:

- the mean and standard deviation of each layer's output, and a histogram;
- the **saturated** fraction: outputs on a flat end of a sigmoid or tanh
  (:math:`|\tanh| > 0.99`, :math:`\sigma < 0.01` or :math:`> 0.99`), where the
  derivative is nearly 0 and the gradient through the unit vanishes;
- the **dead** fraction: ReLU-like units (features, dimension 1) that output 0
  for every sample of the batch, so no gradient reaches their weights at all;
- on the backward pass, the norm of the gradient of the loss with respect to
  each layer's output, :math:`\lVert \partial L / \partial h_\ell \rVert`:
  how much error signal reaches layer :math:`\ell` (a tensor hook, attached
  only when the output takes part in autograd).

Only numbers (and small CPU histograms) are kept, never the tensors: a probe
does not keep the autograd graph, or any activation, alive. Remove the hooks
with :meth:`ActivationProbe.remove`, or use the probe as a context manager.
:func:`parameter_grad_norms` gives the weights' gradient norms after
``backward()``; ``dlcourse.callbacks.GradNormRecorder`` records them during
training with it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from dlcourse import activations as _act
from dlcourse.init import PRESETS, initialize
from dlcourse.models import deep_mlp


@dataclass
class LayerStats:
    """What one layer's output looked like in one forward pass."""

    name: str
    kind: str  # the module's class name
    mean: float
    std: float
    saturated: float  # fraction of outputs on a flat end (sigmoid, tanh); nan for other layers
    dead: float  # fraction of units silent for the whole batch (ReLU); nan for other layers
    histogram: torch.Tensor  # (bins,) counts, CPU
    edges: torch.Tensor  # (bins + 1,) bin edges, CPU
    grad_norm: float = math.nan  # ||dL/d output||, once backward has run


@dataclass
class ActivationProbe:
    """Record :class:`LayerStats` of ``modules`` (default: every activation layer) at each forward.

    Args:
        model: the network.
        modules: the layers to watch; by default every activation layer, found by what it
            computes (:func:`dlcourse.activations.kind_of`), not by its class.
        bins: histogram bins.
        saturation: how close to a flat end counts as saturated (0.99: within 1%).
        grads: also record the gradient norm at each watched output during backward.
    """

    model: nn.Module
    modules: Sequence[nn.Module] | None = None
    bins: int = 40
    saturation: float = 0.99
    grads: bool = True
    records: dict[str, list[LayerStats]] = field(default_factory=dict, init=False)
    _handles: list[Any] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.bins < 1:
            raise ValueError(f"bins must be >= 1, got {self.bins}")
        if not 0 < self.saturation < 1:
            raise ValueError(f"saturation must be in (0, 1), got {self.saturation}")
        names = {m: n for n, m in self.model.named_modules()}
        watched = (
            [m for m in self.model.modules() if _act.kind_of(m) is not None]
            if self.modules is None
            else list(self.modules)
        )
        if not watched:
            raise ValueError(
                "the model has no activation layers to watch (nn.ReLU, nn.Tanh, ...); "
                "pass the layers to watch as modules=[...]"
            )
        for module in watched:
            if module not in names:
                raise ValueError(f"{type(module).__name__} is not a layer of this model")
            name = names[module] or type(module).__name__
            self.records[name] = []
            self._handles.append(module.register_forward_hook(self._hook(name)))

    @property
    def names(self) -> list[str]:
        return list(self.records)

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            stats = self._stats(name, module, output.detach())
            self.records[name].append(stats)
            if self.grads and output.requires_grad:

                def record_grad(grad: torch.Tensor) -> None:
                    stats.grad_norm = float(grad.detach().norm())

                output.register_hook(record_grad)  # the hook holds `stats`, not the tensor

        return hook

    def _stats(self, name: str, module: nn.Module, out: torch.Tensor) -> LayerStats:
        values = out.float()
        nan = math.nan
        kind = _act.kind_of(module)
        if kind == "sigmoid":
            edge = 1 - self.saturation
            saturated = ((values < edge) | (values > 1 - edge)).float().mean().item()
            low, high = 0.0, 1.0
        elif kind == "tanh":
            saturated = (values.abs() > self.saturation).float().mean().item()
            low, high = -1.0, 1.0
        else:
            saturated = nan
            low, high = values.min().item(), values.max().item()
            if low == high:
                low, high = low - 0.5, high + 0.5
        dead = nan
        if kind == "relu" and values.dim() >= 2:
            per_unit = values.transpose(0, 1).reshape(values.shape[1], -1)  # (units, B * ...)
            dead = (per_unit.amax(dim=1) <= 0).float().mean().item()
        hist = torch.histc(values.cpu(), bins=self.bins, min=low, max=high)
        return LayerStats(
            name=name,
            kind=type(module).__name__,
            mean=values.mean().item(),
            std=values.std(correction=0).item() if values.numel() > 1 else 0.0,
            saturated=saturated,
            dead=dead,
            histogram=hist,
            edges=torch.linspace(low, high, self.bins + 1),
        )

    def last(self) -> list[LayerStats]:
        """The most recent stats of every watched layer, input side first."""
        return [r[-1] for r in self.records.values() if r]

    def clear(self) -> None:
        for r in self.records.values():
            r.clear()

    def remove(self) -> None:
        """Take the hooks off the model (the records stay)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def __enter__(self) -> ActivationProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def probe(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    loss_fn: Any = None,
    **kwargs: Any,
) -> list[LayerStats]:
    """One forward pass of ``x`` (and a backward pass of ``loss_fn(model(x), y)`` if given).

    Returns each watched layer's :class:`LayerStats`, input side first; the hooks
    are removed afterwards and the model's gradients are left as they were.
    """
    with ActivationProbe(model, **kwargs) as p:
        if loss_fn is None:
            with torch.no_grad():
                model(x)
        else:
            params = [q for q in model.parameters() if q.requires_grad]
            loss = loss_fn(model(x), y)
            torch.autograd.grad(loss, params, allow_unused=True)  # fires the hooks, not .grad
    return p.last()


@torch.no_grad()
def dead_units(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """For each ReLU layer, which units output 0 for every sample of ``x``: ``{name: (units,)}``.

    The same test as :class:`LayerStats`'s ``dead`` fraction, unit by unit, so a later call
    can tell whether the units dead now are the ones dead before (notebook 02).
    """
    names = {m: n for n, m in model.named_modules()}
    masks: dict[str, torch.Tensor] = {}

    def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        per_unit = output.transpose(0, 1).reshape(output.shape[1], -1)  # (units, B * ...)
        masks[names[module] or type(module).__name__] = (per_unit.amax(dim=1) <= 0).cpu()

    layers = [m for m in model.modules() if _act.kind_of(m) == "relu"]
    if not layers:
        raise ValueError("the model has no ReLU layers to look for dead units in")
    handles = [m.register_forward_hook(hook) for m in layers]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return masks


def parameter_grad_norms(
    model: nn.Module | Iterable[tuple[str, nn.Parameter]], *, include_bias: bool = False
) -> dict[str, float]:
    """``{name: ||grad||}`` for each parameter with a gradient (weights only by default)."""
    named = model.named_parameters() if isinstance(model, nn.Module) else model
    return {
        name: float(p.grad.detach().norm())
        for name, p in named
        if p.grad is not None and (include_bias or not name.endswith("bias"))
    }


# --------------------------------------------------------------------------- a deep network, probed

PROBE_ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")


@dataclass(frozen=True)
class DepthProbeSettings:
    """The settings of :func:`depth_probe`, with their defaults (notebook 02's demo)."""

    depth: int = 20
    activation: str = "tanh"  # one of PROBE_ACTIVATIONS
    init: str = "Xavier, gain 1"  # one of dlcourse.init.PRESETS
    width: int = 64
    seed: int = 0
    batch_norm: bool = False  # a BatchNorm1d between each Linear and its activation (notebook 04)
    train_steps: int = 0  # plain SGD steps on the probe's batch before probing
    lr: float = 0.1  # their learning rate


def depth_probe(settings: DepthProbeSettings | None = None, **changes: Any) -> list[LayerStats]:
    """Per-layer :class:`LayerStats` of a deep MLP on random data.

    The network is :func:`dlcourse.models.deep_mlp` (``depth`` hidden layers of
    ``width``, with :class:`dlcourse.norm.BatchNorm1d` before each activation if
    ``batch_norm``) initialised by one of :data:`dlcourse.init.PRESETS`; the data are 512
    standard normal inputs with random labels of 10 classes. After ``train_steps`` plain SGD
    steps at rate ``lr`` on them (0: the network as initialised), one forward and one
    backward pass are probed, in training mode. ``changes`` override some of the settings
    (``depth_probe(depth=8)``).
    """
    from dlcourse.norm import BatchNorm1d

    s = replace(settings or DepthProbeSettings(), **changes)
    if s.init not in PRESETS:
        raise ValueError(f"unknown init {s.init!r}; choose one of {list(PRESETS)}")
    if s.train_steps < 0 or not s.lr > 0:
        raise ValueError(f"need train_steps >= 0 and lr > 0, got {s.train_steps}, {s.lr}")
    gen = torch.Generator().manual_seed(s.seed)
    model = deep_mlp(
        s.width, s.width, s.depth, 10, s.activation, norm=BatchNorm1d if s.batch_norm else None
    )
    initialize(model, **PRESETS[s.init], generator=gen)  # type: ignore[arg-type]
    x = torch.randn(512, s.width, generator=gen)  # (512, width)
    y = torch.randint(0, 10, (512,), generator=gen)  # (512,)
    loss_fn = nn.CrossEntropyLoss()
    step = torch.optim.SGD(model.parameters(), lr=s.lr)
    for _ in range(s.train_steps):
        step.zero_grad()
        loss_fn(model(x), y).backward()
        step.step()
    return probe(model, x, y, loss_fn)
