r"""The fast path of :mod:`dlcourse.rnn`: the LSTM's and the GRU's loops over time with their
back-propagation through time written out by hand.

Read :mod:`dlcourse.rnn` first: there one step of each cell is a few lines of code
(``lstm_step``, ``gru_step``) and a layer is a Python loop over the steps, differentiated by
autograd. That loop is the definition; this module computes the same numbers with fewer
operations, and ``tests/test_rnn.py`` holds it to that (outputs, final states and every
gradient, float64, against the readable loop and against ``torch.nn``).

What it saves. Autograd through the loop records a graph node for every operation of every
step (a dozen per LSTM step) and walks them back one by one. Here each direction of each layer
is one :class:`torch.autograd.Function`: the forward keeps only what the backward needs (the
hidden and cell states, the activated gates) in preallocated tensors written in place
(``out=``), and the backward computes every factor that does not depend on the incoming
gradient for all steps at once, so only a few operations per step remain in its loop. The
gradient of the recurrent weights, a sum over the steps, is one matrix product at the end.
At ``benchmarks/rnn.py``'s size (64 sequences of 100 steps, 128 units) on a 2-core CPU that
buys little: the readable loop took 1.0-1.2x this path's time on one thread.

Back-propagation through time: P. Werbos, "Backpropagation through time: what it does and how
to do it", Proceedings of the IEEE 78(10), 1990. The cells: S. Hochreiter, J. Schmidhuber,
"Long short-term memory", Neural Computation 9(8), 1997 (with the forget gate of Gers et al.
2000); K. Cho et al., "Learning phrase representations using RNN encoder-decoder for
statistical machine translation", EMNLP 2014.

Notation: :math:`L` steps, batch :math:`N`, hidden size :math:`H`; :math:`a_t` the gates
before their activation; :math:`\delta x` the gradient of the loss with respect to
:math:`x`.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["GRUFunction", "LSTMFunction", "fused_gru", "fused_lstm"]


class LSTMFunction(torch.autograd.Function):
    r"""One LSTM layer in one direction, with back-propagation through time written out.

    ``forward(x_parts, h0, c0, weight_hh)``: ``x_parts`` ``(L, N, 4H)`` the input's part of
    every step's gates with both biases added, ``h0``, ``c0`` ``(N, H)``. Returns every step's
    hidden state ``(L, N, H)`` and the last cell state ``(N, H)``. The forward keeps the
    activated gates and the cell states; the backward walks the steps in reverse order:

    .. math::

        \delta h_t &= \frac{\partial L}{\partial h_t}\text{ (from the output)}
            + W_{hh}^\top \delta a_{t+1}, \qquad
        \delta c_t = \delta c_{t+1} \odot f_{t+1}
            + \delta h_t \odot o_t \odot (1 - \tanh^2 c_t),\\
        \delta a_t &= [\,\delta c_t\, g_t\, i_t(1-i_t),\; \delta c_t\, c_{t-1} f_t(1-f_t),\;
            \delta c_t\, i_t (1-g_t^2),\; \delta h_t \tanh c_t\, o_t(1-o_t)\,]

    (the four blocks in the gates' order ``i, f, g, o``), and the gradient of :math:`W_{hh}`
    is one matrix product over all steps, :math:`\sum_t \delta a_t^\top h_{t-1}`; the input's
    parts get :math:`\delta a_t` itself, the initial states :math:`\delta h_0` and
    :math:`\delta c_0`.
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
        w_t = weight_hh.t()  # (H, 4H)
        for t in range(length):
            a = torch.addmm(x_parts[t], hs[t], w_t, out=gates[t])  # (N, 4H) before activation
            a[:, : 2 * hidden].sigmoid_()  # i, f
            a[:, 2 * hidden : 3 * hidden].tanh_()  # g
            a[:, 3 * hidden :].sigmoid_()  # o
            i, f, g, o = a.chunk(4, dim=1)  # (N, H) each
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
        # Every factor that does not depend on the incoming gradient, for all steps at once:
        # d a_i = dc g i(1-i), d a_f = dc c_{t-1} f(1-f), d a_g = dc i (1-g^2),
        # d a_o = dh tanh(c_t) o(1-o); and K = o (1 - tanh^2 c_t), the path from h_t to c_t.
        gv = gates.view(length, batch, 4, hidden)  # (L, N, 4H) -> (L, N, 4, H)
        i, f, g, o = gv.unbind(2)  # (L, N, H) each
        factors = torch.empty_like(gv)  # (L, N, 4, H)
        torch.mul(g, torch.addcmul(i, i, i, value=-1), out=factors[:, :, 0])  # g i (1 - i)
        torch.mul(cs[:-1], torch.addcmul(f, f, f, value=-1), out=factors[:, :, 1])
        torch.addcmul(i, i * g, g, value=-1, out=factors[:, :, 2])  # i (1 - g^2)
        torch.mul(tanh_cs, torch.addcmul(o, o, o, value=-1), out=factors[:, :, 3])
        to_cell = torch.addcmul(o, o * tanh_cs, tanh_cs, value=-1)  # o (1 - tanh^2 c): (L, N, H)
        grad_a = torch.empty_like(factors)  # (L, N, 4, H): the gates' gradients, before activation
        # two running gradients, updated in place: dL/dh_t and dL/dc_t, each (N, H)
        dh = torch.zeros_like(hs[0])
        dc = torch.zeros_like(cs[0]) if grad_c_last is None else grad_c_last.clone()
        for t in reversed(range(length)):
            if grad_out is not None:
                dh.add_(grad_out[t])
            dc.addcmul_(dh, to_cell[t])  # through h_t = o tanh(c_t)
            torch.mul(dc.unsqueeze(1), factors[t, :, :3], out=grad_a[t, :, :3])  # i, f, g
            torch.mul(dh, factors[t, :, 3], out=grad_a[t, :, 3])  # o
            dc.mul_(f[t])  # to c_{t-1}, through the forget gate only
            # to h_{t-1}, through all four gates: (N, 4H) @ (4H, H)
            torch.mm(grad_a[t].view(batch, four_h), weight_hh, out=dh)
        flat = grad_a.view(-1, four_h)  # (L N, 4H)
        h_prev = hs[:-1].reshape(-1, hidden)  # (L N, H): h_0 ... h_{L-1}
        grad_w = flat.t() @ h_prev if ctx.needs_input_grad[3] else None  # (4H, H)
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
    all steps at once before the loop, and each step of the loop is two products with
    :math:`\delta` and one matrix product. The gradients of :math:`W_{hh}` and :math:`b_{hh}`
    are sums over the steps, one matrix product and one sum at the end.
    """

    @staticmethod
    def forward(ctx: Any, x_parts, h0, weight_hh, bias_hh):
        length, batch, three_h = x_parts.shape
        hidden = three_h // 3
        hs = x_parts.new_empty((length + 1, batch, hidden))  # h_0 ... h_L
        gates = x_parts.new_empty((length, batch, 3, hidden))  # activated r, z, n
        hn_parts = x_parts.new_empty((length, batch, hidden))  # W_hn h_{t-1} + b_hn
        hs[0] = h0
        w_t = weight_hh.t()  # (H, 3H)
        for t in range(length):
            gh = hs[t] @ w_t if bias_hh is None else torch.addmm(bias_hh, hs[t], w_t)  # (N, 3H)
            g = gates[t]  # (N, 3, H)
            rz = g[:, :2].view(batch, -1)  # (N, 2H): r and z, side by side as in x_parts
            torch.add(x_parts[t, :, : 2 * hidden], gh[:, : 2 * hidden], out=rz)
            rz.sigmoid_()  # r, z
            hn_parts[t] = gh[:, 2 * hidden :]
            r, z = g[:, 0], g[:, 1]  # (N, H) each
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
        )  # (L, N, 3, H): r, z, n
        to_recurrent = to_input.clone()
        to_recurrent[:, :, 2] *= r  # the reset gate scales the recurrent part of n
        grad_x = torch.empty_like(to_input)  # (L, N, 3, H)
        grad_h = torch.empty_like(to_input)
        dh = torch.zeros_like(hs[0])  # (N, H)
        for t in reversed(range(length)):
            dh.add_(grad_out[t])
            torch.mul(dh.unsqueeze(1), to_input[t], out=grad_x[t])
            torch.mul(dh.unsqueeze(1), to_recurrent[t], out=grad_h[t])
            # to h_{t-1}: directly through z, and through the gates: (N, 3H) @ (3H, H)
            dh = torch.addmm(dh * z[t], grad_h[t].view(batch, -1), weight_hh)
        flat_h = grad_h.view(-1, 3 * hidden)  # (L N, 3H)
        h_prev = hs[:-1].reshape(-1, hidden)  # (L N, H): h_0 ... h_{L-1}
        grad_w = flat_h.t() @ h_prev if ctx.needs_input_grad[2] else None  # (3H, H)
        grad_b = flat_h.sum(0) if ctx.has_bias and ctx.needs_input_grad[3] else None  # (3H,)
        return grad_x.view(length, batch, 3 * hidden), dh, grad_w, grad_b


# The two functions as the layers call them: one layer in one direction, the same arguments
# and returns as the readable loop (``_RNNBase._loop`` in dlcourse.rnn).


def fused_lstm(
    x_parts: torch.Tensor,
    h: torch.Tensor,
    c: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_hh: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:class:`LSTMFunction` over ``x_parts`` ``(L, N, 4H)`` (the input's part, with
    ``bias_ih``) from ``h``, ``c`` ``(N, H)``. Returns every step's hidden state ``(L, N, H)``,
    the last hidden state and the last cell state ``(N, H)``."""
    if bias_hh is not None:
        x_parts = x_parts + bias_hh  # (L, N, 4H): both biases before the loop
    out, c_last = LSTMFunction.apply(x_parts, h, c, weight_hh)
    return out, out[-1], c_last


def fused_gru(
    x_parts: torch.Tensor,
    h: torch.Tensor,
    c: None,
    weight_hh: torch.Tensor,
    bias_hh: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, None]:
    """:class:`GRUFunction` over ``x_parts`` ``(L, N, 3H)`` from ``h`` ``(N, H)`` (``c`` is
    there for the layers' common signature and is None). Returns every step's hidden state
    ``(L, N, H)``, the last one, and None (a GRU has no cell state)."""
    out = GRUFunction.apply(x_parts, h, weight_hh, bias_hh)
    return out, out[-1], None
