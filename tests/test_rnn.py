"""dlcourse.rnn: cells and layers equal to torch's (outputs, final states and gradients) over a
grid of layers, directions, batch_first, initial states, dropout in eval and bias, on every
device; torch's state dicts load both ways; clear errors for wrong shapes."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from dlcourse import rnn

TOL = {"rtol": 1e-9, "atol": 1e-10}  # float64
PAIRS = {"RNN": (rnn.RNN, nn.RNN), "LSTM": (rnn.LSTM, nn.LSTM), "GRU": (rnn.GRU, nn.GRU)}


def _pair(kind, device, **kwargs):
    ours_cls, theirs_cls = PAIRS[kind]
    torch.manual_seed(0)
    theirs = theirs_cls(**kwargs).to(device, torch.float64)
    ours = ours_cls(**kwargs).to(device, torch.float64)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def _state(kind, layers, batch, hidden, batched, device, seed=1):
    gen = torch.Generator().manual_seed(seed)
    shape = (layers, batch, hidden) if batched else (layers, hidden)

    def one():
        return torch.randn(shape, generator=gen, dtype=torch.float64).to(device)

    return (one(), one()) if kind == "LSTM" else one()


def _flatten(out):
    """output, h_n (and c_n) as a flat list."""
    output, state = out
    return [output, *state] if isinstance(state, tuple) else [output, state]


def _compare(ours, theirs, x, hx, device):
    xa = x.clone().requires_grad_(True)
    xb = x.clone().requires_grad_(True)
    a, b = _flatten(ours(xa, hx)), _flatten(theirs(xb, hx))
    for ta, tb in zip(a, b, strict=True):
        assert ta.shape == tb.shape
        torch.testing.assert_close(ta, tb, **TOL)
    gen = torch.Generator().manual_seed(7)
    weights = [torch.randn(t.shape, generator=gen, dtype=t.dtype).to(device) for t in a]
    sum((t * w).sum() for t, w in zip(a, weights, strict=True)).backward()
    sum((t * w).sum() for t, w in zip(b, weights, strict=True)).backward()
    torch.testing.assert_close(xa.grad, xb.grad, **TOL)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, theirs_params[name].grad, **TOL, msg=name)


GRID = list(
    itertools.product(
        ["RNN", "LSTM", "GRU"],
        [1, 2],  # num_layers
        [False, True],  # bidirectional
        [False, True],  # batch_first
        [False, True],  # initial state given
    )
)


@pytest.mark.parametrize(("kind", "layers", "bidirectional", "batch_first", "with_state"), GRID)
def test_layers_equal_torch(kind, layers, bidirectional, batch_first, with_state, device):
    ours, theirs = _pair(
        kind, device, input_size=3, hidden_size=5, num_layers=layers,
        bidirectional=bidirectional, batch_first=batch_first,
    )  # fmt: skip
    length, batch = 6, 4
    gen = torch.Generator().manual_seed(2)
    shape = (batch, length, 3) if batch_first else (length, batch, 3)
    x = torch.randn(shape, generator=gen, dtype=torch.float64).to(device)
    hx = _state(kind, layers * (2 if bidirectional else 1), batch, 5, True, device)
    _compare(ours, theirs, x, hx if with_state else None, device)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_without_bias_relu_and_dropout_in_eval(kind, device):
    extra = {"nonlinearity": "relu"} if kind == "RNN" else {}
    ours, theirs = _pair(
        kind, device, input_size=4, hidden_size=3, num_layers=3, bias=False, dropout=0.5, **extra
    )
    ours.eval()
    theirs.eval()  # dropout between layers is off in evaluation: exactly torch's
    x = torch.randn(7, 2, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    _compare(ours, theirs, x.to(device), None, device)
    assert not any("bias" in name for name, _ in ours.named_parameters())


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_unbatched_input(kind, device):
    ours, theirs = _pair(kind, device, input_size=3, hidden_size=4, num_layers=2)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    hx = _state(kind, 2, 1, 4, False, device)
    _compare(ours, theirs, x.to(device), hx, device)


def test_dropout_between_layers_in_training():
    layer = rnn.LSTM(3, 6, num_layers=2, dropout=0.5)
    x = torch.randn(5, 2, 3)
    layer.train()
    torch.manual_seed(0)
    a, _ = layer(x)
    torch.manual_seed(1)
    b, _ = layer(x)
    assert not torch.equal(a, b)  # random masks between the layers
    layer.eval()
    assert torch.equal(layer(x)[0], layer(x)[0])


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_state_dicts_load_both_ways_and_reprs_match(kind):
    ours_cls, theirs_cls = PAIRS[kind]
    kwargs = {"input_size": 3, "hidden_size": 4, "num_layers": 2, "bidirectional": True}
    ours, theirs = ours_cls(**kwargs), theirs_cls(**kwargs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict(ours.state_dict())
    ours.load_state_dict(theirs.state_dict())
    assert repr(ours) == repr(theirs)
    bound = 1 / 4**0.5  # torch's initialisation: U(-1/sqrt(H), 1/sqrt(H))
    assert all(p.abs().max() <= bound for p in ours.parameters())


@pytest.mark.parametrize(
    ("ours_cls", "theirs_cls"),
    [(rnn.RNNCell, nn.RNNCell), (rnn.LSTMCell, nn.LSTMCell), (rnn.GRUCell, nn.GRUCell)],
)
@pytest.mark.parametrize("batched", [True, False])
def test_cells_equal_torch(ours_cls, theirs_cls, batched, device):
    torch.manual_seed(0)
    theirs = theirs_cls(3, 5).to(device, torch.float64)
    ours = ours_cls(3, 5).to(device, torch.float64)
    ours.load_state_dict(theirs.state_dict())
    gen = torch.Generator().manual_seed(5)
    shape = (4, 3) if batched else (3,)
    x = torch.randn(shape, generator=gen, dtype=torch.float64).to(device)
    hshape = (4, 5) if batched else (5,)
    h = torch.randn(hshape, generator=gen, dtype=torch.float64).to(device)
    hx = (h, torch.randn(hshape, generator=gen, dtype=torch.float64).to(device))
    hx = hx if ours_cls is rnn.LSTMCell else h
    for state in (None, hx):
        xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        a, b = ours(xa, state), theirs(xb, state)
        a = list(a) if isinstance(a, tuple) else [a]
        b = list(b) if isinstance(b, tuple) else [b]
        for ta, tb in zip(a, b, strict=True):
            torch.testing.assert_close(ta, tb, **TOL)
        sum(t.sum() for t in a).backward()
        sum(t.sum() for t in b).backward()
        torch.testing.assert_close(xa.grad, xb.grad, **TOL)


def test_fused_lstm_equals_the_step_by_step_loop_and_gradcheck():
    torch.manual_seed(0)
    layer = rnn.LSTM(3, 4, num_layers=2, bidirectional=True).double()
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    fused, (_, c) = layer(x)
    # the gates path runs the plain loop of lstm_step: the same hidden states
    loop_layer = rnn.LSTM(3, 4, num_layers=2, bidirectional=True).double()
    loop_layer.load_state_dict(layer.state_dict())
    loop_out, _, loop_c, _ = loop_layer._forward(x, None, None, True)
    torch.testing.assert_close(fused, loop_out, **TOL)
    torch.testing.assert_close(c, loop_c, **TOL)
    xp = torch.randn(5, 2, 12, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(12, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(rnn.LSTMFunction.apply, (xp, h0, c0, w))


def test_gates_are_the_activations():
    torch.manual_seed(0)
    lstm = rnn.LSTM(2, 3, batch_first=True)
    x = torch.randn(4, 7, 2)
    (gates,) = lstm.gates(x)
    assert set(gates) == {"input", "forget", "cell", "output"}
    assert gates["forget"].shape == (7, 4, 3)  # time first
    assert gates["forget"].min() > 0 and gates["forget"].max() < 1  # sigmoids
    assert gates["cell"].min() > -1 and gates["cell"].max() < 1  # tanh
    gru_gates = rnn.GRU(2, 3, num_layers=2, bidirectional=True).gates(torch.randn(5, 1, 2))
    assert len(gru_gates) == 4 and set(gru_gates[0]) == {"reset", "update", "new"}


# --------------------------------------------------------------------------- errors


def test_errors_say_what_is_wrong():
    lstm = rnn.LSTM(3, 4, num_layers=2)
    with pytest.raises(ValueError, match="input_size=5"):
        lstm(torch.zeros(6, 2, 5))
    with pytest.raises(ValueError, match=r"expects a sequence: \(L, N, input_size\)"):
        lstm(torch.zeros(6, 2, 3, 1))
    with pytest.raises(ValueError, match=r"h_0 must have shape \(2, 2, 4\)"):
        lstm(torch.zeros(6, 2, 3), (torch.zeros(1, 2, 4), torch.zeros(2, 2, 4)))
    with pytest.raises(ValueError, match=r"c_0 must have shape \(2, 2, 4\)"):
        lstm(torch.zeros(6, 2, 3), (torch.zeros(2, 2, 4), torch.zeros(2, 3, 4)))
    with pytest.raises(TypeError, match="pair"):
        lstm(torch.zeros(6, 2, 3), torch.zeros(2, 2, 4))
    with pytest.raises(ValueError, match="batch_first=True"):
        rnn.GRU(3, 4, batch_first=True)(torch.zeros(6))
    with pytest.raises(ValueError, match="length 0"):
        rnn.GRU(3, 4)(torch.zeros(0, 2, 3))
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        rnn.RNN(3, 4, dropout=1.5)
    with pytest.raises(ValueError, match="Unknown nonlinearity"):
        rnn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="hidden_size must be a positive int"):
        rnn.LSTM(3, 0)
    with pytest.raises(ValueError, match="use the layer"):
        rnn.LSTMCell(3, 4)(torch.zeros(5, 2, 3))
    with pytest.raises(ValueError, match="input_size=2"):
        rnn.GRUCell(3, 4)(torch.zeros(5, 2))
    with pytest.raises(ValueError, match="kind must be one of"):
        rnn.layer("transformer", 3, 4)


# --------------------------------------------------------------------------- the demo


def test_gradient_flow_vanishes_explodes_and_keeps():
    default = rnn.gradient_flow(length=30)
    assert default["hidden"].shape == (30,) and default["distance"][0] == 29
    assert default["ratio"] < 1e-4  # torch's initialisation: vanishing
    assert rnn.gradient_flow(length=30, scale=2.0)["ratio"] > 100  # stretched by 2: exploding
    closed = rnn.gradient_flow(kind="lstm", length=30)["ratio"]
    opened = rnn.gradient_flow(kind="lstm", length=30, forget_bias=3.0)["ratio"]
    assert opened > 1e4 * closed  # the cell state's path, with the forget gate open
    with pytest.raises(ValueError, match="kind must be 'rnn' or 'lstm'"):
        rnn.gradient_flow(kind="gru")


def test_fused_gru_gradcheck_and_equals_the_loop():
    torch.manual_seed(0)
    layer = rnn.GRU(3, 4, num_layers=2, bidirectional=True).double()
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    fused, h = layer(x)
    loop_out, loop_h, _, _ = layer._forward(x, None, None, True)  # the step-by-step path
    torch.testing.assert_close(fused, loop_out, **TOL)
    torch.testing.assert_close(h, loop_h, **TOL)
    xp = torch.randn(5, 2, 9, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(9, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(rnn.GRUFunction.apply, (xp, h0, w, b))
    assert torch.autograd.gradcheck(rnn.GRUFunction.apply, (xp, h0, w, None))
