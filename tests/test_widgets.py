"""dlcourse.widgets: the tangent explorer's callback, checked against autograd, and its widget."""

from __future__ import annotations

import itertools
import math

import matplotlib.pyplot as plt
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from dlcourse import widgets

finite_x = st.floats(-6, 6, allow_nan=False).filter(lambda v: abs(v) > 1e-9)


@pytest.mark.parametrize("name", list(widgets.FUNCTIONS))
@given(x=finite_x)
def test_hand_derivative_equals_autograd(name: str, x: float) -> None:
    t = widgets.tangent(name, x)
    assert math.isclose(t.slope_autograd, t.slope_by_hand, rel_tol=1e-12, abs_tol=1e-12)
    f, _ = widgets.FUNCTIONS[name]
    assert t.value == pytest.approx(f(torch.tensor(x, dtype=torch.float64)).item(), rel=1e-12)


def test_relu_slope_at_zero_follows_torch() -> None:
    """torch defines relu'(0) = 0; the hand-written derivative must agree."""
    t = widgets.tangent("relu(x)", 0.0)
    assert t.slope_autograd == t.slope_by_hand == 0.0


@given(st.floats(-50, 50))
def test_sigmoid_slope_is_at_most_a_quarter(x: float) -> None:
    assert widgets.tangent("sigmoid(x)", x).slope_autograd <= 0.25 + 1e-15


def test_unknown_function() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        widgets.tangent("cosh(x)", 1.0)


def test_show_tangent_draws_curve_tangent_and_point() -> None:
    t = widgets.show_tangent("x^2", 1.5)
    assert t.slope_autograd == pytest.approx(3.0)
    ax = plt.gcf().axes[0]
    assert len(ax.lines) == 3
    assert "autograd 3.0000" in ax.get_title()


def test_tangent_explorer_reacts_to_its_controls() -> None:
    box = widgets.tangent_explorer()
    function, slider = box.children[0], box.children[1]
    assert box.result.function == "sigmoid(x)"
    slider.value = 0.0
    assert box.result.slope_autograd == pytest.approx(0.25)
    function.value = "x^2"
    slider.value = 2.0
    assert box.result.function == "x^2"
    assert box.result.slope_autograd == pytest.approx(4.0)


# --------------------------------------------------------------------------- descent race


def test_race_gd_is_plain_gradient_descent_and_stays_in_the_shallow_well() -> None:
    from dlcourse.exercises.gradient_descent import gradient_descent_path
    from dlcourse.landscapes import DOUBLE_WELL

    race = widgets.descent_race("double well", start_x=1.8, lr=0.01, steps=300)
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
        race = widgets.descent_race("double well", start_x=1.8, noise=6.0, lr=0.04, seed=seed)
        for name in escaped:
            escaped[name] += race.in_global_basin[name]
    assert escaped["SGD-like"] >= 5 and escaped["annealing"] >= 5
    quiet = widgets.descent_race("double well", start_x=1.8, noise=0.0, temperature=0.0)
    torch.testing.assert_close(quiet.paths["SGD-like"], quiet.paths["GD"])
    assert not quiet.in_global_basin["annealing"]  # T = 0: only downhill moves


@pytest.mark.parametrize("name", widgets.LR_SCHEDULES)
def test_lr_schedules_start_at_lr_and_fall(name: str) -> None:
    lr_at = widgets.lr_schedule(name, 0.1, 100)
    rates = [lr_at(k) for k in range(101)]
    assert rates[0] == pytest.approx(0.1)
    assert all(b <= a + 1e-15 for a, b in itertools.pairwise(rates))
    assert rates[-1] == pytest.approx(0.1 if name == "constant" else 0.001)


def test_race_clamps_the_start_and_reports_divergence() -> None:
    race = widgets.descent_race("two basins", start_x=9.0, start_y=-9.0, steps=5)
    assert race.start == (2.0, -1.5)
    diverged = widgets.descent_race("double well", start_x=2.0, lr=0.3, steps=50)
    assert math.isnan(diverged.final_loss["GD"]) and not diverged.in_global_basin["GD"]
    widgets.show_descent_race("double well", start_x=2.0, lr=0.3, steps=50)
    assert plt.gcf().axes[0].get_title() == "GD: diverged: lower lr"


def test_race_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        widgets.descent_race("Himmelblau")
    with pytest.raises(ValueError, match="choose one of"):
        widgets.lr_schedule("linear", 0.1, 10)
    with pytest.raises(ValueError, match="need lr > 0"):
        widgets.descent_race(lr=0.0)


def test_show_descent_race_draws_three_panels() -> None:
    race = widgets.show_descent_race("two basins", start_x=1.5, start_y=1.0, lr=0.05, steps=100)
    axes = plt.gcf().axes
    assert len(axes) == 3
    assert axes[0].get_title().startswith("GD: f = ")
    assert "not global" in axes[0].get_title() and not race.in_global_basin["GD"]


def test_descent_race_explorer_reacts_to_its_controls() -> None:
    box = widgets.descent_race_explorer()
    controls = {c.description: c for c in box.children if hasattr(c, "description")}
    assert box.result.landscape == "double well"
    controls["landscape"].value = "Rastrigin"
    controls["lr"].value = 0.001
    assert box.result.landscape == "Rastrigin"
    assert box.result.paths["GD"].shape == (301, 2)
    controls["start_x"].value = 2.0
    assert box.result.start[0] == pytest.approx(2.0)


# --------------------------------------------------------------------------- depth probe


def test_depth_probe_shows_the_textbook_cases() -> None:
    he = widgets.depth_probe(30, "relu", "He (kaiming_normal)")
    assert len(he) == 30 and all(s.kind == "ReLU" for s in he)
    assert 0.2 < he[-1].std / he[0].std < 5  # He keeps the scale
    small = widgets.depth_probe(30, "tanh", "too small: N(0, 0.01²)")
    assert small[-1].std < 1e-6 * small[0].std  # the signal vanishes
    large = widgets.depth_probe(30, "tanh", "too large: N(0, 1)")
    assert large[-1].saturated > 0.5


def test_depth_probe_rejects_unknown_choices() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        widgets.depth_probe(init="orthogonal")
    with pytest.raises(ValueError, match="choose one of"):
        widgets.depth_probe(activation="swish")


def test_show_depth_probe_and_its_explorer() -> None:
    stats = widgets.show_depth_probe(8, "relu", "He (kaiming_normal)")
    fig = plt.gcf()
    assert len(fig.axes) == 2 and len(stats) == 8
    assert "dead units" in fig._suptitle.get_text()
    assert len(fig.axes[0].lines) == 4  # layers 1, 3, 5, 8
    box = widgets.depth_probe_explorer()
    controls = {c.description: c for c in box.children if hasattr(c, "description")}
    assert len(box.result) == 20
    controls["depth"].value = 6
    controls["activation"].value = "sigmoid"
    assert len(box.result) == 6 and box.result[0].kind == "Sigmoid"


# --------------------------------------------------------------------------- optimizer race


def test_optimizer_race_runs_the_course_optimizers() -> None:
    from dlcourse.landscapes import ROSENBROCK, descend
    from dlcourse.optim import Adam

    race = widgets.optimizer_race("Rosenbrock", steps=200)
    assert set(race.paths) == set(widgets.RACE_OPTIMIZERS)
    assert all(p.shape == (201, 2) for p in race.paths.values())
    start = torch.tensor([-1.5, 2.0], dtype=torch.float64)
    adam = descend(ROSENBROCK, start, lambda p: Adam(p, lr=0.05), 200)
    torch.testing.assert_close(race.paths["Adam"], adam)
    assert race.final_loss["momentum"] < race.final_loss["SGD"]  # momentum gets further


def test_optimizer_race_without_momentum_is_plain_sgd_and_reports_divergence() -> None:
    race = widgets.optimizer_race("two basins", momentum=0.0, steps=50, start_x=1.5, start_y=1.0)
    torch.testing.assert_close(race.paths["momentum"], race.paths["SGD"])
    torch.testing.assert_close(race.paths["Nesterov"], race.paths["SGD"])
    blown = widgets.optimizer_race("Rosenbrock", lr=0.05, steps=30)
    assert math.isnan(blown.final_loss["SGD"])


def test_optimizer_race_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        widgets.optimizer_race("Himmelblau")
    with pytest.raises(ValueError, match="momentum"):
        widgets.optimizer_race(momentum=1.0)
    with pytest.raises(ValueError, match="betas"):
        widgets.optimizer_race(beta2=1.0)


def test_show_optimizer_race_and_its_explorer() -> None:
    race = widgets.show_optimizer_race("quadratic, condition number 100", lr=0.01, steps=100)
    fig = plt.gcf()
    assert len(fig.axes) == 2 and len(fig.axes[1].lines) == 5
    assert race.landscape == "quadratic, condition number 100"
    box = widgets.optimizer_race_explorer()
    controls = {c.description: c for c in box.children if hasattr(c, "description")}
    controls["steps"].value = 100
    assert box.result.paths["SGD"].shape == (101, 2)
    controls["landscape"].value = "Rastrigin"
    assert box.result.landscape == "Rastrigin"


@pytest.mark.parametrize(
    "explorer",
    [
        "tangent_explorer",
        "descent_race_explorer",
        "depth_probe_explorer",
        "optimizer_race_explorer",
    ],
)
def test_every_slider_reads_out_its_own_value(explorer: str) -> None:
    """A slider at 0.999 must not read "1.00": the readout shows as many decimals as the step."""
    import ipywidgets

    box = getattr(widgets, explorer)()
    sliders = [c for c in box.children if isinstance(c, ipywidgets.FloatSlider)]
    for s in sliders:
        for value in (s.value, s.min, s.max, s.min + s.step):
            shown = float(format(value, s.readout_format))
            assert shown == pytest.approx(value, abs=s.step / 100), (s.description, value, shown)
