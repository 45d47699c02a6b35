"""dlcourse.init against torch.nn.init: the same fans, gains, bounds and (seeded) numbers."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dlcourse import init
from tests._reference import compare_fills

SHAPES = [
    (3, 5),
    (64, 32),
    (10, 1),
    (1, 7),
    (16, 3, 3),
    (8, 4, 3, 3),
    (6, 2, 1, 5),
    (4, 3, 2, 2, 2),
]


@pytest.mark.parametrize("shape", SHAPES)
def test_fans_match_torch(shape: tuple[int, ...]) -> None:
    w = torch.empty(shape)
    assert init.fan_in_and_fan_out(w) == nn.init._calculate_fan_in_and_fan_out(w)


@pytest.mark.parametrize("name", init.NONLINEARITIES)
def test_gains_match_torch(name: str) -> None:
    assert init.calculate_gain(name) == pytest.approx(nn.init.calculate_gain(name), rel=1e-15)


@given(st.floats(0, 10, allow_nan=False))
def test_leaky_relu_gain_matches_torch(slope: float) -> None:
    assert init.calculate_gain("leaky_relu", slope) == pytest.approx(
        nn.init.calculate_gain("leaky_relu", slope), rel=1e-15
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gain", [1.0, 5 / 3, math.sqrt(2)])
def test_xavier_matches_torch(shape, gain, device: torch.device) -> None:
    compare_fills(init.xavier_uniform_, nn.init.xavier_uniform_, shape, device=device, gain=gain)
    compare_fills(init.xavier_normal_, nn.init.xavier_normal_, shape, device=device, gain=gain)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"mode": "fan_out"},
        {"nonlinearity": "relu"},
        {"nonlinearity": "tanh", "mode": "fan_out"},
        {"a": 0.2},
        {"a": math.sqrt(5)},  # what nn.Linear's reset_parameters uses
        {"nonlinearity": "linear"},
    ],
)
def test_kaiming_matches_torch(shape, kwargs, device: torch.device) -> None:
    compare_fills(init.kaiming_uniform_, nn.init.kaiming_uniform_, shape, device=device, **kwargs)
    compare_fills(init.kaiming_normal_, nn.init.kaiming_normal_, shape, device=device, **kwargs)


def test_plain_fills_match_torch(device: torch.device) -> None:
    compare_fills(init.uniform_, nn.init.uniform_, (5, 4), device=device, a=-0.3, b=0.7)
    compare_fills(init.normal_, nn.init.normal_, (5, 4), device=device, mean=1.0, std=0.2)
    w = torch.empty(3, 3, device=device)
    assert torch.equal(init.constant_(w, 0.5), torch.full((3, 3), 0.5, device=device))
    assert torch.equal(init.zeros_(w), torch.zeros(3, 3, device=device))


def test_sampled_statistics() -> None:
    """Large samples have the variance the formulas promise (uniform: bound^2 / 3)."""
    gen = torch.Generator().manual_seed(0)
    w = torch.empty(400, 1000)
    init.kaiming_normal_(w, nonlinearity="relu", generator=gen)
    assert w.std().item() == pytest.approx(math.sqrt(2 / 1000), rel=0.01)
    init.kaiming_uniform_(w, nonlinearity="relu", generator=gen)
    assert w.std().item() == pytest.approx(math.sqrt(2 / 1000), rel=0.01)
    assert w.abs().max().item() <= math.sqrt(3) * math.sqrt(2 / 1000)
    init.xavier_uniform_(w, generator=gen)
    assert w.std().item() == pytest.approx(math.sqrt(2 / 1400), rel=0.01)
    assert abs(w.mean().item()) < 1e-3


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 64), st.integers(1, 64), st.integers(0, 3))
def test_std_formulas(out_features: int, in_features: int, kernel: int) -> None:
    shape = (out_features, in_features) + (3,) * kernel
    w = torch.empty(shape)
    receptive = 3**kernel
    assert init.kaiming_std(w, nonlinearity="relu") == pytest.approx(
        math.sqrt(2 / (in_features * receptive))
    )
    assert init.xavier_std(w) == pytest.approx(
        math.sqrt(2 / ((in_features + out_features) * receptive))
    )


def test_seeded_generator_is_reproducible_and_does_not_track_gradients() -> None:
    lin = nn.Linear(20, 10)
    a = init.kaiming_normal_(lin.weight, generator=torch.Generator().manual_seed(3)).clone()
    b = init.kaiming_normal_(lin.weight, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert lin.weight.grad_fn is None and lin.weight.requires_grad


def test_errors_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.kaiming_normal_(torch.empty(5))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_uniform_(torch.empty(3, 3), mode="fan_avg")
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("softplus")
    with pytest.raises(ValueError, match="not a valid number"):
        init.calculate_gain("leaky_relu", True)
    with pytest.raises(ValueError, match="a <= b"):
        init.uniform_(torch.empty(2, 2), 1.0, 0.0)
    with pytest.raises(ValueError, match="std >= 0"):
        init.normal_(torch.empty(2, 2), std=-1.0)
    with pytest.warns(UserWarning, match="zero-element"):
        init.kaiming_normal_(torch.empty(0, 3))


# --------------------------------------------------------------------------- a whole network


@pytest.mark.parametrize(
    ("scheme", "ours", "torch_fn", "theirs"),
    [
        ("xavier_uniform", {"gain": 5 / 3}, nn.init.xavier_uniform_, {"gain": 5 / 3}),
        ("xavier_normal", {}, nn.init.xavier_normal_, {"gain": 1.0}),
        ("kaiming_uniform", {}, nn.init.kaiming_uniform_, {"nonlinearity": "relu"}),
        ("kaiming_normal", {}, nn.init.kaiming_normal_, {"nonlinearity": "relu"}),
        ("normal", {"std": 0.05}, nn.init.normal_, {"std": 0.05}),
    ],
)
def test_initialize_draws_torchs_numbers_layer_by_layer(scheme, ours, torch_fn, theirs) -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16, 5))
    init.initialize(model, scheme, generator=torch.Generator().manual_seed(5), **ours)
    gen = torch.Generator().manual_seed(5)
    for layer in (model[0], model[3]):  # in order, from one generator
        expected = torch.empty_like(layer.weight)
        torch_fn(expected, generator=gen, **theirs)
        assert torch.equal(layer.weight, expected)
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))


def test_initialize_constant_and_torch_default() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    init.initialize(model, "constant", value=0.3)
    assert torch.equal(model[0].weight, torch.full((4, 3), 0.3))
    assert torch.equal(model[2].bias, torch.zeros(2))
    torch.manual_seed(0)
    init.initialize(model, "torch_default")  # each layer's reset_parameters: random again
    assert model[0].weight.std() > 0 and model[0].bias.abs().sum() > 0
    with pytest.raises(ValueError, match="choose one of"):
        init.initialize(model, "orthogonal")


# ------------------------------------------------------------------ layers by what they have


class CourseLinear(nn.Module):
    """A layer written from scratch, as the course's own (conv, rnn) are: not an nn.Linear."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_out, n_in))  # (out, in)
        self.bias = nn.Parameter(torch.ones(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.T + self.bias


class CourseRecurrent(nn.Module):
    """Two weight matrices named as nn.RNN names them, and a normalisation's rank-1 scale."""

    def __init__(self) -> None:
        super().__init__()
        self.weight_ih_l0 = nn.Parameter(torch.empty(6, 3))
        self.weight_hh_l0 = nn.Parameter(torch.empty(6, 6))
        self.bias_ih_l0 = nn.Parameter(torch.ones(6))
        self.norm = nn.LayerNorm(6)


def test_initialize_finds_layers_by_their_weights_not_their_class() -> None:
    model = nn.Sequential(CourseLinear(5, 4), nn.ReLU(), CourseRecurrent())
    init.initialize(model, "kaiming_normal", generator=torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    recurrent = model[2]
    for weight in (model[0].weight, recurrent.weight_ih_l0, recurrent.weight_hh_l0):
        expected = torch.empty_like(weight)
        nn.init.kaiming_normal_(expected, nonlinearity="relu", generator=gen)
        assert torch.equal(weight, expected)  # in order, from one generator, as torch draws
    assert torch.equal(model[0].bias, torch.zeros(4))
    assert torch.equal(recurrent.bias_ih_l0, torch.zeros(6))
    assert torch.equal(recurrent.norm.weight, torch.ones(6))  # a scale, not a weight matrix


def test_initialize_needs_a_weight_matrix() -> None:
    with pytest.raises(ValueError, match="no weight matrix or kernel"):
        init.initialize(nn.Sequential(nn.ReLU(), nn.LayerNorm(3)), "xavier_normal")
