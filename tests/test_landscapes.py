"""dlcourse.landscapes: every documented minimum is one, and the global one is the lowest."""

from __future__ import annotations

import math

import pytest
import torch

from dlcourse import landscapes, plot

ALL = list(landscapes.LANDSCAPES.values())
IDS = [ls.name for ls in ALL]


@pytest.mark.parametrize("ls", ALL, ids=IDS)
def test_minima_have_zero_gradient_and_positive_definite_hessian(ls: landscapes.Landscape) -> None:
    for m in ls.minima:
        x = torch.tensor(m.point, dtype=torch.float64)
        assert ls.grad(x).abs().max() < 1e-6, (ls.name, m)
        assert float(ls(x)) == pytest.approx(m.value, abs=1e-9)
        hessian = torch.autograd.functional.hessian(lambda p: ls(p), x)
        assert torch.linalg.eigvalsh(hessian).min() > 0, (ls.name, m)


@pytest.mark.parametrize("ls", ALL, ids=IDS)
def test_the_global_minimum_is_the_lowest(ls: landscapes.Landscape) -> None:
    kinds = [m.kind for m in ls.minima]
    assert kinds.count("global") >= 1 and set(kinds) <= {"global", "local"}
    best = ls.global_minimum.value
    assert all(m.value > best + 1e-6 for m in ls.minima if m.kind == "local")
    grid = ls.uniform_starts(20000, seed=1)  # nowhere in the box is lower
    assert float(ls(grid).min()) >= best - 1e-9


@pytest.mark.parametrize("ls", ALL, ids=IDS)
def test_batched_evaluation_and_gradient_shapes(ls: landscapes.Landscape) -> None:
    x = ls.uniform_starts(6).reshape(2, 3, ls.dim)
    assert ls(x).shape == (2, 3)
    assert ls.grad(x).shape == x.shape
    one = ls.grad(x[0, 0])
    assert torch.allclose(one, ls.grad(x)[0, 0])


def test_gradient_matches_the_formula() -> None:
    x = torch.tensor([[0.7]], dtype=torch.float64)
    assert float(landscapes.DOUBLE_WELL.grad(x)) == pytest.approx(4 * 0.7**3 - 6 * 0.7 + 1)


def test_basins_and_nearest_minimum() -> None:
    ls = landscapes.TWO_BASINS
    pts = torch.tensor([[-1.0, 0.05], [0.95, 0.0]], dtype=torch.float64)
    assert ls.in_global_basin(pts).tolist() == [True, False]
    assert ls.nearest_minimum(pts[1]).kind == "local"


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="1 coordinate"):
        landscapes.DOUBLE_WELL(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="condition number"):
        landscapes.quadratic(0.5)


@pytest.mark.parametrize("ls", ALL, ids=IDS)
def test_plot_landscape_with_a_path(ls: landscapes.Landscape) -> None:
    path = ls.uniform_starts(5)
    ax = plot.plot_landscape(ls, paths={"path": path}, resolution=30, log=ls.dim == 2)
    assert ax.get_title() == ls.name
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["path"]


def test_descend_with_sgd_is_the_gradient_descent_path() -> None:
    from dlcourse.exercises.gradient_descent import gradient_descent_path
    from dlcourse.optim import SGD

    x0 = torch.tensor([1.8], dtype=torch.float64)
    path = landscapes.descend(landscapes.DOUBLE_WELL, x0, lambda p: SGD(p, lr=0.01), 50)
    assert path.shape == (51, 1)
    torch.testing.assert_close(
        path, gradient_descent_path(landscapes.DOUBLE_WELL.grad, x0, 0.01, 50), rtol=0, atol=1e-12
    )
    assert torch.equal(x0, torch.tensor([1.8], dtype=torch.float64))  # the start is not moved


def test_descend_treats_a_batch_of_starts_independently() -> None:
    starts = landscapes.TWO_BASINS.uniform_starts(5, seed=3)  # (5, 2)
    adam = lambda p: torch.optim.Adam(p, lr=0.05)  # noqa: E731
    batch = landscapes.descend(landscapes.TWO_BASINS, starts, adam, 40)
    assert batch.shape == (41, 5, 2)
    for i in range(5):
        alone = landscapes.descend(landscapes.TWO_BASINS, starts[i], adam, 40)
        torch.testing.assert_close(batch[:, i], alone, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="steps must be"):
        landscapes.descend(landscapes.TWO_BASINS, starts, adam, -1)


# --------------------------------------------------------------------------- the optimizer race


def test_optimizer_race_runs_the_course_optimizers() -> None:
    from dlcourse.optim import Adam

    race = landscapes.optimizer_race(steps=200)
    assert set(race.paths) == set(landscapes.RACE_OPTIMIZERS)
    assert all(p.shape == (201, 2) for p in race.paths.values())
    start = torch.tensor([-1.5, 2.0], dtype=torch.float64)
    adam = landscapes.descend(landscapes.ROSENBROCK, start, lambda p: Adam(p, lr=0.05), 200)
    torch.testing.assert_close(race.paths["Adam"], adam)
    assert race.final_loss["momentum"] < race.final_loss["SGD"]  # momentum gets further


def test_optimizer_race_without_momentum_is_plain_sgd_and_reports_divergence() -> None:
    race = landscapes.optimizer_race(
        landscape="two basins", momentum=0.0, steps=50, start_x=1.5, start_y=1.0
    )
    torch.testing.assert_close(race.paths["momentum"], race.paths["SGD"])
    torch.testing.assert_close(race.paths["Nesterov"], race.paths["SGD"])
    blown = landscapes.optimizer_race(lr=0.05, steps=30)
    assert math.isnan(blown.final_loss["SGD"])


def test_optimizer_race_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        landscapes.optimizer_race(landscape="Himmelblau")
    with pytest.raises(ValueError, match="momentum"):
        landscapes.optimizer_race(momentum=1.0)
    with pytest.raises(ValueError, match="betas"):
        landscapes.optimizer_race(beta2=1.0)
