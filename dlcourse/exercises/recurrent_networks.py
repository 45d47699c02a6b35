r"""Exercises of ``notebooks/07_recurrent_networks.ipynb``: one LSTM step, one GRU step (torch's
gate order and conventions, :mod:`dlcourse.rnn`), and back-propagation through time for a
small tanh RNN."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dlcourse.exercises.engine import Exercise, Wrong
from dlcourse.i18n import N_

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
        N_(
            "Write `lstm_cell_step(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh)` for a batch: "
            "`x` `(N, I)`, `h` and `c` `(N, H)`, `weight_ih` `(4H, I)`, `weight_hh` `(4H, H)`, "
            "`bias_ih` and `bias_hh` `(4H,)`. The gates before activation are `x @ weight_ih.T + "
            "bias_ih + h @ weight_hh.T + bias_hh`, split into four blocks of H columns in torch's "
            "order i, f, g, o: input, forget and output gates through the sigmoid, the candidate g "
            "through tanh. Then `c_new = f * c + i * g` and `h_new = o * tanh(c_new)`. Return "
            "`(h_new, c_new)`."
        )
    ),
    reference=lstm_cell_step,
    cases=_lstm_cases,
    grad=True,
    forbidden=(torch.lstm_cell,),
    wrong=(
        Wrong(
            _lstm_gate_order,
            N_(
                "torch's gate order is i, f, g, o: the third block of rows is the candidate g and "
                "the fourth the output gate o."
            ),
        ),
        Wrong(
            _lstm_sigmoid_candidate,
            N_(
                "The candidate g goes through tanh, not the sigmoid: it is the new content, in "
                "(-1, 1); the gates i, f, o are the sigmoids, fractions in (0, 1)."
            ),
        ),
        Wrong(
            _lstm_forget_on_h,
            N_(
                "The forget gate scales the previous cell state c, not the hidden state h: "
                "c_new = f * c + i * g. The cell state is the LSTM's memory."
            ),
        ),
        Wrong(
            _lstm_no_tanh_on_cell,
            N_(
                "The output is o * tanh(c_new): the cell state is squashed before the output gate "
                "lets it out."
            ),
        ),
    ),
    hints=(
        N_(
            "Compute all four gates in one go: gates = x @ weight_ih.T + bias_ih + h @ "
            "weight_hh.T + bias_hh, shape (N, 4H)."
        ),
        N_("i, f, g, o = gates.chunk(4, dim=1); then sigmoid on i, f, o and tanh on g."),
        N_("c_new = f * c + i * g; h_new = o * torch.tanh(c_new)."),
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
    return _gru_variant(*args, reversed_mix=True)  # Chung et al.'s convention: z weighs n


def _gru_reset_before(*args):
    return _gru_variant(*args, reset="before")  # Cho et al.'s form: r * h before the product


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


def _gru_step_towards(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    # the old state moved towards the new content by the share 1 - z: h + (1 - z) (n - h)
    hidden = h.shape[1]
    w_r, w_z, w_n = weight_ih.split(hidden)
    u_r, u_z, u_n = weight_hh.split(hidden)
    b_r, b_z, b_n = bias_ih.split(hidden)
    c_r, c_z, c_n = bias_hh.split(hidden)
    r = torch.sigmoid(x @ w_r.T + b_r + h @ u_r.T + c_r)
    z = torch.sigmoid(x @ w_z.T + b_z + h @ u_z.T + c_z)
    n = torch.tanh(x @ w_n.T + b_n + r * (h @ u_n.T + c_n))
    return h + (1 - z) * (n - h)


GRU_CELL_STEP = Exercise(
    name="gru_cell_step",
    notebook=7,
    task=(
        N_(
            "Write `gru_cell_step(x, h, weight_ih, weight_hh, bias_ih, bias_hh)` in torch's form: "
            "`x` `(N, I)`, `h` `(N, H)`, `weight_ih` `(3H, I)`, `weight_hh` `(3H, H)`, biases "
            "`(3H,)`, rows in the order r, z, n. With `xr, xz, xn` the three blocks of `x @ "
            "weight_ih.T + bias_ih` and `hr, hz, hn` those of `h @ weight_hh.T + bias_hh`: "
            "`r = sigmoid(xr + hr)`, `z = sigmoid(xz + hz)`, `n = tanh(xn + r * hn)`, and "
            "`h_new = (1 - z) * n + z * h`. Return `h_new`. (Two published GRUs differ from this "
            "one and are correct too: Cho et al. apply r to h before the product with W_hn, and "
            "Chung et al. let z weigh n instead of h. The check compares with torch's form, so "
            "write that one.)"
        )
    ),
    reference=gru_cell_step,
    cases=_gru_cases,
    grad=True,
    forbidden=(torch.gru_cell,),
    wrong=(
        Wrong(
            _gru_reversed,
            N_(
                "That is Chung et al.'s (2014) convention, h_new = z * n + (1 - z) * h, where z "
                "weighs the new content: a correct GRU, with z meaning the opposite. The task "
                "fixes torch's (and Cho et al.'s): z is the share of the old state kept, h_new "
                "= (1 - z) * n + z * h."
            ),
        ),
        Wrong(
            _gru_reset_before,
            N_(
                "That is Cho et al.'s (2014) form, the reset applied to h before the product: n "
                "= tanh(xn + W_hn (r * h) + b_hn), a correct GRU but not the one the task "
                "fixes. torch applies it after the product: n = tanh(xn + r * hn), with hn = "
                "W_hn h + b_hn."
            ),
        ),
        Wrong(
            _gru_reset_on_input,
            N_(
                "The reset gate scales the recurrent part hn, not the input part: n = tanh(xn + "
                "r * hn). It decides how much of the past enters the new content."
            ),
        ),
        Wrong(
            _gru_swapped,
            N_(
                "torch's row order is r, z, n: the first block is the reset gate, the second the "
                "update gate."
            ),
        ),
    ),
    hints=(
        N_(
            "Two products, each split in three: xr, xz, xn = (x @ weight_ih.T + bias_ih).chunk(3, "
            "dim=1), and the same for h."
        ),
        N_("r and z are sigmoids of sums; the reset gate multiplies hn inside the tanh."),
        N_("h_new = (1 - z) * n + z * h: z near 1 keeps the old state."),
    ),
    alternatives=(_gru_lerp, _gru_step_towards),
)


# --------------------------------------------------------------------------- BPTT


def tanh_rnn_grads(weight, weight_in, xs, h0, v):
    r"""Back-propagation through time for the tanh RNN :math:`h_t = \tanh(a_t)`, :math:`a_t =
    W h_{t-1} + U x_t` (``weight`` ``W`` ``(H, H)``, ``weight_in`` ``U`` ``(H, I)``, ``xs``
    ``(T, I)``, ``h0`` ``(H,)``; no biases) with the loss :math:`L = v^\top h_T`. Returns
    ``(grad_weight, grad_weight_in)``. With :math:`\delta_T = v` the gradient at :math:`h_t`
    and :math:`\gamma_t = \delta_t \odot (1 - h_t^2)` the one at :math:`a_t`:
    :math:`\partial L/\partial W = \sum_t \gamma_t h_{t-1}^\top`, :math:`\partial L/\partial U =
    \sum_t \gamma_t x_t^\top`, and :math:`\delta_{t-1} = W^\top \gamma_t`: each step back
    multiplies by :math:`W^\top \operatorname{diag}(1 - h_t^2)`, the factor that makes the
    gradient vanish. torch's counterpart: ``nn.RNN(I, H, bias=False)`` with ``weight_hh_l0 =
    W``, ``weight_ih_l0 = U``, started from ``h0``, and autograd on :math:`v^\top h_T`."""
    hs = [h0]
    for x in xs:  # forward: keep every state, the backward needs them
        hs.append(torch.tanh(weight @ hs[-1] + weight_in @ x))
    grad_w = torch.zeros_like(weight)
    grad_u = torch.zeros_like(weight_in)
    delta = v  # dL/dh_T
    for t in range(len(xs), 0, -1):  # backward through time: steps T, T-1, ..., 1
        gamma = delta * (1 - hs[t] ** 2)  # dL/da_t: through the tanh, tanh'(a) = 1 - tanh(a)^2
        grad_w += torch.outer(gamma, hs[t - 1])
        grad_u += torch.outer(gamma, xs[t - 1])
        delta = weight.T @ gamma  # dL/dh_{t-1}
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


def _bptt_variant(weight, weight_in, xs, h0, v, *, factor="h_t", last_only=False,
                  transpose=True, state="h_prev", factor_in_weights=True):  # fmt: skip
    """The backward pass with one thing changed, for the known-wrong variants below."""
    pres, hs = [], [h0]
    for x in xs:
        pres.append(weight @ hs[-1] + weight_in @ x)
        hs.append(torch.tanh(pres[-1]))
    grad_w, grad_u, delta = torch.zeros_like(weight), torch.zeros_like(weight_in), v
    for t in range(len(xs), 0, -1):
        local = {"h_t": 1 - hs[t] ** 2, "h_prev": 1 - hs[t - 1] ** 2, "a_t": 1 - pres[t - 1] ** 2,
                 "none": torch.ones_like(hs[t])}[factor]  # fmt: skip
        gamma = delta * local
        into_weights = gamma if factor_in_weights else delta
        grad_w += torch.outer(into_weights, hs[t - 1] if state == "h_prev" else hs[t])
        grad_u += torch.outer(into_weights, xs[t - 1])
        if last_only:
            break
        delta = (weight.T if transpose else weight) @ gamma
    return grad_w, grad_u


def _bptt_last_step_only(*args):
    return _bptt_variant(*args, last_only=True)  # no gradient through time


def _bptt_no_tanh_factor(*args):
    return _bptt_variant(*args, factor="none")  # the linear RNN's gradient


def _bptt_factor_of_previous_state(*args):
    return _bptt_variant(*args, factor="h_prev")  # 1 - h_{t-1}^2 instead of 1 - h_t^2


def _bptt_factor_of_pre_activation(*args):
    return _bptt_variant(*args, factor="a_t")  # 1 - a_t^2 instead of 1 - tanh(a_t)^2


def _bptt_factor_only_going_back(*args):
    return _bptt_variant(*args, factor_in_weights=False)


def _bptt_off_by_one(*args):
    return _bptt_variant(*args, state="h_t")  # h_t instead of h_{t-1}


def _bptt_not_transposed(*args):
    return _bptt_variant(*args, transpose=False)  # W instead of W^T


def _bptt_autograd(weight, weight_in, xs, h0, v):
    w = weight.detach().clone().requires_grad_(True)
    u = weight_in.detach().clone().requires_grad_(True)
    h = h0
    for x in xs:
        h = torch.tanh(w @ h + u @ x)
    grad_w, grad_u = torch.autograd.grad(v @ h, (w, u))
    return grad_w, grad_u


def _bptt_jacobian_product(weight, weight_in, xs, h0, v):
    # each step's contribution on its own: dL/dh_t as v^T times the product of the Jacobians
    # diag(1 - h_k^2) W from the end back to step t, then through step t's own tanh
    hs = [h0]
    for x in xs:
        hs.append(torch.tanh(weight @ hs[-1] + weight_in @ x))
    steps = len(xs)
    grad_w, grad_u = torch.zeros_like(weight), torch.zeros_like(weight_in)
    for t in range(1, steps + 1):
        row = v.clone()  # dL/dh_T as a row vector
        for k in range(steps, t, -1):
            row = (row * (1 - hs[k] ** 2)) @ weight  # times dh_k/dh_{k-1}
        pre = row * (1 - hs[t] ** 2)  # dL/da_t
        grad_w = grad_w + pre[:, None] * hs[t - 1][None, :]
        grad_u = grad_u + pre[:, None] * xs[t - 1][None, :]
    return grad_w, grad_u


def _bptt_stacked(weight, weight_in, xs, h0, v):
    # keep the pre-activations, collect every dL/da_t, then two matrix products
    pres, hs = [], [h0]
    for x in xs:
        pres.append(weight @ hs[-1] + weight_in @ x)
        hs.append(torch.tanh(pres[-1]))
    grads = [None] * len(xs)
    delta = v
    for t in reversed(range(len(xs))):
        grads[t] = delta / torch.cosh(pres[t]) ** 2  # tanh'(a) = 1 / cosh(a)^2
        delta = grads[t] @ weight  # row-vector form of W^T @ grads[t]
    g = torch.stack(grads)  # (T, H)
    return g.T @ torch.stack(hs[:-1]), g.T @ xs


TANH_RNN_GRADS = Exercise(
    name="tanh_rnn_grads",
    notebook=7,
    task=(
        N_(
            "Write `tanh_rnn_grads(weight, weight_in, xs, h0, v)` for the tanh RNN `h_t = "
            "tanh(a_t)`, `a_t = W h_{t-1} + U x_t`, t = 1..T, without biases (`weight` W `(H, H)`, "
            "`weight_in` U `(H, I)`, `xs` `(T, I)` with `xs[t - 1]` the input of step t, `h0` "
            "`(H,)`) and the loss `L = v @ h_T`. Return `(dL/dW, dL/dU)`, derived by hand from the "
            "unrolled graph `h_0 -> a_1 -> h_1 -> a_2 -> ... -> h_T -> L`, where W and U enter "
            "every a_t. What you need, one node at a time: the derivative of tanh is `1 - "
            "tanh(a)^2`, and for `a = W h` the gradient with respect to `h` is `W.T @ dL/da` and "
            "the one with respect to `W` is `outer(dL/da, h)`. Autograd would do it for you; the "
            "point is to see what the gradient is multiplied by at every step back."
        )
    ),
    reference=tanh_rnn_grads,
    cases=_bptt_cases,
    wrong=(
        Wrong(
            _bptt_last_step_only,
            N_(
                "W and U are used at every step, so the loss depends on them through every step: "
                "go back through time from t = T to 1 and add each step's contribution."
            ),
        ),
        Wrong(
            _bptt_no_tanh_factor,
            N_(
                "That is the gradient of a linear RNN: the tanh's derivative is missing. Through "
                "h_t = tanh(a_t), the gradient at h_t becomes the one at a_t times 1 - h_t^2, at "
                "every step; this factor, below 1, is where the gradient vanishes."
            ),
        ),
        Wrong(
            _bptt_factor_of_previous_state,
            N_(
                "The tanh's derivative belongs to the step that applied it: going from h_t back to "
                "a_t multiplies by 1 - h_t^2, the state it produced, not 1 - h_{t-1}^2."
            ),
        ),
        Wrong(
            _bptt_factor_of_pre_activation,
            N_(
                "The derivative of tanh at a is 1 - tanh(a)^2 = 1 - h_t^2, not 1 - a^2: square the "
                "state, not the sum before the tanh."
            ),
        ),
        Wrong(
            _bptt_factor_only_going_back,
            N_(
                "W and U enter a_t, before the tanh: their gradient at step t takes dL/da_t = "
                "dL/dh_t * (1 - h_t^2), the same gradient that goes one step back, not dL/dh_t."
            ),
        ),
        Wrong(
            _bptt_off_by_one,
            N_(
                "Step t computes a_t from h_{t-1}: its contribution to dL/dW is outer(dL/da_t, "
                "h_{t-1}), the state that went into the step, not the one it produced."
            ),
        ),
        Wrong(
            _bptt_not_transposed,
            N_(
                "Going back a step multiplies by the transpose: a_t = W h_{t-1} gives "
                "dL/dh_{t-1} = W.T @ dL/da_t."
            ),
        ),
    ),
    hints=(
        N_(
            "First the forward pass: a list hs = [h0, h1, ..., hT], each hs[t] = tanh(weight @ "
            "hs[t - 1] + weight_in @ xs[t - 1]). The backward pass needs every state."
        ),
        N_(
            "Then go back from t = T with delta = dL/dh_T = v. At each step: through the tanh "
            "(times 1 - h_t^2) to get dL/da_t; then a_t's two inputs: the weights (outer products "
            "with what went into the step) and h_{t-1} (the transpose of W)."
        ),
        N_(
            "gamma = delta * (1 - hs[t] ** 2); grad_W += torch.outer(gamma, hs[t - 1]); grad_U += "
            "torch.outer(gamma, xs[t - 1]); delta = weight.T @ gamma."
        ),
    ),
    alternatives=(_bptt_autograd, _bptt_jacobian_product, _bptt_stacked),
)

EXERCISES = (LSTM_CELL_STEP, GRU_CELL_STEP, TANH_RNN_GRADS)
