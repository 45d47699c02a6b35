"""dlcourse.optim against torch.optim, one step at a time, over grids of hyperparameters.

Every comparison goes through ``tests/_reference.compare_optimizer_steps``: ours and torch's
take one step from the same parameters and the same state, parameters and state are compared
at a tolerance a few roundings wide, then ours is set to torch's numbers. A wrong formula is
off by far more than that tolerance at the first step it matters; a last-bit difference in
the order of operations never grows (no free-running steps for Adam's division by sqrt(v) to
amplify), so the tests hold on every CPU. Float64 throughout, on the CPU and on every device.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlcourse import optim
from tests._reference import compare_optimizer_steps, tolerance

NAMES = ["SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW"]


def _grid(**axes) -> list[dict]:
    keys = list(axes)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*axes.values())]


GRIDS = {
    "SGD": [
        hp
        for hp in _grid(
            lr=(0.1, 0.01),
            momentum=(0.0, 0.9),
            dampening=(0.0, 0.3),
            weight_decay=(0.0, 0.05),
            nesterov=(False, True),
            maximize=(False, True),
        )
        if not hp["nesterov"] or (hp["momentum"] > 0 and hp["dampening"] == 0)
    ],
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
CASES = [(name, hp) for name, grid in GRIDS.items() for hp in grid]
# Each optimizer's last case has every option on (weight decay, maximize, momentum, ...).
FULL = {name: grid[-1] for name, grid in GRIDS.items()}
FOREACH_CASES = [(n, hp) for n, grid in GRIDS.items() for hp in (grid[0], grid[len(grid) // 2])]


def _ids(cases: list[tuple[str, dict]]) -> list[str]:
    return [f"{n}-" + "-".join(f"{v}" for v in hp.values()) for n, hp in cases]


# --------------------------------------------------------------------------- the set-up


def _leaves(device: torch.device) -> list[torch.Tensor]:
    """A 5 -> 8 -> 3 MLP's weights and biases, made on the CPU (the same numbers everywhere)."""
    gen = torch.Generator().manual_seed(0)
    shapes = [(8, 5), (8,), (3, 8), (3,)]
    start = [0.5 * torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    return [t.to(device).requires_grad_(True) for t in start]


def _loss_of(device: torch.device) -> Callable[[list[torch.Tensor]], torch.Tensor]:
    """The MLP's mean squared error on a fixed batch of 16, from its parameters in order."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(16, 5, generator=gen, dtype=torch.float64).to(device)
    y = torch.randn(16, 3, generator=gen, dtype=torch.float64).to(device)

    def loss_of(params: list[torch.Tensor]) -> torch.Tensor:
        w1, b1, w2, b2 = params
        return ((F.linear(torch.tanh(F.linear(x, w1, b1)), w2, b2) - y) ** 2).mean()

    return loss_of


def _groups(params: list[torch.Tensor], lr: float) -> list[dict]:
    """Two parameter groups, the second with its own learning rate."""
    return [{"params": params[:2]}, {"params": params[2:], "lr": lr / 2}]


def _pair(name: str, hp: dict, device: torch.device, foreach: bool | None = None):
    """Ours and torch's optimizer on two copies of the same parameters; and a maker of ours."""
    mine, theirs = _leaves(device), _leaves(device)

    def make_ours() -> torch.optim.Optimizer:
        return getattr(optim, name)(_groups(mine, hp["lr"]), **hp, foreach=foreach)

    return make_ours(), getattr(torch.optim, name)(_groups(theirs, hp["lr"]), **hp), make_ours


def _train(opt: torch.optim.Optimizer, loss_of: Callable, steps: int) -> None:
    params = [p for g in opt.param_groups for p in g["params"]]
    for _ in range(steps):
        opt.zero_grad()
        loss_of(params).backward()
        opt.step()


def _copies(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    """New leaves holding the values of an optimizer's parameters, in order."""
    return [p.detach().clone().requires_grad_(True) for g in opt.param_groups for p in g["params"]]


def _skip_mps(device: torch.device) -> None:
    if device.type == "mps":
        pytest.skip("MPS has no float64")


# --------------------------------------------------------------------------- against torch


@pytest.mark.parametrize(("name", "hp"), CASES, ids=_ids(CASES))
def test_matches_torch_step_by_step(name: str, hp: dict) -> None:
    """12 steps, two groups, a closure, and a state_dict round trip before step 7."""
    cpu = torch.device("cpu")
    ours, theirs, make_ours = _pair(name, hp, cpu)
    compare_optimizer_steps(
        ours, theirs, _loss_of(cpu), steps=12, closure=True, reload_at=6, make_ours=make_ours
    )


@pytest.mark.parametrize("name", NAMES)
def test_matches_torch_on_every_device(name: str, device: torch.device) -> None:
    """The default form for the device (the list form on CUDA), no closure."""
    _skip_mps(device)
    ours, theirs, _ = _pair(name, FULL[name], device)
    compare_optimizer_steps(ours, theirs, _loss_of(device), steps=12)


@pytest.mark.parametrize(("name", "hp"), FOREACH_CASES, ids=_ids(FOREACH_CASES))
@pytest.mark.parametrize("foreach", [False, True], ids=["loop", "foreach"])
def test_each_form_matches_torch_on_every_device(
    name: str, hp: dict, foreach: bool, device: torch.device
) -> None:
    _skip_mps(device)
    ours, theirs, make_ours = _pair(name, hp, device, foreach=foreach)
    compare_optimizer_steps(
        ours, theirs, _loss_of(device), steps=12, reload_at=6, make_ours=make_ours
    )


@pytest.mark.parametrize(("name", "hp"), CASES, ids=_ids(CASES))
def test_foreach_form_equals_the_readable_form(name: str, hp: dict) -> None:
    """dlcourse/_optim_foreach.py computes what each class's ``update`` computes."""
    cpu = torch.device("cpu")
    fast = getattr(optim, name)(_groups(_leaves(cpu), hp["lr"]), **hp, foreach=True)
    readable = getattr(optim, name)(_groups(_leaves(cpu), hp["lr"]), **hp, foreach=False)
    compare_optimizer_steps(fast, readable, _loss_of(cpu), steps=8)


def test_adam_with_decoupled_weight_decay_is_adamw() -> None:
    cpu = torch.device("cpu")
    hp = dict(lr=0.01, weight_decay=0.1, amsgrad=True)
    ours = optim.Adam(_groups(_leaves(cpu), 0.01), **hp, decoupled_weight_decay=True)
    theirs = torch.optim.AdamW(_groups(_leaves(cpu), 0.01), **hp)
    compare_optimizer_steps(ours, theirs, _loss_of(cpu), steps=8)


# ------------------------------------------------------------ swapping ours for torch's and back


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("foreach", [False, True], ids=["loop", "foreach"])
def test_torchs_state_dict_continues_in_ours(name: str, foreach: bool, device: torch.device):
    """Torch trains 5 steps; ours, built with the default hyperparameters, loads its state_dict
    (the hyperparameters come with it) and takes the next 8 steps as torch does."""
    _skip_mps(device)
    loss_of = _loss_of(device)
    theirs = getattr(torch.optim, name)(_groups(_leaves(device), FULL[name]["lr"]), **FULL[name])
    _train(theirs, loss_of, steps=5)
    ours = getattr(optim, name)(_groups(_copies(theirs), 1.0))
    ours.load_state_dict(copy.deepcopy(theirs.state_dict()))  # as torch.save/torch.load would
    for group in ours.param_groups:  # the loaded groups carry torch's foreach=None
        group["foreach"] = foreach
    compare_optimizer_steps(ours, theirs, loss_of, steps=8)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("foreach", [False, True], ids=["loop", "foreach"])
def test_our_state_dict_continues_in_torchs(name: str, foreach: bool, device: torch.device):
    """Ours trains 5 steps; torch's, built with the defaults, loads our state_dict (our step
    counts are ints: torch makes them tensors) and takes the next 8 steps as ours does."""
    _skip_mps(device)
    loss_of = _loss_of(device)
    hp = FULL[name]
    ours = getattr(optim, name)(_groups(_leaves(device), hp["lr"]), **hp, foreach=foreach)
    _train(ours, loss_of, steps=5)
    theirs = getattr(torch.optim, name)(_groups(_copies(ours), 1.0))
    theirs.load_state_dict(copy.deepcopy(ours.state_dict()))
    compare_optimizer_steps(ours, theirs, loss_of, steps=8)


def test_adamw_stays_decoupled_whatever_state_dict_it_loads() -> None:
    """As torch's: an Adam state_dict loaded into AdamW leaves it AdamW; one saved before
    ``decoupled_weight_decay`` existed loads into Adam as coupled."""
    p = nn.Parameter(torch.ones(3))
    saved = optim.Adam([p], weight_decay=0.1).state_dict()
    adamw = optim.AdamW([p])
    adamw.load_state_dict(saved)
    assert adamw.param_groups[0]["decoupled_weight_decay"] is True
    del saved["param_groups"][0]["decoupled_weight_decay"]
    adam = optim.Adam([p], decoupled_weight_decay=True)
    adam.load_state_dict(saved)
    assert adam.param_groups[0]["decoupled_weight_decay"] is False


@pytest.mark.parametrize("name", NAMES)
def test_state_has_torchs_names(name: str) -> None:
    """The same state keys as torch after construction and after a step (SGD keeps no step)."""
    options = {"SGD": [{}, {"momentum": 0.9}], "RMSprop": [{}, {"momentum": 0.9, "centered": True}]}
    for kwargs in options.get(name, [{}, {"amsgrad": True}] if "Adam" in name else [{}]):
        p, q = nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(3))
        ours = getattr(optim, name)([p], **kwargs)
        theirs = getattr(torch.optim, name)([q], **kwargs)
        assert set(ours.state[p]) == set(theirs.state[q]), f"{name}{kwargs} before a step"
        p.grad, q.grad = torch.ones(3), torch.ones(3)
        ours.step(), theirs.step()
        assert set(ours.state[p]) == set(theirs.state[q]), f"{name}{kwargs} after a step"
        assert ("step" in ours.state[p]) == (name != "SGD")


# --------------------------------------------------------------------------- what each rule means


def test_momentum_buffer_starts_as_the_gradient() -> None:
    p = nn.Parameter(torch.ones(3))
    opt = optim.SGD([p], lr=0.1, momentum=0.5)
    p.grad = torch.tensor([1.0, 2.0, 3.0])
    opt.step()
    assert torch.equal(opt.state[p]["momentum_buffer"], torch.tensor([1.0, 2.0, 3.0]))


def test_parameters_without_gradients_are_left_alone() -> None:
    a, b = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2))
    opt = optim.SGD([a, b], lr=0.1)
    a.grad = torch.ones(2)
    assert opt.step() is None
    assert torch.equal(b, torch.ones(2)) and torch.allclose(a, torch.full((2,), 0.9))


def test_adam_bias_correction_makes_the_first_step_lr_sized() -> None:
    """At t = 1, m_hat / sqrt(v_hat) = g / |g|: every weight moves by lr, whatever its gradient."""
    p = nn.Parameter(torch.zeros(4, dtype=torch.float64))
    opt = optim.Adam([p], lr=0.1, eps=0.0)
    p.grad = torch.tensor([1e-6, 0.01, -3.0, 100.0], dtype=torch.float64)
    opt.step()
    torch.testing.assert_close(
        p.detach(), torch.tensor([-0.1, -0.1, 0.1, -0.1], dtype=torch.float64)
    )


@pytest.mark.parametrize("make", ["ours", "ours-foreach", "torch"])
def test_amsgrad_takes_the_maximum_of_v_then_corrects_it(make: str) -> None:
    """Gradient 1, then 0, with beta1 = beta2 = 1/2 and eps = 0. Step 1 moves by lr. At step 2,
    m_hat = beta1 / (1 + beta1) = 1/3 and v^max = max(v_1, v_2) = v_1 = 1 - beta2, corrected:
    v_hat = 1 / (1 + beta2) = 2/3, so the step is lr (1/3) / sqrt(2/3). The maximum of the
    corrected v_hat (max(1, 1/3) = 1) would give lr / 3; plain Adam lr (1/3) / sqrt(1/3)."""
    lr = 0.1
    p = nn.Parameter(torch.zeros(1, dtype=torch.float64))
    kwargs = dict(lr=lr, betas=(0.5, 0.5), eps=0.0, amsgrad=True)
    if make == "torch":
        opt = torch.optim.Adam([p], **kwargs)
    else:
        opt = optim.Adam([p], **kwargs, foreach=make == "ours-foreach")
    moves = []
    for g in (1.0, 0.0):
        before = p.detach().clone()
        p.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
        moves.append((before - p.detach()).item())
    # A few roundings of a two-step closed form; the wrong variants are 20% and 40% off.
    assert moves[0] == pytest.approx(lr, rel=1e-9)
    assert moves[1] == pytest.approx(lr / 3 / (2 / 3) ** 0.5, rel=1e-9)  # 0.0408, not 0.0333


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


# --------------------------------------------------------------------------- errors like torch's


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("SGD", {"lr": -0.1}),
        ("SGD", {"lr": 0.1, "momentum": -0.5}),
        ("SGD", {"lr": 0.1, "weight_decay": -1e-4}),
        ("SGD", {"lr": 0.1, "nesterov": True}),
        ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True}),
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
def test_bad_hyperparameters_raise_like_torch(name: str, kwargs: dict) -> None:
    params = [nn.Parameter(torch.zeros(1))]
    with pytest.raises(ValueError) as theirs:
        getattr(torch.optim, name)(params, **kwargs)
    with pytest.raises(ValueError) as ours:
        getattr(optim, name)(params, **kwargs)
    assert str(ours.value) == str(theirs.value)


def test_sgd_refuses_a_nan_learning_rate() -> None:
    """Torch's SGD accepts lr=nan (its check is ``lr < 0``) and then fills the weights with NaN;
    ours says so at once, in the words torch's other optimizers use."""
    with pytest.raises(ValueError, match="Invalid learning rate: nan"):
        optim.SGD([nn.Parameter(torch.zeros(1))], lr=float("nan"))


@pytest.mark.parametrize("name", NAMES[1:])
def test_sparse_gradients_are_refused_by_the_adaptive_methods(name: str) -> None:
    p = nn.Parameter(torch.zeros(3))
    p.grad = torch.zeros(3).to_sparse()
    with pytest.raises(RuntimeError, match=f"{name} does not support sparse"):
        getattr(optim, name)([p]).step()


@pytest.mark.parametrize("foreach", [False, True], ids=["loop", "foreach"])
@pytest.mark.parametrize("kwargs", [{}, {"momentum": 0.9}, {"momentum": 0.9, "maximize": True}])
def test_sgd_takes_sparse_gradients_like_torch(kwargs: dict, foreach: bool) -> None:
    """An ``nn.Embedding(sparse=True)`` gives sparse gradients; torch's SGD takes them."""
    results = []
    for cls in (optim.SGD, torch.optim.SGD):
        p = nn.Parameter(torch.ones(5, 3, dtype=torch.float64))
        opt = cls([p], lr=0.1, foreach=foreach, **kwargs)
        for row in range(3):  # rows 0, 1, 2 and row 3 every time
            p.grad = torch.sparse_coo_tensor(
                [[row, 3]], torch.ones(2, 3), (5, 3), check_invariants=True
            ).double()
            opt.step()
        results.append(p.detach())
    torch.testing.assert_close(*results, **tolerance(torch.float64))


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
