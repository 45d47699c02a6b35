"""dlcourse.widgets: the tangent explorer's callback, checked against autograd, and its widget."""

from __future__ import annotations

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
