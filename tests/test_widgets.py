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


# --------------------------------------------------------------------------- 08: the capstone
# Imported as a module, not through dl.widgets, so that these tests do not depend on notebook 08
# being in the course map.


@pytest.fixture
def capstone_demo():
    from dlcourse.widgets import capstone

    return capstone


def _mnist1d_like(n: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 40, generator=g), torch.randint(0, 10, (n,), generator=g)


def _after_relu(model, x: torch.Tensor, layer: int) -> torch.Tensor:
    """The CNN's maps after its ``layer``-th ReLU, walking its layers by hand: ``(N, C, Lo)``."""
    h, seen = x.unsqueeze(1), 0
    for module in model.features:
        h = module(h)
        seen += isinstance(module, torch.nn.ReLU)
        if seen == layer:
            return h
    raise AssertionError(f"no ReLU number {layer}")


@pytest.mark.parametrize("batch_norm", [False, True])
def test_show_model_inside_cnn_records_the_prediction_and_each_layers_maps(
    capstone_demo, batch_norm: bool
) -> None:
    from dlcourse.capstone import CNN

    torch.manual_seed(0)
    model = CNN(channels=4, batch_norm=batch_norm)
    x, y = _mnist1d_like()
    model.train()
    for layer in (1, 2, 3):
        run = capstone_demo.show_model_inside(model, x, y, index=4, layer=layer)
        assert model.training  # drawn in evaluation mode, handed back as it came
        with torch.no_grad():
            model.eval()
            logits, maps = model(x), _after_relu(model, x, layer)
            model.train()
        assert run["prediction"] == int(logits.argmax(1)[4])
        assert run["label"] == int(y[4]) and run["correct"] == (run["prediction"] == run["label"])
        torch.testing.assert_close(run["probabilities"], logits[4].softmax(0))
        assert run["shape"] == tuple(maps.shape[1:]) == (4, (19, 10, 5)[layer - 1])
        torch.testing.assert_close(run["maps"], maps[4])
        assert plt.gcf().axes[1].images[0].get_array().shape == run["shape"]
        assert f"convolution {layer}'s feature maps" in plt.gcf().axes[1].get_title()
        assert ("right" if run["correct"] else "wrong") in plt.gcf().axes[0].get_title()


def test_show_model_inside_draws_each_map_column_under_the_input_points_it_sees(
    capstone_demo,
) -> None:
    """Change one input point: only the positions whose window (centre +- half the receptive
    field) holds it may change, and some do."""
    from dlcourse.capstone import CNN

    torch.manual_seed(1)
    model = CNN(channels=6)
    x, y = _mnist1d_like(2)
    for layer in (1, 2, 3):
        before = capstone_demo.show_model_inside(model, x, y, index=0, layer=layer)
        half = (before["receptive_field"] - 1) / 2
        for point in (0, 13, 26, 39):
            nudged = x.clone()
            nudged[0, point] += 5.0
            after = capstone_demo.show_model_inside(model, nudged, y, index=0, layer=layer)
            changed = (after["maps"] - before["maps"]).abs().amax(0) > 0  # (Lo,)
            inside = (before["centres"] - point).abs() <= half
            assert changed.any(), (layer, point)
            assert not (changed & ~inside).any(), (layer, point, changed, before["centres"])
            plt.close("all")


def test_show_model_inside_gru_states_forward_units_first(capstone_demo) -> None:
    from dlcourse.capstone import GRUClassifier

    torch.manual_seed(0)
    model = GRUClassifier()
    x, y = _mnist1d_like()
    run = capstone_demo.show_model_inside(model, x, y, index=2)
    with torch.no_grad():
        logits = model(x)
        states, _ = model.gru(x.unsqueeze(-1))  # (N, 40, 12)
    assert run["prediction"] == int(logits.argmax(1)[2])
    torch.testing.assert_close(run["probabilities"], logits[2].softmax(0))
    assert run["shape"] == run["states"].shape == (40, 12)
    torch.testing.assert_close(run["states"], states[2])
    assert plt.gcf().axes[1].images[0].get_array().shape == (12, 40)  # units x steps
    # The forward units (first 6) at step t have read points 0..t, the backward ones t..39.
    nudged = x.clone()
    nudged[2, 20] += 3.0
    moved = capstone_demo.show_model_inside(model, nudged, y, index=2)["states"] != run["states"]
    assert not moved[:20, :6].any() and moved[20:, :6].any()
    assert not moved[21:, 6:].any() and moved[:21, 6:].any()


def test_show_model_inside_says_what_is_wrong(capstone_demo) -> None:
    from dlcourse.capstone import CNN, MLP, GRUClassifier

    x, y = _mnist1d_like()
    cnn, gru = CNN(channels=4), GRUClassifier()
    show = capstone_demo.show_model_inside
    with pytest.raises(TypeError, match=r"CNN or GRUClassifier .* got MLP"):
        show(MLP(), x, y)
    for index in (6, -1, 1.0):
        with pytest.raises(ValueError, match=r"index must be an int in \[0, 5\] \(x holds 6"):
            show(cnn, x, y, index=index)
    for layer in (0, 4):
        with pytest.raises(ValueError, match=r"layer must be an int in \[1, 3\] \(this CNN has 3"):
            show(cnn, x, y, layer=layer)
    with pytest.raises(ValueError, match="layer must be 1: the GRUClassifier has one recurrent"):
        show(gru, x, y, layer=2)
    with pytest.raises(ValueError, match="signals of 39 points do not fit this model"):
        show(gru, x[:, :39], y)
    assert show(cnn, x[:, :39], y)["shape"] == (4, 19)  # 39 points give the maps 40 give
    with pytest.raises(ValueError, match="signals of 30 points do not fit this model"):
        show(cnn, x[:, :30], y)
    with pytest.raises(ValueError, match=r"y must hold one label per signal of x, shape \(6,\)"):
        show(cnn, x, y[:5])
    with pytest.raises(ValueError, match="x must be"):
        show(cnn, x[0], y)


def test_kernel_parts_are_orthogonal_and_add_up(capstone_demo) -> None:
    kernels = torch.randn(50, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    parts, shares, signs = capstone_demo.kernel_parts(kernels)
    torch.testing.assert_close(parts.sum(0), kernels)
    for a in range(4):
        for b in range(a + 1, 4):
            torch.testing.assert_close((parts[a] * parts[b]).sum(1), torch.zeros(50).double())
    torch.testing.assert_close(shares.sum(1), torch.ones(50).double())
    assert set(signs.unique().tolist()) <= {-1.0, 1.0}


def test_a_zigzag_is_a_wiggle_not_an_edge(capstone_demo) -> None:
    zigzag = torch.tensor([[0.3, -0.3, 0.0, 0.3, -0.2]])  # antisymmetric-ish, no slope to speak of
    _, shares, _ = capstone_demo.kernel_parts(zigzag)
    assert shares[0].argmax() == 3 and shares[0, 3] > 0.8


def test_plot_first_filters_groups_edges_bumps_and_levels(capstone_demo) -> None:
    from dlcourse.capstone import CNN, GRUClassifier

    model = CNN(channels=7)
    ramp, tent, flat = torch.tensor([-2.0, -1, 0, 1, 2]), torch.tensor([-1.0, 0, 2, 0, -1]), 0.2
    hand = torch.stack([ramp, -ramp, tent, -tent, flat * torch.ones(5), -flat * torch.ones(5),
                        ramp + 2 * flat])  # fmt: skip
    with torch.no_grad():
        model.features[0].weight.copy_(0.1 * hand[:, None])
    run = capstone_demo.plot_first_filters(model)
    # The pure ramp is a clearer rising edge than the ramp on a level, so it comes first.
    assert run["order"] == [0, 6, 1, 2, 3, 4, 5]
    assert run["names"] == ["rising edge", "rising edge", "falling edge", "peak", "dip",
                            "high", "low"]  # fmt: skip
    assert run["groups"] == ["edge"] * 3 + ["bump"] * 2 + ["level"] * 2
    assert run["counts"] == {"edge": 3, "bump": 2, "level": 2, "wiggle": 0}
    torch.testing.assert_close(run["kernels"], 0.1 * hand[run["order"]])
    assert run["shares"][0, 0] == pytest.approx(1.0) and 0.5 < run["shares"][1, 0] < 1.0
    drawn = [ax for ax in plt.gcf().axes if ax.get_visible()]
    assert len(drawn) == 7 and drawn[1].get_title().startswith("6: rising edge")
    assert "3 edges, 2 bumps, 2 levels" in plt.gcf()._suptitle.get_text()
    with pytest.raises(TypeError, match="the GRUClassifier has none"):
        capstone_demo.plot_first_filters(GRUClassifier())


def test_model_explorer_slides_over_examples_and_layers(capstone_demo) -> None:
    from dlcourse.capstone import CNN, MLP, GRUClassifier

    torch.manual_seed(0)
    model = CNN(channels=4)
    x, y = _mnist1d_like()
    box = capstone_demo.model_explorer(model, x, y)
    controls = _controls(box)
    assert (controls["index"].max, controls["layer"].max) == (5, 3)
    assert (box.result["index"], box.result["layer"]) == (0, 1)
    controls["index"].value = 3
    controls["layer"].value = 3
    assert (box.result["index"], box.result["shape"]) == (3, (4, 5))
    with torch.no_grad():
        assert box.result["prediction"] == int(model(x).argmax(1)[3])
    gru_box = capstone_demo.model_explorer(GRUClassifier(), x, y)
    assert "layer" not in _controls(gru_box) and gru_box.result["states"].shape == (40, 12)
    _controls(gru_box)["index"].value = 5
    assert gru_box.result["index"] == 5
    with pytest.raises(TypeError, match="model_explorer looks inside"):
        capstone_demo.model_explorer(MLP(), x, y)
