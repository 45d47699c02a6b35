r"""Recurrent networks from scratch: the vanilla RNN, LSTM and GRU, as cells and as layers.

Taught in ``notebooks/07_recurrent_networks.ipynb`` (claims C5.1-C5.6: 순환 신경망, 다층 RNN,
양방향 RNN, 시간 역전파, 기울기 소멸/폭발, LSTM's 망각/입력/출력 게이트 and 셀 상태, GRU's
리셋/갱신 게이트). J. Elman, "Finding structure in time", Cognitive Science 14, 1990 (the
recurrent network); S. Hochreiter, J. Schmidhuber, "Long short-term memory", Neural Computation
9(8), 1997, with the forget gate of F. Gers, J. Schmidhuber, F. Cummins, "Learning to forget",
Neural Computation 12(10), 2000; K. Cho et al., "Learning phrase representations using RNN
encoder-decoder for statistical machine translation", EMNLP 2014 (the GRU).

A recurrent layer reads a sequence :math:`x_1, \dots, x_T` one step at a time and carries a
hidden state :math:`h_t` from each step to the next: the same weights at every step, as a
convolution uses the same kernel at every position. With :math:`\sigma` the logistic
sigmoid and :math:`\odot` the elementwise product, one step of each cell is (torch's
conventions; each ``W_i*`` acts on the input, each ``W_h*`` on the previous hidden state, and
both have a bias):

**RNN** (``nonlinearity`` tanh or relu):

.. math::

    h_t = \tanh(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})

**LSTM**, gates in the order input, forget, cell candidate, output (``i, f, g, o``: the rows of
``weight_ih`` and ``weight_hh`` in that order):

.. math::

    i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi})  &\text{input gate}\\
    f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf})  &\text{forget gate}\\
    g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg})   &\text{candidate}\\
    o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho})  &\text{output gate}\\
    c_t &= f_t \odot c_{t-1} + i_t \odot g_t                      &\text{cell state}\\
    h_t &= o_t \odot \tanh(c_t)

The cell state is updated by a product with the forget gate and a sum, not by a matrix and a
squashing function: while :math:`f_t \approx 1` its gradient passes back through many steps
nearly unchanged (:math:`\partial c_t / \partial c_{t-1} = f_t` along that path).

**GRU**, gates in the order reset, update, new (``r, z, n``):

.. math::

    r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr})  &\text{reset gate}\\
    z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz})  &\text{update gate}\\
    n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn}))\\
    h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

(torch applies the reset gate after the product with :math:`W_{hn}`, as here; Cho et al. apply
it before. The update gate does the work of LSTM's forget and input gates together.)

**Fast enough to use.** The input's contribution to every gate, :math:`W_{i\cdot} x_t + b`, does
not depend on the previous step, so :class:`RNN`, :class:`LSTM` and :class:`GRU` compute it for
all steps in one matrix product before the loop; only the recurrent product runs step by step.
The LSTM's and the GRU's back-propagation through time is written out (:class:`LSTMFunction`,
:class:`GRUFunction`); the step functions above, run under autograd, are the reference the
tests compare them with, and what :meth:`LSTM.gates` uses.

Drop-in compatible: the layers have ``nn.RNN``'s, ``nn.LSTM``'s and ``nn.GRU``'s constructors
(``input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional``), call
signatures and returns, and parameter names (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``,
``bias_hh_l0``, ``..._reverse``), so ``ours.load_state_dict(theirs.state_dict())`` gives the
same outputs. Not covered: ``proj_size`` and packed sequences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CELLS",
    "GRU",
    "LSTM",
    "RNN",
    "GRUCell",
    "GRUFunction",
    "LSTMCell",
    "LSTMFunction",
    "RNNCell",
    "gradient_flow",
    "gru_step",
    "layer",
    "lstm_step",
    "rnn_step",
]

# rows of weight_ih / weight_hh per hidden unit: one block per gate
GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


# --------------------------------------------------------------------------- one step


def rnn_step(
    x_part: torch.Tensor, h: torch.Tensor, weight_hh: torch.Tensor, bias_hh, relu: bool = False
) -> torch.Tensor:
    """One step of a vanilla RNN. ``x_part`` ``(N, H)`` is the input's part, ``W_ih x + b_ih``;
    ``h`` ``(N, H)`` the previous hidden state. Returns the new hidden state ``(N, H)``."""
    pre = x_part + F.linear(h, weight_hh, bias_hh)  # (N, H)
    return torch.relu(pre) if relu else torch.tanh(pre)


def lstm_step(
    x_part: torch.Tensor, h: torch.Tensor, c: torch.Tensor, weight_hh: torch.Tensor, bias_hh
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One LSTM step. ``x_part`` ``(N, 4H)`` is the input's part of the gates, ``W_ih x + b_ih``;
    ``h``, ``c`` ``(N, H)``. Returns ``(h_new, c_new, gates)``, ``gates`` ``(N, 4H)`` the
    activated ``i, f, g, o`` (kept for plots of what the gates do)."""
    pre = x_part + F.linear(h, weight_hh, bias_hh)  # (N, 4H): i, f, g, o before activation
    i, f, g, o = pre.chunk(4, dim=1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c_new = f * c + i * g  # forget part of the old cell state, add the gated candidate
    h_new = o * torch.tanh(c_new)
    return h_new, c_new, torch.cat([i, f, g, o], dim=1)


def gru_step(
    x_part: torch.Tensor, h: torch.Tensor, weight_hh: torch.Tensor, bias_hh
) -> tuple[torch.Tensor, torch.Tensor]:
    """One GRU step. ``x_part`` ``(N, 3H)`` is the input's part, ``W_ih x + b_ih`` (``r, z, n``);
    ``h`` ``(N, H)``. Returns ``(h_new, gates)``, ``gates`` ``(N, 3H)`` the activated
    ``r, z, n``."""
    h_part = F.linear(h, weight_hh, bias_hh)  # (N, 3H)
    xr, xz, xn = x_part.chunk(3, dim=1)
    hr, hz, hn = h_part.chunk(3, dim=1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)  # the reset gate scales the recurrent part (torch's form)
    h_new = (1 - z) * n + z * h  # the update gate: keep the old state, or take the new
    return h_new, torch.cat([r, z, n], dim=1)


class LSTMFunction(torch.autograd.Function):
    r"""One LSTM layer in one direction, with back-propagation through time written out.

    ``forward(x_parts, h0, c0, weight_hh)``: ``x_parts`` ``(L, N, 4H)`` the input's part of
    every step's gates with both biases added, ``h0``, ``c0`` ``(N, H)``. Returns every step's
    hidden state ``(L, N, H)`` and the last cell state ``(N, H)``. The forward keeps the
    activated gates and the cell states; the backward walks the steps in reverse order:

    .. math::

        \delta h_t &= \partial L / \partial h_t 	ext{ (from the output)} + W_{hh}^	op
            \delta a_{t+1}, \qquad
        \delta c_t = \delta c_{t+1} \odot f_{t+1} + \delta h_t \odot o_t \odot
            (1 - 	anh^2 c_t),\
        \delta a_t &= [\,\delta c_t\, g_t\, i_t(1-i_t),\; \delta c_t\, c_{t-1} f_t(1-f_t),\;
            \delta c_t\, i_t (1-g_t^2),\; \delta h_t 	anh c_t\, o_t(1-o_t)\,]

    (:math:`a_t` the gates before activation), and the gradient of :math:`W_{hh}` is one matrix
    product over all steps, :math:`\sum_t \delta a_t^\top h_{t-1}`. Autograd through the
    step-by-step loop computes the same with one graph node per operation per step; this
    does it in about a third of the time (``benchmarks/rnn.py``).
    """

    @staticmethod
    def forward(ctx: Any, x_parts, h0, c0, weight_hh):
        length, batch, _ = x_parts.shape
        hidden = h0.shape[1]
        hs = x_parts.new_empty((length + 1, batch, hidden))  # h_0 ... h_L
        cs = x_parts.new_empty((length + 1, batch, hidden))  # c_0 ... c_L
        tanh_cs = x_parts.new_empty((length, batch, hidden))  # tanh(c_1) ... tanh(c_L)
        gates = x_parts.new_empty((length, batch, 4 * hidden))  # activated i, f, g, o
        hs[0], cs[0] = h0, c0
        w_t = weight_hh.t()
        for t in range(length):
            a = torch.addmm(x_parts[t], hs[t], w_t, out=gates[t])  # (N, 4H) before activation
            a[:, : 2 * hidden].sigmoid_()  # i, f
            a[:, 2 * hidden : 3 * hidden].tanh_()  # g
            a[:, 3 * hidden :].sigmoid_()  # o
            i, f, g, o = a.chunk(4, dim=1)
            torch.addcmul(f * cs[t], i, g, out=cs[t + 1])  # c_t = f c_{t-1} + i g
            torch.tanh(cs[t + 1], out=tanh_cs[t])
            torch.mul(o, tanh_cs[t], out=hs[t + 1])  # h_t = o tanh(c_t)
        ctx.save_for_backward(hs, cs, tanh_cs, gates, weight_hh)
        return hs[1:], cs[length]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_out, grad_c_last):
        hs, cs, tanh_cs, gates, weight_hh = ctx.saved_tensors
        length, batch, four_h = gates.shape
        hidden = four_h // 4
        # Every factor that does not depend on the incoming gradient, for all steps at once
        # (L, N, 4, H): d a_i = dc g i(1-i), d a_f = dc c_{t-1} f(1-f), d a_g = dc i (1-g^2),
        # d a_o = dh tanh(c_t) o(1-o); and K = o (1 - tanh^2 c_t), the path from h_t to c_t.
        gv = gates.view(length, batch, 4, hidden)
        i, f, g, o = gv.unbind(2)
        factors = torch.empty_like(gv)  # (L, N, 4, H)
        torch.mul(g, torch.addcmul(i, i, i, value=-1), out=factors[:, :, 0])  # g i (1 - i)
        torch.mul(cs[:-1], torch.addcmul(f, f, f, value=-1), out=factors[:, :, 1])
        torch.addcmul(i, i * g, g, value=-1, out=factors[:, :, 2])  # i (1 - g^2)
        torch.mul(tanh_cs, torch.addcmul(o, o, o, value=-1), out=factors[:, :, 3])
        to_cell = torch.addcmul(o, o * tanh_cs, tanh_cs, value=-1)  # o (1 - tanh^2 c): (L, N, H)
        grad_a = torch.empty_like(factors)  # the gates' gradients before activation
        # two running gradients, updated in place: dL/dh_t and dL/dc_t
        dh = torch.zeros_like(hs[0])
        dc = torch.zeros_like(cs[0]) if grad_c_last is None else grad_c_last.clone()
        for t in reversed(range(length)):
            if grad_out is not None:
                dh.add_(grad_out[t])
            dc.addcmul_(dh, to_cell[t])  # through h_t = o tanh(c_t)
            torch.mul(dc.unsqueeze(1), factors[t, :, :3], out=grad_a[t, :, :3])  # i, f, g
            torch.mul(dh, factors[t, :, 3], out=grad_a[t, :, 3])  # o
            dc.mul_(f[t])  # to c_{t-1}, through the forget gate only
            torch.mm(grad_a[t].view(batch, four_h), weight_hh, out=dh)  # to h_{t-1}: all gates
        flat = grad_a.view(-1, four_h)
        grad_w = flat.t() @ hs[:-1].reshape(-1, hidden) if ctx.needs_input_grad[3] else None
        return grad_a.view(length, batch, four_h), dh, dc, grad_w


class GRUFunction(torch.autograd.Function):
    r"""One GRU layer in one direction, with back-propagation through time written out.

    ``forward(x_parts, h0, weight_hh, bias_hh)``: ``x_parts`` ``(L, N, 3H)`` the input's part
    of every step's gates (with ``bias_ih``), ``h0`` ``(N, H)``, ``bias_hh`` ``(3H,)`` or None
    (it stays separate: the reset gate multiplies the recurrent part *with* its bias). Returns
    every step's hidden state ``(L, N, H)``. With :math:`\delta` the gradient reaching
    :math:`h_t`, the backward of :math:`h_t = n_t + z_t (h_{t-1} - n_t)` is

    .. math::

        \delta a^n &= \delta (1 - z)(1 - n^2), \quad
        \delta a^z = \delta (h_{t-1} - n)\, z (1 - z), \quad
        \delta a^r = \delta a^n\, (W_{hn} h_{t-1} + b_{hn})\, r (1 - r),\\
        \delta h_{t-1} &= \delta\, z + [\delta a^r, \delta a^z, r\, \delta a^n]\, W_{hh} ,

    where every factor after :math:`\delta` is known from the forward, so it is computed for
    all steps at once before the loop, and each step is three operations.
    """

    @staticmethod
    def forward(ctx: Any, x_parts, h0, weight_hh, bias_hh):
        length, batch, three_h = x_parts.shape
        hidden = three_h // 3
        hs = x_parts.new_empty((length + 1, batch, hidden))  # h_0 ... h_L
        gates = x_parts.new_empty((length, batch, 3, hidden))  # activated r, z, n
        hn_parts = x_parts.new_empty((length, batch, hidden))  # W_hn h_{t-1} + b_hn
        hs[0] = h0
        w_t = weight_hh.t()
        for t in range(length):
            gh = hs[t] @ w_t if bias_hh is None else torch.addmm(bias_hh, hs[t], w_t)  # (N, 3H)
            g = gates[t]
            torch.add(
                x_parts[t, :, : 2 * hidden], gh[:, : 2 * hidden], out=g[:, :2].view(batch, -1)
            )
            g[:, :2].sigmoid_()  # r, z
            hn_parts[t] = gh[:, 2 * hidden :]
            r, z = g[:, 0], g[:, 1]
            torch.addcmul(x_parts[t, :, 2 * hidden :], r, hn_parts[t], out=g[:, 2]).tanh_()  # n
            torch.lerp(g[:, 2], hs[t], z, out=hs[t + 1])  # n + z (h_{t-1} - n)
        ctx.save_for_backward(hs, gates, hn_parts, weight_hh)
        ctx.has_bias = bias_hh is not None
        return hs[1:]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_out):
        hs, gates, hn_parts, weight_hh = ctx.saved_tensors
        length, batch, _, hidden = gates.shape
        r, z, n = gates.unbind(2)  # (L, N, H) each
        # factors for all steps: d a = delta * factor, for the input part and the recurrent part
        to_n = (1 - z) * (1 - n * n)
        to_input = torch.stack(
            [to_n * hn_parts * r * (1 - r), (hs[:-1] - n) * z * (1 - z), to_n], 2
        )
        to_recurrent = to_input.clone()
        to_recurrent[:, :, 2] *= r  # the reset gate scales the recurrent part of n
        grad_x = torch.empty_like(to_input)  # (L, N, 3, H)
        grad_h = torch.empty_like(to_input)
        dh = torch.zeros_like(hs[0])
        for t in reversed(range(length)):
            dh.add_(grad_out[t])
            torch.mul(dh.unsqueeze(1), to_input[t], out=grad_x[t])
            torch.mul(dh.unsqueeze(1), to_recurrent[t], out=grad_h[t])
            dh = torch.addmm(dh * z[t], grad_h[t].view(batch, -1), weight_hh)  # to h_{t-1}
        flat_h = grad_h.view(-1, 3 * hidden)
        grad_w = flat_h.t() @ hs[:-1].reshape(-1, hidden) if ctx.needs_input_grad[2] else None
        grad_b = flat_h.sum(0) if ctx.has_bias and ctx.needs_input_grad[3] else None
        return grad_x.view(length, batch, 3 * hidden), dh, grad_w, grad_b


# --------------------------------------------------------------------------- checks


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _init_uniform(module: nn.Module, hidden_size: int) -> None:
    """torch's default for recurrent layers: every weight and bias U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(hidden_size)
    for p in module.parameters():
        nn.init.uniform_(p, -bound, bound)


# --------------------------------------------------------------------------- cells


class _CellBase(nn.Module):
    _mode = "RNN_TANH"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.input_size = _positive_int(input_size, "input_size")
        self.hidden_size = _positive_int(hidden_size, "hidden_size")
        self.bias = bias
        rows = GATES[self._mode] * hidden_size
        factory = {"device": device, "dtype": dtype}
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size, **factory))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(rows, **factory))
            self.bias_hh = nn.Parameter(torch.empty(rows, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _init_uniform(self, self.hidden_size)

    def _prepare(self, input: torch.Tensor, hx: torch.Tensor | None, what: str):
        name = type(self).__name__
        if input.dim() not in (1, 2):
            raise ValueError(
                f"{name} takes one step, (N, input_size) or (input_size,); got shape "
                f"{tuple(input.shape)}: for a whole sequence use the layer ({name[:-4]})"
            )
        if input.shape[-1] != self.input_size:
            raise ValueError(
                f"{name}({self.input_size}, {self.hidden_size}) got an input with "
                f"{input.shape[-1]} features: build it with input_size={input.shape[-1]}"
            )
        batched = input.dim() == 2
        x = input if batched else input.unsqueeze(0)
        if hx is None:
            return x, None, batched
        h = hx if batched else hx.unsqueeze(0)
        if tuple(h.shape) != (x.shape[0], self.hidden_size):
            expected = (x.shape[0], self.hidden_size) if batched else (self.hidden_size,)
            raise ValueError(
                f"{name}: {what} must have shape {expected} ({'batch, ' if batched else ''}"
                f"hidden_size), got {tuple(hx.shape)}"
            )
        return x, h, batched

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            text += ", bias=False"
        return text


class RNNCell(_CellBase):
    r"""One step of a vanilla RNN, as ``nn.RNNCell``: ``h' = tanh(W_ih x + b_ih + W_hh h +
    b_hh)`` (or relu). ``forward(input, hx=None)``: input ``(N, input_size)``, hx ``(N,
    hidden_size)`` (zeros when None); returns ``h'``."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'."
            )
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, device, dtype)

    def forward(self, input: torch.Tensor, hx: torch.Tensor | None = None) -> torch.Tensor:
        x, h, batched = self._prepare(input, hx, "hx")
        if h is None:
            h = x.new_zeros(x.shape[0], self.hidden_size)
        out = rnn_step(
            F.linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh,
            self.nonlinearity == "relu",
        )  # fmt: skip
        return out if batched else out.squeeze(0)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text if self.nonlinearity == "tanh" else text + ", nonlinearity=relu"


class LSTMCell(_CellBase):
    """One LSTM step, as ``nn.LSTMCell`` (gates ``i, f, g, o``; see the module docstring).
    ``forward(input, hx=None)`` with ``hx = (h, c)``; returns ``(h', c')``."""

    _mode = "LSTM"

    def forward(
        self, input: torch.Tensor, hx: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if hx is not None and (not isinstance(hx, tuple | list) or len(hx) != 2):
            raise TypeError("LSTMCell's hx is a pair (h, c), the hidden and the cell state")
        x, h, batched = self._prepare(input, None if hx is None else hx[0], "h")
        _, c, _ = self._prepare(input, None if hx is None else hx[1], "c")
        if h is None:
            h = c = x.new_zeros(x.shape[0], self.hidden_size)
        h, c, _ = lstm_step(
            F.linear(x, self.weight_ih, self.bias_ih), h, c, self.weight_hh, self.bias_hh
        )
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(_CellBase):
    """One GRU step, as ``nn.GRUCell`` (gates ``r, z, n``; see the module docstring).
    ``forward(input, hx=None)``; returns ``h'``."""

    _mode = "GRU"

    def forward(self, input: torch.Tensor, hx: torch.Tensor | None = None) -> torch.Tensor:
        x, h, batched = self._prepare(input, hx, "hx")
        if h is None:
            h = x.new_zeros(x.shape[0], self.hidden_size)
        out, _ = gru_step(
            F.linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh
        )
        return out if batched else out.squeeze(0)


# --------------------------------------------------------------------------- layers


class _RNNBase(nn.Module):
    """What RNN, LSTM and GRU share: torch's constructor, parameter names, the loops."""

    _mode = "RNN_TANH"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.input_size = _positive_int(input_size, "input_size")
        self.hidden_size = _positive_int(hidden_size, "hidden_size")
        self.num_layers = _positive_int(num_layers, "num_layers")
        if (
            isinstance(dropout, bool)
            or not isinstance(dropout, int | float)
            or not 0 <= dropout <= 1
        ):
            raise ValueError(
                "dropout should be a number in range [0, 1] representing the probability of an "
                f"element being zeroed, got {dropout!r}"
            )
        self.bias, self.batch_first = bias, batch_first
        self.dropout, self.bidirectional = float(dropout), bidirectional
        rows = GATES[self._mode] * hidden_size
        directions = 2 if bidirectional else 1
        factory = {"device": device, "dtype": dtype}
        self._names: list[list[str]] = []  # per layer and direction: its parameters' names
        for layer in range(num_layers):
            width = input_size if layer == 0 else hidden_size * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                names = [f"weight_ih{suffix}", f"weight_hh{suffix}"]
                self.register_parameter(names[0], nn.Parameter(torch.empty(rows, width, **factory)))
                self.register_parameter(
                    names[1], nn.Parameter(torch.empty(rows, hidden_size, **factory))
                )
                if bias:
                    names += [f"bias_ih{suffix}", f"bias_hh{suffix}"]
                    for name in names[2:]:
                        self.register_parameter(name, nn.Parameter(torch.empty(rows, **factory)))
                self._names.append(names)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _init_uniform(self, self.hidden_size)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _weights(self, index: int) -> tuple[torch.Tensor, torch.Tensor, Any, Any]:
        names = self._names[index]
        w_ih, w_hh = getattr(self, names[0]), getattr(self, names[1])
        if not self.bias:
            return w_ih, w_hh, None, None
        return w_ih, w_hh, getattr(self, names[2]), getattr(self, names[3])

    # -- input checks

    def _check_input(self, input: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """``input`` as ``(L, N, input_size)``, and whether it was batched."""
        name = type(self).__name__
        if input.dim() not in (2, 3):
            raise ValueError(
                f"{name} expects a sequence: (L, N, input_size)"
                + (", with batch_first=True (N, L, input_size)," if self.batch_first else "")
                + f" or one unbatched sequence (L, input_size); got shape {tuple(input.shape)}"
                + (
                    ": for a single step use a cell, or add the time dimension"
                    if input.dim() == 1
                    else ""
                )
            )
        if input.shape[-1] != self.input_size:
            raise ValueError(
                f"{name}(input_size={self.input_size}) got an input whose last dimension has "
                f"{input.shape[-1]} features, shape {tuple(input.shape)}: build it with "
                f"input_size={input.shape[-1]}, or check the order of dimensions "
                f"({'(N, L, features)' if self.batch_first else '(L, N, features)'})"
            )
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(1)  # (L, 1, I)
        if batched and self.batch_first:
            x = x.transpose(0, 1)  # (N, L, I) -> (L, N, I)
        return x, batched

    def _check_state(self, state: torch.Tensor | None, batch: int, batched: bool, what: str):
        layers = self.num_layers * self.num_directions
        if state is None:
            return None
        expected = (layers, batch, self.hidden_size) if batched else (layers, self.hidden_size)
        if tuple(state.shape) != expected:
            raise ValueError(
                f"{type(self).__name__}: {what} must have shape {expected} (num_layers x "
                f"directions, {'batch, ' if batched else ''}hidden_size), got {tuple(state.shape)}"
            )
        return state if batched else state.unsqueeze(1)

    # -- the loops

    def _run(
        self, x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor | None, keep_gates: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, list]:
        """x ``(L, N, I)``, h0/c0 ``(layers * D, N, H)``. Returns output ``(L, N, D H)``,
        h_n, c_n and the gates of every layer and direction (when asked)."""
        h_n, c_n, gates = [], [], []
        layer_input = x
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                w_ih, w_hh, b_ih, b_hh = self._weights(index)
                seq = layer_input.flip(0) if direction else layer_input  # reverse: read backwards
                x_parts = F.linear(seq, w_ih, b_ih)  # (L, N, G H): every step's input, one product
                h = h0[index]
                c = None if c0 is None else c0[index]
                if keep_gates or not hasattr(self, "_direction"):
                    steps, step_gates = [], []
                    for t in range(seq.shape[0]):
                        h, c, g = self._step(x_parts[t], h, c, w_hh, b_hh)
                        steps.append(h)
                        if keep_gates:
                            step_gates.append(g)
                    out = torch.stack(steps)  # (L, N, H)
                else:  # the whole loop and its backward written out
                    out, h, c = self._direction(x_parts, h, c, w_hh, b_hh)
                outputs.append(out.flip(0) if direction else out)
                h_n.append(h)
                c_n.append(c)
                if keep_gates:
                    stacked = torch.stack(step_gates)
                    gates.append(stacked.flip(0) if direction else stacked)
            layer_input = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
        c_stack = torch.stack(c_n) if c0 is not None else None
        return layer_input, torch.stack(h_n), c_stack, gates

    def _step(self, x_part, h, c, w_hh, b_hh):
        out = rnn_step(x_part, h, w_hh, b_hh, self._mode == "RNN_RELU")
        return out, None, None

    def _forward(self, input: torch.Tensor, h0, c0, keep_gates: bool):
        x, batched = self._check_input(input)
        length, batch = x.shape[:2]
        if length == 0:
            raise ValueError(f"{type(self).__name__} got a sequence of length 0")
        h0 = self._check_state(h0, batch, batched, "h_0")
        c0 = self._check_state(c0, batch, batched, "c_0")
        shape = (self.num_layers * self.num_directions, batch, self.hidden_size)
        if h0 is None:
            h0 = x.new_zeros(shape)
        if c0 is None and self._mode == "LSTM":
            c0 = x.new_zeros(shape)
        out, h_n, c_n, gates = self._run(x, h0, c0, keep_gates)
        if batched and self.batch_first:
            out = out.transpose(0, 1)
        if not batched:
            out, h_n = out.squeeze(1), h_n.squeeze(1)
            c_n = None if c_n is None else c_n.squeeze(1)
        return out, h_n, c_n, gates

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if not self.bias:
            text += ", bias=False"
        if self.batch_first:
            text += ", batch_first=True"
        if self.dropout:
            text += f", dropout={self.dropout}"
        if self.bidirectional:
            text += ", bidirectional=True"
        return text


class RNN(_RNNBase):
    """A (multi-layer, optionally bidirectional) vanilla RNN, as ``nn.RNN``.

    ``forward(input, hx=None)``: input ``(L, N, input_size)`` (``(N, L, input_size)`` with
    ``batch_first``, or ``(L, input_size)`` unbatched), ``hx`` = h_0 ``(num_layers *
    directions, N, hidden_size)``. Returns ``(output, h_n)``: output ``(L, N, directions *
    hidden_size)``, every step's top-layer hidden state; h_n the last step's, every layer's.
    """

    def __init__(self, *args: Any, nonlinearity: str = "tanh", **kwargs: Any) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'."
            )
        self.nonlinearity = nonlinearity
        self._mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(*args, **kwargs)

    def forward(
        self, input: torch.Tensor, hx: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out, h_n, _, _ = self._forward(input, hx, None, False)
        return out, h_n

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text if self.nonlinearity == "tanh" else text + ", nonlinearity=relu"


class LSTM(_RNNBase):
    """A (multi-layer, optionally bidirectional) LSTM, as ``nn.LSTM``.

    ``forward(input, hx=None)`` with ``hx = (h_0, c_0)``, each ``(num_layers * directions, N,
    hidden_size)``; returns ``(output, (h_n, c_n))``. :meth:`gates` also returns every step's
    gate activations, for plots.
    """

    _mode = "LSTM"

    def _step(self, x_part, h, c, w_hh, b_hh):
        return lstm_step(x_part, h, c, w_hh, b_hh)

    def _direction(self, x_parts, h, c, w_hh, b_hh):
        if b_hh is not None:
            x_parts = x_parts + b_hh  # both biases before the loop
        out, c_last = LSTMFunction.apply(x_parts, h, c, w_hh)
        return out, out[-1], c_last

    def forward(
        self, input: torch.Tensor, hx: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        if hx is not None and (not isinstance(hx, tuple | list) or len(hx) != 2):
            raise TypeError("LSTM's hx is a pair (h_0, c_0), the hidden and the cell states")
        out, h_n, c_n, _ = self._forward(input, *(hx or (None, None)), False)
        return out, (h_n, c_n)

    def gates(self, input: torch.Tensor, hx=None) -> list[dict[str, torch.Tensor]]:
        """The gate activations at every step, one dict per layer and direction (layer 0
        first): ``{'input', 'forget', 'cell', 'output'}``, each ``(L, N, hidden_size)`` for
        batched input (time first, whatever ``batch_first``)."""
        _, _, _, gates = self._forward(input, *(hx or (None, None)), True)
        names = ("input", "forget", "cell", "output")
        return [dict(zip(names, g.chunk(4, dim=-1), strict=True)) for g in gates]


class GRU(_RNNBase):
    """A (multi-layer, optionally bidirectional) GRU, as ``nn.GRU``; ``forward(input, hx=None)``
    returns ``(output, h_n)`` as :class:`RNN`. :meth:`gates` returns every step's gates."""

    _mode = "GRU"

    def _step(self, x_part, h, c, w_hh, b_hh):
        h, gates = gru_step(x_part, h, w_hh, b_hh)
        return h, None, gates

    def _direction(self, x_parts, h, c, w_hh, b_hh):
        out = GRUFunction.apply(x_parts, h, w_hh, b_hh)
        return out, out[-1], None

    def forward(
        self, input: torch.Tensor, hx: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out, h_n, _, _ = self._forward(input, hx, None, False)
        return out, h_n

    def gates(self, input: torch.Tensor, hx=None) -> list[dict[str, torch.Tensor]]:
        """As :meth:`LSTM.gates`, with ``{'reset', 'update', 'new'}``."""
        _, _, _, gates = self._forward(input, hx, None, True)
        names = ("reset", "update", "new")
        return [dict(zip(names, g.chunk(3, dim=-1), strict=True)) for g in gates]


LAYERS: dict[str, type[_RNNBase]] = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
CELLS: dict[str, type[_CellBase]] = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}


def layer(kind: str, input_size: int, hidden_size: int, **kwargs: Any) -> _RNNBase:
    """A recurrent layer by name (``"rnn"``, ``"lstm"`` or ``"gru"``), with ``batch_first=True``
    unless ``kwargs`` say otherwise."""
    if kind not in LAYERS:
        raise ValueError(f"kind must be one of {sorted(LAYERS)}, got {kind!r}")
    kwargs.setdefault("batch_first", True)
    return LAYERS[kind](input_size, hidden_size, **kwargs)


# --------------------------------------------------------------------------- the demo


@dataclass(frozen=True)
class GradientFlowSettings:
    kind: str = "rnn"  # "rnn" (tanh) or "lstm"
    length: int = 50  # steps
    hidden_size: int = 32
    scale: float | None = None  # None: torch's initialisation; else weight_hh = scale x orthogonal
    forget_bias: float = 0.0  # added to the LSTM's forget-gate bias
    batch: int = 16
    seed: int = 0


def gradient_flow(settings: GradientFlowSettings | None = None, **changes: Any) -> dict:
    r"""Back-propagation through time, measured: unroll a cell over random inputs, take the
    loss :math:`L = \sum h_T` at the last step, and return how large its gradient is with
    respect to each step's state.

    Returns a dict: ``settings``; ``distance`` (``T - t`` for each step, ``T-1 ... 0``);
    ``hidden`` (:math:`\lVert \partial L / \partial h_t \rVert` per step) and, for an LSTM,
    ``cell`` (:math:`\lVert \partial L / \partial c_t \rVert`); ``ratio`` (the first step's
    norm over the last's: below 1 the gradient vanished over the sequence, above it exploded;
    for an LSTM, through the cell state). With ``scale`` the recurrent weights are ``scale``
    times a random orthogonal matrix, so every direction is stretched by exactly ``scale``.
    """
    s = replace(settings or GradientFlowSettings(), **changes)
    if s.kind not in ("rnn", "lstm"):
        raise ValueError(f"kind must be 'rnn' or 'lstm', got {s.kind!r}")
    if s.length < 2:
        raise ValueError(f"length must be >= 2 steps, got {s.length}")
    gen = torch.Generator().manual_seed(s.seed)
    torch.manual_seed(s.seed)
    cell = RNNCell(4, s.hidden_size) if s.kind == "rnn" else LSTMCell(4, s.hidden_size)
    with torch.no_grad():
        if s.scale is not None:
            q, _ = torch.linalg.qr(torch.randn(s.hidden_size, s.hidden_size, generator=gen))
            rows = cell.weight_hh.shape[0] // s.hidden_size
            cell.weight_hh.copy_(s.scale * q.repeat(rows, 1))
        if s.kind == "lstm":
            cell.bias_hh[s.hidden_size : 2 * s.hidden_size] += s.forget_bias
    x = torch.randn(s.length, s.batch, 4, generator=gen)  # (T, N, 4)
    h = torch.zeros(s.batch, s.hidden_size)
    c = torch.zeros_like(h)
    hs, cs = [], []
    for t in range(s.length):  # the unrolled graph: one node per step
        if s.kind == "rnn":
            h = cell(x[t], h)
        else:
            h, c = cell(x[t], (h, c))
            c.retain_grad()
            cs.append(c)
        h.retain_grad()
        hs.append(h)
    h.sum().backward()
    hidden = torch.stack([v.grad.norm() for v in hs])
    out = {
        "settings": s,
        "distance": torch.arange(s.length - 1, -1, -1),
        "hidden": hidden,
    }
    path = hidden
    if s.kind == "lstm":
        out["cell"] = path = torch.stack([v.grad.norm() for v in cs])
    out["ratio"] = float(path[0] / path[-1])
    return out
