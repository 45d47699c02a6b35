"""dlcourse.derivatives: hand-written derivatives against autograd (notebook 00's tangent demo)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from dlcourse import derivatives

finite_x = st.floats(-6, 6, allow_nan=False).filter(lambda v: abs(v) > 1e-9)


@pytest.mark.parametrize("name", list(derivatives.FUNCTIONS))
@given(x=finite_x)
def test_hand_derivative_equals_autograd(name: str, x: float) -> None:
    t = derivatives.tangent(name, x)
    assert math.isclose(t.slope_autograd, t.slope_by_hand, rel_tol=1e-12, abs_tol=1e-12)
    f, _ = derivatives.FUNCTIONS[name]
    assert t.value == pytest.approx(f(torch.tensor(x, dtype=torch.float64)).item(), rel=1e-12)


def test_relu_slope_at_zero_follows_torch() -> None:
    """torch defines relu'(0) = 0; the hand-written derivative must agree."""
    t = derivatives.tangent("relu(x)", 0.0)
    assert t.slope_autograd == t.slope_by_hand == 0.0


@given(st.floats(-50, 50))
def test_sigmoid_slope_is_at_most_a_quarter(x: float) -> None:
    assert derivatives.tangent("sigmoid(x)", x).slope_autograd <= 0.25 + 1e-15


def test_unknown_function() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        derivatives.tangent("cosh(x)", 1.0)
