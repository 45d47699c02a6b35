r"""Exercises of ``notebooks/07_recurrent_networks.ipynb``: one LSTM step, one GRU step (torch's
gate order and conventions, :mod:`dlcourse.rnn`), and back-propagation through time for a
small linear RNN."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dlcourse.exercises.engine import Exercise, Wrong

# --------------------------------------------------------------------------- an LSTM step


def lstm_cell_step(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    r"""One LSTM step for a batch: ``x`` ``(N, I)``, ``h``, ``c`` ``(N, H)``, ``weight_ih``
    ``(4H, I)``, ``weight_hh`` ``(4H, H)``, biases ``(4H,)``, the rows in torch's gate order
    ``i, f, g, o``. Returns ``(h_new, c_new)``."""
    gates = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh  # (N, 4H)
    i, f, g, o = gates.chunk(4, dim=1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c_new = f * c + i * g
    h_new = o * torch.tanh(c_new)
    return h_new, c_new


def _lstm_cases(gen: torch.Generator) -> list[tuple]:
    def case(n, i, h, dtype=torch.float64):
        def r(*shape):
            return torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)

        return r(n, i), r(n, h), r(n, h), r(4 * h, i), r(4 * h, h), r(4 * h), r(4 * h)

    return [
        case(3, 2, 4),
        case(1, 3, 2),
        case(5, 4, 3),
        case(2, 1, 1),
        case(4, 6, 5, torch.float32),
    ]


def _lstm_variant(x, h, c, w_ih, w_hh, b_ih, b_hh, *, order="ifgo", candidate=torch.tanh,
                  forget_hidden=False, squash_cell=True):  # fmt: skip
    """An LSTM step with one thing changed, for the known-wrong variants below."""
    blocks = dict(zip(order, (x @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, dim=1), strict=True))
    i, f, o = torch.sigmoid(blocks["i"]), torch.sigmoid(blocks["f"]), torch.sigmoid(blocks["o"])
    c_new = f * (h if forget_hidden else c) + i * candidate(blocks["g"])
    return o * (torch.tanh(c_new) if squash_cell else c_new), c_new


def _lstm_gate_order(*args):
    return _lstm_variant(*args, order="ifog")  # i, f, o, g: not torch's order


def _lstm_sigmoid_candidate(*args):
    return _lstm_variant(*args, candidate=torch.sigmoid)


def _lstm_forget_on_h(*args):
    return _lstm_variant(*args, forget_hidden=True)  # forgets part of h instead of c


def _lstm_no_tanh_on_cell(*args):
    return _lstm_variant(*args, squash_cell=False)


def _lstm_with_linear(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    hidden = h.shape[1]
    pre = F.linear(x, weight_ih, bias_ih) + F.linear(h, weight_hh, bias_hh)
    i = torch.sigmoid(pre[:, :hidden])
    f = torch.sigmoid(pre[:, hidden : 2 * hidden])
    g = torch.tanh(pre[:, 2 * hidden : 3 * hidden])
    o = torch.sigmoid(pre[:, 3 * hidden :])
    c_new = torch.addcmul(f * c, i, g)
    return o * c_new.tanh(), c_new


LSTM_CELL_STEP = Exercise(
    name="lstm_cell_step",
    notebook=7,
    task=(
        "Write `lstm_cell_step(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh)` for a batch: "
        "`x` `(N, I)`, `h` and `c` `(N, H)`, `weight_ih` `(4H, I)`, `weight_hh` `(4H, H)`, "
        "`bias_ih` and `bias_hh` `(4H,)`. The gates before activation are `x @ weight_ih.T + "
        "bias_ih + h @ weight_hh.T + bias_hh`, split into four blocks of H columns in torch's "
        "order i, f, g, o: input, forget and output gates through the sigmoid, the candidate g "
        "through tanh. Then `c_new = f * c + i * g` and `h_new = o * tanh(c_new)`. Return "
        "`(h_new, c_new)`."
    ),
    reference=lstm_cell_step,
    cases=_lstm_cases,
    grad=True,
    forbidden=(torch.lstm_cell,),
    wrong=(
        Wrong(
            _lstm_gate_order,
            "torch's gate order is i, f, g, o: the third block of rows is the candidate g and "
            "the fourth the output gate o.",
        ),
        Wrong(
            _lstm_sigmoid_candidate,
            "The candidate g goes through tanh, not the sigmoid: it is the new content, in "
            "(-1, 1); the gates i, f, o are the sigmoids, fractions in (0, 1).",
        ),
        Wrong(
            _lstm_forget_on_h,
            "The forget gate scales the previous cell state c, not the hidden state h: "
            "c_new = f * c + i * g. The cell state is the LSTM's memory.",
        ),
        Wrong(
            _lstm_no_tanh_on_cell,
            "The output is o * tanh(c_new): the cell state is squashed before the output gate "
            "lets it out.",
        ),
    ),
    hints=(
        "Compute all four gates in one go: gates = x @ weight_ih.T + bias_ih + h @ "
        "weight_hh.T + bias_hh, shape (N, 4H).",
        "i, f, g, o = gates.chunk(4, dim=1); then sigmoid on i, f, o and tanh on g.",
        "c_new = f * c + i * g; h_new = o * torch.tanh(c_new).",
    ),
    alternatives=(_lstm_with_linear,),
)


# --------------------------------------------------------------------------- a GRU step


def gru_cell_step(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    r"""One GRU step in torch's form: ``x`` ``(N, I)``, ``h`` ``(N, H)``, ``weight_ih`` ``(3H,
    I)``, ``weight_hh`` ``(3H, H)``, biases ``(3H,)``, rows in the order ``r, z, n``. The reset
    gate multiplies the recurrent part *after* its product: ``n = tanh(W_in x + b_in + r *
    (W_hn h + b_hn))``; ``h_new = (1 - z) * n + z * h``."""
    xr, xz, xn = (x @ weight_ih.T + bias_ih).chunk(3, dim=1)
    hr, hz, hn = (h @ weight_hh.T + bias_hh).chunk(3, dim=1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return (1 - z) * n + z * h


def _gru_cases(gen: torch.Generator) -> list[tuple]:
    def case(n, i, h, dtype=torch.float64):
        def r(*shape):
            return torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)

        return r(n, i), r(n, h), r(3 * h, i), r(3 * h, h), r(3 * h), r(3 * h)

    return [
        case(3, 2, 4),
        case(1, 3, 2),
        case(5, 4, 3),
        case(2, 1, 1),
        case(4, 6, 5, torch.float32),
    ]


def _gru_variant(x, h, w_ih, w_hh, b_ih, b_hh, *, order="rzn", reversed_mix=False,
                 reset="recurrent"):  # fmt: skip
    """A GRU step with one thing changed, for the known-wrong variants below."""
    xs = dict(zip(order, (x @ w_ih.T + b_ih).chunk(3, dim=1), strict=True))
    hs = dict(zip(order, (h @ w_hh.T + b_hh).chunk(3, dim=1), strict=True))
    r, z = torch.sigmoid(xs["r"] + hs["r"]), torch.sigmoid(xs["z"] + hs["z"])
    if reset == "recurrent":  # torch's form
        n = torch.tanh(xs["n"] + r * hs["n"])
    elif reset == "input":
        n = torch.tanh(r * xs["n"] + hs["n"])
    else:  # "before": Cho et al.'s form, the reset applied to h before the product
        hidden = h.shape[1]
        n = torch.tanh(xs["n"] + (r * h) @ w_hh[2 * hidden :].T + b_hh[2 * hidden :])
    return z * n + (1 - z) * h if reversed_mix else (1 - z) * n + z * h


def _gru_reversed(*args):
    return _gru_variant(*args, reversed_mix=True)  # the interpolation the other way round


def _gru_reset_before(*args):
    return _gru_variant(*args, reset="before")


def _gru_reset_on_input(*args):
    return _gru_variant(*args, reset="input")


def _gru_swapped(*args):
    return _gru_variant(*args, order="zrn")  # z first: not torch's order


def _gru_lerp(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    gi = F.linear(x, weight_ih, bias_ih)
    gh = F.linear(h, weight_hh, bias_hh)
    hidden = h.shape[1]
    r = torch.sigmoid(gi[:, :hidden] + gh[:, :hidden])
    z = torch.sigmoid(gi[:, hidden : 2 * hidden] + gh[:, hidden : 2 * hidden])
    n = torch.tanh(gi[:, 2 * hidden :] + r * gh[:, 2 * hidden :])
    return torch.lerp(n, h, z)  # n + z (h - n)


GRU_CELL_STEP = Exercise(
    name="gru_cell_step",
    notebook=7,
    task=(
        "Write `gru_cell_step(x, h, weight_ih, weight_hh, bias_ih, bias_hh)` in torch's form: "
        "`x` `(N, I)`, `h` `(N, H)`, `weight_ih` `(3H, I)`, `weight_hh` `(3H, H)`, biases "
        "`(3H,)`, rows in the order r, z, n. With `xr, xz, xn` the three blocks of `x @ "
        "weight_ih.T + bias_ih` and `hr, hz, hn` those of `h @ weight_hh.T + bias_hh`: "
        "`r = sigmoid(xr + hr)`, `z = sigmoid(xz + hz)`, `n = tanh(xn + r * hn)`, and "
        "`h_new = (1 - z) * n + z * h`. Return `h_new`."
    ),
    reference=gru_cell_step,
    cases=_gru_cases,
    grad=True,
    forbidden=(torch.gru_cell,),
    wrong=(
        Wrong(
            _gru_reversed,
            "The update gate z says how much of the old state to keep: h_new = (1 - z) * n + "
            "z * h. You have the interpolation the other way round.",
        ),
        Wrong(
            _gru_reset_before,
            "That is the GRU of Cho et al. (reset applied to h before the product with W_hn). "
            "torch applies it after: n = tanh(xn + r * hn), with hn = W_hn h + b_hn.",
        ),
        Wrong(
            _gru_reset_on_input,
            "The reset gate scales the recurrent part hn, not the input part: n = tanh(xn + "
            "r * hn). It decides how much of the past enters the new content.",
        ),
        Wrong(
            _gru_swapped,
            "torch's row order is r, z, n: the first block is the reset gate, the second the "
            "update gate.",
        ),
    ),
    hints=(
        "Two products, each split in three: xr, xz, xn = (x @ weight_ih.T + bias_ih).chunk(3, "
        "dim=1), and the same for h.",
        "r and z are sigmoids of sums; the reset gate multiplies hn inside the tanh.",
        "h_new = (1 - z) * n + z * h: z near 1 keeps the old state.",
    ),
    alternatives=(_gru_lerp,),
)


# --------------------------------------------------------------------------- BPTT


def linear_rnn_grads(weight, weight_in, xs, h0, v):
    r"""Back-propagation through time for the linear RNN :math:`h_t = W h_{t-1} + U x_t`
    (``weight`` ``W`` ``(H, H)``, ``weight_in`` ``U`` ``(H, I)``, ``xs`` ``(T, I)``, ``h0``
    ``(H,)``) with the loss :math:`L = v^\top h_T`. Returns ``(grad_weight, grad_weight_in)``:
    with :math:`\delta_T = v` and :math:`\delta_{t-1} = W^\top \delta_t`,
    :math:`\partial L/\partial W = \sum_t \delta_t h_{t-1}^\top` and
    :math:`\partial L/\partial U = \sum_t \delta_t x_t^\top`."""
    hs = [h0]
    for x in xs:  # forward: keep every state
        hs.append(weight @ hs[-1] + weight_in @ x)
    grad_w = torch.zeros_like(weight)
    grad_u = torch.zeros_like(weight_in)
    delta = v  # dL/dh_T
    for t in range(len(xs), 0, -1):  # backward through time: steps T, T-1, ..., 1
        grad_w += torch.outer(delta, hs[t - 1])
        grad_u += torch.outer(delta, xs[t - 1])
        delta = weight.T @ delta  # dL/dh_{t-1}
    return grad_w, grad_u


def _bptt_cases(gen: torch.Generator) -> list[tuple]:
    def case(t, i, h, dtype=torch.float64):
        def r(*shape, scale=1.0):
            return (scale * torch.randn(shape, generator=gen, dtype=torch.float64)).to(dtype)

        return r(h, h, scale=0.5), r(h, i), r(t, i), r(h), r(h)

    return [
        case(4, 2, 3),
        case(1, 3, 2),
        case(6, 1, 4),
        case(3, 2, 1),
        case(5, 3, 3, torch.float32),
    ]


def _bptt_last_step_only(weight, weight_in, xs, h0, v):
    hs = [h0]
    for x in xs:
        hs.append(weight @ hs[-1] + weight_in @ x)
    return torch.outer(v, hs[-2]), torch.outer(v, xs[-1])  # no gradient through time


def _bptt_off_by_one(weight, weight_in, xs, h0, v):
    hs = [h0]
    for x in xs:
        hs.append(weight @ hs[-1] + weight_in @ x)
    grad_w, grad_u, delta = torch.zeros_like(weight), torch.zeros_like(weight_in), v
    for t in range(len(xs), 0, -1):
        grad_w += torch.outer(delta, hs[t])  # h_t instead of h_{t-1}
        grad_u += torch.outer(delta, xs[t - 1])
        delta = weight.T @ delta
    return grad_w, grad_u


def _bptt_not_transposed(weight, weight_in, xs, h0, v):
    hs = [h0]
    for x in xs:
        hs.append(weight @ hs[-1] + weight_in @ x)
    grad_w, grad_u, delta = torch.zeros_like(weight), torch.zeros_like(weight_in), v
    for t in range(len(xs), 0, -1):
        grad_w += torch.outer(delta, hs[t - 1])
        grad_u += torch.outer(delta, xs[t - 1])
        delta = weight @ delta  # W instead of W^T
    return grad_w, grad_u


def _bptt_autograd(weight, weight_in, xs, h0, v):
    w = weight.detach().clone().requires_grad_(True)
    u = weight_in.detach().clone().requires_grad_(True)
    h = h0
    for x in xs:
        h = w @ h + u @ x
    grad_w, grad_u = torch.autograd.grad(v @ h, (w, u))
    return grad_w, grad_u


LINEAR_RNN_GRADS = Exercise(
    name="linear_rnn_grads",
    notebook=7,
    task=(
        "Write `linear_rnn_grads(weight, weight_in, xs, h0, v)` for the linear RNN `h_t = W "
        "h_{t-1} + U x_t`, t = 1..T (`weight` W `(H, H)`, `weight_in` U `(H, I)`, `xs` `(T, "
        "I)` with `xs[t - 1]` the input of step t, `h0` `(H,)`) and the loss `L = v @ h_T`. "
        "Run it forwards keeping every state, then backwards through time: `delta` = dL/dh_t "
        "starts at `v` for t = T and goes one step back as `W.T @ delta`; each step adds "
        "`outer(delta, h_{t-1})` to dL/dW and `outer(delta, x_t)` to dL/dU. Return `(grad_W, "
        "grad_U)`, by hand: autograd would do it for you, and the point is to see how."
    ),
    reference=linear_rnn_grads,
    cases=_bptt_cases,
    wrong=(
        Wrong(
            _bptt_last_step_only,
            "W is used at every step, so the loss depends on it through every step: add the "
            "contribution of each step t, going back through time with delta = W.T @ delta.",
        ),
        Wrong(
            _bptt_off_by_one,
            "Step t computes h_t from h_{t-1}: its contribution to dL/dW is outer(delta_t, "
            "h_{t-1}), the state that went into the step, not the one it produced.",
        ),
        Wrong(
            _bptt_not_transposed,
            "Going back a step multiplies by the transpose: h_t = W h_{t-1} gives dL/dh_{t-1} "
            "= W.T @ dL/dh_t.",
        ),
    ),
    hints=(
        "First the forward pass: a list hs = [h0, h1, ..., hT], each hs[t] = weight @ "
        "hs[t - 1] + weight_in @ xs[t - 1].",
        "Then t = T, T-1, ..., 1: grad_W += torch.outer(delta, hs[t - 1]), grad_U += "
        "torch.outer(delta, xs[t - 1]), delta = weight.T @ delta.",
        "delta starts as v, the gradient of v @ h_T with respect to h_T.",
    ),
    alternatives=(_bptt_autograd,),
)

EXERCISES = (LSTM_CELL_STEP, GRU_CELL_STEP, LINEAR_RNN_GRADS)
