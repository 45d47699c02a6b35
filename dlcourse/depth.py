r"""Why depth: a sawtooth that a deep ReLU net draws with few weights and a shallow one cannot.

Taught in ``notebooks/00_welcome.ipynb`` (claim C0.1).

The tent map on :math:`[0, 1]` is one layer of two ReLU units:

.. math::

    t(x) = 2\,\mathrm{relu}(x) - 4\,\mathrm{relu}(x - \tfrac12)
         = \begin{cases} 2x & x \le \tfrac12 \\ 2 - 2x & x > \tfrac12 \end{cases}

Composing it :math:`k` times gives a sawtooth with :math:`2^k` linear pieces, from
a network of depth :math:`k` and width 2: :math:`4 + 6(k - 1) + 3` weights. A
network with one hidden layer of :math:`m` ReLU units,
:math:`f(x) = c + \sum_i a_i\,\mathrm{relu}(w_i x + b_i)`, bends at most once per
unit, so it has at most :math:`m + 1` pieces and needs :math:`m \ge 2^k - 1`
units (:math:`3m + 1` weights) for the same function: exponentially many.

Telgarsky, "Benefits of depth in neural networks", COLT 2016
(https://arxiv.org/abs/1602.04485); Montúfar et al., "On the number of linear
regions of deep neural networks", NeurIPS 2014.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from dlcourse._validate import integer


def tent(x: torch.Tensor) -> torch.Tensor:
    """The tent map on [0, 1]: ``2x`` up to 1/2, then ``2 - 2x``."""
    return torch.where(x <= 0.5, 2 * x, 2 - 2 * x)


def sawtooth(x: torch.Tensor, depth: int) -> torch.Tensor:
    """The tent map applied ``depth`` times: ``2**depth`` linear pieces on [0, 1]."""
    integer(depth, "depth", minimum=1)
    for _ in range(depth):
        x = tent(x)
    return x


def narrow_relu_net(depth: int, width: int = 2) -> nn.Sequential:
    """``depth`` hidden ReLU layers of ``width`` units on a scalar input, randomly initialised.

    Input ``(N, 1)``, output ``(N, 1)``.
    """
    integer(depth, "depth", minimum=1)
    layers: list[nn.Module] = [nn.Linear(1, width), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.ReLU()]
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


@torch.no_grad()
def sawtooth_net(depth: int) -> nn.Sequential:
    """The depth-``depth``, width-2 ReLU network that computes :func:`sawtooth` exactly.

    Each hidden layer holds the two units of one tent map; the tent's output
    ``2 h1 - 4 h2`` is folded into the next layer's weights.
    """
    net = narrow_relu_net(depth, width=2)
    linears = [m for m in net if isinstance(m, nn.Linear)]
    first, *middle, last = linears
    first.weight.copy_(torch.tensor([[1.0], [1.0]]))  # both units see x
    first.bias.copy_(torch.tensor([0.0, -0.5]))  # relu(x), relu(x - 1/2)
    for layer in middle:
        # pre-activations (z, z - 1/2) with z = 2 h1 - 4 h2, the previous tent's output
        layer.weight.copy_(torch.tensor([[2.0, -4.0], [2.0, -4.0]]))
        layer.bias.copy_(torch.tensor([0.0, -0.5]))
    last.weight.copy_(torch.tensor([[2.0, -4.0]]))
    last.bias.zero_()
    return net


def shallow_relu_net(hidden: int) -> nn.Sequential:
    """One hidden layer of ``hidden`` ReLU units on a scalar input (``3 * hidden + 1`` weights)."""
    if hidden < 1:
        raise ValueError(f"hidden must be positive, got {hidden}")
    return nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, 1))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable numbers in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def count_linear_pieces(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    tol: float = 1e-6,
) -> int:
    """Count the linear pieces of a piecewise-linear ``f`` on the sorted 1-D grid ``x``.

    Slopes between neighbouring grid points are compared; each change larger
    than ``tol`` (relative to the largest slope) starts a new piece. A kink
    between two grid points shows up as one or two slope changes, so the grid
    must be fine enough that pieces are several points wide.
    """
    if x.dim() != 1 or x.numel() < 3:
        raise ValueError(f"x must be a 1-D grid of at least 3 points, got shape {tuple(x.shape)}")
    if not bool((x[1:] > x[:-1]).all()):
        raise ValueError("x must be sorted and strictly increasing")
    y = f(x.unsqueeze(1)).reshape(-1).to(torch.float64)  # (N,)
    xs = x.to(torch.float64)
    slopes = torch.diff(y) / torch.diff(xs)  # (N - 1,)
    scale = max(float(slopes.abs().max()), 1.0)
    changes = (torch.diff(slopes).abs() > tol * scale).to(torch.int8)  # (N - 2,)
    # Two neighbouring changes are one kink that fell between grid points.
    runs = changes[1:] & changes[:-1]
    return int(changes.sum() - runs.sum()) + 1
