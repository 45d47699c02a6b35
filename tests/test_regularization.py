"""dlcourse.regularization: inverted dropout against torch's, and the L2 penalty against weight
decay (equal for SGD, different from AdamW's decoupled decay)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from dlcourse import optim, regularization
from dlcourse.regularization import Dropout, L2PenalizedLoss, dropout, l2_penalty

# --------------------------------------------------------------------------- dropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_kept_fraction_and_mean_within_statistical_bounds(p: float, device: torch.device) -> None:
    n = 200_000
    x = torch.ones(n, device=device)
    y = dropout(x, p, generator=torch.Generator().manual_seed(0))
    kept = (y != 0).double().mean().item()
    sd = math.sqrt(p * (1 - p) / n)  # the binomial share's standard deviation
    assert abs(kept - (1 - p)) < 5 * sd
    assert torch.all((y == 0) | torch.isclose(y, torch.tensor(1 / (1 - p), device=device)))
    # inverted scaling: the mean stays 1 (its sd is sqrt(p / (1 - p) / n))
    assert abs(y.mean().item() - 1) < 5 * math.sqrt(p / (1 - p) / n)


def test_the_same_statistics_as_torchs_dropout(device: torch.device) -> None:
    torch.manual_seed(0)
    x = torch.randn(400, 300, device=device)
    ours, theirs = dropout(x, 0.3), F.dropout(x, 0.3)
    for y in (ours, theirs):
        assert abs((y == 0).double().mean().item() - 0.3) < 0.01
    kept = ours != 0
    assert torch.allclose(ours[kept], x[kept] / 0.7)  # the kept values, scaled as torch scales


def test_gradients_are_masked_as_the_forward(device: torch.device) -> None:
    x = torch.randn(64, 32, device=device, dtype=torch.float64, requires_grad=True)
    y = dropout(x, 0.4, generator=torch.Generator().manual_seed(1))
    g = torch.randn_like(y)
    (y * g).sum().backward()
    mask = (y != 0).to(x.dtype)
    assert torch.allclose(x.grad, g * mask / 0.6)
    assert torch.equal(x.grad == 0, y == 0)


def test_eval_is_the_identity_and_deterministic(device: torch.device) -> None:
    layer = Dropout(0.5).to(device)
    x = torch.randn(8, 16, device=device)
    layer.eval()
    assert torch.equal(layer(x), x) and torch.equal(layer(x), layer(x))
    layer.train()
    a, b = layer(x), layer(x)
    assert not torch.equal(a, b)  # a new mask every call
    assert ((a == 0).sum() > 0).item()


def test_a_seeded_generator_fixes_the_mask_on_every_device(device: torch.device) -> None:
    x = torch.randn(10, 10)
    on_cpu = dropout(x, 0.5, generator=torch.Generator().manual_seed(3))
    there = dropout(x.to(device), 0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(on_cpu, there.cpu())


def test_extremes_and_torchs_errors() -> None:
    x = torch.randn(5, 5, requires_grad=True)
    assert dropout(x, 0.0) is x
    zeros = dropout(x, 1.0)
    assert torch.equal(zeros, torch.zeros(5, 5)) and zeros.requires_grad
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match="between 0 and 1") as ours:
            Dropout(p)
        with pytest.raises(ValueError) as theirs:
            nn.Dropout(p)
        assert str(ours.value) == str(theirs.value)


def test_the_layer_loads_and_prints_like_nn_dropout() -> None:
    assert repr(Dropout(0.3)) == repr(nn.Dropout(0.3))
    ours = nn.Sequential(nn.Linear(4, 4), Dropout(0.3))
    theirs = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.3))
    ours.load_state_dict(theirs.state_dict())  # no state of its own, as torch's


def test_inplace_writes_into_the_input() -> None:
    x = torch.ones(4, 6)
    out = Dropout(0.5, inplace=True, generator=torch.Generator().manual_seed(0))(x)
    assert out is x and set(x.unique().tolist()) <= {0.0, 2.0}


@settings(max_examples=25, deadline=None)
@given(
    p=st.floats(0.0, 0.95),
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    seed=st.integers(0, 2**31 - 1),
)
def test_every_value_is_dropped_or_scaled(p: float, shape: list[int], seed: int) -> None:
    x = torch.randn(shape, dtype=torch.float64)
    y = dropout(x, p, generator=torch.Generator().manual_seed(seed))
    assert y.shape == x.shape
    assert torch.all((y == 0) | torch.isclose(y, x / (1 - p)))


# --------------------------------------------------------------------------- the L2 penalty


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 3))


def test_the_penalty_sums_the_squared_weights_only() -> None:
    net = _net()
    weights = net[0].weight.square().sum() + net[3].weight.square().sum()
    assert torch.allclose(l2_penalty(net), weights)
    every = sum(p.square().sum() for p in net.parameters())
    assert torch.allclose(l2_penalty(net, include_bias=True), every)
    names = [n for n, _ in regularization.penalized_parameters(net)]
    assert names == ["0.weight", "3.weight"]  # no biases, no batch-norm scale
    assert l2_penalty(nn.ReLU()).item() == 0.0


def _steps(net, make_opt, loss_fn, steps=5):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(16, 5, generator=gen, dtype=torch.float64)
    y = torch.randint(3, (16,), generator=gen)
    opt = make_opt(net.parameters())
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(net(x), y).backward()
        opt.step()
    return net


@pytest.mark.parametrize("make_sgd", [optim.SGD, torch.optim.SGD], ids=["ours", "torch"])
def test_the_penalty_is_sgds_weight_decay(make_sgd) -> None:
    lam = 0.03
    ce = nn.CrossEntropyLoss()
    # weight decay on the weights only, as the penalty: biases in a group without it
    a = _net().double()
    groups = [
        {"params": [p for p in a.parameters() if p.dim() >= 2], "weight_decay": 2 * lam},
        {"params": [p for p in a.parameters() if p.dim() < 2], "weight_decay": 0.0},
    ]
    _steps(a, lambda _: make_sgd(groups, lr=0.1, momentum=0.9), ce)
    b = _net().double()
    _steps(b, lambda ps: make_sgd(ps, lr=0.1, momentum=0.9), L2PenalizedLoss(ce, b, lam))
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.allclose(pa, pb, rtol=0, atol=1e-12)


def test_the_penalty_is_not_adamws_decoupled_decay() -> None:
    lam = 0.03
    ce = nn.CrossEntropyLoss()
    penalised = _net().double()
    _steps(penalised, lambda ps: optim.Adam(ps, lr=0.01), L2PenalizedLoss(ce, penalised, lam), 20)
    decoupled = _net().double()
    groups = [
        {"params": [p for p in decoupled.parameters() if p.dim() >= 2], "weight_decay": 2 * lam},
        {"params": [p for p in decoupled.parameters() if p.dim() < 2], "weight_decay": 0.0},
    ]
    _steps(decoupled, lambda _: optim.AdamW(groups, lr=0.01), ce, 20)
    gap = max(
        (a - b).abs().max().item()
        for a, b in zip(penalised.parameters(), decoupled.parameters(), strict=True)
    )
    assert gap > 1e-3
    # and Adam's own (coupled) weight_decay is the penalty again
    coupled = _net().double()
    groups = [
        {"params": [p for p in coupled.parameters() if p.dim() >= 2], "weight_decay": 2 * lam},
        {"params": [p for p in coupled.parameters() if p.dim() < 2], "weight_decay": 0.0},
    ]
    _steps(coupled, lambda _: optim.Adam(groups, lr=0.01), ce, 20)
    for a, b in zip(penalised.parameters(), coupled.parameters(), strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-10)


def test_the_penalty_is_added_in_training_only() -> None:
    net = _net()
    ce = nn.CrossEntropyLoss()
    loss = L2PenalizedLoss(ce, net, 0.5)
    x, y = torch.randn(8, 5), torch.randint(3, (8,))
    net.train()
    assert torch.allclose(loss(net(x), y), ce(net(x), y) + 0.5 * l2_penalty(net))
    net.eval()
    assert torch.allclose(loss(net(x), y), ce(net(x), y))
    assert loss.ignore_index == ce.ignore_index
    assert "lam=0.5" in repr(loss)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((nn.CrossEntropyLoss(), "net", 0.1), TypeError, "the model being trained"),
        (("ce", nn.Linear(2, 2), 0.1), TypeError, "loss function"),
        ((nn.CrossEntropyLoss(), nn.Linear(2, 2), -1.0), ValueError, ">= 0"),
    ],
)
def test_bad_arguments_say_what_is_wrong(args, error, match) -> None:
    with pytest.raises(error, match=match):
        L2PenalizedLoss(*args)
