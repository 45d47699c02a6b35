"""dlcourse.schedules against torch.optim.lr_scheduler, step by step."""

from __future__ import annotations

import functools
import itertools

import pytest
import torch
from torch import nn

from dlcourse import schedules
from dlcourse.callbacks import LRScheduler
from dlcourse.data import Batches, make_spirals
from dlcourse.train import fit

STEPS = 400


def _torch_rates(make_scheduler, lr: float) -> list[float]:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    sched = make_scheduler(opt)
    rates = []
    for _ in range(STEPS):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return rates


@pytest.mark.parametrize(
    ("lr", "ours", "theirs"),
    [
        (
            0.5,
            functools.partial(schedules.step_lr, lr=0.5, step_size=30, gamma=0.3),
            lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=30, gamma=0.3),
        ),
        (
            0.5,
            functools.partial(schedules.exponential_lr, lr=0.5, gamma=0.99),
            lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.99),
        ),
        (
            0.5,
            functools.partial(schedules.cosine_lr, lr=0.5, T_max=150, eta_min=0.01),
            lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=150, eta_min=0.01),
        ),
        (
            0.2,
            functools.partial(schedules.cosine_lr, lr=0.2, T_max=400),
            lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=400),
        ),
    ],
    ids=["step", "exponential", "cosine-past-T_max", "cosine"],
)
def test_schedule_matches_torch_step_by_step(lr: float, ours, theirs) -> None:
    expected = _torch_rates(theirs, lr)
    got = [ours(t) for t in range(STEPS)]
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_cosine_ends_at_eta_min_and_falls_monotonically() -> None:
    rates = [schedules.cosine_lr(t, lr=1.0, T_max=100, eta_min=0.1) for t in range(101)]
    assert rates[0] == 1.0 and rates[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(rates))


@pytest.mark.parametrize(
    "call",
    [
        lambda: schedules.step_lr(-1, lr=0.1, step_size=2),
        lambda: schedules.step_lr(0, lr=0.1, step_size=0),
        lambda: schedules.exponential_lr(0, lr=0.1, gamma=0.0),
        lambda: schedules.cosine_lr(0, lr=-1.0, T_max=10),
        lambda: schedules.cosine_lr(0, lr=1.0, T_max=0),
    ],
)
def test_bad_arguments(call) -> None:
    with pytest.raises(ValueError):
        call()


def test_fit_accepts_a_schedule_function() -> None:
    x, y = make_spirals(64)
    torch.manual_seed(0)
    model = nn.Linear(2, 3)
    opt = torch.optim.SGD(model.parameters(), lr=123.0)  # replaced by the schedule from step 0
    schedule = functools.partial(schedules.exponential_lr, lr=0.1, gamma=0.5)
    history = fit(model, nn.CrossEntropyLoss(), opt, Batches(x, y, 16), epochs=2,
                  callbacks=[LRScheduler(schedule, interval="step")], progress=False,
                  live_plot=False)  # fmt: skip
    assert history.steps["lr"] == pytest.approx([0.1 * 0.5**t for t in range(8)])


@pytest.mark.parametrize("name", schedules.NAMES)
def test_schedules_by_name_start_at_lr_and_fall(name: str) -> None:
    lr_at = schedules.by_name(name, 0.1, 100)
    rates = [lr_at(k) for k in range(101)]
    assert rates[0] == pytest.approx(0.1)
    assert all(b <= a + 1e-15 for a, b in itertools.pairwise(rates))
    assert rates[-1] == pytest.approx(0.1 if name == "constant" else 0.001)
    with pytest.raises(ValueError, match="choose one of"):
        schedules.by_name("linear", 0.1, 10)
