"""dlcourse.anneal: the Metropolis rule, cooling, and annealing that escapes a local minimum."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from dlcourse import anneal
from dlcourse.landscapes import DOUBLE_WELL


@given(st.floats(-50, 50), st.floats(0.01, 100))
def test_acceptance_probability_is_the_metropolis_rule(d: float, t: float) -> None:
    p = float(anneal.acceptance_probability(d, t))
    expected = 1.0 if d <= 0 else math.exp(-d / t)  # min(1, e^(-d/T)) without overflow
    assert p == pytest.approx(expected, rel=1e-12)
    assert 0.0 <= p <= 1.0


def test_acceptance_grows_with_temperature_and_falls_with_the_climb() -> None:
    temps = [0.1, 1.0, 10.0]
    assert [float(anneal.acceptance_probability(1.0, t)) for t in temps] == sorted(
        float(anneal.acceptance_probability(1.0, t)) for t in temps
    )
    climbs = torch.tensor([0.5, 1.0, 2.0])
    p = anneal.acceptance_probability(climbs, 1.0)
    assert torch.all(p[:-1] > p[1:])
    assert anneal.acceptance_probability(torch.tensor([-1.0, 0.0, 1.0]), 0.0).tolist() == [1, 1, 0]
    with pytest.raises(ValueError, match="temperature"):
        anneal.acceptance_probability(1.0, -1.0)


def test_cooling_schedules() -> None:
    exp = anneal.exponential_cooling(2.0, 0.5)
    assert [exp(k) for k in range(3)] == [2.0, 1.0, 0.5]
    lin = anneal.linear_cooling(1.0, 4)
    assert [lin(k) for k in range(6)] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    log = anneal.logarithmic_cooling(1.0)
    assert log(0) == pytest.approx(1 / math.log(2)) and log(10) < log(1)
    bad_calls = (
        lambda: anneal.exponential_cooling(1, 0),
        lambda: anneal.linear_cooling(1, 0),
        lambda: anneal.logarithmic_cooling(-1),
        lambda: anneal.gaussian_proposal(0),
    )
    for bad in bad_calls:
        with pytest.raises(ValueError):
            bad()


def test_run_shapes_best_and_reproducibility() -> None:
    x0 = torch.zeros(7, 1, dtype=torch.float64)
    kwargs = dict(steps=50, temperature=anneal.exponential_cooling(1.0, 0.95), seed=3)
    r = anneal.simulated_annealing(DOUBLE_WELL, x0, **kwargs)
    assert r.trajectory.shape == (51, 7, 1) and r.values.shape == (51, 7)
    assert r.accepted.shape == (50, 7) and r.temperatures.shape == (50,)
    assert torch.equal(r.best_value, r.values.min(dim=0).values)
    assert torch.allclose(DOUBLE_WELL(r.best_x), r.best_value)
    again = anneal.simulated_annealing(DOUBLE_WELL, x0, **kwargs)
    assert torch.equal(r.trajectory, again.trajectory)
    assert torch.all((r.acceptance_rate >= 0) & (r.acceptance_rate <= 1))


def test_zero_temperature_never_goes_uphill() -> None:
    x0 = DOUBLE_WELL.uniform_starts(20, seed=0)
    greedy = anneal.constant_temperature(0.0)
    r = anneal.simulated_annealing(DOUBLE_WELL, x0, steps=100, temperature=greedy)
    assert torch.all(r.values[1:] <= r.values[:-1])


def test_annealing_escapes_the_local_minimum_that_traps_greedy_search() -> None:
    local = DOUBLE_WELL.minima[1].point
    x0 = torch.tensor(local, dtype=torch.float64).repeat(100, 1)  # 100 runs from the local minimum
    proposal = anneal.gaussian_proposal(0.3)
    common = dict(steps=400, proposal=proposal, seed=0)
    hot = anneal.simulated_annealing(
        DOUBLE_WELL, x0, temperature=anneal.exponential_cooling(3.0, 0.985), **common
    )
    cold = anneal.simulated_annealing(
        DOUBLE_WELL, x0, temperature=anneal.constant_temperature(0.0), **common
    )
    hot_rate = DOUBLE_WELL.in_global_basin(hot.final_x, tol=0.4).double().mean()
    cold_rate = DOUBLE_WELL.in_global_basin(cold.final_x, tol=0.4).double().mean()
    assert hot_rate > 0.8 and cold_rate < 0.2, (hot_rate, cold_rate)


def test_annealing_a_model_through_a_closure() -> None:
    torch.manual_seed(0)
    x = torch.randn(32, 2)
    y = x @ torch.tensor([[1.5], [-2.0]]) + 0.3
    model = nn.Linear(2, 1)

    def loss() -> torch.Tensor:
        return ((model(x) - y) ** 2).mean()

    with torch.no_grad():
        before = float(loss())
    f = anneal.model_objective(model, loss)
    theta0 = nn.utils.parameters_to_vector(model.parameters()).detach().double()
    r = anneal.simulated_annealing(f, theta0, steps=300, seed=0,
                                   temperature=anneal.exponential_cooling(0.5, 0.98),
                                   proposal=anneal.gaussian_proposal(0.1))  # fmt: skip
    anneal.set_parameters(model, r.best_x)
    with torch.no_grad():
        after = float(loss())
    assert after == pytest.approx(float(r.best_value), rel=1e-5)
    assert after < 0.2 * before
    with pytest.raises(ValueError, match="3 parameters"):
        f(torch.zeros(4))


# --------------------------------------------------------------------------- langevin_descent


def test_langevin_at_zero_temperature_is_gradient_descent() -> None:
    from dlcourse.exercises.gradient_descent import gradient_descent_path

    x0 = torch.tensor([1.9], dtype=torch.float64)
    path = anneal.langevin_descent(DOUBLE_WELL.grad, x0, steps=40, lr=0.01)
    assert path.shape == (41, 1)
    torch.testing.assert_close(path, gradient_descent_path(DOUBLE_WELL.grad, x0, 0.01, 40))


def test_langevin_noise_scale_and_schedules() -> None:
    """With no gradient each step adds N(0, 2 lr T): after k steps the spread is sqrt(2 lr T k)."""
    x0 = torch.zeros(20_000, 1, dtype=torch.float64)
    path = anneal.langevin_descent(
        torch.zeros_like,
        x0,
        steps=25,
        lr=lambda k: 0.01,
        temperature=anneal.constant_temperature(2.0),
    )
    assert path[-1].std().item() == pytest.approx(math.sqrt(2 * 0.01 * 2.0 * 25), rel=0.03)
    again = anneal.langevin_descent(torch.zeros_like, x0, steps=25, lr=0.01, temperature=2.0)
    assert torch.equal(path, again)  # the same seed, the same noise
    other = anneal.langevin_descent(
        torch.zeros_like, x0, steps=25, lr=0.01, temperature=2.0, seed=1
    )
    assert not torch.equal(path, other)


def test_annealed_langevin_leaves_the_shallow_well_and_settles_in_the_deep_one() -> None:
    local = DOUBLE_WELL.minima[1].point[0]
    x0 = torch.full((100, 1), local, dtype=torch.float64)
    cold = anneal.langevin_descent(DOUBLE_WELL.grad, x0, steps=1000, lr=0.01)
    hot = anneal.langevin_descent(
        DOUBLE_WELL.grad,
        x0,
        steps=1000,
        lr=0.01,
        temperature=anneal.exponential_cooling(4.0, 0.995),
    )
    assert DOUBLE_WELL.in_global_basin(cold[-1]).sum() == 0
    assert DOUBLE_WELL.in_global_basin(hot[-1]).double().mean() > 0.6


def test_langevin_rejects_negative_rates() -> None:
    with pytest.raises(ValueError, match="steps must be"):
        anneal.langevin_descent(DOUBLE_WELL.grad, torch.zeros(1), steps=-1, lr=0.1)
    with pytest.raises(ValueError, match="lr and temperature must be >= 0"):
        anneal.langevin_descent(DOUBLE_WELL.grad, torch.zeros(1), steps=3, lr=0.1, temperature=-1.0)


# --------------------------------------------------------------------------- the race of three


def test_race_gd_is_plain_gradient_descent_and_stays_in_the_shallow_well() -> None:
    from dlcourse.exercises.gradient_descent import gradient_descent_path
    from dlcourse.landscapes import DOUBLE_WELL

    race = anneal.descent_race(landscape="double well", start_x=1.8, lr=0.01, steps=300)
    assert set(race.paths) == {"GD", "SGD-like", "annealing"}
    assert all(p.shape == (301, 1) for p in race.paths.values())
    start = torch.tensor([1.8], dtype=torch.float64)
    torch.testing.assert_close(
        race.paths["GD"], gradient_descent_path(DOUBLE_WELL.grad, start, 0.01, 300)
    )
    assert race.final_loss["GD"] == pytest.approx(DOUBLE_WELL.minima[1].value, abs=1e-6)
    assert not race.in_global_basin["GD"]


def test_race_noise_and_temperature_let_the_other_two_escape() -> None:
    escaped = {"SGD-like": 0, "annealing": 0}
    for seed in range(10):
        race = anneal.descent_race(start_x=1.8, noise=6.0, lr=0.04, seed=seed)
        for name in escaped:
            escaped[name] += race.in_global_basin[name]
    assert escaped["SGD-like"] >= 5 and escaped["annealing"] >= 5
    quiet = anneal.descent_race(start_x=1.8, noise=0.0, temperature=0.0)
    torch.testing.assert_close(quiet.paths["SGD-like"], quiet.paths["GD"])
    assert not quiet.in_global_basin["annealing"]  # T = 0: only downhill moves


def test_race_settings_are_written_once_and_can_be_changed() -> None:
    settings = anneal.RaceSettings(landscape="two basins", steps=5)
    race = anneal.descent_race(settings, start_x=9.0, start_y=-9.0)  # clamped into the box
    assert race.start == (2.0, -1.5) and race.paths["GD"].shape == (6, 2)
    diverged = anneal.descent_race(start_x=2.0, lr=0.3, steps=50)
    assert math.isnan(diverged.final_loss["GD"]) and not diverged.in_global_basin["GD"]


def test_race_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        anneal.descent_race(landscape="Himmelblau")
    with pytest.raises(ValueError, match="choose one of"):
        anneal.descent_race(schedule="linear")
    with pytest.raises(ValueError, match="need lr > 0"):
        anneal.descent_race(lr=0.0)
    with pytest.raises(TypeError, match="unexpected keyword"):
        anneal.descent_race(learning_rate=0.1)
