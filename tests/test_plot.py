"""dlcourse.plot: figure helpers."""

from __future__ import annotations

from dlcourse import plot


def test_new_axes_gives_one_axes_per_column() -> None:
    fig, axes = plot.new_axes(3, width=2, height=1)
    assert len(axes) == 3
    assert tuple(fig.get_size_inches()) == (6, 1)


def test_plot_tangent_draws_line_of_the_given_slope() -> None:
    _, (ax,) = plot.new_axes()
    plot.plot_tangent(ax, [0.0, 1.0, 2.0], [0.0, 1.0, 4.0], 1.0, 1.0, 2.0)
    _curve, tangent, point = ax.lines
    (x0, x1), (y0, y1) = tangent.get_data()
    assert (y1 - y0) / (x1 - x0) == 2.0
    assert list(point.get_xdata()) == [1.0]
