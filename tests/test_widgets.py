"""dlcourse.widgets: each notebook's demo draws what its topic module computes, and its
sliders start at the settings' defaults and drive it (headless)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch

from dlcourse import anneal, diagnostics, landscapes, widgets
from dlcourse.course import NOTEBOOKS

EXPLORERS = ["tangent_explorer", "descent_race_explorer", "depth_probe_explorer",
             "optimizer_race_explorer", "batch_norm_probe_explorer",
             "overfitting_explorer", "feature_map_explorer",
             "gradient_flow_explorer"]  # fmt: skip


def _controls(box) -> dict:
    return {c.description: c for c in box.children if hasattr(c, "description")}


def test_one_demo_module_per_notebook_found_through_the_course_map() -> None:
    assert widgets.widget_modules() == [f"dlcourse.widgets.{nb.slug}" for nb in NOTEBOOKS]
    assert widgets.tangent_explorer is widgets.welcome.tangent_explorer  # dl.widgets.<demo>
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        widgets.nope  # noqa: B018


def test_show_tangent_draws_curve_tangent_and_point() -> None:
    t = widgets.show_tangent("x^2", 1.5)
    assert t.slope_autograd == pytest.approx(3.0)
    ax = plt.gcf().axes[0]
    assert len(ax.lines) == 3
    assert "autograd 3.0000" in ax.get_title()


def test_tangent_explorer_reacts_to_its_controls() -> None:
    box = widgets.tangent_explorer()
    function, slider = box.children[0], box.children[1]
    assert box.result.function == widgets.welcome.DEFAULTS.function
    slider.value = 0.0
    assert box.result.slope_autograd == pytest.approx(0.25)
    function.value = "x^2"
    slider.value = 2.0
    assert box.result.function == "x^2"
    assert box.result.slope_autograd == pytest.approx(4.0)


def test_show_descent_race_draws_three_panels_and_divergence() -> None:
    race = widgets.show_descent_race(landscape="two basins", start_x=1.5, lr=0.05, steps=100)
    axes = plt.gcf().axes
    assert len(axes) == 3
    assert axes[0].get_title().startswith("GD: f = ")
    assert "not global" in axes[0].get_title() and not race.in_global_basin["GD"]
    widgets.show_descent_race(start_x=2.0, lr=0.3, steps=50)
    assert plt.gcf().axes[0].get_title() == "GD: diverged: lower lr"


def test_descent_race_explorer_reacts_to_its_controls() -> None:
    box = widgets.descent_race_explorer()
    controls = _controls(box)
    assert box.result.landscape == anneal.RaceSettings().landscape
    assert controls["lr"].value == pytest.approx(anneal.RaceSettings().lr)
    controls["landscape"].value = "Rastrigin"
    controls["lr"].value = 0.001
    assert box.result.landscape == "Rastrigin"
    assert box.result.paths["GD"].shape == (301, 2)
    controls["start_x"].value = 2.0
    assert box.result.start[0] == pytest.approx(2.0)


def test_show_depth_probe_and_its_explorer() -> None:
    stats = widgets.show_depth_probe(depth=8, activation="relu", init="He (kaiming_normal)")
    fig = plt.gcf()
    assert len(fig.axes) == 2 and len(stats) == 8
    assert "dead units" in fig._suptitle.get_text()
    assert len(fig.axes[0].lines) == 4  # layers 1, 3, 5, 8
    box = widgets.depth_probe_explorer()
    controls = _controls(box)
    assert len(box.result) == diagnostics.DepthProbeSettings().depth
    controls["depth"].value = 6
    controls["activation"].value = "sigmoid"
    assert len(box.result) == 6 and box.result[0].kind == "Sigmoid"


def test_show_optimizer_race_and_its_explorer() -> None:
    race = widgets.show_optimizer_race(
        landscape="quadratic, condition number 100", lr=0.01, steps=100
    )
    fig = plt.gcf()
    assert len(fig.axes) == 2 and len(fig.axes[1].lines) == 5
    assert race.landscape == "quadratic, condition number 100"
    box = widgets.optimizer_race_explorer()
    controls = _controls(box)
    assert controls["beta2"].value == landscapes.OptimizerRaceSettings().beta2
    controls["steps"].value = 100
    assert box.result.paths["SGD"].shape == (101, 2)
    controls["landscape"].value = "Rastrigin"
    assert box.result.landscape == "Rastrigin"


@pytest.mark.parametrize("explorer", EXPLORERS)
def test_every_slider_reads_out_its_own_value(explorer: str) -> None:
    """A slider at 0.999 must not read "1.00": the readout shows as many decimals as the step."""
    import ipywidgets

    box = getattr(widgets, explorer)()
    sliders = [c for c in box.children if isinstance(c, ipywidgets.FloatSlider)]
    for s in sliders:
        for value in (s.value, s.min, s.max, s.min + s.step):
            shown = float(format(value, s.readout_format))
            assert shown == pytest.approx(value, abs=s.step / 100), (s.description, value, shown)


def test_batch_norm_probe_explorer_switches_batch_norm() -> None:
    box = widgets.batch_norm_probe_explorer()
    controls = _controls(box)
    assert controls["batch norm"].value is True
    with_bn = box.result
    assert "+ batch norm" in plt.gcf()._suptitle.get_text()
    controls["batch norm"].value = False
    without = box.result
    saturated = [sum(s.saturated for s in stats) / len(stats) for stats in (with_bn, without)]
    assert saturated[0] < 0.05 < 0.3 < saturated[1]  # trained at rate 3: tanh saturates without


def test_overfitting_explorer_draws_the_fit_and_both_errors() -> None:
    box = widgets.overfitting_explorer()
    controls = _controls(box)
    plain = box.result
    left, right = plt.gcf().axes
    assert len(left.lines) == 3 and len(right.lines) == 3
    assert plain["settings"].lam == 0 and plain["settings"].dropout == 0
    # unregularised: the training error ends far below the validation error, which turned up
    assert plain["train_loss"][-1] < 0.1 * plain["val_loss"][-1]
    assert min(plain["val_loss"]) < 0.8 * plain["val_loss"][-1]
    controls["lam"].value = "1e-2"
    penalised = box.result
    assert penalised["settings"].lam == 0.01
    assert penalised["test_error"] < plain["test_error"]


def test_feature_map_explorer_draws_the_maps_and_their_shapes() -> None:
    box = widgets.feature_map_explorer()
    controls = _controls(box)
    run = box.result
    assert run["shapes"] == ((8, 8), (8, 8), (8, 8))  # 3x3 kernel, padding 1, no pooling
    assert len(plt.gcf().axes) == 4
    assert "feature map (8, 8)" in plt.gcf().axes[2].get_title()
    controls["padding"].value = 0
    assert box.result["shapes"][1] == (6, 6)  # without padding the map shrinks by k - 1
    controls["stride"].value = 2
    assert box.result["shapes"][1] == (3, 3)
    controls["pool"].value = "max"
    assert box.result["shapes"][2] == (1, 1)
    controls["stride"].value, controls["padding"].value = 1, 1
    assert box.result["shapes"] == ((8, 8), (8, 8), (4, 4))  # pooling halves height and width
    torch.testing.assert_close(
        box.result["pooled"], torch.nn.functional.max_pool2d(box.result["feature_map"][None], 2)[0]
    )


def test_gradient_flow_explorer_shows_vanishing_exploding_and_the_cell_path() -> None:
    box = widgets.gradient_flow_explorer()
    controls = _controls(box)
    assert box.result["ratio"] < 1e-6  # torch's initialisation: the gradient vanishes
    assert len(plt.gcf().axes[0].lines) == 1
    controls["scale"].value = "2.0"
    assert box.result["ratio"] > 100  # every direction stretched by 2: it explodes
    controls["kind"].value, controls["scale"].value = "lstm", "torch's default"
    assert len(plt.gcf().axes[0].lines) == 2  # the hidden and the cell state
    closed = box.result["ratio"]
    controls["forget_bias"].value = 3.0
    assert box.result["ratio"] > 1e6 * closed  # an open forget gate keeps the far gradient
    controls["length"].value = 10
    assert len(box.result["hidden"]) == 10
