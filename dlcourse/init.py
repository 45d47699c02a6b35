r"""Weight initialisation, written out: ``torch.nn.init``'s functions, signatures and fan rules.

Taught in ``notebooks/02_activations_and_init.ipynb`` (claim C2.4). A layer
``y = W x`` with ``fan_in`` inputs of variance :math:`v_x` and weights of
variance :math:`v_W` gives outputs of variance :math:`\mathrm{fan_{in}}\, v_W\, v_x`.
Keeping that ratio at 1 through many layers keeps the signal alive:

- **Xavier/Glorot** (for tanh and sigmoid, roughly linear near 0): balance the
  forward and the backward pass, :math:`v_W = 2 / (\mathrm{fan_{in}} + \mathrm{fan_{out}})`;
  Glorot and Bengio, "Understanding the difficulty of training deep feedforward
  neural networks", AISTATS 2010.
- **He/Kaiming** (for ReLU, which zeroes half its inputs and so halves the
  variance): :math:`v_W = 2 / \mathrm{fan_{in}}`; He, Zhang, Ren and Sun,
  "Delving deep into rectifiers", ICCV 2015.

Both scale by a *gain* (:func:`calculate_gain`): :math:`\sqrt 2` for ReLU,
:math:`5/3` for tanh, 1 for linear layers and the sigmoid. A uniform
distribution on :math:`[-b, b]` has variance :math:`b^2/3`, so its bound is
:math:`b = \sqrt 3 \cdot \mathrm{std}`.

Fans follow torch: a weight of shape ``(out, in, *kernel)`` (``Linear``:
``(out, in)``; ``Conv2d``: ``(out, in, kh, kw)``) has
``fan_in = in * prod(kernel)`` and ``fan_out = out * prod(kernel)``. Every
function takes the same arguments as its ``torch.nn.init`` namesake, fills the
tensor in place without recording it for autograd, and returns it; with the
same ``generator`` state the numbers are torch's, to the bit
(``tests/test_init.py``).
"""

from __future__ import annotations

import math
import warnings

import torch

NONLINEARITIES = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "selu",
)
MODES = ("fan_in", "fan_out")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    r"""The recommended gain for a nonlinearity (``param``: leaky ReLU's negative slope).

    =================  ===================================
    linear, conv*      :math:`1`
    sigmoid            :math:`1`
    tanh               :math:`5/3`
    relu               :math:`\sqrt 2`
    leaky_relu         :math:`\sqrt{2 / (1 + a^2)}`
    selu               :math:`3/4`
    =================  ===================================
    """
    if nonlinearity in NONLINEARITIES[:8]:  # linear, convolutions, sigmoid
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}; choose one of {NONLINEARITIES}")


def fan_in_and_fan_out(tensor: torch.Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight ``(out, in, *kernel)``: inputs and outputs per unit."""
    if tensor.dim() < 2:
        raise ValueError(
            "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions "
            f"(got shape {tuple(tensor.shape)}); biases are usually set with zeros_ or constant_"
        )
    receptive_field = math.prod(tensor.shape[2:])  # 1 for a Linear weight
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


def _fan(tensor: torch.Tensor, mode: str) -> int:
    if mode not in MODES:
        raise ValueError(f"Mode {mode} not supported, please use one of {MODES}")
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _empty(tensor: torch.Tensor) -> bool:
    if tensor.numel() == 0:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return True
    return False


# --------------------------------------------------------------------------- plain distributions


def uniform_(
    tensor: torch.Tensor, a: float = 0.0, b: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    r"""Fill with :math:`\mathcal U(a, b)`."""
    if not a <= b:
        raise ValueError(f"uniform_ needs a <= b, got a={a}, b={b}")
    with torch.no_grad():
        return tensor.uniform_(a, b, generator=generator)


def normal_(
    tensor: torch.Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Fill with :math:`\mathcal N(\mathrm{mean}, \mathrm{std}^2)`."""
    if std < 0:
        raise ValueError(f"normal_ needs std >= 0, got {std}")
    with torch.no_grad():
        return tensor.normal_(mean, std, generator=generator)


def constant_(tensor: torch.Tensor, val: float) -> torch.Tensor:
    """Fill with ``val``: every weight equal (which a network cannot unlearn: see notebook 02)."""
    with torch.no_grad():
        return tensor.fill_(val)


def zeros_(tensor: torch.Tensor) -> torch.Tensor:
    """Fill with zeros (fine for biases)."""
    return constant_(tensor, 0.0)


# --------------------------------------------------------------------------- Xavier / Glorot


def xavier_std(tensor: torch.Tensor, gain: float = 1.0) -> float:
    r""":math:`\mathrm{gain} \sqrt{2 / (\mathrm{fan_{in}} + \mathrm{fan_{out}})}`."""
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    return gain * math.sqrt(2.0 / float(fan_in + fan_out))


def xavier_uniform_(
    tensor: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    r"""Glorot's uniform: :math:`\mathcal U(-b, b)`, :math:`b = \sqrt 3\,` :func:`xavier_std`."""
    bound = math.sqrt(3.0) * xavier_std(tensor, gain)
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(
    tensor: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    r"""Glorot's normal: :math:`\mathcal N(0, \mathrm{std}^2)` with :func:`xavier_std`."""
    return normal_(tensor, 0.0, xavier_std(tensor, gain), generator)


# --------------------------------------------------------------------------- He / Kaiming


def kaiming_std(
    tensor: torch.Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> float:
    r""":math:`\mathrm{gain} / \sqrt{\mathrm{fan}}`, the fan chosen by ``mode``.

    With the default ``nonlinearity='leaky_relu'`` and ``a=0`` the gain is
    :math:`\sqrt 2`, ReLU's (torch's defaults, kept here).
    """
    return calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))


def kaiming_uniform_(
    tensor: torch.Tensor,
    a: float = 0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""He's uniform: :math:`\mathcal U(-b, b)`, :math:`b = \sqrt 3 \cdot` :func:`kaiming_std`."""
    if _empty(tensor):
        return tensor
    bound = math.sqrt(3.0) * kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor: torch.Tensor,
    a: float = 0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""He's normal: :math:`\mathcal N(0, \mathrm{std}^2)` with :func:`kaiming_std`."""
    if _empty(tensor):
        return tensor
    return normal_(tensor, 0.0, kaiming_std(tensor, a, mode, nonlinearity), generator)


# --------------------------------------------------------------------------- a whole network

SCHEMES = (
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "normal",
    "constant",
    "torch_default",
)


# Named set-ups that notebook 02 compares: label -> keyword arguments of :func:`initialize`.
PRESETS: dict[str, dict[str, object]] = {
    "He (kaiming_normal)": {"scheme": "kaiming_normal"},
    "Xavier, gain 1": {"scheme": "xavier_normal"},
    "Xavier, gain 5/3 (tanh)": {"scheme": "xavier_normal", "gain": 5 / 3},
    "too small: N(0, 0.01²)": {"scheme": "normal", "std": 0.01},
    "too large: N(0, 1)": {"scheme": "normal", "std": 1.0},
    "all equal: 0.1": {"scheme": "constant", "value": 0.1},
    "torch's default": {"scheme": "torch_default"},
}


def _own_weights_and_biases(
    module: torch.nn.Module,
) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    """A layer's own weight matrices or kernels (rank >= 2, named ``weight...``) and biases.

    Found by what the layer has, not by its class: ``nn.Linear``'s ``weight``, a
    convolution's kernel, a recurrent layer's ``weight_ih_l0`` and ``weight_hh_l0``, and
    the course's own layers alike. A normalisation layer's ``weight`` (rank 1) is a scale,
    not a weight matrix, and is left alone.
    """
    own = list(module.named_parameters(recurse=False))
    weights = [p for name, p in own if name.startswith("weight") and p.dim() >= 2]
    biases = [p for name, p in own if name.startswith("bias")] if weights else []
    return weights, biases


def initialize(
    model: torch.nn.Module,
    scheme: str,
    *,
    gain: float = 1.0,
    std: float = 0.01,
    value: float = 0.1,
    generator: torch.Generator | None = None,
) -> torch.nn.Module:
    """Initialise every weight matrix or kernel of ``model`` with one scheme; return the model.

    A layer counts when it has a weight of rank 2 or more (``Linear``, ``Conv*d``, recurrent
    layers, and any layer of the course's written the same way). Weights: ``xavier_*``
    (with ``gain``), ``kaiming_*`` (ReLU's gain, ``fan_in``), ``normal`` (mean 0, ``std``),
    ``constant`` (every weight ``value``), or ``torch_default`` (each layer's own
    ``reset_parameters``). Those layers' biases are set to 0, except with ``torch_default``.
    Layers, and each layer's weights, are visited in order, drawing from one ``generator``,
    so a seed fixes the whole network.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; choose one of {SCHEMES}")
    found = False
    for layer in model.modules():
        weights, biases = _own_weights_and_biases(layer)
        if not weights:
            continue
        found = True
        if scheme == "torch_default":
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()
            continue
        for w in weights:
            if scheme == "xavier_uniform":
                xavier_uniform_(w, gain, generator)
            elif scheme == "xavier_normal":
                xavier_normal_(w, gain, generator)
            elif scheme == "kaiming_uniform":
                kaiming_uniform_(w, nonlinearity="relu", generator=generator)
            elif scheme == "kaiming_normal":
                kaiming_normal_(w, nonlinearity="relu", generator=generator)
            elif scheme == "normal":
                normal_(w, 0.0, std, generator)
            else:
                constant_(w, value)
        for b in biases:
            zeros_(b)
    if not found:
        raise ValueError(
            f"{type(model).__name__} has no weight matrix or kernel to initialise (a parameter "
            "named weight... of rank 2 or more)"
        )
    return model
