r"""Exercises of ``notebooks/06_convolutional_networks.ipynb``: the output-size formula, a
single-channel convolution, a multi-channel convolution and its backward pass, and max pooling
forward and backward (see :mod:`dlcourse.conv`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dlcourse.exercises.engine import Exercise, Wrong
from dlcourse.i18n import N_

# --------------------------------------------------------------------------- the output size


def output_size(size, kernel_size, stride, padding):
    r"""How many positions a window of ``kernel_size`` takes along ``size`` inputs padded with
    ``padding`` zeros on each side and moved by ``stride``:
    :math:`\lfloor (\text{size} + 2p - k) / s \rfloor + 1`."""
    return (size + 2 * padding - kernel_size) // stride + 1


def _size_cases(gen: torch.Generator) -> list[tuple]:
    fixed = [
        (28, 5, 1, 2),  # "same"
        (28, 5, 1, 0),  # shrinks by k - 1
        (8, 2, 2, 0),  # a 2x2 pooling halves
        (7, 3, 2, 0),  # odd size, divides exactly
        (8, 3, 2, 1),  # stride 2 leaves a position out: floor
        (13, 4, 3, 1),
        (5, 5, 1, 0),  # the kernel as large as the input: one position
        (1, 3, 1, 1),  # a single pixel, padded
    ]
    drawn = []
    for _ in range(4):
        k, s, p = (int(v) for v in torch.randint(1, 4, (3,), generator=gen))
        size = int(torch.randint(k, 30, (1,), generator=gen))
        drawn.append((size, k, s, p - 1))
    return fixed + drawn


def _size_padding_once(size, kernel_size, stride, padding):
    return (size + padding - kernel_size) // stride + 1


def _size_no_floor(size, kernel_size, stride, padding):
    return (size + 2 * padding - kernel_size) / stride + 1


def _size_no_stride(size, kernel_size, stride, padding):
    return size + 2 * padding - kernel_size + 1


def _size_ceil(size, kernel_size, stride, padding):
    return -(-(size + 2 * padding - kernel_size) // stride) + 1


def _size_loop(size, kernel_size, stride, padding):
    positions, start = 0, 0
    while start + kernel_size <= size + 2 * padding:  # slide the window until it falls off
        positions += 1
        start += stride
    return positions


OUTPUT_SIZE = Exercise(
    name="output_size",
    notebook=6,
    task=(
        N_(
            "Write `output_size(size, kernel_size, stride, padding)`: the number of positions a "
            "window of `kernel_size` takes along `size` input positions that are padded with "
            "`padding` zeros on each side, the window moving by `stride` each step and never "
            "hanging over the edge. Return an int."
        )
    ),
    reference=output_size,
    cases=_size_cases,
    wrong=(
        Wrong(
            _size_padding_once,
            N_("The padding goes on both sides: the padded length is size + 2 * padding."),
        ),
        Wrong(
            _size_no_floor,
            N_(
                "A window either fits or it does not: when the stride does not divide the "
                "distance exactly, the last partial step is dropped. Use floor division, //, so "
                "the answer is a whole number."
            ),
        ),
        Wrong(
            _size_no_stride,
            N_(
                "The window moves `stride` positions each step, so the number of steps is the "
                "distance it can travel divided by the stride."
            ),
        ),
        Wrong(
            _size_ceil,
            N_(
                "Rounding up counts a last window that hangs over the edge of the padded input; "
                "round down (//) instead."
            ),
        ),
    ),
    hints=(
        N_(
            "Count the window's possible start positions: the first is 0, the last must leave room "
            "for the whole window inside the padded input."
        ),
        N_(
            "The padded input has size + 2 * padding positions; a window starting at t covers t to "
            "t + kernel_size - 1."
        ),
        N_("(size + 2 * padding - kernel_size) // stride steps, plus the first position."),
    ),
    alternatives=(_size_loop,),
)


# --------------------------------------------------------------------------- a convolution


def conv2d_single(x, kernel, bias, stride, padding):
    r"""Convolve one single-channel image ``x`` ``(H, W)`` with ``kernel`` ``(kH, kW)`` as deep
    learning does (cross-correlation: the kernel is not flipped), after ``padding`` zeros on
    every side, moving by ``stride``, plus the number ``bias``:
    ``out[i, j] = bias + sum_{u, v} kernel[u, v] * xp[i * stride + u, j * stride + v]``."""
    kh, kw = kernel.shape
    xp = torch.zeros(
        (x.shape[0] + 2 * padding, x.shape[1] + 2 * padding), dtype=x.dtype, device=x.device
    )
    xp[padding : padding + x.shape[0], padding : padding + x.shape[1]] = x
    ho = (xp.shape[0] - kh) // stride + 1
    wo = (xp.shape[1] - kw) // stride + 1
    out = torch.empty((ho, wo), dtype=x.dtype, device=x.device)
    for i in range(ho):
        for j in range(wo):
            window = xp[i * stride : i * stride + kh, j * stride : j * stride + kw]
            out[i, j] = (window * kernel).sum() + bias
    return out


def _conv_cases(gen: torch.Generator) -> list[tuple]:
    def case(h, w, kh, kw, bias, stride, padding, dtype=torch.float64):
        x = torch.randn(h, w, generator=gen, dtype=torch.float64).to(dtype)
        k = torch.randn(kh, kw, generator=gen, dtype=torch.float64).to(dtype)
        return x, k, bias, stride, padding

    return [
        case(6, 6, 3, 3, 0.0, 1, 0),
        case(6, 7, 3, 3, 0.5, 1, 1),  # "same" for a 3x3 kernel
        case(8, 8, 3, 3, -1.0, 2, 1),
        case(7, 5, 2, 3, 0.25, 1, 0),  # not square, kernel not square (so flipping shows)
        case(9, 9, 3, 3, 0.0, 3, 0),
        case(5, 5, 5, 5, 1.0, 1, 0),  # one output
        case(4, 6, 1, 1, 0.0, 1, 0),  # a 1x1 kernel
        case(1, 6, 1, 3, 0.5, 1, 0),  # an image of one row
        case(8, 8, 3, 3, 0.1, 2, 2, torch.float32),
    ]


def _conv_flipped(x, kernel, bias, stride, padding):
    return conv2d_single(x, kernel.flip(0, 1), bias, stride, padding)  # true convolution


def _conv_padding_short(x, kernel, bias, stride, padding):
    if padding == 0:
        return conv2d_single(x, kernel, bias, stride, padding) + 0.0
    xp = torch.zeros((x.shape[0] + padding, x.shape[1] + padding), dtype=x.dtype)
    xp[padding:, padding:] = x  # zeros on the top and left only
    return conv2d_single(xp, kernel, bias, stride, 0)


def _conv_padding_more(x, kernel, bias, stride, padding):
    return conv2d_single(x, kernel, bias, stride, padding + 1)


def _conv_no_stride(x, kernel, bias, stride, padding):
    return conv2d_single(x, kernel, bias, 1, padding)


def _conv_bias_per_row(x, kernel, bias, stride, padding):
    # the bias added inside the loop over the kernel's rows: kH times
    return conv2d_single(x, kernel, bias * kernel.shape[0], stride, padding)


def _conv_unfold(x, kernel, bias, stride, padding):
    kh, kw = kernel.shape
    cols = F.unfold(x[None, None], (kh, kw), padding=padding, stride=stride)  # (1, kH kW, L)
    ho = (x.shape[0] + 2 * padding - kh) // stride + 1
    return (kernel.reshape(1, -1) @ cols[0] + bias).reshape(ho, -1)


CONV2D_SINGLE = Exercise(
    name="conv2d_single",
    notebook=6,
    task=(
        N_(
            "Write `conv2d_single(x, kernel, bias, stride, padding)` for one image `x` `(H, "
            "W)`, a `kernel` `(kH, kW)`, a number `bias`, and ints `stride` and `padding`: add "
            "`padding` zeros on every side of `x` (call the result `xp`), then `out[i, j] = "
            "bias + sum over u, v of kernel[u, v] * xp[i * stride + u, j * stride + v]` for "
            "every position where the kernel fits. Do not flip the kernel (deep learning's "
            "convolution is a cross-correlation). Return `out` `(Ho, Wo)`, without calling "
            "torch's convolutions."
        )
    ),
    reference=conv2d_single,
    cases=_conv_cases,
    grad=True,
    forbidden=(F.conv2d, torch.conv2d, F.conv1d, torch.conv1d),
    wrong=(
        Wrong(
            _conv_flipped,
            N_(
                "Your kernel is flipped (the textbook convolution). Deep learning's convolution "
                "multiplies kernel[u, v] with xp[i * stride + u, j * stride + v]: the kernel as "
                "it is, top-left with top-left."
            ),
        ),
        Wrong(
            _conv_padding_short,
            N_(
                "The padding goes on all four sides, `padding` zeros each: xp has shape "
                "(H + 2 * padding, W + 2 * padding), with x at xp[padding:padding + H, "
                "padding:padding + W]."
            ),
        ),
        Wrong(
            _conv_padding_more,
            N_("One row and column of zeros too many on each side: pad by exactly `padding`."),
        ),
        Wrong(
            _conv_no_stride,
            N_(
                "The window moves `stride` positions at a time: output (i, j) starts at row "
                "i * stride and column j * stride, and there are (H + 2p - kH) // stride + 1 rows."
            ),
        ),
        Wrong(
            _conv_bias_per_row,
            N_(
                "The bias is added once per output value, after the sum over the whole window, "
                "not once per kernel row."
            ),
        ),
    ),
    hints=(
        N_(
            "Make xp with torch.zeros and copy x into its middle; then compute the output size "
            "with your output_size formula."
        ),
        N_(
            "Two loops over the output positions (i, j); the window is xp[i * stride : i * stride "
            "+ kH, j * stride : j * stride + kW]."
        ),
        N_("out[i, j] = (window * kernel).sum() + bias; build out with dtype=x.dtype."),
    ),
    alternatives=(_conv_unfold,),
)


# --------------------------------------------------------------------------- several channels


def conv2d_multi(x, weight, bias):
    r"""The convolution of a real layer: a batch ``x`` ``(N, C_in, H, W)``, ``weight``
    ``(C_out, C_in, kH, kW)`` and ``bias`` ``(C_out,)``; stride 1, no padding. Output channel
    ``o`` sums over every input channel ``c`` (cross-correlation: the kernel is not flipped):

    .. math::
        y_{n,o,i,j} = b_o + \sum_{c}\sum_{u,v} w_{o,c,u,v}\, x_{n,c,i+u,j+v} .

    Returns ``y`` ``(N, C_out, H - kH + 1, W - kW + 1)``; torch's counterpart is
    ``F.conv2d(x, weight, bias)``."""
    n, _, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    ho, wo = h - kh + 1, w - kw + 1
    out = torch.empty((n, c_out, ho, wo), dtype=x.dtype, device=x.device)
    for i in range(ho):
        for j in range(wo):
            window = x[:, :, i : i + kh, j : j + kw]  # (N, C_in, kH, kW)
            # (N, 1, C_in, kH, kW) * (1, C_out, C_in, kH, kW), summed over C_in, kH, kW
            out[:, :, i, j] = (window[:, None] * weight[None]).sum(dim=(2, 3, 4)) + bias
    return out


def _multi_cases(gen: torch.Generator) -> list[tuple]:
    def case(n, c_in, h, w, c_out, kh, kw, dtype=torch.float64):
        x = torch.randn(n, c_in, h, w, generator=gen, dtype=torch.float64).to(dtype)
        weight = torch.randn(c_out, c_in, kh, kw, generator=gen, dtype=torch.float64).to(dtype)
        bias = torch.randn(c_out, generator=gen, dtype=torch.float64).to(dtype)
        return x, weight, bias

    return [
        case(2, 3, 5, 6, 4, 3, 3),  # three channels in, four out
        case(2, 2, 6, 5, 3, 2, 3),  # a kernel that is not square (so flipping shows)
        case(1, 1, 5, 5, 2, 3, 3),  # a batch of one, one channel in
        case(3, 4, 4, 4, 2, 1, 1),  # a 1x1 convolution: a linear map across channels
        case(1, 3, 3, 3, 5, 3, 3),  # the kernel as large as the input: one position
        case(2, 2, 6, 6, 2, 3, 3, torch.float32),
    ]


def _multi_flipped(x, weight, bias):
    return conv2d_multi(x, weight.flip(2, 3), bias)  # the textbook convolution


def _multi_bias_per_channel_in(x, weight, bias):
    # a single-channel convolution per input channel, each with the bias, then summed
    return conv2d_multi(x, weight, bias * x.shape[1])


def _multi_one_bias(x, weight, bias):
    return conv2d_multi(x, weight, bias[0].expand_as(bias))  # the first bias everywhere


def _multi_mean_over_channels(x, weight, bias):
    out = conv2d_multi(x, weight, torch.zeros_like(bias))
    return out / x.shape[1] + bias[:, None, None]  # the channels averaged, not added


def _multi_unfold(x, weight, bias):
    n, _, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    cols = F.unfold(x, (kh, kw))  # (N, C_in kH kW, L): one column per window
    out = weight.reshape(c_out, -1) @ cols + bias[:, None]  # (N, C_out, L)
    return out.reshape(n, c_out, h - kh + 1, w - kw + 1)


def _multi_einsum(x, weight, bias):
    kh, kw = weight.shape[2:]
    windows = x.unfold(2, kh, 1).unfold(3, kw, 1)  # (N, C_in, Ho, Wo, kH, kW), a view
    return torch.einsum("ncijuv,ocuv->noij", windows, weight) + bias[:, None, None]


def _multi_by_channels(x, weight, bias):
    # one sum of single-channel convolutions per output channel, as the formula reads
    n, c_in, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    maps = []
    for o in range(c_out):
        acc = torch.zeros((n, h - kh + 1, w - kw + 1), dtype=x.dtype, device=x.device)
        for c in range(c_in):
            for u in range(kh):
                for v in range(kw):
                    acc = acc + weight[o, c, u, v] * x[:, c, u : u + h - kh + 1, v : v + w - kw + 1]
        maps.append(acc + bias[o])
    return torch.stack(maps, dim=1)


CONV2D_MULTI = Exercise(
    name="conv2d_multi",
    notebook=6,
    task=(
        N_(
            "Write `conv2d_multi(x, weight, bias)` for a batch `x` `(N, C_in, H, W)`, `weight` "
            "`(C_out, C_in, kH, kW)` and `bias` `(C_out,)`, stride 1 and no padding: "
            "`out[n, o, i, j] = bias[o] + sum over c, u, v of weight[o, c, u, v] * "
            "x[n, c, i + u, j + v]`, for every position where the kernel fits. Do not flip the "
            "kernel. Return `out` `(N, C_out, H - kH + 1, W - kW + 1)`, without calling torch's "
            "convolutions."
        )
    ),
    reference=conv2d_multi,
    cases=_multi_cases,
    grad=True,
    forbidden=(F.conv2d, torch.conv2d, F.conv1d, torch.conv1d, F.conv_transpose2d),
    wrong=(
        Wrong(
            _multi_flipped,
            N_(
                "Your kernel is flipped (the textbook convolution). Deep learning's convolution "
                "multiplies weight[o, c, u, v] with x[n, c, i + u, j + v]: the kernel as it is, "
                "top-left with top-left."
            ),
        ),
        Wrong(
            _multi_bias_per_channel_in,
            N_(
                "The bias is added C_in times: once per input channel. An output channel has one "
                "bias, added once after the sum over all input channels and the whole window."
            ),
        ),
        Wrong(
            _multi_one_bias,
            N_(
                "Every output channel gets the same bias. Each output channel o has its own, "
                "bias[o]: add bias[o] to map o (bias[:, None, None] against (C_out, Ho, Wo))."
            ),
        ),
        Wrong(
            _multi_mean_over_channels,
            N_(
                "The input channels are averaged. An output channel adds up the products over "
                "every input channel, as it adds them over the window: a sum, not a mean."
            ),
        ),
    ),
    hints=(
        N_(
            "It is conv2d_single with one more sum: over the input channels. Output channel o "
            "uses its own kernels weight[o] (C_in, kH, kW), one per input channel, and its own "
            "bias[o]."
        ),
        N_(
            "Loop over the output positions (i, j); the window x[:, :, i : i + kH, j : j + kW] is "
            "(N, C_in, kH, kW), the same for every output channel."
        ),
        N_(
            "(window[:, None] * weight[None]) is (N, C_out, C_in, kH, kW): sum it over dims 2, 3 "
            "and 4 and add bias to get out[:, :, i, j], (N, C_out)."
        ),
    ),
    alternatives=(_multi_unfold, _multi_einsum, _multi_by_channels),
)


# --------------------------------------------------------------------------- its backward pass


def conv2d_backward(x, weight, grad_output):
    r"""The backward pass of :func:`conv2d_multi` (stride 1, no padding): given the gradient
    ``grad_output`` ``(N, C_out, Ho, Wo)`` of the loss with respect to its output, return
    ``(grad_x, grad_weight, grad_bias)``, shaped like ``x``, ``weight`` and ``(C_out,)``.

    Output :math:`y_{n,o,i,j}` is a sum of products :math:`w_{o,c,u,v}\, x_{n,c,i+u,j+v}`
    and :math:`b_o`, so its gradient :math:`g_{n,o,i,j}` reaches each factor times the other,
    added up over every output it took part in:

    .. math::
        \frac{\partial L}{\partial b_o} = \sum_{n,i,j} g_{n,o,i,j},\quad
        \frac{\partial L}{\partial w_{o,c,u,v}} = \sum_{n,i,j} g_{n,o,i,j}\, x_{n,c,i+u,j+v},\quad
        \frac{\partial L}{\partial x_{n,c,i+u,j+v}} \mathrel{+}= \sum_{o} g_{n,o,i,j}\,
        w_{o,c,u,v} .

    (The weight's gradient is a cross-correlation of the input with ``grad_output``; the
    input's, a full convolution of ``grad_output`` with the kernel turned by 180 degrees.)
    torch's counterpart: the gradients autograd computes for ``F.conv2d(x, weight, bias)``."""
    _, _, kh, kw = weight.shape
    ho, wo = grad_output.shape[2:]
    grad_x = torch.zeros_like(x)
    grad_weight = torch.zeros_like(weight)
    for i in range(ho):
        for j in range(wo):
            g = grad_output[:, :, i, j][:, :, None, None, None]  # (N, C_out, 1, 1, 1)
            window = x[:, :, i : i + kh, j : j + kw]  # (N, C_in, kH, kW)
            grad_weight += (g * window[:, None]).sum(dim=0)  # every example adds its share
            grad_x[:, :, i : i + kh, j : j + kw] += (g * weight[None]).sum(dim=1)  # windows overlap
    grad_bias = grad_output.sum(dim=(0, 2, 3))  # the bias was added at every position
    return grad_x, grad_weight, grad_bias


def _backward_cases(gen: torch.Generator) -> list[tuple]:
    def case(n, c_in, h, w, c_out, kh, kw, dtype=torch.float64):
        x = torch.randn(n, c_in, h, w, generator=gen, dtype=torch.float64).to(dtype)
        weight = torch.randn(c_out, c_in, kh, kw, generator=gen, dtype=torch.float64).to(dtype)
        g = torch.randn(n, c_out, h - kh + 1, w - kw + 1, generator=gen, dtype=torch.float64)
        return x, weight, g.to(dtype)

    return [
        case(2, 3, 5, 6, 4, 3, 3),
        case(2, 2, 6, 5, 3, 2, 3),  # a kernel that is not square (so flipping shows)
        case(1, 1, 5, 5, 2, 3, 3),  # a batch of one, one channel in
        case(3, 4, 4, 4, 2, 1, 1),  # 1x1: no windows overlap
        case(1, 3, 3, 3, 5, 3, 3),  # one output position
        case(2, 2, 6, 6, 2, 3, 3, torch.float32),
    ]


def _backward_bias_mean(x, weight, grad_output):
    grad_x, grad_weight, _ = conv2d_backward(x, weight, grad_output)
    return grad_x, grad_weight, grad_output.mean(dim=(0, 2, 3))


def _backward_weight_mean(x, weight, grad_output):
    grad_x, grad_weight, grad_bias = conv2d_backward(x, weight, grad_output)
    return grad_x, grad_weight / x.shape[0], grad_bias


def _backward_input_flipped(x, weight, grad_output):
    grad_x, grad_weight, grad_bias = conv2d_backward(x, weight.flip(2, 3), grad_output)
    _, grad_weight, _ = conv2d_backward(x, weight, grad_output)
    return grad_x, grad_weight, grad_bias


def _backward_overwrite(x, weight, grad_output):
    _, grad_weight, grad_bias = conv2d_backward(x, weight, grad_output)
    kh, kw = weight.shape[2:]
    grad_x = torch.zeros_like(x)
    for i in range(grad_output.shape[2]):
        for j in range(grad_output.shape[3]):
            g = grad_output[:, :, i, j][:, :, None, None, None]
            grad_x[:, :, i : i + kh, j : j + kw] = (g * weight[None]).sum(dim=1)  # = : lost
    return grad_x, grad_weight, grad_bias


def _backward_im2col(x, weight, grad_output):
    n, _, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    cols = F.unfold(x, (kh, kw))  # (N, C_in kH kW, L)
    g = grad_output.reshape(n, c_out, -1)  # (N, C_out, L)
    grad_weight = (g @ cols.transpose(1, 2)).sum(dim=0).reshape(weight.shape)
    grad_cols = weight.reshape(c_out, -1).T @ g  # (N, C_in kH kW, L)
    grad_x = F.fold(grad_cols, (h, w), (kh, kw))  # adds overlapping windows back up
    return grad_x, grad_weight, g.sum(dim=(0, 2))


def _backward_einsum(x, weight, grad_output):
    kh, kw = weight.shape[2:]
    ho, wo = grad_output.shape[2:]
    windows = x.unfold(2, kh, 1).unfold(3, kw, 1)  # (N, C_in, Ho, Wo, kH, kW)
    grad_weight = torch.einsum("noij,ncijuv->ocuv", grad_output, windows)
    grad_x = torch.zeros_like(x)
    for u in range(kh):
        for v in range(kw):  # each kernel tap sends grad_output back, shifted by (u, v)
            grad_x[:, :, u : u + ho, v : v + wo] += torch.einsum(
                "noij,oc->ncij", grad_output, weight[:, :, u, v]
            )
    return grad_x, grad_weight, grad_output.sum(dim=(0, 2, 3))


def _backward_autograd(x, weight, grad_output):
    # autograd through a forward in plain operations (allowed: it is still no convolution call)
    x, weight = x.detach().requires_grad_(True), weight.detach().requires_grad_(True)
    bias = torch.zeros(weight.shape[0], dtype=x.dtype, device=x.device, requires_grad=True)
    out = _multi_einsum(x, weight, bias)
    return torch.autograd.grad(out, (x, weight, bias), grad_output)


CONV2D_BACKWARD = Exercise(
    name="conv2d_backward",
    notebook=6,
    task=(
        N_(
            "Write `conv2d_backward(x, weight, grad_output)`, the backward pass of your "
            "`conv2d_multi` (stride 1, no padding): `grad_output` `(N, C_out, Ho, Wo)` is the "
            "gradient of the loss with respect to the convolution's output; return `(grad_x, "
            "grad_weight, grad_bias)`, the gradients with respect to `x` `(N, C_in, H, W)`, "
            "`weight` `(C_out, C_in, kH, kW)` and the bias `(C_out,)`, without calling torch's "
            "convolutions."
        )
    ),
    reference=conv2d_backward,
    cases=_backward_cases,
    forbidden=(F.conv2d, torch.conv2d, F.conv1d, torch.conv1d, F.conv_transpose2d),
    wrong=(
        Wrong(
            _backward_bias_mean,
            N_(
                "grad_bias is averaged. The bias was added to every output of its channel, at "
                "every position of every example, and each of those outputs sends its gradient "
                "back to it: add them up (sum over dims 0, 2 and 3)."
            ),
        ),
        Wrong(
            _backward_weight_mean,
            N_(
                "grad_weight is divided by the batch size. The same kernel served every example, "
                "so each example's share is added; any averaging over the batch is already in "
                "grad_output (the loss's mean put it there)."
            ),
        ),
        Wrong(
            _backward_input_flipped,
            N_(
                "grad_x uses the kernel flipped. In the forward pass x[n, c, i + u, j + v] was "
                "multiplied by weight[o, c, u, v], so that is the weight its gradient comes back "
                "through: the same (u, v), not (kH - 1 - u, kW - 1 - v). (Written as a full "
                "convolution of grad_output the kernel is turned; written as a scatter from each "
                "window, as here, it is not.)"
            ),
        ),
        Wrong(
            _backward_overwrite,
            N_(
                "Neighbouring windows overlap, so one input pixel took part in several outputs: "
                "its gradient is the sum over all of them. Add (+=) into grad_x instead of "
                "assigning."
            ),
        ),
    ),
    hints=(
        N_(
            "Go through the forward pass's output positions (i, j) again. Output (n, o, i, j) was "
            "bias[o] plus products weight[o, c, u, v] * x[n, c, i + u, j + v]: its gradient "
            "grad_output[n, o, i, j] reaches each factor multiplied by the other one."
        ),
        N_(
            "grad_bias: the sum of grad_output over everything but the channel. grad_weight: at "
            "each (i, j), add grad_output[:, :, i, j] times the window x[:, :, i : i + kH, j : "
            "j + kW], summed over the batch."
        ),
        N_(
            "grad_x[:, :, i : i + kH, j : j + kW] += (grad_output[:, :, i, j][:, :, None, None, "
            "None] * weight[None]).sum(dim=1), starting from torch.zeros_like(x)."
        ),
    ),
    alternatives=(_backward_im2col, _backward_einsum, _backward_autograd),
)


# --------------------------------------------------------------------------- max pooling


def max_pool_forward_backward(x, grad_output, kernel_size, stride):
    r"""Max pooling of one map ``x`` ``(H, W)`` with square windows of ``kernel_size`` moved by
    ``stride`` (no padding), and its backward pass. Returns ``(out, grad_x)``: ``out[i, j]``
    the largest value of window ``(i, j)``; ``grad_x`` the gradient with respect to ``x`` given
    ``grad_output`` ``(Ho, Wo)``: each output's gradient goes to the position of its window's
    largest value (the first in row-major order when several tie), added up where windows
    overlap."""
    k, s = kernel_size, stride
    ho, wo = (x.shape[0] - k) // s + 1, (x.shape[1] - k) // s + 1
    out = torch.empty((ho, wo), dtype=x.dtype, device=x.device)
    grad_x = torch.zeros_like(x)
    for i in range(ho):
        for j in range(wo):
            window = x[i * s : i * s + k, j * s : j * s + k]
            place = int(window.reshape(-1).argmax())  # the first largest
            u, v = divmod(place, k)
            out[i, j] = window[u, v]
            grad_x[i * s + u, j * s + v] += grad_output[i, j]
    return out, grad_x


def _pool_cases(gen: torch.Generator) -> list[tuple]:
    def case(h, w, k, s, ties=False, dtype=torch.float64):
        if ties:  # few distinct values: windows with several largest
            x = torch.randint(0, 3, (h, w), generator=gen).to(dtype)
        else:
            x = torch.randn(h, w, generator=gen, dtype=torch.float64).to(dtype)
        ho, wo = (h - k) // s + 1, (w - k) // s + 1
        g = torch.randn(ho, wo, generator=gen, dtype=torch.float64).to(dtype)
        return x, g, k, s

    return [
        case(4, 4, 2, 2),
        case(6, 8, 2, 2),
        case(7, 7, 3, 2),  # overlapping windows
        case(5, 5, 3, 1),  # overlapping a lot
        case(5, 7, 2, 2),  # odd sizes: the last row and column are left out
        case(6, 6, 2, 2, ties=True),
        case(6, 6, 3, 1, ties=True),
        case(2, 2, 2, 2),  # one window
        case(1, 5, 1, 1),  # one row, 1x1 windows: the identity
        case(8, 8, 2, 2, dtype=torch.float32),
    ]


def _pool_spread(x, grad_output, kernel_size, stride):
    out, _ = max_pool_forward_backward(x, grad_output, kernel_size, stride)
    _, grad_avg = _pool_average(x, grad_output, kernel_size, stride)
    return out, grad_avg


def _pool_windows(x, k, s):
    """``(i, j, rows, cols)`` for every window of the wrong variants below."""
    ho, wo = (x.shape[0] - k) // s + 1, (x.shape[1] - k) // s + 1
    for i in range(ho):
        for j in range(wo):
            yield i, j, slice(i * s, i * s + k), slice(j * s, j * s + k)


def _pool_average(x, grad_output, kernel_size, stride):
    k, s = kernel_size, stride
    out = torch.empty(((x.shape[0] - k) // s + 1, (x.shape[1] - k) // s + 1), dtype=x.dtype)
    grad_x = torch.zeros_like(x)
    for i, j, rows, cols in _pool_windows(x, k, s):
        out[i, j] = x[rows, cols].mean()
        grad_x[rows, cols] += grad_output[i, j] / (k * k)
    return out, grad_x


def _pool_overwrite(x, grad_output, kernel_size, stride):
    out, _ = max_pool_forward_backward(x, grad_output, kernel_size, stride)
    grad_x = torch.zeros_like(x)
    for i, j, rows, cols in _pool_windows(x, kernel_size, stride):
        u, v = divmod(int(x[rows, cols].reshape(-1).argmax()), kernel_size)
        grad_x[rows.start + u, cols.start + v] = grad_output[i, j]  # = : overlaps are lost
    return out, grad_x


def _pool_every_max(x, grad_output, kernel_size, stride):
    out, _ = max_pool_forward_backward(x, grad_output, kernel_size, stride)
    grad_x = torch.zeros_like(x)
    for i, j, rows, cols in _pool_windows(x, kernel_size, stride):
        window = x[rows, cols]
        grad_x[rows, cols] += (window == window.max()).to(x.dtype) * grad_output[i, j]  # all ties
    return out, grad_x


def _pool_vectorised(x, grad_output, kernel_size, stride):
    k, s = kernel_size, stride
    windows = x.unfold(0, k, s).unfold(1, k, s)  # (Ho, Wo, k, k), a view
    ho, wo = windows.shape[:2]
    out, place = windows.reshape(ho, wo, k * k).max(dim=-1)
    rows = torch.arange(ho).view(-1, 1) * s + place // k
    cols = torch.arange(wo) * s + place % k
    grad_x = torch.zeros(x.numel(), dtype=x.dtype)
    grad_x.index_add_(0, (rows * x.shape[1] + cols).reshape(-1), grad_output.reshape(-1))
    return out, grad_x.view_as(x)


MAX_POOL_FORWARD_BACKWARD = Exercise(
    name="max_pool_forward_backward",
    notebook=6,
    task=(
        N_(
            "Write `max_pool_forward_backward(x, grad_output, kernel_size, stride)` for one map "
            "`x` `(H, W)`: square windows of `kernel_size`, moved by `stride`, no padding. "
            "Return `(out, grad_x)`: `out[i, j]` is the largest value of window (i, j), and "
            "`grad_x` (the shape of `x`) the gradient of the loss with respect to `x` when "
            "`grad_output` `(Ho, Wo)` is its gradient with respect to `out`: each "
            "`grad_output[i, j]` goes to the position of window (i, j)'s largest value (the "
            "first in row-major order if several tie, as torch does), added up where windows "
            "overlap."
        )
    ),
    reference=max_pool_forward_backward,
    cases=_pool_cases,
    forbidden=(F.max_pool2d, torch.max_pool2d, F.max_unpool2d),
    wrong=(
        Wrong(
            _pool_spread,
            N_(
                "The gradient of a maximum goes to the one input that is the maximum: the "
                "others did not affect the output, so their gradient is 0. Spreading it over "
                "the window is average pooling's backward."
            ),
        ),
        Wrong(
            _pool_average,
            N_(
                "That is average pooling: take each window's largest value (window.max()), and "
                "send the gradient to where it is."
            ),
        ),
        Wrong(
            _pool_overwrite,
            N_(
                "Where windows overlap (stride < kernel_size) one input can be the maximum of "
                "several windows; its gradient is the sum of theirs. Add (+=) instead of assigning."
            ),
        ),
        Wrong(
            _pool_every_max,
            N_(
                "When several values tie for the maximum, the gradient goes to one of them only, "
                "the first in row-major order (argmax of the flattened window), as torch does: "
                "the output's gradient is not multiplied."
            ),
        ),
    ),
    hints=(
        N_("Loop over the output positions; take each window, its largest value and where it is."),
        N_(
            "window.reshape(-1).argmax() gives the first largest position p in the window; "
            "u, v = divmod(p, kernel_size) are its row and column there."
        ),
        N_(
            "grad_x[i * stride + u, j * stride + v] += grad_output[i, j], starting from "
            "torch.zeros_like(x)."
        ),
    ),
    alternatives=(_pool_vectorised,),
)

EXERCISES = (OUTPUT_SIZE, CONV2D_SINGLE, CONV2D_MULTI, CONV2D_BACKWARD, MAX_POOL_FORWARD_BACKWARD)
