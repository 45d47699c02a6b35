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


# --------------------------------------------------------------------------- the adaptive methods


def _grid(**axes) -> list[dict]:
    keys = list(axes)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*axes.values())]


ADAPTIVE = {
    "Adagrad": _grid(
        lr=(0.1, 0.01),
        lr_decay=(0.0, 0.01),
        weight_decay=(0.0, 0.05),
        initial_accumulator_value=(0.0, 0.1),
        eps=(1e-10,),
        maximize=(False, True),
    ),
    "RMSprop": _grid(
        lr=(0.01, 0.001),
        alpha=(0.99, 0.9),
        eps=(1e-8,),
        weight_decay=(0.0, 0.05),
        momentum=(0.0, 0.9),
        centered=(False, True),
        maximize=(False, True),
    ),
    "Adadelta": _grid(
        lr=(1.0, 0.5),
        rho=(0.9, 0.95),
        eps=(1e-6, 1e-3),
        weight_decay=(0.0, 0.05),
        maximize=(False, True),
    ),
    "Adam": _grid(
        lr=(0.01, 0.001),
        betas=((0.9, 0.999), (0.5, 0.9)),
        eps=(1e-8,),
        weight_decay=(0.0, 0.05),
        amsgrad=(False, True),
        maximize=(False, True),
    ),
    "AdamW": _grid(
        lr=(0.01, 0.001),
        betas=((0.9, 0.999), (0.5, 0.9)),
        eps=(1e-8,),
        weight_decay=(0.0, 0.01, 0.1),
        amsgrad=(False, True),
        maximize=(False, True),
    ),
}
CASES = [(name, hp) for name, grid in ADAPTIVE.items() for hp in grid]


@pytest.mark.parametrize(
    ("name", "hp"), CASES, ids=[f"{n}-" + "-".join(f"{v}" for v in hp.values()) for n, hp in CASES]
)
def test_adaptive_optimizers_match_torch(name: str, hp: dict) -> None:
    """Parameters after 30 float64 steps: two groups, a closure, a state_dict round trip."""
    cpu = torch.device("cpu")
    ours, our_losses = _run(getattr(optim, name), hp, cpu, reload_at=13)
    theirs, their_losses = _run(getattr(torch.optim, name), hp, cpu)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-12)
    assert our_losses == pytest.approx(their_losses, rel=1e-11)


@pytest.mark.parametrize("name", list(ADAPTIVE))
def test_adaptive_optimizers_on_every_device(name: str, device: torch.device) -> None:
    if device.type == "mps":
        pytest.skip("MPS has no float64")
    hp = ADAPTIVE[name][-1]  # weight decay, maximize and the extras all on
    ours, _ = _run(getattr(optim, name), hp, device)
    theirs, _ = _run(getattr(torch.optim, name), hp, device)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_state_has_torchs_names() -> None:
    expected = {
        optim.Adagrad: {"step", "sum"},
        optim.RMSprop: {"step", "square_avg"},
        optim.Adadelta: {"step", "square_avg", "acc_delta"},
        optim.Adam: {"step", "exp_avg", "exp_avg_sq"},
    }
    for cls, keys in expected.items():
        p = nn.Parameter(torch.ones(3))
        opt = cls([p])
        p.grad = torch.ones(3)
        opt.step()
        assert set(opt.state[p]) == keys, cls.__name__
    p = nn.Parameter(torch.ones(3))
    opt = optim.RMSprop([p], momentum=0.9, centered=True)
    p.grad = torch.ones(3)
    opt.step()
    assert set(opt.state[p]) == {"step", "square_avg", "momentum_buffer", "grad_avg"}


def test_adam_bias_correction_makes_the_first_step_lr_sized() -> None:
    """At t = 1, m_hat / sqrt(v_hat) = g / |g|: every weight moves by lr, whatever its gradient."""
    p = nn.Parameter(torch.zeros(4, dtype=torch.float64))
    opt = optim.Adam([p], lr=0.1, eps=0.0)
    p.grad = torch.tensor([1e-6, 0.01, -3.0, 100.0], dtype=torch.float64)
    opt.step()
    torch.testing.assert_close(
        p.detach(), torch.tensor([-0.1, -0.1, 0.1, -0.1], dtype=torch.float64)
    )


def test_adagrad_effective_rate_only_falls() -> None:
    p = nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = optim.Adagrad([p], lr=1.0, eps=0.0)
    steps = []
    for _ in range(50):
        before = p.detach().clone()
        p.grad = torch.ones(1, dtype=torch.float64)  # the same gradient every time
        opt.step()
        steps.append((before - p.detach()).item())
    assert all(b < a for a, b in itertools.pairwise(steps))
    assert steps[-1] == pytest.approx(1 / 50**0.5)  # lr / sqrt(t)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("Adagrad", {"lr": -1.0}),
        ("Adagrad", {"lr_decay": -0.1}),
        ("Adagrad", {"weight_decay": -0.1}),
        ("Adagrad", {"initial_accumulator_value": -1.0}),
        ("Adagrad", {"eps": -1e-10}),
        ("RMSprop", {"lr": -0.1}),
        ("RMSprop", {"eps": -1.0}),
        ("RMSprop", {"momentum": -0.5}),
        ("RMSprop", {"weight_decay": -1.0}),
        ("RMSprop", {"alpha": -0.9}),
        ("Adadelta", {"lr": -1.0}),
        ("Adadelta", {"rho": 1.5}),
        ("Adadelta", {"eps": -1.0}),
        ("Adadelta", {"weight_decay": -1.0}),
        ("Adam", {"lr": -1.0}),
        ("Adam", {"eps": -1.0}),
        ("Adam", {"betas": (1.0, 0.999)}),
        ("Adam", {"betas": (0.9, -0.1)}),
        ("Adam", {"weight_decay": -1.0}),
        ("AdamW", {"betas": (0.9, 1.0)}),
        ("AdamW", {"lr": float("nan")}),
    ],
)
def test_adaptive_bad_hyperparameters_raise_like_torch(name: str, kwargs: dict) -> None:
    params = [nn.Parameter(torch.zeros(1))]
    with pytest.raises(ValueError) as theirs:
        getattr(torch.optim, name)(params, **kwargs)
    with pytest.raises(ValueError) as ours:
        getattr(optim, name)(params, **kwargs)
    assert str(ours.value) == str(theirs.value)


def test_sparse_gradients_are_refused() -> None:
    p = nn.Parameter(torch.zeros(3))
    p.grad = torch.zeros(3).to_sparse()
    with pytest.raises(RuntimeError, match="does not support sparse"):
        optim.Adam([p]).step()


# ------------------------------------------------------------------------- the foreach form

FOREACH_CASES = [("SGD", hp) for hp in (GRID[0], GRID[-1], GRID[len(GRID) // 2])] + [
    (name, hp)
    for name, grid in ADAPTIVE.items()
    for hp in (grid[0], grid[-1], grid[len(grid) // 2])
]


@pytest.mark.parametrize(
    ("name", "hp"),
    FOREACH_CASES,
    ids=[f"{n}-" + "-".join(f"{v}" for v in hp.values()) for n, hp in FOREACH_CASES],
)
def test_foreach_form_matches_torch(name: str, hp: dict, device: torch.device) -> None:
    """foreach=True (one operation per list of tensors) gives torch's numbers on every device."""
    if device.type == "mps":
        pytest.skip("MPS has no float64")
    ours, our_losses = _run(getattr(optim, name), {**hp, "foreach": True}, device, reload_at=13)
    theirs, their_losses = _run(getattr(torch.optim, name), hp, device)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-11)
    assert our_losses == pytest.approx(their_losses, rel=1e-10)


def test_foreach_defaults_to_the_list_form_only_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    p = nn.Parameter(torch.ones(3))
    p.grad = torch.ones(3)
    opt = optim.Adam([p])
    called = []
    monkeypatch.setattr(opt, "update_foreach", lambda *a: called.append(a))
    opt.step()
    assert not called  # CPU: the per-parameter loop
    opt.param_groups[0]["foreach"] = True
    opt.step()
    assert len(called) == 1
