"""dlcourse.callbacks: hooks and their order, and every callback of the course."""

from __future__ import annotations

import pytest
import torch

from dlcourse import callbacks
from tests._training import classifier as _classifier
from tests._training import fit as _fit


def test_hooks_run_in_order() -> None:
    calls = []

    class Spy(callbacks.Callback):
        def __getattribute__(self, name):
            if name.startswith(("on_", "after_")):
                calls.append(name)
            return object.__getattribute__(self, name)

    _fit(epochs=1, callbacks=[Spy()])
    assert calls[0] == "on_fit_start" and calls[1] == "on_epoch_start"
    assert calls[2:4] == ["on_backward_end", "on_step_end"]
    assert calls.count("on_backward_end") == 10
    assert calls[-2:] == ["on_epoch_end", "on_fit_end"]


def test_early_stopping_stops_and_restores_the_best_weights() -> None:
    model = _classifier()
    stopper = callbacks.EarlyStopping("val_loss", patience=1, min_delta=10.0)  # nothing counts
    snapshots = []

    class Snap(callbacks.Callback):
        def on_epoch_end(self, state):
            snapshots.append({k: v.clone() for k, v in state.model.state_dict().items()})

    _, h = _fit(model, epochs=10, callbacks=[Snap(), stopper])
    assert h.num_epochs == 3  # best at epoch 0, then 2 epochs without improvement > patience 1
    best = f"{h['val_loss'][0]:.4g}"
    assert h.stop_reason == (
        "early stopping: val_loss did not improve for 2 epochs in a row (epochs 1-2), more "
        f"than patience=1; the best was {best}, at epoch 0"
    )
    for k, v in model.state_dict().items():
        assert torch.equal(v, snapshots[0][k])


def test_early_stopping_says_how_many_epochs_did_not_improve() -> None:
    """patience=0 stops at the first epoch that does not improve: one epoch, not zero."""
    _, h = _fit(epochs=10, callbacks=[callbacks.EarlyStopping(patience=0, min_delta=10.0)])
    assert h.num_epochs == 2
    assert "did not improve for 1 epoch (epoch 1), more than patience=0;" in h.stop_reason
    _, h = _fit(epochs=10, callbacks=[callbacks.EarlyStopping(patience=3, min_delta=10.0)])
    assert h.num_epochs == 5
    assert "for 4 epochs in a row (epochs 1-4), more than patience=3;" in h.stop_reason


def test_early_stopping_needs_its_metric() -> None:
    with pytest.raises(ValueError, match="pass val="):
        _fit(val=None, callbacks=[callbacks.EarlyStopping("val_loss")])
    with pytest.raises(ValueError, match="mode must be 'min' or 'max', got 'up'"):
        callbacks.EarlyStopping(mode="up")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: callbacks.EarlyStopping(patience=-1), "patience must be an int >= 0, got -1"),
        (lambda: callbacks.EarlyStopping(patience=1.5), "patience must be an int >= 0, got 1.5"),
        (lambda: callbacks.EarlyStopping(min_delta=-0.1), "min_delta must be a number >= 0"),
        (
            lambda: callbacks.LRScheduler(lambda t: 0.1, interval="batch"),
            "interval must be 'epoch' or 'step', got 'batch'",
        ),
        (lambda: callbacks.GradientClipping(0), "max_norm must be a number > 0, got 0"),
        (lambda: callbacks.GradNormRecorder(every=0), "every must be a positive int, got 0"),
        (lambda: callbacks.Checkpoint("c.pt", every_epochs=0), "every_epochs must be a positive"),
        (lambda: callbacks.Checkpoint("c.pt", every_steps=2.0), "every_steps must be a positive"),
        (lambda: callbacks.Checkpoint("c.pt", every_epochs=None), "every_epochs or every_steps"),
    ],
)
def test_bad_arguments_are_named(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("interval", ["epoch", "step"])
def test_lr_scheduler_interval(interval: str) -> None:
    model = _classifier()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    _, h = _fit(model, epochs=2, optimizer=opt,
                callbacks=[callbacks.LRScheduler(sched, interval=interval)])  # fmt: skip
    if interval == "epoch":
        assert h.steps["lr"][:10] == [1.0] * 10 and h.steps["lr"][10] == 0.5
    else:
        assert h.steps["lr"][:3] == [1.0, 0.5, 0.25]


def test_reduce_on_plateau_gets_the_metric() -> None:
    model = _classifier()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, threshold=10.0)
    _, h = _fit(model, epochs=3, optimizer=opt, callbacks=[callbacks.LRScheduler(sched)])
    assert h["lr"][-1] < 1.0
    with pytest.raises(ValueError, match="interval='epoch'"):
        callbacks.LRScheduler(sched, interval="step")


def test_gradient_clipping_bounds_the_norm() -> None:
    seen = []

    class After(callbacks.Callback):
        def on_backward_end(self, state):
            norms = [p.grad.norm() for p in state.model.parameters()]
            seen.append(float(torch.linalg.vector_norm(torch.stack(norms))))

    _, h = _fit(epochs=1, callbacks=[callbacks.GradientClipping(0.01), After()])
    assert max(seen) <= 0.01 + 1e-6
    assert len(h.steps["grad_norm"]) == 10 and max(h.steps["grad_norm"]) > 0.01


def test_grad_norm_recorder_per_layer() -> None:
    _, h = _fit(epochs=1, callbacks=[callbacks.GradNormRecorder(every=2)])
    assert set(k for k in h.steps if k.startswith("grad_norm/")) == {
        "grad_norm/0.weight",
        "grad_norm/2.weight",
    }
    assert len(h.steps["grad_norm/0.weight"]) == 5
    assert all(v > 0 for v in h.steps["grad_norm/2.weight"])


def test_progress_bar_and_headless_live_plot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.pyplot as plt

    shown = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: shown.append(plt.gcf()))
    monkeypatch.setattr(plt, "get_backend", lambda: "module://matplotlib_inline.backend_inline")
    _, h = _fit(epochs=2, progress=True, live_plot=True)
    assert h.num_epochs == 2
    assert len(shown) == 1  # one static figure at the end, not one per epoch
    assert [ax.get_ylabel() for ax in shown[0].axes] == ["loss", "accuracy"]


def test_callbacks_run_by_their_order_then_as_given() -> None:
    calls = []

    def spy(label: str, at: int) -> callbacks.Callback:
        class Spy(callbacks.Callback):
            order = at

            def on_fit_start(self, state):
                calls.append(label)

        return Spy()

    _fit(epochs=1, callbacks=[spy("late", 50), spy("first", -1), spy("a", 0), spy("b", 0)])
    assert calls == ["first", "a", "b", "late"]
    assert callbacks.Checkpoint.order > callbacks.ProgressBar.order > callbacks.Callback.order


def test_a_misspelt_hook_is_an_error_when_the_class_is_defined() -> None:
    with pytest.raises(
        TypeError, match=r"on_batch_end looks like a hook.*did you mean on_epoch_end"
    ):

        class Late(callbacks.Callback):
            def on_batch_end(self, state): ...

    with pytest.raises(TypeError, match=r"after_backward .*did you mean on_backward_end"):

        class Old(callbacks.Callback):
            def after_backward(self, state): ...

    class Fine(callbacks.Callback):  # helpers with other names are fine
        def once_more(self): ...


def test_hooks_get_the_run_and_callbacks_hold_no_reference_to_it(tmp_path) -> None:
    saver = callbacks.Checkpoint(tmp_path / "c.pt")
    seen = []

    class Look(callbacks.Callback):
        def on_epoch_end(self, state):
            seen.append((state.epoch, state.step, state.callbacks.index(saver)))

    _fit(epochs=2, callbacks=[saver, Look()])
    assert seen == [(0, 10, 1), (1, 20, 1)]  # the Checkpoint runs after Look: it is last
    assert set(vars(saver)) == {"path", "every_epochs", "every_steps"}  # no run planted on it


def test_the_state_a_callback_reads() -> None:
    """The names a learner's callback uses: state.model, .optimizer, .history, .epoch, .step,
    .batch, .loss, .epochs, and state.stop to end training after this epoch."""
    seen = []

    class Reader(callbacks.Callback):
        def on_step_end(self, state):
            assert isinstance(state.model, torch.nn.Module) and state.loss.requires_grad
            assert isinstance(state.optimizer, torch.optim.Adam) and state.epochs == 5
            seen.append((state.epoch, state.step, state.batch, state.batches_per_epoch))

        def on_epoch_end(self, state):
            assert state.history["train_loss"] and state.position.epoch == state.epoch
            state.stop = state.epoch == 1

    _, h = _fit(epochs=5, callbacks=[Reader()])
    assert h.num_epochs == 2
    assert seen[:2] == [(0, 1, 1, 10), (0, 2, 2, 10)] and seen[-1] == (1, 20, 10, 10)


def test_progress_bar_and_live_plot_are_added_once() -> None:
    calls = []

    class CountingBar(callbacks.ProgressBar):
        def on_fit_start(self, state):
            calls.append(sum(isinstance(cb, callbacks.ProgressBar) for cb in state.callbacks))
            super().on_fit_start(state)

    _fit(epochs=1, callbacks=[CountingBar()], progress=True)
    assert calls == [1]  # fit's own bar is not added beside the one given
