r"""Convolution and pooling from scratch: the definitions first, a fast path beside them.

Taught in ``notebooks/06_convolutional_networks.ipynb`` (claims C4.1-C4.6: 합성곱 신경망,
콘볼루션, 가중치 공유, 부분적인 연결, 패딩, 보폭, 풀링). Y. LeCun, L. Bottou, Y. Bengio,
P. Haffner, "Gradient-based learning applied to document recognition", Proc. IEEE 86(11), 1998
(LeNet-5); V. Dumoulin, F. Visin, "A guide to convolution arithmetic for deep learning",
arXiv:1603.07285, 2016 (the sizes below).

**Convolution** (as deep learning uses the word: cross-correlation, the kernel is not
flipped). An input :math:`x` of :math:`C` channels, a kernel :math:`w` of shape
:math:`(O, C, k_H, k_W)`, stride :math:`s`, dilation :math:`d`, after zero padding:

.. math::

    y_{n,o,i,j} = b_o + \sum_{c=0}^{C-1} \sum_{u=0}^{k_H-1} \sum_{v=0}^{k_W-1}
        w_{o,c,u,v}\; x_{n,c,\; s_H i + d_H u,\; s_W j + d_W v} .

Every output position uses the same :math:`w` (weight sharing, 가중치 공유) and sees only a
:math:`k_H \times k_W` window of the input (partial connectivity, 부분적인 연결): a layer
from :math:`C` maps to :math:`O` maps has :math:`O C k_H k_W + O` parameters whatever the image
size. Each spatial size follows

.. math::

    \text{out} = \Big\lfloor \frac{\text{size} + 2p - d(k - 1) - 1}{s} \Big\rfloor + 1
    \qquad \text{(}:func:`conv_output_size`\text{)}.

**Pooling** (풀링, 서브샘플링) summarises each window of each map by its maximum or its mean:
fewer positions for the layers after it, the same number of maps. Max pooling's gradient goes
to the window's largest input (the first one, in row-major order, when several tie, as torch
picks on the CPU); average pooling's is spread evenly over the window.

**Two forms of each.** The first section below is the definition, a few lines each: every
window as a view of the padded input (:func:`_windows`), then the sum of products over it
(:func:`_conv2d_definition`, the formula above with ``einsum``), or its maximum, or its mean;
autograd differentiates them. :func:`conv2d_loops` is the same sum, one output at a time. The
fast path, for training, lives in :mod:`dlcourse._conv_fast`: im2col (all windows gathered into
one matrix, the convolution one matrix product) and a backward written out by hand
(:class:`Conv2dFunction`). Each public function takes ``fast=`` (default ``True``) and says
which one runs; the tests check that both give the same outputs and gradients.

Drop-in compatible: :class:`Conv2d`, :class:`Conv1d`, :class:`MaxPool2d` and :class:`AvgPool2d`
have ``nn``'s constructors for the arguments they take, and the convolutions have ``weight``
``(out_channels, in_channels, *kernel_size)`` and ``bias`` ``(out_channels,)``, so state dicts
load both ways. Not covered: groups, padding modes other than zeros, ``ceil_mode``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dlcourse import _conv_fast
from dlcourse._conv_fast import Conv2dFunction
from dlcourse._validate import choice, int_tuple, integer

__all__ = [
    "KERNELS",
    "LOOPS_MAX_OUTPUTS",
    "AvgPool2d",
    "Conv1d",
    "Conv2d",
    "Conv2dFunction",
    "FeatureMapSettings",
    "MaxPool2d",
    "avg_pool2d",
    "conv1d",
    "conv2d",
    "conv2d_loops",
    "conv_output_size",
    "feature_map_demo",
    "kernel",
    "max_pool2d",
]

Pair = int | tuple[int, int]
Padding = int | tuple[int, int] | str
Sides = tuple[int, int, int, int]  # zeros added (top, bottom, left, right)

# conv2d_loops runs one Python iteration per output value: this many keep it under a second.
LOOPS_MAX_OUTPUTS = 20_000


# --------------------------------------------------------------------------- the definitions


def conv_output_size(
    size: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    *,
    exact: bool = False,
) -> int:
    r"""Positions a window of ``kernel_size`` (spread by ``dilation``) takes along ``size``
    input positions, zero-padded by ``padding`` on each side and moved by ``stride``:
    :math:`\lfloor (\text{size} + 2p - d(k-1) - 1)/s \rfloor + 1`.

    The floor drops input positions the last window cannot reach; torch does that silently.
    ``exact=True`` makes it an error instead, naming paddings that would fit (a check worth
    making when designing a network). A kernel larger than the padded input is an error.
    """
    size = integer(size, "size", minimum=1)
    kernel_size = integer(kernel_size, "kernel_size", minimum=1)
    stride = integer(stride, "stride", minimum=1)
    padding = integer(padding, "padding", minimum=0)
    dilation = integer(dilation, "dilation", minimum=1)
    return _output_length(size, kernel_size, stride, (padding, padding), dilation, exact=exact)


def _windows(x: torch.Tensor, kernel: tuple[int, int], stride, dilation=(1, 1)) -> torch.Tensor:
    """Every window of ``x`` ``(N, C, H, W)`` as a view ``(N, C, Ho, Wo, kH, kW)``, no copy.

    ``unfold`` slides a span of ``d (k - 1) + 1`` positions along the height (then the width)
    by ``stride``; ``::d`` keeps every ``d``-th of them, the kernel's dilated taps. Window
    ``(i, j)`` tap ``(u, v)`` is ``x[:, :, s_H i + d_H u, s_W j + d_W v]``, as in the formula.
    """
    for dim, k, s, d in zip((2, 3), kernel, stride, dilation, strict=True):
        x = x.unfold(dim, d * (k - 1) + 1, s)[..., ::d]
    return x


def _conv2d_definition(input, weight, bias, stride, sides: Sides, dilation) -> torch.Tensor:
    """The module docstring's formula as written; autograd gives its gradients."""
    windows = _windows(_pad(input, sides), weight.shape[2:], stride, dilation)  # (N,C,Ho,Wo,kH,kW)
    y = torch.einsum("ncijuv,ocuv->noij", windows, weight)  # sum over c, u, v: (N, O, Ho, Wo)
    return y if bias is None else y + bias.view(1, -1, 1, 1)


def _max_pool2d_definition(input, kernel, stride, padding) -> torch.Tensor:
    """The largest value of each window (padding is ``-inf``, so it never wins); autograd sends
    the gradient to the place ``max`` returns, the first largest."""
    sides = (padding[0], padding[0], padding[1], padding[1])
    windows = _windows(_pad(input, sides, value=-math.inf), kernel, stride)  # (N,C,Ho,Wo,kH,kW)
    return windows.flatten(-2).max(dim=-1).values  # (N, C, Ho, Wo)


def _avg_pool2d_definition(input, kernel, stride, padding, count_include_pad) -> torch.Tensor:
    """The mean of each window: its sum over the count of values in it (with or without the
    padding zeros)."""
    sides = (padding[0], padding[0], padding[1], padding[1])
    total = _windows(_pad(input, sides), kernel, stride).sum((-2, -1))  # (N, C, Ho, Wo)
    if count_include_pad:
        return total / (kernel[0] * kernel[1])
    inside = _pad(torch.ones_like(input[:1, :1]), sides)  # 1 where the input is, 0 on padding
    return total / _windows(inside, kernel, stride).sum((-2, -1))  # (1, 1, Ho, Wo) counts


def conv2d_loops(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: Pair = 1,
    padding: Pair = 0,
) -> torch.Tensor:
    """The definition of the module docstring, one output value at a time: for teaching.

    ``input`` ``(N, C, H, W)``, ``weight`` ``(O, C, kH, kW)``, ``bias`` ``(O,)``. Every output
    is the sum of the products of the kernel with the window under it. Python loops are slow:
    inputs that make more than ``LOOPS_MAX_OUTPUTS`` outputs are refused (use :func:`conv2d`).
    """
    _check_conv_input(input, weight, bias, "conv2d_loops")
    s, (ph, pw) = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    kh, kw = weight.shape[2:]
    sides = (ph, ph, pw, pw)
    ho, wo = _output_hw(input, (kh, kw), s, sides, (1, 1), "conv2d_loops")
    n, o = input.shape[0], weight.shape[0]
    if n * o * ho * wo > LOOPS_MAX_OUTPUTS:
        raise ValueError(
            f"conv2d_loops would compute {n * o * ho * wo:,} outputs one by one in Python "
            f"(limit {LOOPS_MAX_OUTPUTS:,}): it is for small examples; use conv2d for real inputs"
        )
    xp = _pad(input, sides)  # (N, C, Hp, Wp)
    out = input.new_zeros((n, o, ho, wo))
    for b in range(n):
        for oc in range(o):
            for i in range(ho):
                for j in range(wo):
                    window = xp[b, :, i * s[0] : i * s[0] + kh, j * s[1] : j * s[1] + kw]
                    out[b, oc, i, j] = (window * weight[oc]).sum()  # the sum of products
            if bias is not None:
                out[b, oc] += bias[oc]
    return out


# --------------------------------------------------------------------------- argument checks


def _output_length(
    size: int,
    kernel_size: int,
    stride: int,
    padding: tuple[int, int],
    dilation: int,
    *,
    exact: bool = False,
    where: str = "",
) -> int:
    """The output-size formula, the one place it is written: ``padding`` zeros (before, after);
    ``where`` says which input and dimension an error is about."""
    span = dilation * (kernel_size - 1) + 1  # the window's extent, dilation included
    padded = size + sum(padding)
    if span > padded:
        raise ValueError(
            f"{where}the kernel spans {span} positions (kernel_size {kernel_size}, dilation "
            f"{dilation}) but the padded input has {padded} (size {size} + padding "
            f"{padding[0]} + {padding[1]}): use a kernel of at most {padded} positions, or "
            f"padding >= {math.ceil((span - size) / 2)} on each side"
        )
    steps, left = divmod(padded - span, stride)
    if exact and left:
        fits = [
            p
            for p in range(padding[0] + 1, padding[0] + stride + 1)
            if (size + 2 * p - span) % stride == 0
        ]
        fit_text = f"padding={fits[0]}" if fits else f"an input of {size + stride - left}"
        raise ValueError(
            f"stride {stride} does not divide (size {size} + 2 x padding {padding[0]} - kernel "
            f"span {span}) = {padded - span}: the last {left} input position(s) are never used. "
            f"{fit_text} would fit exactly"
        )
    return steps + 1


def _output_hw(x: torch.Tensor, kernel, stride, sides: Sides, dilation, where: str):
    """Output ``(Ho, Wo)`` of windows over ``x`` ``(N, C, H, W)``: a clear error before any work."""
    return tuple(
        _output_length(
            x.shape[dim],
            kernel[i],
            stride[i],
            sides[2 * i : 2 * i + 2],
            dilation[i],
            where=f"{where}: in the {name} of the input {tuple(x.shape)}, ",
        )
        for i, (dim, name) in enumerate(((2, "height"), (3, "width")))
    )


def _pair(value: Any, name: str, minimum: int) -> tuple[int, int]:
    """``value`` as ``(height, width)``: an int for both, or two ints, each >= ``minimum``."""
    return int_tuple(value, name, 2, minimum=minimum)  # type: ignore[return-value]


def _padding_sides(padding: Padding, kernel, stride, dilation) -> tuple[int, ...]:
    """Zeros ``(before, after)`` for each spatial dimension, flattened (``(top, bottom, left,
    right)`` in 2-D): from an int, one int per dimension, ``"valid"`` or ``"same"``."""
    dims = len(kernel)
    if not isinstance(padding, str):
        return tuple(p for p in int_tuple(padding, "padding", dims, minimum=0) for _ in (0, 1))
    choice(padding, "padding", ("valid", "same"))
    if padding == "valid":
        return (0,) * (2 * dims)
    if any(s != 1 for s in stride):
        raise ValueError(
            f"padding='same' is not supported for strided convolutions (stride {tuple(stride)}): "
            "with a stride the output cannot keep the input's size; give the padding as numbers"
        )
    sides: list[int] = []
    for k, d in zip(kernel, dilation, strict=True):
        total = d * (k - 1)  # torch puts the odd one out on the bottom/right
        sides += [total // 2, total - total // 2]
    return tuple(sides)


def _check_conv_input(x: torch.Tensor, weight: torch.Tensor, bias, where: str) -> None:
    if weight.dim() != 4:
        raise ValueError(
            f"{where}: weight must be (out_channels, in_channels, kH, kW), got shape "
            f"{tuple(weight.shape)}"
        )
    if x.dim() != 4:
        hint = {
            3: ": a single image (C, H, W)? add the batch dimension with x.unsqueeze(0)",
            2: ": a single-channel image (H, W)? use x[None, None]",
        }.get(x.dim(), "")
        raise ValueError(
            f"{where} expects a batch of images (N, C, H, W), got shape {tuple(x.shape)}{hint}"
        )
    if x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"{where}: the input {tuple(x.shape)} has {x.shape[1]} channels in dimension 1 but "
            f"the weight {tuple(weight.shape)} expects {weight.shape[1]}: build the layer with "
            f"in_channels={x.shape[1]} (the layer before makes {x.shape[1]} maps)"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(
            f"{where}: bias must have one value per output channel, shape ({weight.shape[0]},), "
            f"got {tuple(bias.shape)}"
        )


def _pool_arguments(x: torch.Tensor, kernel_size, stride, padding, where: str):
    """``(kernel, stride, padding)`` as pairs, checked against ``x`` ``(N, C, H, W)``."""
    if x.dim() != 4:
        raise ValueError(
            f"{where} expects (N, C, H, W), got shape {tuple(x.shape)}"
            + (": add the batch dimension with x.unsqueeze(0)" if x.dim() == 3 else "")
        )
    k = _pair(kernel_size, "kernel_size", 1)
    s = k if stride is None or stride == [] else _pair(stride, "stride", 1)
    p = _pair(padding, "padding", 0)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(
            f"{where}: padding {p} is more than half the kernel {k}: a window could then hold "
            f"padding only; use padding <= {(k[0] // 2, k[1] // 2)}"
        )
    _output_hw(x, k, s, (p[0], p[0], p[1], p[1]), (1, 1), where)
    return k, s, p


def _pad(x: torch.Tensor, sides: Sides, value: float = 0.0) -> torch.Tensor:
    """``x`` ``(N, C, H, W)`` with ``sides`` ``(top, bottom, left, right)`` of ``value`` added."""
    top, bottom, left, right = sides
    return F.pad(x, (left, right, top, bottom), value=value) if any(sides) else x


# --------------------------------------------------------------------------- the functions


def conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: Pair = 1,
    padding: Padding = 0,
    dilation: Pair = 1,
    *,
    fast: bool = True,
) -> torch.Tensor:
    """2-D convolution of ``input`` ``(N, C, H, W)`` with ``weight`` ``(O, C, kH, kW)``, as
    ``torch.nn.functional.conv2d`` for these arguments (``padding`` an int, a pair,
    ``"valid"`` or ``"same"``). Returns ``(N, O, Ho, Wo)``; see :func:`conv_output_size`.

    ``fast=True`` runs im2col and the written-out backward (:class:`Conv2dFunction`);
    ``fast=False`` the definition (:func:`_conv2d_definition`, autograd for the gradients).
    The same numbers, up to the order of the float additions.
    """
    _check_conv_input(input, weight, bias, "conv2d")
    s, d = _pair(stride, "stride", 1), _pair(dilation, "dilation", 1)
    kernel = tuple(weight.shape[2:])
    sides = _padding_sides(padding, kernel, s, d)
    _output_hw(input, kernel, s, sides, d, "conv2d")
    if fast:
        return _conv_fast.conv2d(input, weight, bias, s, sides, d)
    return _conv2d_definition(input, weight, bias, s, sides, d)


def conv1d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | tuple[int] = 1,
    padding: int | tuple[int] | str = 0,
    dilation: int | tuple[int] = 1,
    *,
    fast: bool = True,
) -> torch.Tensor:
    """1-D convolution of ``input`` ``(N, C, L)`` with ``weight`` ``(O, C, k)``, as
    ``torch.nn.functional.conv1d``. ``fast=False`` runs :func:`conv2d`'s definition on signals
    of height 1; ``fast=True`` im2col in one dimension (:func:`dlcourse._conv_fast.conv1d`)."""
    if input.dim() != 3 or weight.dim() != 3:
        raise ValueError(
            f"conv1d expects input (N, C, L) and weight (O, C, k), got {tuple(input.shape)} and "
            f"{tuple(weight.shape)}"
            + (": add the batch dimension with x.unsqueeze(0)" if input.dim() == 2 else "")
        )
    (s,) = int_tuple(stride, "stride", 1, minimum=1)
    (d,) = int_tuple(dilation, "dilation", 1, minimum=1)
    pad = padding if isinstance(padding, str) else (0, *int_tuple(padding, "padding", 1, minimum=0))
    if not fast:
        y = conv2d(
            input.unsqueeze(2), weight.unsqueeze(2), bias, (1, s), pad, (1, d), fast=False
        )  # (N, O, 1, Lo)
        return y.squeeze(2)  # (N, O, Lo)
    image, kernel = input.unsqueeze(2), weight.unsqueeze(2)  # checked as one-row images
    _check_conv_input(image, kernel, bias, "conv1d")
    sides = _padding_sides(pad, (1, weight.shape[2]), (1, s), (1, d))
    _output_hw(image, (1, weight.shape[2]), (1, s), sides, (1, d), "conv1d")
    return _conv_fast.conv1d(input, weight, bias, s, sides[2:], d)  # (N, O, Lo)


def max_pool2d(
    input: torch.Tensor,
    kernel_size: Pair,
    stride: Pair | None = None,
    padding: Pair = 0,
    *,
    fast: bool = True,
) -> torch.Tensor:
    """The largest value of each window of each map, as ``torch.nn.functional.max_pool2d`` for
    these arguments (``stride`` defaults to ``kernel_size``; padding is ``-inf``, at most half
    the kernel). The gradient goes to each window's arg-max, the first in row-major order
    when values tie (as torch picks on the CPU). ``fast=False`` runs the definition
    (:func:`_max_pool2d_definition`), ``fast=True`` strided views and a written-out backward."""
    k, s, p = _pool_arguments(input, kernel_size, stride, padding, "max_pool2d")
    if fast:
        return _conv_fast.max_pool2d(input, k, s, p)
    return _max_pool2d_definition(input, k, s, p)


def avg_pool2d(
    input: torch.Tensor,
    kernel_size: Pair,
    stride: Pair | None = None,
    padding: Pair = 0,
    count_include_pad: bool = True,
    *,
    fast: bool = True,
) -> torch.Tensor:
    """The mean of each window of each map, as ``torch.nn.functional.avg_pool2d`` for these
    arguments (``stride`` defaults to ``kernel_size``; with ``count_include_pad`` the padding
    zeros count in the mean, torch's default). ``fast`` as in :func:`max_pool2d`."""
    k, s, p = _pool_arguments(input, kernel_size, stride, padding, "avg_pool2d")
    if fast:
        return _conv_fast.avg_pool2d(input, k, s, p, count_include_pad)
    return _avg_pool2d_definition(input, k, s, p, count_include_pad)


# --------------------------------------------------------------------------- modules


class _ConvNd(nn.Module):
    """What Conv1d and Conv2d share: torch's constructor, parameters and initialisation."""

    _dims = 2

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] | str = 0,
        dilation: int | Sequence[int] = 1,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = integer(in_channels, "in_channels", minimum=1)
        self.out_channels = integer(out_channels, "out_channels", minimum=1)
        self.kernel_size = int_tuple(kernel_size, "kernel_size", self._dims, minimum=1)
        self.stride = int_tuple(stride, "stride", self._dims, minimum=1)
        self.dilation = int_tuple(dilation, "dilation", self._dims, minimum=1)
        _padding_sides(padding, self.kernel_size, self.stride, self.dilation)  # checks it
        self.padding: tuple[int, ...] | str = (
            padding if isinstance(padding, str) else int_tuple(padding, "padding", self._dims)
        )
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(
            torch.empty((out_channels, in_channels, *self.kernel_size), **factory)
        )
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's default: Kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(fan_in), +), and the
        bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in_channels x kernel positions."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight[0].numel())
            nn.init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0,) * self._dims:
            text += f", padding={self.padding}"
        if self.dilation != (1,) * self._dims:
            text += f", dilation={self.dilation}"
        return text + ("" if self.bias is not None else ", bias=False")


class Conv2d(_ConvNd):
    """A 2-D convolution layer, as ``nn.Conv2d``: ``weight`` ``(out_channels, in_channels, kH,
    kW)``, ``bias`` ``(out_channels,)``; input ``(N, C, H, W)``, output ``(N, O, Ho, Wo)``."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation)


class Conv1d(_ConvNd):
    """A 1-D convolution layer, as ``nn.Conv1d``: ``weight`` ``(out_channels, in_channels, k)``;
    input ``(N, C, L)``, output ``(N, O, Lo)``."""

    _dims = 1

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return conv1d(input, self.weight, self.bias, self.stride, self.padding, self.dilation)


class _Pool2d(nn.Module):
    def __init__(self, kernel_size: Pair, stride: Pair | None = None, padding: Pair = 0) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        _pair(kernel_size, "kernel_size", 1)
        _pair(self.stride, "stride", 1)
        _pair(padding, "padding", 0)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Max pooling, as ``nn.MaxPool2d`` for ``kernel_size``, ``stride``, ``padding``."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return max_pool2d(input, self.kernel_size, self.stride, self.padding)


class AvgPool2d(_Pool2d):
    """Average pooling, as ``nn.AvgPool2d`` for ``kernel_size``, ``stride``, ``padding``,
    ``count_include_pad``."""

    def __init__(
        self,
        kernel_size: Pair,
        stride: Pair | None = None,
        padding: Pair = 0,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__(kernel_size, stride, padding)
        self.count_include_pad = count_include_pad

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return avg_pool2d(
            input, self.kernel_size, self.stride, self.padding, self.count_include_pad
        )


# --------------------------------------------------------------------------- the demo

# Hand-made 3x3 filters for the notebook and its demo: edge detectors (Sobel), a blur, identity.
KERNELS: dict[str, tuple[tuple[float, ...], ...]] = {
    "vertical edges": ((1, 0, -1), (2, 0, -2), (1, 0, -1)),
    "horizontal edges": ((1, 2, 1), (0, 0, 0), (-1, -2, -1)),
    "blur": ((1 / 9,) * 3,) * 3,
    "sharpen": ((0, -1, 0), (-1, 5, -1), (0, -1, 0)),
    "identity": ((0, 0, 0), (0, 1, 0), (0, 0, 0)),
}


@dataclass(frozen=True)
class FeatureMapSettings:
    kernel: str = "vertical edges"  # a name from KERNELS
    stride: int = 1
    padding: int = 1
    pool: str = "none"  # "none", "max" or "avg": a 2x2 pooling after the convolution
    digit: int = 0  # which image of the digits data


def kernel(name: str) -> torch.Tensor:
    """The named filter of :data:`KERNELS` as a ``(1, 1, 3, 3)`` weight."""
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; choose one of {sorted(KERNELS)}")
    return torch.tensor(KERNELS[name], dtype=torch.float32).view(1, 1, 3, 3)


def feature_map_demo(
    image: torch.Tensor, settings: FeatureMapSettings | None = None, **changes: Any
) -> dict:
    """One filter over one image ``(1, H, W)`` (or ``(H, W)``), then an optional 2x2 pooling.

    Returns a dict: ``settings``, ``padded`` (the zero-padded image), ``kernel`` ``(3, 3)``,
    ``feature_map`` (the convolution's output), ``pooled`` (after the pooling, or the feature
    map again), and ``shapes`` (image, feature map, pooled: ``(H, W)`` each). A combination
    that leaves no output (a kernel larger than the padded image) is the error that says so.
    """
    s = replace(settings or FeatureMapSettings(), **changes)
    choice(s.pool, "pool", ("none", "max", "avg"))
    x = image.reshape(1, 1, *image.shape[-2:]).float()  # (1, 1, H, W)
    w = kernel(s.kernel)
    fmap = conv2d(x, w, stride=s.stride, padding=s.padding)
    if s.pool == "none" or min(fmap.shape[-2:]) < 2:
        pooled = fmap
    else:
        pooled = (max_pool2d if s.pool == "max" else avg_pool2d)(fmap, 2)
    padded = F.pad(x, (s.padding,) * 4)
    return {
        "settings": s,
        "padded": padded[0, 0],
        "kernel": w[0, 0],
        "feature_map": fmap[0, 0],
        "pooled": pooled[0, 0],
        "shapes": (tuple(x.shape[-2:]), tuple(fmap.shape[-2:]), tuple(pooled.shape[-2:])),
    }
