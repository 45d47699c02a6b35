r"""The fast path of :mod:`dlcourse.conv`: the same convolution and pooling, arranged for speed.

Not taught on its own: :mod:`dlcourse.conv` holds the definitions a learner reads, and its
public functions call this module when ``fast=True`` (their default). The tests check that both
forms give the same outputs and gradients.

**Convolution as one matrix product** (*im2col*; K. Chellapilla, S. Puri, P. Simard, "High
performance convolutional neural networks for document processing", 2006). Gather every window
of the padded input into a matrix with one row per output position and one column per kernel
weight; the convolution is the kernels times that matrix, for each image :math:`n`:

.. math::

    Y_n = W X_{\text{col},n}^\top + b, \qquad X_{\text{col},n} \in \mathbb{R}^{H_o W_o \times
    k_H k_W C},\quad W \in \mathbb{R}^{O \times k_H k_W C},\quad Y_n \in \mathbb{R}^{O \times
    H_o W_o}.

Its backward is written out (:class:`Conv2dFunction`) and is two more products, over all
output positions at once (:math:`G = \partial L/\partial Y`, one row per output position):
:math:`\partial L/\partial W = G^\top X_{\text{col}}` (each output's gradient times the window
it saw) and :math:`\partial L/\partial X_{\text{col}} = G\, W` (each window's share of the
gradient), whose rows are added back where their windows were read (*col2im*).

What makes it fast, measured on a 2-core CPU (``benchmarks/conv.py``):

- The input is copied once, zero-padded, with channels innermost, ``(N, Hp, Wp, C)``: a
  window's values are then ``k_H`` runs of ``k_W C`` contiguous numbers, and gathering them is
  a fast copy (1.7-2.6x as long from ``(N, C, H, W)`` at 16 and 32 channels).
- The forward writes each image's product straight into torch's ``(N, O, Ho, Wo)`` layout (a
  batched product), and keeps its window matrix for the backward's kernel gradient.
- Each window's share of the gradient is computed as one block per kernel position,
  ``(kH, kW, N Ho Wo, C)``, so that each of the ``k_H k_W`` additions back reads contiguous
  memory (laid out window by window, the additions took twice as long at 16 channels and nine
  times as long at one).
- A batch whose window matrix would exceed ``_CHUNK_VALUES`` numbers goes through a chunk of
  images at a time, and the backward then gathers each chunk's windows again. Chunks are for
  memory, not speed: cache-sized chunks measured faster on one idle thread, but slower on two
  threads of a busy machine, where each extra operation waits for the other thread.

**Pooling.** Each kernel position of every window is one strided view of the padded input
(``unfold``); max pooling takes the largest over those views and remembers where it was, so the
backward sends each output's gradient to that one input; average pooling adds the views and
divides.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["Conv1dFunction", "Conv2dFunction", "avg_pool2d", "conv1d", "conv2d", "max_pool2d"]

# Sides of zero padding (top, bottom, left, right), as dlcourse.conv resolves them.
Sides = tuple[int, int, int, int]
Pair = tuple[int, int]

# Numbers in the window matrix handled at once (16 MB of float32). A batch up to this size goes
# through in one piece and its matrix is kept for the backward; beyond, chunk by chunk.
_CHUNK_VALUES = 1 << 22


# --------------------------------------------------------------------------- layouts


def _padded_nhwc(x: torch.Tensor, sides: Sides) -> torch.Tensor:
    """``x`` ``(N, C, H, W)`` zero-padded and laid out as ``(N, Hp, Wp, C)``, channels innermost."""
    top, bottom, left, right = sides
    return F.pad(x.permute(0, 2, 3, 1), (0, 0, left, right, top, bottom)).contiguous()


def _windows(x: torch.Tensor, dims: Pair, kernel: Pair, stride: Pair, dilation=(1, 1)):
    """Every window of ``x`` over its dimensions ``dims`` (height, width), as a view with the
    window's ``(kH, kW)`` appended last, no copy: ``unfold`` slides a span of ``d (k - 1) + 1``
    positions by the stride, ``::d`` keeps the dilated taps. Writing into the view writes into
    ``x`` (col2im adds through it). :func:`dlcourse.conv._windows` is the same for ``(N, C,
    H, W)``."""
    for dim, k, s, d in zip(dims, kernel, stride, dilation, strict=True):
        x = x.unfold(dim, d * (k - 1) + 1, s)[..., ::d]
    return x


def _windows_nhwc(xh: torch.Tensor, kernel: Pair, stride: Pair, dilation: Pair) -> torch.Tensor:
    """Every window of ``xh`` ``(N, Hp, Wp, C)`` as a view ``(N, Ho, Wo, kH, kW, C)``."""
    windows = _windows(xh, (1, 2), kernel, stride, dilation)  # (N, Ho, Wo, C, kH, kW)
    return windows.permute(0, 1, 2, 4, 5, 3)


def _chunks(n: int, values_per_image: int) -> list[tuple[int, int]]:
    """``(first, last)`` ranges of images whose window matrices hold about ``_CHUNK_VALUES``."""
    step = max(1, _CHUNK_VALUES // max(1, values_per_image))
    return [(first, min(n, first + step)) for first in range(0, n, step)]


def _window_shares(g: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Each window's share of the gradient, ``(kH, kW, M, C)``, from the outputs' gradient
    ``g`` ``(M, O)``: for kernel position ``(u, v)``, ``g`` times the weights ``(O, C)`` there.
    One contiguous block per kernel position, so the additions back read contiguous memory."""
    o, c, kh, kw = weight.shape
    if c == 1:  # one product (kH kW, O) x (O, M): the same memory as (kH, kW, M, 1)
        return (weight.view(o, kh * kw).t() @ g.t()).view(kh, kw, -1, 1)
    return torch.matmul(g, weight.permute(2, 3, 0, 1))  # (M, O) x (kH, kW, O, C)


# --------------------------------------------------------------------------- convolution


class Conv2dFunction(torch.autograd.Function):
    """im2col forward and the written-out backward of a 2-D convolution.

    ``forward(x, weight, bias, stride, sides, dilation)``, with ``sides`` the zero padding
    ``(top, bottom, left, right)``; arguments as :func:`dlcourse.conv.conv2d` checks them. The
    windows are gathered with channels innermost, ``(N, Ho, Wo, kH, kW, C)``, so the kernel is
    reordered the same way, ``(O, kH, kW, C)``.
    """

    @staticmethod
    def forward(ctx: Any, x, weight, bias, stride, sides, dilation):  # x: (N, C, H, W)
        o, c, kh, kw = weight.shape
        xh = _padded_nhwc(x, sides)  # (N, Hp, Wp, C)
        windows = _windows_nhwc(xh, (kh, kw), stride, dilation)  # (N, Ho, Wo, kH, kW, C), a view
        n, ho, wo = windows.shape[:3]
        k = kh * kw * c
        w2 = weight.permute(0, 2, 3, 1).reshape(o, k)  # (O, kH kW C), the windows' order
        y = x.new_empty((n, o, ho * wo))  # (N, O, Ho Wo): torch's layout, written directly
        chunks = _chunks(n, ho * wo * k)
        for first, last in chunks:
            # im2col: one row per output position, (images, Ho Wo, kH kW C)
            cols = windows[first:last].reshape(last - first, ho * wo, k)
            # each image's outputs w2 cols^T, (O, Ho Wo), written into y
            if bias is None:
                torch.matmul(w2, cols.transpose(1, 2), out=y[first:last])
            else:
                batch = w2.expand(last - first, o, k)
                torch.baddbmm(bias.view(1, o, 1), batch, cols.transpose(1, 2), out=y[first:last])
        kept = [cols.reshape(-1, k)] if len(chunks) == 1 else []  # one chunk: kept for backward
        ctx.save_for_backward(xh, weight, *kept)
        ctx.geometry = (stride, sides, dilation, chunks)
        ctx.has_bias = bias is not None
        return y.view(n, o, ho, wo)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_y):  # grad_y: (N, O, Ho, Wo)
        xh, weight, *kept = ctx.saved_tensors
        stride, sides, dilation, chunks = ctx.geometry
        o, c, kh, kw = weight.shape
        want_x, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        g = grad_y.permute(0, 2, 3, 1).contiguous()  # (N, Ho, Wo, O)
        ho, wo = g.shape[1:3]
        windows = _windows_nhwc(xh, (kh, kw), stride, dilation)  # (N, Ho, Wo, kH, kW, C)
        grad_xh = torch.zeros_like(xh) if want_x else None  # (N, Hp, Wp, C)
        grad_w2 = weight.new_zeros((o, kh * kw * c)) if want_w else None  # (O, kH kW C)
        for first, last in chunks:
            gc = g[first:last].view(-1, o)  # (images Ho Wo, O)
            if want_w:  # outputs' gradients times the windows they saw
                cols = kept[0] if kept else windows[first:last].reshape(-1, kh * kw * c)
                grad_w2.addmm_(gc.t(), cols)
            if want_x:  # each window's share, added back where it was read (col2im)
                shares = _window_shares(gc, weight).view(kh, kw, last - first, ho, wo, c)
                into = _windows_nhwc(grad_xh[first:last], (kh, kw), stride, dilation)
                for u in range(kh):
                    for v in range(kw):
                        into[:, :, :, u, v] += shares[u, v]  # (images, Ho, Wo, C)
        grad_x = None
        if want_x:
            top, bottom, left, right = sides
            hp, wp = grad_xh.shape[1:3]
            grad_x = grad_xh[:, top : hp - bottom, left : wp - right]  # (N, H, W, C)
            grad_x = grad_x.permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)
        grad_w = None
        if want_w:
            grad_w = grad_w2.view(o, kh, kw, c).permute(0, 3, 1, 2).contiguous()  # (O, C, kH, kW)
        grad_b = g.view(-1, o).sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None, None, None


def conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Pair,
    sides: Sides,
    dilation: Pair,
) -> torch.Tensor:
    """:class:`Conv2dFunction` on arguments :func:`dlcourse.conv.conv2d` has checked."""
    return Conv2dFunction.apply(x, weight, bias, stride, sides, dilation)


class Conv1dFunction(torch.autograd.Function):
    """im2col in one dimension, with its backward written out.

    ``forward(x, weight, bias, stride, sides, dilation)``: ``x`` ``(N, C, L)`` zero-padded by
    ``sides`` ``(left, right)``, ``weight`` ``(O, C, k)``. The windows are gathered with the
    channels first, ``(N, Lo, C, k)``, the kernel's own order, so no reordering is needed.
    The backward is three products' worth of work: ``dW = G^T X_col``, ``db = sum G`` and
    ``dX_col = G W``, whose ``k`` columns are added back where their windows were read, one
    strided slice per tap (col2im); autograd's generic backward of ``unfold`` took several
    times as long for the short signals of MNIST-1D.
    """

    @staticmethod
    def forward(ctx: Any, x, weight, bias, stride, sides, dilation):  # x: (N, C, L)
        o, c, k = weight.shape
        padded = F.pad(x, sides) if any(sides) else x  # (N, C, Lp)
        windows = _windows(padded, (2,), (k,), (stride,), (dilation,))  # (N, C, Lo, k), a view
        n, _, lo, _ = windows.shape
        cols = windows.permute(0, 2, 1, 3).reshape(n * lo, c * k)  # (N Lo, C k): im2col
        w2 = weight.reshape(o, c * k).t()  # (C k, O)
        y = cols @ w2 if bias is None else torch.addmm(bias, cols, w2)  # (N Lo, O)
        ctx.save_for_backward(cols, weight)
        ctx.geometry = (x.shape, padded.shape[2], stride, sides, dilation, lo)
        ctx.has_bias = bias is not None
        return y.view(n, lo, o).transpose(1, 2)  # (N, O, Lo)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_y):  # grad_y: (N, O, Lo)
        cols, weight = ctx.saved_tensors
        (n, c, length), padded_length, stride, sides, dilation, lo = ctx.geometry
        o, _, k = weight.shape
        g = grad_y.transpose(1, 2).reshape(n * lo, o)  # (N Lo, O), rows as in cols
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[1]:
            grad_w = (g.t() @ cols).view(o, c, k)  # (O, C k) -> (O, C, k)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = g.sum(0)
        if ctx.needs_input_grad[0]:
            shares = (g @ weight.reshape(o, c * k)).view(n, lo, c, k)  # each window's share
            shares = shares.permute(3, 0, 2, 1)  # (k, N, C, Lo): one block per tap
            grad_padded = g.new_zeros((n, c, padded_length))
            span = stride * (lo - 1) + 1
            for tap in range(k):  # col2im: tap j of window i read position i s + j d
                start = tap * dilation
                grad_padded[:, :, start : start + span : stride] += shares[tap]
            left = sides[0]
            grad_x = grad_padded[:, :, left : left + length]
        return grad_x, grad_w, grad_b, None, None, None


def conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int,
    sides: tuple[int, int],
    dilation: int,
) -> torch.Tensor:
    """:class:`Conv1dFunction` on arguments :func:`dlcourse.conv.conv1d` has checked: im2col in
    one dimension. Signals are short and have few channels (MNIST-1D: 40 positions, 1 to 25
    channels), so the cost is in the number of operations, not in the arithmetic: about 2x
    faster here than :class:`Conv2dFunction` on one-row images, whose layout pays off on 2-D
    images with many channels."""
    return Conv1dFunction.apply(x, weight, bias, stride, sides, dilation)


# --------------------------------------------------------------------------- pooling


def _pad2(x: torch.Tensor, padding: Pair, value: float = 0.0) -> torch.Tensor:
    ph, pw = padding
    return F.pad(x, (pw, pw, ph, ph), value=value) if ph or pw else x


class _MaxPool2dFunction(torch.autograd.Function):
    """Max pooling: each kernel position of every window as one strided view, the largest over
    them and its place; the backward sends each output's gradient to that place (adding where
    windows overlap)."""

    @staticmethod
    def forward(ctx: Any, x, kernel, stride, padding):  # x: (N, C, H, W)
        xp = _pad2(x, padding, value=-math.inf)  # padding never wins
        windows = _windows(xp, (2, 3), kernel, stride)  # (N, C, Ho, Wo, kH, kW)
        taps = [(u, v) for u in range(kernel[0]) for v in range(kernel[1])]
        pieces = torch.stack([windows[..., u, v] for u, v in taps])  # (kH kW, N, C, Ho, Wo)
        y, place = pieces.max(dim=0)  # (N, C, Ho, Wo): the largest, and the first tap holding it
        # the flat position in the padded map of every window's every tap, by the same view
        positions = torch.arange(xp.shape[2] * xp.shape[3], device=x.device).view(xp.shape[2:])
        positions = _windows(positions, (0, 1), kernel, stride).flatten(-2)  # (Ho, Wo, kH kW)
        flat = positions.expand(*y.shape, len(taps)).gather(-1, place.unsqueeze(-1))
        ctx.save_for_backward(flat.squeeze(-1))  # (N, C, Ho, Wo): where each maximum was
        ctx.geometry = (tuple(xp.shape), padding)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_y):  # (N, C, Ho, Wo)
        (flat,) = ctx.saved_tensors
        (n, c, hp, wp), (ph, pw) = ctx.geometry
        grad = grad_y.new_zeros((n, c, hp * wp))
        grad.scatter_add_(2, flat.view(n, c, -1), grad_y.reshape(n, c, -1))  # to the arg-max
        return grad.view(n, c, hp, wp)[:, :, ph : hp - ph, pw : wp - pw], None, None, None


class _AvgPool2dFunction(torch.autograd.Function):
    """Average pooling: the sum over kernel positions, divided by the window's count."""

    @staticmethod
    def forward(ctx: Any, x, kernel, stride, padding, count_include_pad):  # x: (N, C, H, W)
        windows = _windows(_pad2(x, padding), (2, 3), kernel, stride)  # (N, C, Ho, Wo, kH, kW)
        total = windows[..., 0, 0].clone()
        for u in range(kernel[0]):
            for v in range(kernel[1]):
                if u or v:
                    total += windows[..., u, v]  # (N, C, Ho, Wo)
        if count_include_pad or not any(padding):
            divisor: torch.Tensor | float = float(kernel[0] * kernel[1])
        else:  # count only the input's own values in each window: (Ho, Wo)
            ones = _pad2(x.new_ones(x.shape[2:]), padding)
            divisor = _windows(ones, (0, 1), kernel, stride).sum((-2, -1))
        ctx.divisor = divisor
        ctx.geometry = (tuple(x.shape), kernel, stride, padding)
        return total / divisor

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_y):  # (N, C, Ho, Wo)
        (n, c, h, w), kernel, stride, (ph, pw) = ctx.geometry
        share = grad_y / ctx.divisor  # spread evenly over the window
        grad = grad_y.new_zeros((n, c, h + 2 * ph, w + 2 * pw))
        into = _windows(grad, (2, 3), kernel, stride)  # (N, C, Ho, Wo, kH, kW), a view of grad
        for u in range(kernel[0]):
            for v in range(kernel[1]):
                into[..., u, v] += share
        return grad[:, :, ph : ph + h, pw : pw + w], None, None, None, None


def max_pool2d(x: torch.Tensor, kernel: Pair, stride: Pair, padding: Pair) -> torch.Tensor:
    """:class:`_MaxPool2dFunction` on arguments :func:`dlcourse.conv.max_pool2d` has checked."""
    return _MaxPool2dFunction.apply(x, kernel, stride, padding)


def avg_pool2d(
    x: torch.Tensor, kernel: Pair, stride: Pair, padding: Pair, count_include_pad: bool
) -> torch.Tensor:
    """:class:`_AvgPool2dFunction` on arguments :func:`dlcourse.conv.avg_pool2d` has checked."""
    return _AvgPool2dFunction.apply(x, kernel, stride, padding, count_include_pad)
