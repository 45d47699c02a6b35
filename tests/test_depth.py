"""dlcourse.depth: the sawtooth construction, checked against its formula and the piece bound."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlcourse import depth

GRID = torch.linspace(0, 1, 2**12 + 1, dtype=torch.float64)


@pytest.mark.parametrize("k", range(1, 9))
def test_sawtooth_net_computes_the_sawtooth_exactly(k: int) -> None:
    net = depth.sawtooth_net(k).double()
    with torch.no_grad():
        out = net(GRID.unsqueeze(1)).squeeze(1)  # (N,)
    assert torch.allclose(out, depth.sawtooth(GRID, k), atol=1e-12, rtol=0)
    assert depth.count_linear_pieces(net, GRID) == 2**k
    assert depth.count_parameters(net) == 4 + 6 * (k - 1) + 3


def test_sawtooth_net_on_every_device(device: torch.device) -> None:
    net = depth.sawtooth_net(4).to(device)
    x = torch.linspace(0, 1, 257).unsqueeze(1)  # (257, 1)
    with torch.no_grad():
        out = net(x.to(device)).cpu()
    assert torch.allclose(out, depth.sawtooth(x, 4), atol=1e-5)


@given(st.floats(0, 1), st.integers(1, 10))
def test_sawtooth_stays_in_the_unit_interval_and_is_a_tent_power(x: float, k: int) -> None:
    t = torch.tensor(x, dtype=torch.float64)
    y = depth.sawtooth(t, k)
    assert 0.0 <= y.item() <= 1.0
    assert torch.equal(depth.sawtooth(t, k), depth.tent(depth.sawtooth(t, k - 1)) if k > 1 else y)


def test_tent_matches_its_relu_form() -> None:
    """t(x) = 2 relu(x) - 4 relu(x - 1/2), the form the network implements."""
    x = torch.linspace(0, 1, 1001, dtype=torch.float64)
    relu_form = 2 * torch.relu(x) - 4 * torch.relu(x - 0.5)
    assert torch.allclose(depth.tent(x), relu_form, atol=1e-15)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 30), st.integers(0, 2**31 - 1))
def test_shallow_net_has_at_most_m_plus_one_pieces(m: int, seed: int) -> None:
    torch.manual_seed(seed)
    net = depth.shallow_relu_net(m).double()
    grid = torch.linspace(-3, 3, 2**13 + 1, dtype=torch.float64)
    assert 1 <= depth.count_linear_pieces(net, grid) <= m + 1
    assert depth.count_parameters(net) == 3 * m + 1


def test_count_linear_pieces_on_known_functions() -> None:
    x = torch.linspace(-1, 1, 2001, dtype=torch.float64)
    assert depth.count_linear_pieces(lambda v: 3 * v + 1, x) == 1
    assert depth.count_linear_pieces(torch.abs, x) == 2
    # A kink between grid points (at 0.0005) still counts once.
    assert depth.count_linear_pieces(lambda v: torch.relu(v - 0.0005), x) == 2
    assert depth.count_linear_pieces(lambda v: torch.clamp(v, -0.5, 0.5), x) == 3


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="depth"):
        depth.sawtooth_net(0)
    with pytest.raises(ValueError, match="depth"):
        depth.sawtooth(GRID, True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hidden"):
        depth.shallow_relu_net(0)
    with pytest.raises(ValueError, match="1-D grid"):
        depth.count_linear_pieces(torch.abs, torch.zeros(2, 2))
    with pytest.raises(ValueError, match="increasing"):
        depth.count_linear_pieces(torch.abs, torch.tensor([0.0, 2.0, 1.0]))


def test_narrow_net_shapes() -> None:
    net = depth.narrow_relu_net(5, width=3)
    assert net(torch.zeros(7, 1)).shape == (7, 1)
    assert depth.count_parameters(net) == (1 * 3 + 3) + 4 * (3 * 3 + 3) + (3 + 1)
