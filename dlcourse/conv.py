r"""Convolution and pooling from scratch: the definition in loops, and a fast version for training.

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

**Fast.** :func:`conv2d_loops` is the formula, one output at a time. :func:`conv2d` gathers
every window once (*im2col*: a strided view of the padded input, copied into a matrix with one
row per output position and one column per kernel weight) and multiplies that matrix by the
kernels in one matrix product, which is where the arithmetic goes. Its backward pass is written
out too (:class:`Conv2dFunction`): the kernel's gradient is one more matrix product with the
saved windows, and the input's gradient is each window's share added back where it came from
(*col2im*), one strided addition per kernel position. Autograd through ``unfold`` does the same
arithmetic with far more bookkeeping.

**Pooling** (풀링, 서브샘플링) summarises each window of each map by its maximum or its mean:
fewer positions for the layers after it, the same number of maps. Max pooling's gradient goes
to the window's largest input (the first one, in row-major order, when several tie, as torch
picks on the CPU); average pooling's is spread evenly over the window.

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

__all__ = [
    "KERNELS",
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

# conv2d_loops runs one Python iteration per output value: this many keep it under a second.
LOOPS_MAX_OUTPUTS = 20_000


# --------------------------------------------------------------------------- sizes and checks


def _pair(value: Any, name: str, minimum: int) -> tuple[int, int]:
    """``value`` as two ints >= ``minimum`` (an int means the same for height and width)."""
    pair = (value, value) if isinstance(value, int) else value
    if (
        not isinstance(pair, tuple | list)
        or len(pair) != 2
        or any(isinstance(v, bool) or not isinstance(v, int) for v in pair)
    ):
        raise TypeError(f"{name} must be an int or a pair of ints (height, width), got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return tuple(pair)  # type: ignore[return-value]


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
    for name, value, minimum in (
        ("size", size, 1),
        ("kernel_size", kernel_size, 1),
        ("stride", stride, 1),
        ("padding", padding, 0),
        ("dilation", dilation, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    span = dilation * (kernel_size - 1) + 1  # the window's extent, dilation included
    padded = size + 2 * padding
    if span > padded:
        raise ValueError(
            f"the kernel spans {span} positions but the padded input has {padded} "
            f"(size {size} + 2 x padding {padding}): use a kernel of at most {padded} "
            f"positions, or padding >= {math.ceil((span - size) / 2)}"
        )
    steps, left = divmod(padded - span, stride)
    if exact and left:
        fits = [
            p
            for p in range(padding + 1, padding + stride + 1)
            if (size + 2 * p - span) % stride == 0
        ]
        fit_text = f"padding={fits[0]}" if fits else f"an input of {size + stride - left}"
        raise ValueError(
            f"stride {stride} does not divide (size {size} + 2 x padding {padding} - kernel span "
            f"{span}) = {padded - span}: the last {left} input position(s) are never used. "
            f"{fit_text} would fit exactly"
        )
    return steps + 1


def _spatial(
    x: torch.Tensor, kernel: tuple[int, int], stride, padding, dilation
) -> tuple[int, int]:
    """Output (height, width) of a ``kernel`` window over ``x`` ``(N, C, H, W)``, padded."""
    return tuple(  # type: ignore[return-value]
        _size_or_error(x, dim, k, s, 2 * p, d)
        for dim, k, s, p, d in zip((2, 3), kernel, stride, padding, dilation, strict=True)
    )


def _size_or_error(x: torch.Tensor, dim: int, k: int, s: int, pads: int, d: int) -> int:
    """Output size along ``dim`` with ``pads`` zeros added in all (both sides together)."""
    size = x.shape[dim]
    span = d * (k - 1) + 1
    if span > size + pads:
        which = "height" if dim == 2 else "width"
        raise ValueError(
            f"the kernel's {which} spans {span} positions (kernel {k}, dilation {d}) but the "
            f"input {tuple(x.shape)} has {which} {size}, padded {size + pads}: use a smaller "
            f"kernel, or padding >= {math.ceil((span - size) / 2)} in {which}"
        )
    return (size + pads - span) // s + 1


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


def _resolve_padding(
    padding: Padding, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]
) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` zeros: from an int, a pair, ``"valid"`` or ``"same"``."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise ValueError(f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
        if stride != (1, 1):
            raise ValueError(
                f"padding='same' is not supported for strided convolutions (stride {stride}): "
                "with a stride the output cannot keep the input's size; give the padding as numbers"
            )
        sides: list[int] = []
        for k, d in zip(kernel, dilation, strict=True):
            total = d * (k - 1)  # torch puts the odd one out on the bottom/right
            sides += [total // 2, total - total // 2]
        return tuple(sides)  # type: ignore[return-value]
    ph, pw = _pair(padding, "padding", 0)
    return (ph, ph, pw, pw)


def _pad(x: torch.Tensor, sides: tuple[int, int, int, int], value: float = 0.0) -> torch.Tensor:
    top, bottom, left, right = sides
    if not any(sides):
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


def _padded_nhwc(x: torch.Tensor, sides: tuple[int, int, int, int]) -> torch.Tensor:
    """``x`` ``(N, C, H, W)`` zero-padded and laid out as ``(N, Hp, Wp, C)``: channels innermost,
    so each window's values lie in a few contiguous runs of memory (a fast im2col copy)."""
    top, bottom, left, right = sides
    n, c, h, w = x.shape
    if not any(sides):
        return x.permute(0, 2, 3, 1).contiguous()
    out = x.new_zeros((n, h + top + bottom, w + left + right, c))
    out[:, top : top + h, left : left + w] = x.permute(0, 2, 3, 1)
    return out


def _windows(
    xh: torch.Tensor, kernel: tuple[int, int], stride, dilation, out: tuple[int, int]
) -> torch.Tensor:
    """A view ``(N, Ho, Wo, kH, kW, C)`` of the padded input ``xh`` ``(N, Hp, Wp, C)``: every
    window, without copying (the strides step through ``xh``'s memory)."""
    sn, sh, sw, sc = xh.stride()
    return xh.as_strided(
        (xh.shape[0], out[0], out[1], kernel[0], kernel[1], xh.shape[3]),
        (sn, sh * stride[0], sw * stride[1], sh * dilation[0], sw * dilation[1], sc),
    )


def _add_windows_back(
    grad_windows: torch.Tensor, grad: torch.Tensor, stride, dilation, out: tuple[int, int]
) -> torch.Tensor:
    """col2im: add each window's gradient ``(N, Ho, Wo, kH, kW, C)`` into ``grad``
    ``(N, Hp, Wp, C)`` at the input position it was read from; one strided addition per
    kernel position. Returns ``grad``."""
    kh, kw = grad_windows.shape[3:5]
    rows = stride[0] * (out[0] - 1) + 1
    cols = stride[1] * (out[1] - 1) + 1
    for u in range(kh):
        for v in range(kw):
            r, c = u * dilation[0], v * dilation[1]
            grad[:, r : r + rows : stride[0], c : c + cols : stride[1]] += grad_windows[
                :, :, :, u, v
            ]
    return grad


def _crop(grad: torch.Tensor, sides: tuple[int, int, int, int]) -> torch.Tensor:
    """Drop the padding ``(top, bottom, left, right)`` of ``(N, C, Hp, Wp)``."""
    top, bottom, left, right = sides
    return grad[:, :, top : grad.shape[2] - bottom, left : grad.shape[3] - right]


def _crop_to_nchw(grad: torch.Tensor, sides: tuple[int, int, int, int]) -> torch.Tensor:
    """The inverse of :func:`_padded_nhwc`: drop the padding, back to ``(N, C, H, W)``."""
    top, bottom, left, right = sides
    inner = grad[:, top : grad.shape[1] - bottom, left : grad.shape[2] - right]
    return inner.permute(0, 3, 1, 2).contiguous()


# --------------------------------------------------------------------------- convolution


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
    s, p = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    kernel = (weight.shape[2], weight.shape[3])
    ho, wo = _spatial(input, kernel, s, p, (1, 1))
    n, o = input.shape[0], weight.shape[0]
    if n * o * ho * wo > LOOPS_MAX_OUTPUTS:
        raise ValueError(
            f"conv2d_loops would compute {n * o * ho * wo:,} outputs one by one in Python "
            f"(limit {LOOPS_MAX_OUTPUTS:,}): it is for small examples; use conv2d for real inputs"
        )
    xp = _pad(input, (p[0], p[0], p[1], p[1]))
    out = input.new_zeros((n, o, ho, wo))
    for b in range(n):
        for oc in range(o):
            for i in range(ho):
                for j in range(wo):
                    window = xp[
                        b, :, i * s[0] : i * s[0] + kernel[0], j * s[1] : j * s[1] + kernel[1]
                    ]
                    out[b, oc, i, j] = (window * weight[oc]).sum()  # the sum of products
            if bias is not None:
                out[b, oc] += bias[oc]
    return out


# Values of the window matrix handled at once (16 MB of float32): bounds the memory the
# matrix takes on large inputs. Up to _KEEP_VALUES in all (64 MB), the forward keeps the
# matrices for the backward; beyond, the backward gathers each chunk's windows again.
_CHUNK_VALUES = 1 << 22
_KEEP_VALUES = 1 << 24


class Conv2dFunction(torch.autograd.Function):
    """im2col forward and the written-out backward of a 2-D convolution.

    ``forward(x, weight, bias, stride, sides, dilation)``, with ``sides`` the padding
    ``(top, bottom, left, right)``. The windows are gathered with channels innermost
    (``(N, Ho, Wo, kH, kW, C)``), so the kernel is reordered the same way, ``(O, kH, kW, C)``.
    Both passes go through the batch a chunk of images at a time, so the window matrix (k_H k_W
    times the input's size) never has to exist whole for a large input; the backward reuses the
    forward's matrices when they are small enough to keep, and gathers them again otherwise.
    """

    @staticmethod
    def forward(ctx: Any, x, weight, bias, stride, sides, dilation):  # x: (N, C, H, W)
        n = x.shape[0]
        o, _, kh, kw = weight.shape
        xh = _padded_nhwc(x, sides)  # (N, Hp, Wp, C)
        out = tuple(
            (xh.shape[1 + i] - dilation[i] * (k - 1) - 1) // stride[i] + 1
            for i, k in enumerate((kh, kw))
        )
        w2 = weight.permute(0, 2, 3, 1).reshape(o, -1)  # (O, kH kW C)
        y = x.new_empty((n, out[0], out[1], o))  # (N, Ho, Wo, O)
        keep = n * out[0] * out[1] * w2.shape[1] <= _KEEP_VALUES
        kept = []  # the window matrices, for the backward, when they are small enough
        for first, last in _chunks(n, out[0] * out[1] * w2.shape[1]):
            # (images Ho Wo, kH kW C): one row per output position, one column per weight
            cols = _windows(xh[first:last], (kh, kw), stride, dilation, out)
            cols = cols.reshape(-1, w2.shape[1])
            rows = y[first:last].view(-1, o)
            if bias is None:  # every output of the chunk in one matrix product
                torch.mm(cols, w2.t(), out=rows)
            else:
                torch.addmm(bias, cols, w2.t(), out=rows)
            if keep:
                kept.append(cols)
        ctx.save_for_backward(xh, w2)
        ctx.kept = kept if keep else None
        ctx.geometry = (tuple(weight.shape), stride, sides, dilation, out)
        ctx.has_bias = bias is not None
        return y.permute(0, 3, 1, 2).contiguous()  # (N, O, Ho, Wo), laid out like torch's

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_y):  # grad_y: (N, O, Ho, Wo)
        xh, w2 = ctx.saved_tensors
        (o, c, kh, kw), stride, sides, dilation, out = ctx.geometry
        g = grad_y.permute(0, 2, 3, 1).contiguous()  # (N, Ho, Wo, O)
        want_x, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_xh = torch.zeros_like(xh) if want_x else None  # (N, Hp, Wp, C)
        grad_w2 = torch.zeros_like(w2) if want_w else None  # (O, kH kW C)
        chunks = _chunks(xh.shape[0], out[0] * out[1] * w2.shape[1])
        for i, (first, last) in enumerate(chunks):
            gc = g[first:last].view(-1, o)  # (images Ho Wo, O)
            if want_w:  # outputs' gradients times the windows they saw
                if ctx.kept is not None:
                    cols = ctx.kept[i]
                else:  # gathered again: cheaper than keeping them all
                    cols = _windows(xh[first:last], (kh, kw), stride, dilation, out)
                    cols = cols.reshape(-1, w2.shape[1])
                grad_w2.addmm_(gc.t(), cols)
            if want_x:  # each window's share of the gradient, added back where it was read
                grad_cols = (gc @ w2).view(-1, out[0], out[1], kh, kw, c)
                _add_windows_back(grad_cols, grad_xh[first:last], stride, dilation, out)
        grad_x = _crop_to_nchw(grad_xh, sides) if want_x else None
        grad_w = grad_w2.view(o, kh, kw, c).permute(0, 3, 1, 2).contiguous() if want_w else None
        grad_b = g.view(-1, o).sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None, None, None


def _chunks(n: int, values_per_image: int):
    """``(first, last)`` ranges of images whose window matrices hold about ``_CHUNK_VALUES``."""
    step = max(1, _CHUNK_VALUES // max(1, values_per_image))
    for first in range(0, n, step):
        yield first, min(n, first + step)


def conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: Pair = 1,
    padding: Padding = 0,
    dilation: Pair = 1,
) -> torch.Tensor:
    """2-D convolution of ``input`` ``(N, C, H, W)`` with ``weight`` ``(O, C, kH, kW)``, as
    ``torch.nn.functional.conv2d`` for these arguments (``padding`` an int, a pair,
    ``"valid"`` or ``"same"``). Returns ``(N, O, Ho, Wo)``; see :func:`conv_output_size`."""
    _check_conv_input(input, weight, bias, "conv2d")
    s, d = _pair(stride, "stride", 1), _pair(dilation, "dilation", 1)
    kernel = (weight.shape[2], weight.shape[3])
    sides = _resolve_padding(padding, kernel, s, d)
    for dim, k, before, after, step, dil in (
        (2, kernel[0], sides[0], sides[1], s[0], d[0]),
        (3, kernel[1], sides[2], sides[3], s[1], d[1]),
    ):  # a clear error before any work
        _size_or_error(input, dim, k, step, before + after, dil)
    return Conv2dFunction.apply(input, weight, bias, s, sides, d)


def conv1d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | tuple[int] = 1,
    padding: int | tuple[int] | str = 0,
    dilation: int | tuple[int] = 1,
) -> torch.Tensor:
    """1-D convolution of ``input`` ``(N, C, L)`` with ``weight`` ``(O, C, k)``, as
    ``torch.nn.functional.conv1d``: :func:`conv2d` on signals of height 1."""
    if input.dim() != 3 or weight.dim() != 3:
        raise ValueError(
            f"conv1d expects input (N, C, L) and weight (O, C, k), got {tuple(input.shape)} and "
            f"{tuple(weight.shape)}"
            + (": add the batch dimension with x.unsqueeze(0)" if input.dim() == 2 else "")
        )

    def one(v: Any, name: str) -> int:
        v = v[0] if isinstance(v, tuple | list) and len(v) == 1 else v
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must be an int for conv1d, got {v!r}")
        return v

    pad = padding if isinstance(padding, str) else (0, one(padding, "padding"))
    y = conv2d(
        input.unsqueeze(2),
        weight.unsqueeze(2),
        bias,
        (1, one(stride, "stride")),
        pad,
        (1, one(dilation, "dilation")),
    )
    return y.squeeze(2)


# --------------------------------------------------------------------------- pooling


def _pool_geometry(x: torch.Tensor, kernel_size, stride, padding, where: str):
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
    out = _spatial(x, k, s, p, (1, 1))
    return k, s, p, out


def _window_offsets(kernel: tuple[int, int], stride, out: tuple[int, int]):
    """For each kernel position ``(u, v)``: the row and column slices of the padded input that
    hold that position of every window, so ``xp[:, :, rows, cols]`` is ``(N, C, Ho, Wo)``."""
    for u in range(kernel[0]):
        for v in range(kernel[1]):
            rows = slice(u, u + stride[0] * (out[0] - 1) + 1, stride[0])
            cols = slice(v, v + stride[1] * (out[1] - 1) + 1, stride[1])
            yield u * kernel[1] + v, rows, cols


class _MaxPool2dFunction(torch.autograd.Function):
    """Max pooling: each kernel position of every window as one strided slice, the largest over
    them, and its place; the backward sends each output's gradient to that place (adding
    where windows overlap)."""

    @staticmethod
    def forward(ctx: Any, x, k, s, p, out):  # x: (N, C, H, W)
        xp = _pad(x, (p[0], p[0], p[1], p[1]), value=-math.inf)  # padding never wins
        offsets = list(_window_offsets(k, s, out))
        pieces = torch.stack(
            [xp[:, :, rows, cols] for _, rows, cols in offsets]
        )  # (kH kW, N, C, Ho, Wo)
        y = pieces.amax(dim=0)  # (N, C, Ho, Wo)
        nan = bool(y.isnan().any())  # torch lets a NaN win, and sends it the gradient
        place = torch.full(y.shape, len(offsets) - 1, dtype=torch.long, device=x.device)
        for index in reversed(range(len(offsets) - 1)):  # ends at the first largest
            hit = pieces[index] == y
            place = torch.where(hit | pieces[index].isnan() if nan else hit, index, place)
        # the arg-max's flat position in the padded map: the window's corner + its offset
        corner = (
            torch.arange(out[0], device=x.device).view(-1, 1) * s[0] * xp.shape[3]
            + torch.arange(out[1], device=x.device) * s[1]
        )  # (Ho, Wo)
        offset = torch.tensor(
            [u * xp.shape[3] + v for u in range(k[0]) for v in range(k[1])], device=x.device
        )
        ctx.save_for_backward(corner + offset[place])  # (N, C, Ho, Wo)
        ctx.geometry = (tuple(xp.shape), p)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_y):  # (N, C, Ho, Wo)
        (flat,) = ctx.saved_tensors
        (n, c, hp, wp), p = ctx.geometry
        grad = grad_y.new_zeros((n, c, hp * wp))
        grad.scatter_add_(2, flat.view(n, c, -1), grad_y.reshape(n, c, -1))  # to the arg-max
        grad = _crop(grad.view(n, c, hp, wp), (p[0], p[0], p[1], p[1]))
        return grad, None, None, None, None


def max_pool2d(
    input: torch.Tensor, kernel_size: Pair, stride: Pair | None = None, padding: Pair = 0
) -> torch.Tensor:
    """The largest value of each window of each map, as ``torch.nn.functional.max_pool2d`` for
    these arguments (``stride`` defaults to ``kernel_size``; padding is ``-inf``, at most half
    the kernel). The gradient goes to each window's arg-max, the first in row-major order
    when values tie (as torch picks on the CPU)."""
    k, s, p, out = _pool_geometry(input, kernel_size, stride, padding, "max_pool2d")
    return _MaxPool2dFunction.apply(input, k, s, p, out)


class _AvgPool2dFunction(torch.autograd.Function):
    """Average pooling: the sum over kernel positions, divided by the window's count."""

    @staticmethod
    def forward(ctx: Any, x, k, s, p, out, count_include_pad):
        sides = (p[0], p[0], p[1], p[1])
        xp = _pad(x, sides)
        total = None
        for _, rows, cols in _window_offsets(k, s, out):
            piece = xp[:, :, rows, cols]
            total = piece.clone() if total is None else total.add_(piece)
        if count_include_pad or not any(p):
            divisor: torch.Tensor | float = float(k[0] * k[1])
        else:  # count only the input's own values in each window
            inside = _pad(x.new_ones((1, 1, *x.shape[2:])), sides)
            divisor = sum(inside[:, :, r, c] for _, r, c in _window_offsets(k, s, out))
        ctx.divisor = divisor
        ctx.geometry = (tuple(xp.shape), k, s, sides, out)
        return total / divisor

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_y):
        padded_shape, k, s, sides, out = ctx.geometry
        share = grad_y / ctx.divisor  # spread evenly over the window
        grad = grad_y.new_zeros(padded_shape)
        for _, rows, cols in _window_offsets(k, s, out):
            grad[:, :, rows, cols] += share
        return _crop(grad, sides), None, None, None, None, None


def avg_pool2d(
    input: torch.Tensor,
    kernel_size: Pair,
    stride: Pair | None = None,
    padding: Pair = 0,
    count_include_pad: bool = True,
) -> torch.Tensor:
    """The mean of each window of each map, as ``torch.nn.functional.avg_pool2d`` for these
    arguments (``stride`` defaults to ``kernel_size``; with ``count_include_pad`` the padding
    zeros count in the mean, torch's default)."""
    k, s, p, out = _pool_geometry(input, kernel_size, stride, padding, "avg_pool2d")
    return _AvgPool2dFunction.apply(input, k, s, p, out, count_include_pad)


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
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")

        def tup(v: Any, name: str, minimum: int) -> tuple[int, ...]:
            t = (v,) * self._dims if isinstance(v, int) else tuple(v)
            if len(t) != self._dims or any(
                isinstance(i, bool) or not isinstance(i, int) for i in t
            ):
                raise TypeError(f"{name} must be an int or {self._dims} ints, got {v!r}")
            if min(t) < minimum:
                raise ValueError(f"{name} must be >= {minimum}, got {v!r}")
            return t

        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = tup(kernel_size, "kernel_size", 1)
        self.stride = tup(stride, "stride", 1)
        self.dilation = tup(dilation, "dilation", 1)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"padding must be 'same', 'valid' or numbers, got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
            self.padding: tuple[int, ...] | str = padding
        else:
            self.padding = tup(padding, "padding", 0)
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
        padding = self.padding if isinstance(self.padding, str) else self.padding[0]
        return conv1d(input, self.weight, self.bias, self.stride[0], padding, self.dilation[0])


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
    if s.pool not in ("none", "max", "avg"):
        raise ValueError(f"pool must be 'none', 'max' or 'avg', got {s.pool!r}")
    x = image.reshape(1, 1, *image.shape[-2:]).float()
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
