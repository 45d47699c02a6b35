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


def _history(label: str = "", accuracy: bool = True):
    from dlcourse.train import History

    h = History(label=label)
    for e in range(3):
        values = {"epoch": e, "train_loss": 1.0 / (e + 1), "val_loss": 1.2 / (e + 1)}
        if accuracy:
            values |= {"train_accuracy": 0.5 + 0.1 * e, "val_accuracy": 0.4 + 0.1 * e}
        h.log_epoch(**values)
    return h


def test_plot_history_one_run() -> None:
    fig = plot.plot_history(_history())
    loss, acc = fig.axes
    assert loss.get_ylabel() == "loss" and acc.get_ylabel() == "accuracy"
    assert [line.get_label() for line in loss.lines] == ["train", "val"]
    assert list(loss.lines[0].get_xdata()) == [1, 2, 3]


def test_plot_history_compares_runs_and_skips_missing_keys() -> None:
    fig = plot.plot_history([_history("sgd", accuracy=False), _history("adam", accuracy=False)])
    (loss,) = fig.axes  # no run recorded accuracy
    labels = [line.get_label() for line in loss.lines]
    assert labels == ["sgd train", "sgd val", "adam train", "adam val"]
    assert loss.lines[0].get_color() != loss.lines[2].get_color()


def test_plot_history_without_any_key() -> None:
    import pytest

    with pytest.raises(ValueError, match="none of the requested keys"):
        plot.plot_history(_history(), keys=("perplexity",))


def test_live_plot_headless_draws_once(monkeypatch) -> None:
    import matplotlib.pyplot as plt

    monkeypatch.setenv("DLCOURSE_HEADLESS", "1")
    shown = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: shown.append(1))
    monkeypatch.setattr(plt, "get_backend", lambda: "module://matplotlib_inline.backend_inline")
    live = plot.LiveFigure()
    assert not live.interactive
    live.update(_history())
    live.close(_history())
    assert shown == [1]


def test_live_plot_in_a_notebook_updates_one_display(monkeypatch) -> None:
    import IPython.display

    calls = []

    class Handle:
        def update(self, fig):
            calls.append("update")

    def fake_display(fig, display_id=False):
        calls.append("display")
        return Handle()

    monkeypatch.setattr(IPython.display, "display", fake_display)
    live = plot.LiveFigure(min_interval=0.0)
    live.interactive = True  # as inside a JupyterLab kernel
    for _ in range(3):
        live.update(_history())
    live.close(_history())
    assert calls == ["display", "update", "update", "update"]


def test_image_grid_titles_and_shapes() -> None:
    import pytest
    import torch

    fig = plot.image_grid(torch.rand(12, 1, 8, 8), labels=list(range(12)), ncols=5)
    assert len(fig.axes) == 15
    assert [ax.get_title() for ax in fig.axes[:3]] == ["0", "1", "2"]
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        plot.image_grid(torch.rand(2, 3, 8, 8))


def test_decision_boundary_colours_the_plane() -> None:
    import pytest
    import torch
    from torch import nn

    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        model.bias.zero_()
    x = torch.tensor([[-1.0, 0.0], [1.0, 0.0]])
    ax = plot.decision_boundary(model, x, torch.tensor([1, 0]), resolution=20)
    assert ax.collections  # the filled regions and the scatter
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plot.decision_boundary(model, torch.zeros(3, 3), torch.zeros(3))


def test_plot_landscape_can_draw_a_box_that_holds_the_paths() -> None:
    import torch

    from dlcourse.landscapes import ILL_CONDITIONED

    path = torch.tensor([[10.0, 1.0], [9.0, -3.5]], dtype=torch.float64)
    ax = plot.plot_landscape(ILL_CONDITIONED, paths={"p": path}, box=((-1, 11), (-4, 2)))
    assert ax.get_xlim() == (-1, 11) and ax.get_ylim() == (-4, 2)


def test_plot_path_in_time_marks_start_and_end() -> None:
    import matplotlib.pyplot as plt
    import torch

    _, ax = plt.subplots()
    path = torch.stack([torch.linspace(0, 1, 50), torch.linspace(1, 0, 50)], dim=1)
    dots = plot.plot_path_in_time(ax, path, every=5)
    assert len(dots.get_offsets()) == 10
    labels = [line.get_label() for line in ax.lines]
    assert labels == ["start", "end"]
    assert tuple(ax.lines[0].get_xydata()[0]) == (0.0, 1.0)
    assert tuple(ax.lines[1].get_xydata()[0]) == (1.0, 0.0)
