r"""Normalisation layers from scratch: batch normalisation, and layer normalisation beside it.

Taught in ``notebooks/04_batch_norm.ipynb`` (claim C2.7, 배치 정규화). S. Ioffe,
C. Szegedy, "Batch normalization: accelerating deep network training by reducing
internal covariate shift", ICML 2015 (Algorithm 1 is :func:`batch_norm` in training
mode; section 3.1 its inference mode).

**Batch normalisation**, channel by channel: over the :math:`m` values of one channel in
a batch (every sample, and every position of a sequence or image)

.. math::

    \mu = \frac1m \sum_i x_i, \qquad \sigma^2 = \frac1m \sum_i (x_i - \mu)^2, \qquad
    \hat x_i = \frac{x_i - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad
    y_i = \gamma\, \hat x_i + \beta .

The learned scale :math:`\gamma` (``weight``) and shift :math:`\beta` (``bias``) let the
layer undo the normalisation where that helps: :math:`\gamma = \sqrt{\sigma^2 + \epsilon}`,
:math:`\beta = \mu` gives the identity. In training the layer also keeps running
estimates for inference, with torch's convention

.. math::

    \hat\mu \leftarrow (1 - m_t)\,\hat\mu + m_t\, \mu, \qquad
    \hat\sigma^2 \leftarrow (1 - m_t)\,\hat\sigma^2 + m_t\, \frac{m}{m - 1}\,\sigma^2

(``momentum`` :math:`m_t = 0.1` by default; ``momentum=None`` makes it a cumulative
average, :math:`m_t = 1/t` at the :math:`t`-th batch). Note the two variances: the
*biased* one normalises, the *unbiased* one goes into the running estimate. In eval
mode the layer uses the running estimates, so each example's output depends on
that example alone.

**The backward pass**, in closed form. With :math:`g_i = \partial L / \partial y_i` and
:math:`\hat g_i = \gamma g_i`, differentiating through :math:`\mu` and :math:`\sigma^2`
(each :math:`x_i` enters every :math:`\hat x_j` through them) and collecting terms gives

.. math::

    \frac{\partial L}{\partial x_i} = \frac{1}{m\sqrt{\sigma^2 + \epsilon}}
    \Big( m\, \hat g_i - \sum_j \hat g_j - \hat x_i \sum_j \hat g_j \hat x_j \Big),
    \qquad
    \frac{\partial L}{\partial \gamma} = \sum_i g_i \hat x_i, \qquad
    \frac{\partial L}{\partial \beta} = \sum_i g_i .

The first sum removes the part of the gradient that would shift the batch's mean, the
second the part that would change its spread: what the normalisation undoes anyway.
:class:`BatchNormFunction` implements exactly these lines; the tests check them against
autograd and ``torch.autograd.gradcheck`` in float64.

**Layer normalisation** (Ba, Kiros, Hinton 2016) normalises each example over its
features instead: no batch statistics, so no running estimates and no difference between
training and evaluation; a batch of one is fine. Recurrent networks (notebook 07) use it.

Drop-in compatible: :class:`BatchNorm1d`, :class:`BatchNorm2d` and :class:`LayerNorm` have
``nn.BatchNorm1d``'s, ``nn.BatchNorm2d``'s and ``nn.LayerNorm``'s constructors,
parameters and buffers, so state dicts load both ways.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from dlcourse._validate import integer, number


def _channel_dims(x: torch.Tensor) -> list[int]:
    """The dimensions a channel's statistics run over: the batch, and every position."""
    return [0, *range(2, x.dim())]


def _per_channel(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A ``(C,)`` tensor shaped to broadcast against ``x`` ``(N, C, *)``: ``(1, C, 1, ...)``."""
    return t.reshape(1, -1, *([1] * (x.dim() - 2)))


class BatchNormFunction(torch.autograd.Function):
    """Batch normalisation in training mode, with the closed-form backward of the module docstring.

    ``forward(x, weight, bias, eps)`` returns ``(y, mean, biased_var)``; ``weight`` and
    ``bias`` may be None (no affine transform). Only first derivatives are provided.

    For speed, both passes make as few full-size tensors as they can (on the CPU each new one
    costs page faults): the forward centres ``x`` into a new tensor, takes the variance from
    it, and scales and shifts that tensor in place into ``y``; the backward needs two
    per-channel sums and writes ``dx = a * g + b * x + c`` into one new tensor, which is the
    three-line formula with ``x_hat = (x - mu) / sigma`` expanded.
    """

    @staticmethod
    def forward(ctx: Any, x, weight, bias, eps):  # x: (N, C, *)
        dims = _channel_dims(x)
        m = x.numel() // x.shape[1]  # values per channel
        mean = x.mean(dim=dims)  # (C,)
        y = x - _per_channel(mean, x)  # (N, C, *): centred; becomes the output in place
        var = (y * y).sum(dim=dims) / m  # (C,): the biased variance
        inv_std = torch.rsqrt(var + eps)  # (C,)
        scale = inv_std if weight is None else weight * inv_std  # gamma / sigma
        y.mul_(_per_channel(scale, x))  # gamma x_hat
        if bias is not None:
            y.add_(_per_channel(bias, x))  # + beta
        ctx.save_for_backward(x, mean, inv_std, weight)
        ctx.has_bias = bias is not None
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_y, _grad_mean, _grad_var):
        x, mean, inv_std, weight = ctx.saved_tensors
        dims = _channel_dims(x)
        m = x.numel() // x.shape[1]  # values per channel
        sum_g = grad_y.sum(dim=dims)  # (C,): sum g
        sum_gx = (grad_y * x).sum(dim=dims) - mean * sum_g  # (C,): sum g (x - mu)
        sum_g_xhat = inv_std * sum_gx  # (C,): sum g x_hat
        grad_weight = sum_g_xhat if ctx.needs_input_grad[1] else None  # dL/dgamma
        grad_bias = sum_g if ctx.needs_input_grad[2] and ctx.has_bias else None  # dL/dbeta
        grad_x = None
        if ctx.needs_input_grad[0]:
            gamma = torch.ones_like(inv_std) if weight is None else weight
            # dx = (gamma inv_std / m) (m g - sum g - x_hat sum(g x_hat)), x_hat = (x - mu) inv_std
            a = gamma * inv_std  # the coefficient of g
            b = -a * inv_std * sum_g_xhat / m  # the coefficient of x
            c = -a * sum_g / m - b * mean  # the rest
            grad_x = grad_y * _per_channel(a, x)  # a g: the one new full-size tensor
            grad_x.addcmul_(x, _per_channel(b, x)).add_(_per_channel(c, x))  # + b x + c
        return grad_x, grad_weight, grad_bias, None


def _check_channels(x: torch.Tensor, channels: int | None, where: str) -> None:
    """``x`` is a batch ``(N, C, ...)`` with ``channels`` channels (any number if None)."""
    if x.dim() < 2:
        raise ValueError(
            f"{where} needs a batch (N, C, ...), got a tensor of shape {tuple(x.shape)}: "
            "add the batch dimension with x.unsqueeze(0)"
        )
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{where} normalises {channels} channels, but the input {tuple(x.shape)} has "
            f"{x.shape[1]} in dimension 1: the layer before makes {x.shape[1]} features, so "
            f"build it with num_features={x.shape[1]} (channels come second: (N, C, ...))"
        )


def _check_eps(eps: float) -> float:
    return number(eps, "eps", low=0, low_open=True)


def batch_norm(
    input: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Batch normalisation of ``input`` ``(N, C, *)``, as ``torch.nn.functional.batch_norm``.

    In training (or without running statistics) the batch's own statistics normalise
    and, when given, ``running_mean`` and ``running_var`` are updated in place with
    ``momentum``; otherwise the running statistics normalise. The modules turn
    ``momentum=None`` into the cumulative factor ``1 / num_batches_tracked``, as torch's do.
    """
    stats = (running_mean, running_var, weight, bias)
    _check_channels(input, next((len(t) for t in stats if t is not None), None), "batch_norm")
    _check_eps(eps)
    if training:
        per_channel = input.numel() // input.shape[1]
        if per_channel <= 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input size "
                f"{tuple(input.shape)}: a batch of one example has no spread to normalise by. "
                "Train with batches of two or more, or call model.eval() to predict one example."
            )
        y, mean, var = BatchNormFunction.apply(input, weight, bias, eps)
        if running_mean is not None and running_var is not None:
            with torch.no_grad():
                unbiased = var * (per_channel / (per_channel - 1))  # the estimate keeps n - 1
                running_mean.mul_(1 - momentum).add_(mean.to(running_mean.dtype), alpha=momentum)
                running_var.mul_(1 - momentum).add_(unbiased.to(running_var.dtype), alpha=momentum)
        return y
    if running_mean is None or running_var is None:
        raise ValueError("batch_norm in eval mode needs running_mean and running_var")
    y = (input - _per_channel(running_mean, input)) * _per_channel(
        torch.rsqrt(running_var + eps), input
    )
    if weight is not None:
        y = y * _per_channel(weight, input)
    if bias is not None:
        y = y + _per_channel(bias, input)
    return y


class _BatchNorm(nn.Module):
    """What BatchNorm1d and BatchNorm2d share: torch's constructor, parameters and buffers."""

    _ranks: tuple[int, ...] = ()
    _shape_text = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        num_features = integer(num_features, "num_features", minimum=1)
        _check_eps(eps)
        if momentum is not None and not 0 <= momentum <= 1:
            raise ValueError(
                f"momentum must be in [0, 1] (or None: a cumulative average), got {momentum}"
            )
        factory = {"device": device, "dtype": dtype}
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features, **factory))  # gamma
            self.bias = nn.Parameter(torch.zeros(num_features, **factory))  # beta
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer(
                "num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device)
            )
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() not in self._ranks:
            raise ValueError(
                f"{type(self).__name__} expects {self._shape_text}, got a tensor of rank "
                f"{x.dim()}, shape {tuple(x.shape)}"
                + (": use BatchNorm2d for images" if x.dim() == 4 else "")
                + (": use BatchNorm1d for (N, C) or (N, C, L)" if x.dim() in (2, 3) else "")
            )
        _check_channels(x, self.num_features, f"{type(self).__name__}({self.num_features})")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked)
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        keep = not self.training or self.track_running_stats  # torch's rule for the buffers
        return batch_norm(
            input,
            self.running_mean if keep else None,
            self.running_var if keep else None,
            self.weight,
            self.bias,
            use_batch,
            factor,
            self.eps,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over ``(N, C)`` or ``(N, C, L)``, as ``nn.BatchNorm1d``."""

    _ranks = (2, 3)
    _shape_text = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over ``(N, C, H, W)``, as ``nn.BatchNorm2d``."""

    _ranks = (4,)
    _shape_text = "(N, C, H, W)"


def layer_norm(
    input: torch.Tensor,
    normalized_shape: Sequence[int],
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Normalise each example over its last ``len(normalized_shape)`` dimensions, as
    ``torch.nn.functional.layer_norm`` (biased variance; autograd differentiates it)."""
    shape = tuple(normalized_shape)
    if tuple(input.shape[input.dim() - len(shape) :]) != shape:
        raise ValueError(
            f"layer_norm over {shape} needs an input ending in {shape}, got {tuple(input.shape)}"
        )
    dims = tuple(range(input.dim() - len(shape), input.dim()))
    mean = input.mean(dim=dims, keepdim=True)
    var = input.var(dim=dims, keepdim=True, correction=0)
    y = (input - mean) * torch.rsqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


class LayerNorm(nn.Module):
    """Layer normalisation, as ``nn.LayerNorm``: each example over its last dimensions.

    No running statistics, and the same in training and evaluation.
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
        self.normalized_shape = tuple(int(s) for s in shape)
        if not self.normalized_shape or min(self.normalized_shape) < 1:
            raise ValueError(f"normalized_shape must be positive sizes, got {normalized_shape!r}")
        _check_eps(eps)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        factory = {"device": device, "dtype": dtype}
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(self.normalized_shape, **factory))
            if bias:
                self.bias = nn.Parameter(torch.zeros(self.normalized_shape, **factory))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def reset_parameters(self) -> None:
        if self.weight is not None:
            nn.init.ones_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )
