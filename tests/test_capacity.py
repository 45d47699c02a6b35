"""dlcourse.capacity: the Legendre features, the polynomial fits (against NumPy's), and the
network demo."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from dlcourse import capacity, data


def test_legendre_features_are_torchs_legendre_polynomials() -> None:
    x = torch.linspace(-2, 2, 9)
    features = capacity.legendre_features(x, 6)
    assert features.shape == (9, 7) and features.dtype == torch.float64
    for k in range(7):
        expected = torch.special.legendre_polynomial_p(x.double() / 2, k)
        assert torch.allclose(features[:, k], expected, atol=1e-12)


def test_a_fit_is_numpys_least_squares_fit() -> None:
    x, y = data.make_regression_1d(30, seed=1)
    for degree in (0, 1, 3, 5):
        coef = capacity.fit_polynomial(x, y, degree)
        ours = capacity.polynomial(coef, x)
        numpy_coef = np.polyfit(x[:, 0].double().numpy(), y[:, 0].double().numpy(), degree)
        theirs = np.polyval(numpy_coef, x[:, 0].double().numpy())
        assert np.allclose(ours.numpy(), theirs, atol=1e-9)


def test_degree_n_minus_one_passes_through_every_point() -> None:
    x, y = data.make_regression_1d(12, noise=0.5, seed=2)
    coef = capacity.fit_polynomial(x, y, 11)
    assert torch.allclose(capacity.polynomial(coef, x), y[:, 0].double(), atol=1e-6)
    errors = [
        ((capacity.polynomial(capacity.fit_polynomial(x, y, d), x) - y[:, 0]) ** 2).mean()
        for d in range(12)
    ]
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(errors))  # never rises


def test_bad_degrees_and_lengths() -> None:
    with pytest.raises(ValueError, match="degree"):
        capacity.legendre_features(torch.zeros(3), -1)
    with pytest.raises(ValueError, match="differ in length"):
        capacity.fit_polynomial(torch.zeros(3), torch.zeros(4), 1)


def test_regression_demo_records_both_errors_and_the_fit() -> None:
    run = capacity.regression_demo(steps=200, width=16)
    assert len(run["steps"]) == len(run["train_loss"]) == len(run["val_loss"]) == 100
    assert run["steps"][-1] == 200 and run["fitted"].shape == run["grid"].shape == (300, 1)
    assert run["train_loss"][-1] < run["train_loss"][0]
    again = capacity.regression_demo(steps=200, width=16)
    assert again["val_loss"] == run["val_loss"]  # seeded: the same run twice
    with pytest.raises(ValueError, match="width"):
        capacity.regression_demo(width=0)
    with pytest.raises(TypeError):
        capacity.regression_demo(nope=1)
