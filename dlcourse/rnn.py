r"""Recurrent networks from scratch: the vanilla RNN, LSTM and GRU, as cells and as layers.

Taught in ``notebooks/07_recurrent_networks.ipynb`` (claims C5.1-C5.6: 순환 신경망, 다층 RNN,
양방향 RNN, 시간 역전파, 기울기 소멸/폭발, LSTM's 망각/입력/출력 게이트 and 셀 상태, GRU's
리셋/갱신 게이트).

A recurrent layer reads a sequence :math:`x_1, \dots, x_T` one step at a time and carries a
hidden state :math:`h_t` from each step to the next: the same weights at every step, as a
convolution uses the same kernel at every position. The file reads top to bottom:

1. **One step** of each cell, its equations next to its code: :func:`rnn_step`,
   :func:`lstm_step`, :func:`gru_step`. Everything else is built from these three.
2. **Cells** (:class:`RNNCell`, :class:`LSTMCell`, :class:`GRUCell`): one step as a module
   that owns its weights, as ``nn.RNNCell`` and friends.
3. **Layers** (:class:`RNN`, :class:`LSTM`, :class:`GRU`): the step in a plain Python loop over
   time (``_RNNBase._loop``), layer after layer, in one or both directions. Autograd records
   every step, so ``backward()`` is back-propagation through time: the unrolled loop is an
   ordinary deep graph whose layers share their weights (Werbos 1990).
4. **The fast path**, in ``dlcourse/_rnn_fast.py``: the LSTM's and the GRU's loops with
   back-propagation through time written out by hand (:class:`LSTMFunction`,
   :class:`GRUFunction`), fewer operations per step than autograd records. Each layer class
   names its fast function in ``fused_function`` (``None`` for :class:`RNN`, whose loop always
   runs through autograd); the constructor's ``fused`` chooses, and ``fused=False`` runs the
   readable loop. The tests hold the two paths equal (outputs, final states, every gradient);
   ``benchmarks/rnn.py`` times both against ``torch.nn``. On a 2-core CPU the gain is small:
   the readable loop took 1.0-1.2x the fused path's time, both 1.2-1.6x torch's.
5. **The demo**: :func:`gradient_flow` measures how the gradient vanishes or explodes through
   time.

Conventions are torch's: each ``W_i*`` acts on the input, each ``W_h*`` on the previous hidden
state, both have a bias, and the gates are stacked in the rows of ``weight_ih`` and
``weight_hh`` (LSTM ``i, f, g, o``; GRU ``r, z, n``). The input's part of every gate,
:math:`W_{i\cdot} x_t + b_{i\cdot}`, does not depend on the previous step, so a layer computes
it for all steps in one matrix product before the loop; only the recurrent product runs step by
step.

Drop-in compatible: the layers have ``nn.RNN``'s, ``nn.LSTM``'s and ``nn.GRU``'s constructors
(``input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional``; the RNN's
``nonlinearity``), call signatures and returns, and parameter names (``weight_ih_l0``,
``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``, ``..._reverse``), so
``ours.load_state_dict(theirs.state_dict())`` gives the same outputs. Not covered:
``proj_size`` and packed sequences.

References: J. Elman, "Finding structure in time", Cognitive Science 14(2), 1990 (the
recurrent network); P. Werbos, "Backpropagation through time: what it does and how to do it",
Proceedings of the IEEE 78(10), 1990; S. Hochreiter, J. Schmidhuber, "Long short-term memory",
Neural Computation 9(8), 1997, with the forget gate of F. Gers, J. Schmidhuber, F. Cummins,
"Learning to forget", Neural Computation 12(10), 2000; K. Cho et al., "Learning phrase
representations using RNN encoder-decoder for statistical machine translation", EMNLP 2014
(the GRU).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dlcourse._rnn_fast import GRUFunction, LSTMFunction, fused_gru, fused_lstm
from dlcourse._validate import choice, integer

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


# --------------------------------------------------------------------------- 1. one step


def rnn_step(
    x_part: torch.Tensor,
    h: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_hh: torch.Tensor | None,
    relu: bool = False,
) -> torch.Tensor:
    r"""One step of a vanilla RNN (Elman 1990):

    .. math::

        h_t = \tanh(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})

    (:math:`\max(0, \cdot)` in place of :math:`\tanh` with ``relu``). ``x_part`` ``(N, H)`` is
    the input's part, :math:`W_{ih} x_t + b_{ih}`; ``h`` ``(N, H)`` the previous hidden state.
    Returns the new hidden state ``(N, H)``."""
    pre = x_part + F.linear(h, weight_hh, bias_hh)  # (N, H)
    return torch.relu(pre) if relu else torch.tanh(pre)


def lstm_step(
    x_part: torch.Tensor,
    h: torch.Tensor,
    c: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_hh: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""One LSTM step (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al.
    2000). With :math:`\sigma` the logistic sigmoid and :math:`\odot` the elementwise product:

    .. math::

        i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi})  &\text{input gate}\\
        f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf})  &\text{forget gate}\\
        g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg})   &\text{candidate}\\
        o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho})  &\text{output gate}\\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t                      &\text{cell state}\\
        h_t &= o_t \odot \tanh(c_t)

    The cell state is updated by a product with the forget gate and a sum, not by a matrix and
    a squashing function: while :math:`f_t \approx 1` its gradient passes back through many
    steps nearly unchanged (:math:`\partial c_t / \partial c_{t-1} = f_t` along that path).

    ``x_part`` ``(N, 4H)`` is the input's part of the gates, :math:`W_{i\cdot} x_t +
    b_{i\cdot}` (rows ``i, f, g, o``); ``h``, ``c`` ``(N, H)``. Returns ``(h_new, c_new,
    gates)``, ``gates`` ``(N, 4H)`` the activated ``i, f, g, o`` (kept for plots of what the
    gates do)."""
    pre = x_part + F.linear(h, weight_hh, bias_hh)  # (N, 4H): i, f, g, o before activation
    i, f, g, o = pre.chunk(4, dim=1)  # (N, H) each
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c_new = f * c + i * g  # forget part of the old cell state, add the gated candidate
    h_new = o * torch.tanh(c_new)  # show part of it
    return h_new, c_new, torch.cat([i, f, g, o], dim=1)  # gates (N, 4H)


def gru_step(
    x_part: torch.Tensor, h: torch.Tensor, weight_hh: torch.Tensor, bias_hh: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""One GRU step (Cho et al. 2014):

    .. math::

        r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr})  &\text{reset gate}\\
        z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz})  &\text{update gate}\\
        n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn}))
            &\text{new content}\\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    .. note:: torch applies the reset gate after the product with :math:`W_{hn}`, as here; Cho
       et al. apply it before, :math:`W_{hn} (r_t \odot h_{t-1})`. The update gate does the
       work of the LSTM's forget and input gates together.

    ``x_part`` ``(N, 3H)`` is the input's part, :math:`W_{i\cdot} x_t + b_{i\cdot}` (rows ``r,
    z, n``); ``h`` ``(N, H)``. Returns ``(h_new, gates)``, ``gates`` ``(N, 3H)`` the activated
    ``r, z, n``."""
    h_part = F.linear(h, weight_hh, bias_hh)  # (N, 3H)
    xr, xz, xn = x_part.chunk(3, dim=1)  # (N, H) each
    hr, hz, hn = h_part.chunk(3, dim=1)  # (N, H) each
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)  # the reset gate scales the recurrent part (torch's form)
    h_new = (1 - z) * n + z * h  # the update gate: keep the old state, or take the new
    return h_new, torch.cat([r, z, n], dim=1)  # gates (N, 3H)


# --------------------------------------------------------------------------- checks, shared


def _nonlinearity(value: Any) -> str:
    """``'tanh'`` or ``'relu'``, refused with ``nn.RNN``'s own message (tested against it), so
    that swapping ours for torch's changes nothing."""
    if value not in ("tanh", "relu"):
        raise ValueError(f"Unknown nonlinearity '{value}'. Select from 'tanh' or 'relu'.")
    return value


# torch's extra_repr: the two sizes, then each argument that is not at its default, in this order
_REPR_DEFAULTS = (
    ("num_layers", 1),
    ("bias", True),
    ("batch_first", False),
    ("dropout", 0.0),
    ("bidirectional", False),
    ("nonlinearity", "tanh"),  # nn.RNNCell shows it; nn.RNN does not, ours does (it matters)
)


def _extra_repr(module: nn.Module) -> str:
    """``"3, 4, num_layers=2, bias=False"``, for cells and layers (a cell has no num_layers)."""
    text = f"{module.input_size}, {module.hidden_size}"
    for name, default in _REPR_DEFAULTS:
        value = getattr(module, name, default)
        if value != default:
            text += f", {name}={value}"
    return text


def _init_uniform(module: nn.Module, hidden_size: int) -> None:
    """torch's default for recurrent layers: every weight and bias U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(hidden_size)
    for p in module.parameters():
        nn.init.uniform_(p, -bound, bound)


# --------------------------------------------------------------------------- 2. cells


class _CellBase(nn.Module):
    """What the cells share: torch's constructor and parameters, the checks of one step."""

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
        self.input_size = integer(input_size, "input_size", minimum=1)
        self.hidden_size = integer(hidden_size, "hidden_size", minimum=1)
        self.bias = bias
        rows = GATES[self._mode] * hidden_size  # one block of rows per gate
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

    def extra_repr(self) -> str:
        return _extra_repr(self)

    def _prepare(self, input: torch.Tensor, hx: torch.Tensor | None, what: str):
        """``input`` as ``(N, input_size)`` and ``hx`` as ``(N, hidden_size)`` (or None), and
        whether they were batched."""
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
        x = input if batched else input.unsqueeze(0)  # (N, I)
        if hx is None:
            return x, None, batched
        h = hx if batched else hx.unsqueeze(0)  # (N, H)
        if tuple(h.shape) != (x.shape[0], self.hidden_size):
            expected = (x.shape[0], self.hidden_size) if batched else (self.hidden_size,)
            raise ValueError(
                f"{name}: {what} must have shape {expected} ({'batch, ' if batched else ''}"
                f"hidden_size), got {tuple(hx.shape)}"
            )
        return x, h, batched


class RNNCell(_CellBase):
    r"""One step of a vanilla RNN, as ``nn.RNNCell``: :func:`rnn_step`, ``h' = tanh(W_ih x +
    b_ih + W_hh h + b_hh)`` (or relu). ``forward(input, hx=None)``: input ``(N, input_size)``,
    hx ``(N, hidden_size)`` (zeros when None); returns ``h'``."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.nonlinearity = _nonlinearity(nonlinearity)
        super().__init__(input_size, hidden_size, bias, device, dtype)

    def forward(self, input: torch.Tensor, hx: torch.Tensor | None = None) -> torch.Tensor:
        x, h, batched = self._prepare(input, hx, "hx")
        if h is None:
            h = x.new_zeros(x.shape[0], self.hidden_size)  # (N, H)
        x_part = F.linear(x, self.weight_ih, self.bias_ih)  # (N, H)
        out = rnn_step(x_part, h, self.weight_hh, self.bias_hh, self.nonlinearity == "relu")
        return out if batched else out.squeeze(0)  # (N, H) or (H,)


class LSTMCell(_CellBase):
    """One LSTM step, as ``nn.LSTMCell``: :func:`lstm_step` (gates ``i, f, g, o``).
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
            h = c = x.new_zeros(x.shape[0], self.hidden_size)  # (N, H)
        x_part = F.linear(x, self.weight_ih, self.bias_ih)  # (N, 4H)
        h, c, _ = lstm_step(x_part, h, c, self.weight_hh, self.bias_hh)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))  # (N, H) or (H,) each


class GRUCell(_CellBase):
    """One GRU step, as ``nn.GRUCell``: :func:`gru_step` (gates ``r, z, n``).
    ``forward(input, hx=None)``; returns ``h'``."""

    _mode = "GRU"

    def forward(self, input: torch.Tensor, hx: torch.Tensor | None = None) -> torch.Tensor:
        x, h, batched = self._prepare(input, hx, "hx")
        if h is None:
            h = x.new_zeros(x.shape[0], self.hidden_size)  # (N, H)
        x_part = F.linear(x, self.weight_ih, self.bias_ih)  # (N, 3H)
        out, _ = gru_step(x_part, h, self.weight_hh, self.bias_hh)
        return out if batched else out.squeeze(0)  # (N, H) or (H,)


# --------------------------------------------------------------------------- 3. layers


class _RNNBase(nn.Module):
    """What RNN, LSTM and GRU share: torch's constructor and parameter names, and the loops.

    Each subclass gives two ways to run one layer in one direction over a whole sequence, with
    the same arguments ``(x_parts, h, c, weight_hh, bias_hh)`` and returns ``(out, h, c)``:

    - ``_step``, the readable way: one step (:func:`rnn_step`, :func:`lstm_step`,
      :func:`gru_step`), which :meth:`_loop` runs step after step; autograd back-propagates
      through time.
    - ``fused_function``, the fast way, or ``None`` where there is none: the same loop with its
      back-propagation through time written out (``dlcourse/_rnn_fast.py``).

    The constructor's ``fused`` chooses (as ``foreach`` in ``torch.optim``): ``None``, the
    default, runs ``fused_function`` wherever the class has one; ``False`` the readable loop;
    ``True`` insists on the fused function. :meth:`LSTM.gates` and :meth:`GRU.gates` always run
    the loop, which keeps every step's gates.
    """

    _mode = "RNN_TANH"
    fused_function: Callable[..., tuple] | None = None

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
        *,
        fused: bool | None = None,
    ) -> None:
        super().__init__()
        self.input_size = integer(input_size, "input_size", minimum=1)
        self.hidden_size = integer(hidden_size, "hidden_size", minimum=1)
        self.num_layers = integer(num_layers, "num_layers", minimum=1)
        if (
            isinstance(dropout, bool)
            or not isinstance(dropout, int | float)
            or not 0 <= dropout <= 1
        ):  # nn.RNN's own message (tested against it)
            raise ValueError(
                "dropout should be a number in range [0, 1] representing the probability of an "
                "element being zeroed"
            )
        self.bias, self.batch_first = bias, batch_first
        self.dropout, self.bidirectional = float(dropout), bidirectional
        self.fused = fused
        rows = GATES[self._mode] * hidden_size  # one block of rows per gate
        factory = {"device": device, "dtype": dtype}
        self._names: list[list[str]] = []  # per layer and direction: its parameters' names
        for layer in range(num_layers):
            width = input_size if layer == 0 else hidden_size * self.num_directions
            for direction in range(self.num_directions):
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

    @property
    def fused(self) -> bool:
        """Whether :meth:`forward` runs ``fused_function`` (True) or the readable loop (False);
        set it to switch (``None``: the class's default, fused wherever it can be)."""
        return self._fused

    @fused.setter
    def fused(self, value: bool | None) -> None:
        can = self.fused_function is not None
        if value is None:
            value = can
        if not isinstance(value, bool):
            raise TypeError(f"fused must be True, False or None, got {value!r}")
        if value and not can:
            raise ValueError(
                f"{type(self).__name__} has no fused function (fused_function is None): its "
                "loop always runs through autograd; leave fused=None or False"
            )
        self._fused = value

    # -- the loops

    def _step(self, x_part, h, c, w_hh, b_hh):
        """One step: ``(h, c, gates)``, ``c`` and ``gates`` None where the cell has none."""
        raise NotImplementedError

    def _loop(self, x_parts, h, c, w_hh, b_hh):
        """The readable way: ``_step`` at every step in order, autograd recording each one.
        ``x_parts`` ``(L, N, G H)``; returns every step's ``h`` ``(L, N, H)``, the last ``h``
        and ``c``, and every step's gates (a list)."""
        hs, gates = [], []
        # Iterating splits x_parts once (one unbind). Indexing x_parts[t] instead would cost
        # a full-size (L, N, G H) gradient per step in the backward: 3-5x slower at L = 100.
        for x_part in x_parts:  # (N, G H): step t's input part
            h, c, g = self._step(x_part, h, c, w_hh, b_hh)
            hs.append(h)
            gates.append(g)
        return torch.stack(hs), h, c, gates  # (L, N, H)

    def _run(
        self, x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor | None, keep_gates: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, list]:
        """x ``(L, N, I)``, h0/c0 ``(layers * D, N, H)``. Returns output ``(L, N, D H)``,
        h_n, c_n and the gates of every layer and direction (when asked)."""
        h_n, c_n, gates = [], [], []
        layer_input = x  # (L, N, I), then (L, N, D H) from the second layer on
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                w_ih, w_hh, b_ih, b_hh = self._weights(index)
                seq = layer_input.flip(0) if direction else layer_input  # reverse: read backwards
                x_parts = F.linear(seq, w_ih, b_ih)  # (L, N, G H): every step's input, one product
                h = h0[index]  # (N, H)
                c = None if c0 is None else c0[index]
                if self.fused and not keep_gates:  # the same loop, its backward written out
                    out, h, c = self.fused_function(x_parts, h, c, w_hh, b_hh)
                else:  # the readable loop, through autograd
                    out, h, c, step_gates = self._loop(x_parts, h, c, w_hh, b_hh)
                outputs.append(out.flip(0) if direction else out)  # (L, N, H), in time order
                h_n.append(h)
                c_n.append(c)
                if keep_gates:
                    stacked = torch.stack(step_gates)  # (L, N, G H)
                    gates.append(stacked.flip(0) if direction else stacked)
            # (L, N, D H): both directions' states side by side, the next layer's input
            layer_input = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
        c_stack = torch.stack(c_n) if c0 is not None else None  # (layers * D, N, H)
        return layer_input, torch.stack(h_n), c_stack, gates  # h_n (layers * D, N, H)

    def _weights(self, index: int) -> tuple[torch.Tensor, torch.Tensor, Any, Any]:
        names = self._names[index]
        w_ih, w_hh = getattr(self, names[0]), getattr(self, names[1])
        if not self.bias:
            return w_ih, w_hh, None, None
        return w_ih, w_hh, getattr(self, names[2]), getattr(self, names[3])

    def _forward(self, input: torch.Tensor, h0, c0, keep_gates: bool):
        x, batched = self._check_input(input)  # (L, N, I)
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
        out, h_n, c_n, gates = self._run(x, h0, c0, keep_gates)  # out (L, N, D H)
        if batched and self.batch_first:
            out = out.transpose(0, 1)  # (N, L, D H)
        if not batched:
            out, h_n = out.squeeze(1), h_n.squeeze(1)  # (L, D H), (layers * D, H)
            c_n = None if c_n is None else c_n.squeeze(1)  # (layers * D, H)
        return out, h_n, c_n, gates

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
        """``state`` as ``(layers * D, N, H)``, or None."""
        layers = self.num_layers * self.num_directions
        if state is None:
            return None
        expected = (layers, batch, self.hidden_size) if batched else (layers, self.hidden_size)
        if tuple(state.shape) != expected:
            raise ValueError(
                f"{type(self).__name__}: {what} must have shape {expected} (num_layers x "
                f"directions, {'batch, ' if batched else ''}hidden_size), got {tuple(state.shape)}"
            )
        return state if batched else state.unsqueeze(1)  # (layers * D, 1, H)

    def extra_repr(self) -> str:
        text = _extra_repr(self)
        if self.fused != (self.fused_function is not None):
            text += f", fused={self.fused}"
        return text


class RNN(_RNNBase):
    """A (multi-layer, optionally bidirectional) vanilla RNN, as ``nn.RNN``: :func:`rnn_step`
    in the readable loop, through autograd (it has no fused function).

    ``forward(input, hx=None)``: input ``(L, N, input_size)`` (``(N, L, input_size)`` with
    ``batch_first``, or ``(L, input_size)`` unbatched), ``hx`` = h_0 ``(num_layers *
    directions, N, hidden_size)``. Returns ``(output, h_n)``: output ``(L, N, directions *
    hidden_size)``, every step's top-layer hidden state; h_n the last step's, every layer's.
    """

    fused_function = None  # always the loop of rnn_step, through autograd

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        fused: bool | None = None,
    ) -> None:
        self.nonlinearity = _nonlinearity(nonlinearity)
        self._mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            device, dtype, fused=fused,
        )  # fmt: skip

    def _step(self, x_part, h, c, w_hh, b_hh):
        return rnn_step(x_part, h, w_hh, b_hh, self.nonlinearity == "relu"), None, None

    def forward(
        self, input: torch.Tensor, hx: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out, h_n, _, _ = self._forward(input, hx, None, False)
        return out, h_n


class LSTM(_RNNBase):
    """A (multi-layer, optionally bidirectional) LSTM, as ``nn.LSTM``: :func:`lstm_step` in
    the readable loop, or its fused function (the default; ``fused=False`` for the loop).

    ``forward(input, hx=None)`` with ``hx = (h_0, c_0)``, each ``(num_layers * directions, N,
    hidden_size)``; returns ``(output, (h_n, c_n))``. :meth:`gates` also returns every step's
    gate activations, for plots.
    """

    _mode = "LSTM"
    fused_function = staticmethod(fused_lstm)  # LSTMFunction, in dlcourse/_rnn_fast.py

    def _step(self, x_part, h, c, w_hh, b_hh):
        return lstm_step(x_part, h, c, w_hh, b_hh)

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
        batched input (time first, whatever ``batch_first``). Runs the readable loop."""
        _, _, _, gates = self._forward(input, *(hx or (None, None)), True)
        names = ("input", "forget", "cell", "output")
        return [dict(zip(names, g.chunk(4, dim=-1), strict=True)) for g in gates]  # (L, N, H)


class GRU(_RNNBase):
    """A (multi-layer, optionally bidirectional) GRU, as ``nn.GRU``: :func:`gru_step` in the
    readable loop, or its fused function (the default; ``fused=False`` for the loop).
    ``forward(input, hx=None)`` returns ``(output, h_n)`` as :class:`RNN`. :meth:`gates`
    returns every step's gates."""

    _mode = "GRU"
    fused_function = staticmethod(fused_gru)  # GRUFunction, in dlcourse/_rnn_fast.py

    def _step(self, x_part, h, c, w_hh, b_hh):
        h, gates = gru_step(x_part, h, w_hh, b_hh)
        return h, None, gates

    def forward(
        self, input: torch.Tensor, hx: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out, h_n, _, _ = self._forward(input, hx, None, False)
        return out, h_n

    def gates(self, input: torch.Tensor, hx=None) -> list[dict[str, torch.Tensor]]:
        """As :meth:`LSTM.gates`, with ``{'reset', 'update', 'new'}``."""
        _, _, _, gates = self._forward(input, hx, None, True)
        names = ("reset", "update", "new")
        return [dict(zip(names, g.chunk(3, dim=-1), strict=True)) for g in gates]  # (L, N, H)


LAYERS: dict[str, type[_RNNBase]] = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
CELLS: dict[str, type[_CellBase]] = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}


def layer(kind: str, input_size: int, hidden_size: int, **kwargs: Any) -> _RNNBase:
    """A recurrent layer by name (``"rnn"``, ``"lstm"`` or ``"gru"``), with ``batch_first=True``
    unless ``kwargs`` say otherwise."""
    choice(kind, "kind", LAYERS)
    kwargs.setdefault("batch_first", True)
    return LAYERS[kind](input_size, hidden_size, **kwargs)


# --------------------------------------------------------------------------- 5. the demo


@dataclass(frozen=True)
class GradientFlowSettings:
    kind: str = "rnn"  # "rnn" (tanh) or "lstm"
    length: int = 50  # steps
    hidden_size: int = 32
    scale: float | None = None  # None: torch's initialisation; else weight_hh = scale x orthogonal
    forget_bias: float = 0.0  # added to the LSTM's forget-gate bias
    batch: int = 16
    seed: int = 0
    truncate: int | None = None  # truncated BPTT: the carried state detached every `truncate` steps


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

    With ``truncate`` = k, truncated back-propagation through time: the state carried into
    steps k, 2k, ... is detached (its value passes on, its gradient path is cut), so the
    gradient of the last step's loss reaches back only to the start of its segment of k steps;
    every earlier step's gradient is exactly 0 (the states before the cut are not on the loss's
    graph).
    """
    s = replace(settings or GradientFlowSettings(), **changes)
    choice(s.kind, "kind", ("rnn", "lstm"))
    integer(s.length, "length", minimum=2)
    integer(s.batch, "batch", minimum=1)
    if s.truncate is not None:
        integer(s.truncate, "truncate", minimum=1)
    gen = torch.Generator().manual_seed(s.seed)
    torch.manual_seed(s.seed)
    cell = RNNCell(4, s.hidden_size) if s.kind == "rnn" else LSTMCell(4, s.hidden_size)
    with torch.no_grad():
        if s.scale is not None:
            q, _ = torch.linalg.qr(torch.randn(s.hidden_size, s.hidden_size, generator=gen))
            rows = cell.weight_hh.shape[0] // s.hidden_size
            cell.weight_hh.copy_(s.scale * q.repeat(rows, 1))  # (rows H, H): q for every gate
        if s.kind == "lstm":
            cell.bias_hh[s.hidden_size : 2 * s.hidden_size] += s.forget_bias
    x = torch.randn(s.length, s.batch, 4, generator=gen)  # (T, N, 4)
    h = torch.zeros(s.batch, s.hidden_size)
    c = torch.zeros_like(h)
    hs, cs = [], []
    for t in range(s.length):  # the unrolled graph: one node per step
        if s.truncate and t and t % s.truncate == 0:  # a new segment: carry the value only
            h, c = h.detach(), c.detach()
        if s.kind == "rnn":
            h = cell(x[t], h)
        else:
            h, c = cell(x[t], (h, c))
            c.retain_grad()
            cs.append(c)
        h.retain_grad()
        hs.append(h)
    h.sum().backward()

    def norms(states: list[torch.Tensor]) -> torch.Tensor:  # no gradient (cut off): 0
        return torch.stack(
            [v.grad.norm() if v.grad is not None else v.new_zeros(()) for v in states]
        )

    hidden = norms(hs)
    out = {
        "settings": s,
        "distance": torch.arange(s.length - 1, -1, -1),
        "hidden": hidden,
    }
    path = hidden
    if s.kind == "lstm":
        out["cell"] = path = norms(cs)
    out["ratio"] = float(path[0] / path[-1])
    return out
