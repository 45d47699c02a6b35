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
from tests._reference import copy_optimizer

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


def _data():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(16, 5, generator=gen, dtype=torch.float64)
    return x, torch.randint(3, (16,), generator=gen)


def _weight_groups(net: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on the weights only, as the penalty: biases and the batch-norm scale in a
    group without it."""
    return [
        {"params": [p for p in net.parameters() if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in net.parameters() if p.dim() < 2], "weight_decay": 0.0},
    ]


def _in_order(net: nn.Module, opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    """``net``'s parameters in the order of ``opt``'s groups."""
    return [p for g in opt.param_groups for p in g["params"]]


def test_the_penalty_adds_exactly_2_lam_w_to_each_weights_gradient() -> None:
    """What the rest follows from: d/dw (lam * ||w||^2) = 2 lam w, and nothing on the biases."""
    lam = 0.03
    ce = nn.CrossEntropyLoss()
    x, y = _data()
    plain, penalised = _net().double(), _net().double()
    ce(plain(x), y).backward()
    L2PenalizedLoss(ce, penalised, lam)(penalised(x), y).backward()
    for (name, p), q in zip(plain.named_parameters(), penalised.parameters(), strict=True):
        added = 2 * lam * p.detach() if p.dim() >= 2 else torch.zeros_like(p)
        # two float64 sums of the same terms in another order: a few roundings apart
        torch.testing.assert_close(q.grad, p.grad + added, rtol=1e-13, atol=1e-15, msg=name)


def _one_step_at_a_time(penalised, opt_penalised, loss_penalised, coupled, opt_coupled, loss):
    """Step both runs from the same weights and optimizer state, 20 times; after each step
    return the largest difference, then set the penalised run to the coupled one's numbers.

    Comparing one step at a time keeps the test sharp on every CPU: free-running, the two
    runs' last-bit differences (``2*lam*w`` against ``(2*lam)*w``) would be amplified step
    after step (Adam divides by sqrt(v)) by an amount that depends on the CPU's rounding."""
    x, y = _data()
    gaps = []
    for _ in range(20):
        for net, opt, fn in (
            (penalised, opt_penalised, loss_penalised),
            (coupled, opt_coupled, loss),
        ):
            opt.zero_grad()
            fn(net(x), y).backward()
            opt.step()
        gaps.append(
            max(
                (a - b).abs().max().item()
                for a, b in zip(
                    _in_order(penalised, opt_penalised),
                    _in_order(coupled, opt_coupled),
                    strict=True,
                )
            )
        )
        copy_optimizer(opt_penalised, opt_coupled)
    return gaps


@pytest.mark.parametrize("make_sgd", [optim.SGD, torch.optim.SGD], ids=["ours", "torch"])
def test_the_penalty_is_sgds_weight_decay(make_sgd) -> None:
    """SGD's update is linear in the gradient: a step on the penalised loss equals a step with
    weight_decay = 2 lam to a few roundings of the weights (float64)."""
    lam, ce = 0.03, nn.CrossEntropyLoss()
    a, b = _net().double(), _net().double()
    opt_b = make_sgd(_weight_groups(b, 2 * lam), lr=0.1, momentum=0.9)
    # the penalised run's groups in the same order as the coupled run's, for copy_optimizer
    opt_a = make_sgd(_weight_groups(a, 0.0), lr=0.1, momentum=0.9)
    gaps = _one_step_at_a_time(a, opt_a, L2PenalizedLoss(ce, a, lam), b, opt_b, ce)
    assert max(gaps) < 1e-14


def test_the_penalty_is_adams_coupled_weight_decay_not_adamws_decoupled_decay() -> None:
    lam, lr, eps = 0.03, 0.01, 1e-8
    ce = nn.CrossEntropyLoss()
    # Adam's coupled weight_decay adds 2*lam*w to the gradient, as the penalty does: one step
    # from the same state moves the weights by the same amount. A gradient that differs by
    # delta moves Adam's step by at most lr * delta / eps (the update m / (sqrt(v) + eps) has
    # slope at most 1/eps in g), and the two gradients differ by a few roundings of |g| <= 10:
    # bound = lr * (8 * 2.2e-16 * 10) / eps = 1.8e-8, far below the 1e-3 that sets AdamW apart.
    a, b = _net().double(), _net().double()
    opt_b = optim.Adam(_weight_groups(b, 2 * lam), lr=lr, eps=eps)
    opt_a = optim.Adam(_weight_groups(a, 0.0), lr=lr, eps=eps)
    gaps = _one_step_at_a_time(a, opt_a, L2PenalizedLoss(ce, a, lam), b, opt_b, ce)
    assert max(gaps) < lr * (8 * 2.2e-16 * 10) / eps
    # AdamW decays the weights outside the gradient, past Adam's normalisation: 20 steps apart
    # from the start, the runs differ by far more than any rounding could make.
    x, y = _data()
    penalised, decoupled = _net().double(), _net().double()
    runs = (
        (penalised, optim.Adam(penalised.parameters(), lr=lr), L2PenalizedLoss(ce, penalised, lam)),
        (decoupled, optim.AdamW(_weight_groups(decoupled, 2 * lam), lr=lr), ce),
    )
    for net, opt, fn in runs:
        for _ in range(20):
            opt.zero_grad()
            fn(net(x), y).backward()
            opt.step()
    gap = max(
        (p - q).abs().max().item()
        for p, q in zip(penalised.parameters(), decoupled.parameters(), strict=True)
    )
    assert gap > 1e-3


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
