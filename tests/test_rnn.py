"""dlcourse.rnn: cells and layers equal to torch's (outputs, final states and every gradient:
input, initial states, parameters) over a grid of layers, directions, batch_first, initial
states, dropout in eval and bias, on every device; the fused LSTM and GRU equal to the readable
loop of their steps; the choice between the two paths explicit; torch's state dicts load both
ways; clear errors for wrong shapes."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from dlcourse import _rnn_fast, rnn
from tests._reference import compare_with_torch

F64 = torch.float64
PAIRS = {"RNN": (rnn.RNN, nn.RNN), "LSTM": (rnn.LSTM, nn.LSTM), "GRU": (rnn.GRU, nn.GRU)}


def _pair(kind, device, **kwargs):
    """Ours and torch's layer with the same weights (torch's initialisation), float64."""
    ours_cls, theirs_cls = PAIRS[kind]
    torch.manual_seed(0)
    theirs = theirs_cls(**kwargs).to(device, F64)
    ours = ours_cls(**kwargs).to(device, F64)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def _randn(*shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _states(kind, layers, batch, hidden, batched=True, seed=1):
    """Initial states as a list: [h_0] or, for an LSTM, [h_0, c_0]."""
    shape = (layers, batch, hidden) if batched else (layers, hidden)
    return [_randn(*shape, seed=seed + k) for k in range(2 if kind == "LSTM" else 1)]


def _called(module, kind):
    """``module(x, hx)`` as a function of tensors only, ``f(x, *states)``: compare_with_torch
    then compares the initial states' gradients too."""

    def run(x, *states):
        if not states:
            return module(x)
        return module(x, tuple(states) if kind == "LSTM" else states[0])

    return run


def _compare_modules(ours, theirs, kind, inputs, device):
    """Outputs, final states and the gradients of the input, the initial states and every
    parameter, at the float64 tolerance of tests/_reference.py."""
    compare_with_torch(
        _called(ours, kind), _called(theirs, kind), inputs, device=device, dtype=F64,
        modules=(ours, theirs),
    )  # fmt: skip


# --------------------------------------------------------------------------- against torch

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
    x = _randn(*((batch, length, 3) if batch_first else (length, batch, 3)), seed=2)
    states = _states(kind, layers * (2 if bidirectional else 1), batch, 5) if with_state else []
    _compare_modules(ours, theirs, kind, [x, *states], device)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_without_bias_relu_and_dropout_in_eval(kind, device):
    extra = {"nonlinearity": "relu"} if kind == "RNN" else {}
    ours, theirs = _pair(
        kind, device, input_size=4, hidden_size=3, num_layers=3, bias=False, dropout=0.5, **extra
    )
    ours.eval()
    theirs.eval()  # dropout between layers is off in evaluation: exactly torch's
    # cuDNN's RNN refuses a backward pass in evaluation mode ("cudnn RNN backward can only be
    # called in training mode", seen on an H200): on CUDA the reference runs without cuDNN.
    with torch.backends.cudnn.flags(enabled=False):
        _compare_modules(ours, theirs, kind, [_randn(7, 2, 4, seed=3)], device)
    assert not any("bias" in name for name, _ in ours.named_parameters())


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_unbatched_input(kind, device):
    ours, theirs = _pair(kind, device, input_size=3, hidden_size=4, num_layers=2)
    states = _states(kind, 2, 1, 4, batched=False)
    _compare_modules(ours, theirs, kind, [_randn(5, 3, seed=4), *states], device)


def test_rnn_takes_torchs_positional_arguments():
    # nn.RNN(input_size, hidden_size, num_layers, nonlinearity, bias, ...): the same order
    torch.manual_seed(0)
    theirs = nn.RNN(3, 4, 2, "relu", False).double()
    ours = rnn.RNN(3, 4, 2, "relu", False).double()
    ours.load_state_dict(theirs.state_dict())
    assert ours.nonlinearity == "relu" and not ours.bias
    _compare_modules(ours, theirs, "RNN", [_randn(5, 2, 3, seed=5)], "cpu")


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
    ("ours_cls", "theirs_cls", "kind"),
    [
        (rnn.RNNCell, nn.RNNCell, "RNN"),
        (rnn.LSTMCell, nn.LSTMCell, "LSTM"),
        (rnn.GRUCell, nn.GRUCell, "GRU"),
    ],
)
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("with_state", [False, True])
def test_cells_equal_torch(ours_cls, theirs_cls, kind, batched, with_state, device):
    torch.manual_seed(0)
    theirs = theirs_cls(3, 5).to(device, F64)
    ours = ours_cls(3, 5).to(device, F64)
    ours.load_state_dict(theirs.state_dict())
    x = _randn(*((4, 3) if batched else (3,)), seed=5)
    states = []
    if with_state:
        states = [_randn(*((4, 5) if batched else (5,)), seed=6 + k) for k in range(2)]
        states = states if kind == "LSTM" else states[:1]
    _compare_modules(ours, theirs, kind, [x, *states], device)


@pytest.mark.parametrize("bias", [True, False])
def test_cell_reprs_match_torch(bias):
    for ours, theirs in (
        (rnn.RNNCell(3, 4, bias, "relu"), nn.RNNCell(3, 4, bias, "relu")),
        (rnn.LSTMCell(3, 4, bias), nn.LSTMCell(3, 4, bias)),
        (rnn.GRUCell(3, 4, bias), nn.GRUCell(3, 4, bias)),
    ):
        assert repr(ours) == repr(theirs)


# --------------------------------------------------------------------------- fast == readable

FUSED_GRID = list(
    itertools.product(
        ["LSTM", "GRU"],
        [1, 2],  # num_layers
        [False, True],  # bidirectional
        [False, True],  # initial state given
        [True, False],  # bias
    )
)


def _fast_and_readable(kind, device, **kwargs):
    """The same layer twice, with the same weights: fused (the default) and the loop."""
    cls = PAIRS[kind][0]
    torch.manual_seed(0)
    fast = cls(**kwargs).to(device, F64)
    readable = cls(**kwargs, fused=False).to(device, F64)
    readable.load_state_dict(fast.state_dict())
    assert fast.fused and not readable.fused
    return fast, readable


@pytest.mark.parametrize(("kind", "layers", "bidirectional", "with_state", "bias"), FUSED_GRID)
def test_fused_equals_the_readable_loop(kind, layers, bidirectional, with_state, bias, device):
    fast, readable = _fast_and_readable(
        kind, device, input_size=3, hidden_size=5, num_layers=layers,
        bidirectional=bidirectional, bias=bias,
    )  # fmt: skip
    states = _states(kind, layers * (2 if bidirectional else 1), 4, 5) if with_state else []
    _compare_modules(fast, readable, kind, [_randn(6, 4, 3, seed=8), *states], device)


@pytest.mark.parametrize("used", [0, 1, 2])
def test_fused_lstm_when_the_loss_uses_one_output(used, device):
    # only the output, only h_n or only c_n: the other gradients reaching LSTMFunction are zero
    fast, readable = _fast_and_readable("LSTM", device, input_size=3, hidden_size=4)

    def pick(module):
        def run(x):
            out, (h, c) = module(x)
            return (out, h, c)[used]

        return run

    compare_with_torch(
        pick(fast), pick(readable), [_randn(5, 2, 3, seed=9)], device=device, dtype=F64,
        modules=(fast, readable),
    )  # fmt: skip


def test_fused_functions_gradcheck():
    # against finite differences, independently of the loop: every input of each Function
    gen = torch.Generator().manual_seed(0)

    def leaf(*shape):
        return torch.randn(shape, generator=gen, dtype=F64).requires_grad_(True)

    assert torch.autograd.gradcheck(
        rnn.LSTMFunction.apply, (leaf(5, 2, 12), leaf(2, 3), leaf(2, 3), leaf(12, 3))
    )
    xp, h0, w, b = leaf(5, 2, 9), leaf(2, 3), leaf(9, 3), leaf(9)
    assert torch.autograd.gradcheck(rnn.GRUFunction.apply, (xp, h0, w, b))
    assert torch.autograd.gradcheck(rnn.GRUFunction.apply, (xp, h0, w, None))


@pytest.mark.parametrize(
    ("cls", "function", "node"),
    [
        (rnn.LSTM, _rnn_fast.fused_lstm, "LSTMFunctionBackward"),
        (rnn.GRU, _rnn_fast.fused_gru, "GRUFunctionBackward"),
    ],
)
def test_the_choice_of_path_is_explicit(cls, function, node):
    assert cls.fused_function is function  # each class names its fast function
    x = torch.randn(5, 2, 3)
    layer = cls(3, 4)
    assert layer.fused is True and repr(layer) == f"{cls.__name__}(3, 4)"
    assert type(layer(x)[0].grad_fn).__name__ == node  # the output comes from the Function
    layer.fused = False
    assert repr(layer) == f"{cls.__name__}(3, 4, fused=False)"
    assert type(layer(x)[0].grad_fn).__name__ == "StackBackward0"  # the loop of steps
    layer.fused = None  # back to the class's default
    assert layer.fused is True
    assert cls(3, 4, fused=False).fused is False and cls(3, 4, fused=True).fused is True
    with pytest.raises(TypeError, match="fused must be True, False or None"):
        cls(3, 4, fused="yes")


def test_rnn_has_no_fused_function():
    assert rnn.RNN.fused_function is None
    layer = rnn.RNN(3, 4)
    assert layer.fused is False and rnn.RNN(3, 4, fused=False).fused is False
    assert type(layer(torch.randn(5, 2, 3))[0].grad_fn).__name__ == "StackBackward0"
    with pytest.raises(ValueError, match="RNN has no fused function"):
        rnn.RNN(3, 4, fused=True)
    with pytest.raises(ValueError, match="RNN has no fused function"):
        layer.fused = True


def test_gates_are_the_activations_and_come_from_the_loop():
    torch.manual_seed(0)
    lstm = rnn.LSTM(2, 3, batch_first=True)
    assert lstm.fused  # gates() runs the readable loop all the same
    x = torch.randn(4, 7, 2)
    (gates,) = lstm.gates(x)
    assert set(gates) == {"input", "forget", "cell", "output"}
    assert gates["forget"].shape == (7, 4, 3)  # time first
    assert gates["forget"].min() > 0 and gates["forget"].max() < 1  # sigmoids
    assert gates["cell"].min() > -1 and gates["cell"].max() < 1  # tanh
    # step 0 by hand, from the zero state: the gates are lstm_step's
    x_part = torch.nn.functional.linear(x[:, 0], lstm.weight_ih_l0, lstm.bias_ih_l0)
    zeros = torch.zeros(4, 3)
    _, _, first = rnn.lstm_step(x_part, zeros, zeros, lstm.weight_hh_l0, lstm.bias_hh_l0)
    torch.testing.assert_close(gates["forget"][0], first[:, 3:6])
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
    with pytest.raises(ValueError, match="hidden_size must be a positive int, got 0"):
        rnn.LSTM(3, 0)
    with pytest.raises(ValueError, match=r"num_layers must be a positive int, got 1\.5"):
        rnn.GRU(3, 4, num_layers=1.5)
    with pytest.raises(ValueError, match="input_size must be a positive int, got True"):
        rnn.GRUCell(True, 4)
    with pytest.raises(ValueError, match="use the layer"):
        rnn.LSTMCell(3, 4)(torch.zeros(5, 2, 3))
    with pytest.raises(ValueError, match="input_size=2"):
        rnn.GRUCell(3, 4)(torch.zeros(5, 2))
    with pytest.raises(ValueError, match="kind must be 'rnn', 'lstm' or 'gru', got 'cnn'"):
        rnn.layer("cnn", 3, 4)


@pytest.mark.parametrize(
    "make",
    [
        lambda m: m.RNN(3, 4, nonlinearity="sigmoid"),
        lambda m: m.LSTM(3, 4, num_layers=2, dropout=1.5),
        lambda m: m.GRU(3, 4, num_layers=2, dropout=True),
    ],
)
def test_argument_errors_copy_torchs_messages(make):
    # swapping ours for torch's changes nothing, not even the error
    with pytest.raises(ValueError) as ours:
        make(rnn)
    with pytest.raises(ValueError) as theirs:
        make(nn)
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(ValueError, match="Unknown nonlinearity 'sigmoid'"):
        rnn.RNNCell(3, 4, nonlinearity="sigmoid")  # the cells check it with the same words


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
    with pytest.raises(ValueError, match="length must be an int >= 2, got 1"):
        rnn.gradient_flow(length=1)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_truncated_gradient_flow_keeps_the_last_segment_and_cuts_the_rest(kind):
    full = rnn.gradient_flow(kind=kind, length=23, scale=1.5, forget_bias=2.0)
    cut = rnn.gradient_flow(kind=kind, length=23, scale=1.5, forget_bias=2.0, truncate=5)
    paths = ("hidden", "cell") if kind == "lstm" else ("hidden",)
    for path in paths:
        # steps 20, 21, 22 (0-based) form the last segment (cuts before 5, 10, 15, 20)
        torch.testing.assert_close(cut[path][-3:], full[path][-3:])
        assert (cut[path][:-3] == 0).all() and (full[path][:-3] > 0).all()
    assert cut["ratio"] == 0.0
    with pytest.raises(ValueError, match="truncate must be a positive int, got 0"):
        rnn.gradient_flow(truncate=0)
