r"""Activation functions with their derivatives written out, and hand-written backward passes.

Taught in ``notebooks/02_activations_and_init.ipynb`` (claims C2.2, C2.3). Each
activation comes three ways:

- the function itself, e.g. :func:`sigmoid`, written from its formula;
- its derivative, e.g. :func:`sigmoid_derivative`, written out by hand: what
  back-propagation multiplies the incoming gradient by at each unit;
- a ``torch.autograd.Function`` whose ``backward`` uses that derivative, and an
  ``nn.Module`` around it (:class:`Sigmoid`, :class:`Tanh`, :class:`ReLU`, ...),
  so a network built from them back-propagates through the course's own code.

The derivative is the whole story of the vanishing gradient:

.. math::

    \sigma'(x) = \sigma(x)\,(1 - \sigma(x)) \le \tfrac14, \qquad
    \tanh'(x) = 1 - \tanh^2(x) \le 1, \qquad
    \mathrm{relu}'(x) = [x > 0] \in \{0, 1\}

so a chain of :math:`L` sigmoid layers multiplies the gradient by at most
:math:`4^{-L}` (times the weights), while ReLU passes it through unchanged
where a unit is active. At :math:`x = 0`, where ReLU has no derivative, the
convention is torch's: 0. ``tests/test_activations.py`` checks every function
and derivative against torch's functions and autograd, and ``gradcheck``\s the
hand-written backward passes in float64.

Glorot, Bordes and Bengio, "Deep sparse rectifier neural networks", AISTATS
2011 (ReLU); Maas, Hannun and Ng, 2013 (leaky ReLU); Clevert, Unterthiner and
Hochreiter, ICLR 2016 (ELU); Hendrycks and Gimpel, 2016 (GELU).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

Fn = Callable[[torch.Tensor], torch.Tensor]

# --------------------------------------------------------------------------- the functions


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    r""":math:`\sigma(x) = 1 / (1 + e^{-x})`, computed without overflow for large :math:`|x|`."""
    # exp(-|x|) never overflows; for x < 0 use sigma(x) = e^x / (1 + e^x)
    e = torch.exp(-x.abs())
    return torch.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_derivative(x: torch.Tensor) -> torch.Tensor:
    r""":math:`\sigma'(x) = \sigma(x)(1 - \sigma(x))`: at most 1/4, at :math:`x = 0`."""
    s = sigmoid(x)
    return s * (1 - s)


def tanh(x: torch.Tensor) -> torch.Tensor:
    r""":math:`\tanh(x) = 2\sigma(2x) - 1`: the sigmoid, centred on 0 and stretched to (-1, 1)."""
    return 2 * sigmoid(2 * x) - 1


def tanh_derivative(x: torch.Tensor) -> torch.Tensor:
    r""":math:`\tanh'(x) = 1 - \tanh^2(x)`: at most 1, at :math:`x = 0`."""
    return 1 - torch.tanh(x) ** 2


def relu(x: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathrm{relu}(x) = \max(0, x)`."""
    return torch.where(x > 0, x, torch.zeros_like(x))


def relu_derivative(x: torch.Tensor) -> torch.Tensor:
    r""":math:`[x > 0]`: 1 where the unit is active, else 0 (0 at :math:`x = 0`, as in torch)."""
    return (x > 0).to(x.dtype)


def leaky_relu(x: torch.Tensor, negative_slope: float = 0.01) -> torch.Tensor:
    r""":math:`x` for :math:`x > 0`, else :math:`a x`: negative units still pass a gradient."""
    return torch.where(x > 0, x, negative_slope * x)


def leaky_relu_derivative(x: torch.Tensor, negative_slope: float = 0.01) -> torch.Tensor:
    r""":math:`1` for :math:`x > 0`, else :math:`a` (:math:`a` at 0, as in torch)."""
    return torch.where(x > 0, torch.ones_like(x), torch.full_like(x, negative_slope))


def elu(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    r""":math:`x` for :math:`x > 0`, else :math:`\alpha (e^x - 1)`: smooth, negative outputs."""
    return torch.where(x > 0, x, alpha * torch.expm1(x.clamp(max=0)))


def elu_derivative(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    r""":math:`1` for :math:`x > 0`, else :math:`\alpha e^x`."""
    return torch.where(x > 0, torch.ones_like(x), alpha * torch.exp(x.clamp(max=0)))


def gelu(x: torch.Tensor) -> torch.Tensor:
    r""":math:`x\,\Phi(x)`, with :math:`\Phi` the standard normal CDF (torch's exact GELU)."""
    return x * 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def gelu_derivative(x: torch.Tensor) -> torch.Tensor:
    r""":math:`\Phi(x) + x\,\varphi(x)`, with :math:`\varphi` the standard normal density."""
    cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
    pdf = torch.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)
    return cdf + x * pdf


# --------------------------------------------------------------------------- hand-written backward


class SigmoidFunction(torch.autograd.Function):
    """Sigmoid whose backward reuses the forward's output: :math:`g\\,s(1 - s)`."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        s = sigmoid(x)
        ctx.save_for_backward(s)  # the output is all backward needs
        return s

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
        (s,) = ctx.saved_tensors
        return grad_output * s * (1 - s)


class TanhFunction(torch.autograd.Function):
    """Tanh whose backward reuses the forward's output: :math:`g\\,(1 - t^2)`."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        t = torch.tanh(x)
        ctx.save_for_backward(t)
        return t

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
        (t,) = ctx.saved_tensors
        return grad_output * (1 - t * t)


class ReLUFunction(torch.autograd.Function):
    """ReLU whose backward passes the gradient where the input was positive, and 0 elsewhere."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        active = x > 0  # (...) bool: a bit per unit is all backward needs
        ctx.save_for_backward(active)
        return x.masked_fill(~active, 0)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
        (active,) = ctx.saved_tensors
        return grad_output * active


class LeakyReLUFunction(torch.autograd.Function):
    """Leaky ReLU with a hand-written backward: :math:`g` where :math:`x > 0`, else :math:`a g`."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, negative_slope: float) -> torch.Tensor:
        ctx.save_for_backward(x > 0)
        ctx.negative_slope = negative_slope
        return leaky_relu(x, negative_slope)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        (active,) = ctx.saved_tensors
        return torch.where(active, grad_output, ctx.negative_slope * grad_output), None


# --------------------------------------------------------------------------- modules


class Sigmoid(nn.Module):
    """``nn.Sigmoid`` with the course's forward and backward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return SigmoidFunction.apply(x)


class Tanh(nn.Module):
    """``nn.Tanh`` with the course's backward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return TanhFunction.apply(x)


class ReLU(nn.Module):
    """``nn.ReLU`` with the course's forward and backward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ReLUFunction.apply(x)


class LeakyReLU(nn.Module):
    """``nn.LeakyReLU`` with the course's forward and backward."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        if negative_slope < 0:
            raise ValueError(f"negative_slope must be >= 0, got {negative_slope}")
        self.negative_slope = negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return LeakyReLUFunction.apply(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


# --------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Activation:
    """One activation: its function, its hand-written derivative, a module, torch's own."""

    name: str
    fn: Fn
    derivative: Fn
    module: Callable[[], nn.Module]
    torch_fn: Fn
    max_slope: float  # the largest value of the derivative


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("sigmoid", sigmoid, sigmoid_derivative, Sigmoid, torch.sigmoid, 0.25),
        Activation("tanh", tanh, tanh_derivative, Tanh, torch.tanh, 1.0),
        Activation("relu", relu, relu_derivative, ReLU, torch.relu, 1.0),
        Activation(
            "leaky_relu",
            leaky_relu,
            leaky_relu_derivative,
            LeakyReLU,
            nn.functional.leaky_relu,
            1.0,
        ),
        Activation("elu", elu, elu_derivative, nn.ELU, nn.functional.elu, 1.0),
        Activation("gelu", gelu, gelu_derivative, nn.GELU, nn.functional.gelu, 1.1289),
    )
}


def get(name: str) -> Activation:
    """The activation called ``name`` (one of :data:`ACTIVATIONS`)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


# Layer classes that compute an activation: the course's and torch's. Probes
# (dlcourse.diagnostics) watch every layer found here, whatever its class.
LAYER_KINDS: dict[type[nn.Module], str] = {
    **{a.module: a.name for a in ACTIVATIONS.values() if isinstance(a.module, type)},
    nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh",
    nn.ReLU: "relu",
    nn.LeakyReLU: "leaky_relu",
}


def register_layer(layer_type: type[nn.Module], name: str) -> None:
    """Declare that layers of ``layer_type`` compute the activation ``name`` (e.g. ``"relu"``).

    Probes then watch them, and count saturated or dead units as they do for the
    course's and torch's own activation layers.
    """
    if not (isinstance(layer_type, type) and issubclass(layer_type, nn.Module)):
        raise TypeError(f"layer_type must be an nn.Module class, got {layer_type!r}")
    get(name)  # a known activation
    LAYER_KINDS[layer_type] = name


def kind_of(module: nn.Module) -> str | None:
    """The activation a layer computes (``"relu"``, ``"tanh"``, ...), or None if it is not one."""
    for cls in type(module).__mro__:
        if cls in LAYER_KINDS:
            return LAYER_KINDS[cls]
    return None


_MOVED = {"deep_mlp": "dlcourse.models"}


def __getattr__(name: str) -> object:
    """Point code written for an older version to where a name went (PEP 562).

    An ImportError, not an AttributeError: ``from ... import`` would replace the latter
    by its own message, which does not say where the name went.
    """
    if name in _MOVED:
        raise ImportError(
            f"{name} moved to {_MOVED[name]}: from {_MOVED[name]} import {name} "
            f"(or dl.{_MOVED[name].split('.')[-1]}.{name})"
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
