"""dlcourse.optim against torch.optim: the same parameters after many steps, the same errors."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from dlcourse import optim

GRID = [
    dict(lr=lr, momentum=m, dampening=d, weight_decay=wd, nesterov=n, maximize=mx)
    for lr, m, d, wd, n, mx in itertools.product(
        (0.1, 0.01), (0.0, 0.9), (0.0, 0.3), (0.0, 0.05), (False, True), (False, True)
    )
    if not n or (m > 0 and d == 0)
]


def _model(device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double().to(device)


def _groups(model: nn.Module, **hp) -> list[dict]:
    """Two parameter groups, the second with its own learning rate."""
    first, second = model[0], model[2]
    return [{"params": first.parameters()}, {"params": second.parameters(), "lr": hp["lr"] / 2}]


def _run(opt_cls, hp: dict, device: torch.device, steps: int = 30, reload_at: int | None = None):
    model = _model(device)
    opt = opt_cls(_groups(model, **hp), **hp)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(16, 5, generator=gen, dtype=torch.float64).to(device)
    y = torch.randn(16, 3, generator=gen, dtype=torch.float64).to(device)
    losses = []
    for step in range(steps):
        if step == reload_at:  # a state_dict round trip midway must change nothing
            saved = opt.state_dict()
            opt = opt_cls(_groups(model, **hp), **hp)
            opt.load_state_dict(saved)

        def closure(opt=opt):
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            return loss

        losses.append(float(opt.step(closure).detach()))
    return [p.detach().cpu() for p in model.parameters()], losses


@pytest.mark.parametrize("hp", GRID, ids=lambda hp: "-".join(f"{k}={v}" for k, v in hp.items()))
def test_sgd_matches_torch(hp: dict) -> None:
    cpu = torch.device("cpu")
    ours, our_losses = _run(optim.SGD, hp, cpu, reload_at=13)
    theirs, their_losses = _run(torch.optim.SGD, hp, cpu)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert our_losses == pytest.approx(their_losses, rel=1e-12)


def test_sgd_on_every_device(device: torch.device) -> None:
    hp = dict(
        lr=0.05, momentum=0.9, dampening=0.0, weight_decay=0.01, nesterov=True, maximize=False
    )
    if device.type == "mps":
        pytest.skip("MPS has no float64")
    ours, _ = _run(optim.SGD, hp, device)
    theirs, _ = _run(torch.optim.SGD, hp, device)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_momentum_buffer_has_torchs_name() -> None:
    p = nn.Parameter(torch.ones(3))
    opt = optim.SGD([p], lr=0.1, momentum=0.5)
    p.grad = torch.ones(3)
    opt.step()
    assert torch.equal(opt.state[p]["momentum_buffer"], torch.ones(3))


def test_parameters_without_gradients_are_left_alone() -> None:
    a, b = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2))
    opt = optim.SGD([a, b], lr=0.1)
    a.grad = torch.ones(2)
    assert opt.step() is None
    assert torch.equal(b, torch.ones(2)) and torch.allclose(a, torch.full((2,), 0.9))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": -0.1},
        {"lr": 0.1, "momentum": -0.5},
        {"lr": 0.1, "weight_decay": -1e-4},
        {"lr": 0.1, "nesterov": True},
        {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True},
    ],
)
def test_bad_hyperparameters_raise_like_torch(kwargs: dict) -> None:
    params = [nn.Parameter(torch.zeros(1))]
    with pytest.raises(ValueError) as theirs:
        torch.optim.SGD(params, **kwargs)
    with pytest.raises(ValueError) as ours:
        optim.SGD(params, **kwargs)
    assert str(ours.value) == str(theirs.value)
