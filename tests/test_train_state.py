"""dlcourse.train_state: History, Position, EpochSums, count_hits, and TrainState's state_dict.

That a run resumed from ``state_dict()`` continues exactly like one that never stopped is
shown in tests/test_checkpoint.py (a Ctrl-C mid-epoch, a SIGKILL, a version-2 file).
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from dlcourse import callbacks
from dlcourse.data import Batches
from dlcourse.train_state import EpochSums, History, Position, TrainState, count_hits
from tests._training import classifier as _classifier
from tests._training import fit as _fit
from tests._training import spirals as _spirals


def test_history_best_picks_by_mode() -> None:
    h = History()
    for epoch, loss, acc in ((0, 0.9, 0.5), (1, 0.4, 0.8), (2, 0.6, 0.8)):
        h.log_epoch(epoch=epoch, val_loss=loss, val_accuracy=acc)
    assert h.best("val_loss") == (1, 0.4)
    assert h.best("val_accuracy", mode="max") == (1, 0.8)  # the first of a tie


def test_history_best_checks_its_arguments() -> None:
    h = History()
    h.log_epoch(epoch=0, val_loss=0.5)
    h.log_step(loss=0.7)
    with pytest.raises(ValueError, match="mode must be 'min' or 'max', got 'lowest'"):
        h.best("val_loss", mode="lowest")
    with pytest.raises(KeyError, match=r"'val_acc' is not recorded.*\['epoch', 'val_loss'\]"):
        h.best("val_acc", mode="max")
    with pytest.raises(KeyError, match="'loss' is a step series, not an epoch series"):
        h.best("loss")


def test_position_and_sums_state_dicts() -> None:
    position = Position(epoch=2, step=25, batch=5)
    assert position.next_epoch() == Position(epoch=3, step=25, batch=0)
    again = Position()
    again.load_state_dict(position.state_dict())
    assert again == position
    sums = EpochSums(loss_sum=12.5, correct=40, labelled=50, seen=50)
    assert (sums.mean_loss, sums.accuracy) == (0.25, 0.8)
    again = EpochSums()
    again.load_state_dict(sums.state_dict())
    assert again == sums
    assert (EpochSums().mean_loss, EpochSums().accuracy) == (0.0, 0.0)  # no division by 0


def test_count_hits_leaves_out_the_ignored_positions() -> None:
    labels = torch.tensor([[0, 1, 2], [1, -100, -100]])  # (N, L), padded with -100
    predicted = torch.tensor([[0, 2, 2], [1, 1, 0]])
    correct, labelled = count_hits(predicted, labels, ignore_index=-100)
    assert (int(correct), int(labelled)) == (3, 4)
    correct, labelled = count_hits(predicted, labels.clamp(min=0), ignore_index=0)
    assert (int(correct), int(labelled)) == (2, 3)  # class 0 is padding: hit or not
    correct, labelled = count_hits(predicted, labels.clamp(min=0))
    assert (int(correct), int(labelled)) == (4, 6)


def _state(model: nn.Module, cbs=()) -> TrainState:
    x, y = _spirals()
    return TrainState(
        model=model,
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
        epochs=3,
        train=Batches(x, y, 32, seed=3),
        callbacks=list(cbs),
    )


def _equal(a, b) -> bool:
    """Nested dicts, lists and tuples with tensors in them, compared exactly."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_equal(u, v) for u, v in zip(a, b, strict=True))
    return a == b


def test_a_state_dict_taken_mid_epoch_loads_into_another_run() -> None:
    """Everything a checkpoint needs round-trips: weights, optimizer, callbacks, history,
    position, the epoch's running sums and where the batches stood when the epoch began."""
    taken = {}

    class TakeAt(callbacks.Callback):
        def on_step_end(self, state):
            if state.step == 13:  # 3 batches into the second epoch
                taken.update(copy.deepcopy(state.state_dict()))
                raise KeyboardInterrupt

    stopper = callbacks.EarlyStopping(patience=10)
    _fit(epochs=3, callbacks=[stopper, TakeAt()])
    assert taken["position"] == {"epoch": 1, "step": 13, "batch": 3}
    running = taken["running"]
    assert running["seen"] == 3 * 32 and running["classification"] is True
    assert 0 < running["correct"] <= running["labelled"] == 3 * 32
    assert running["loss_sum"] == pytest.approx(32 * sum(taken["history"]["steps"]["loss"][10:]))

    other = _state(_classifier(9), [callbacks.EarlyStopping(patience=10)])
    other.load_state_dict(taken)
    assert (other.epoch, other.step, other.batch) == (1, 13, 3)
    assert other.sums.seen == 96 and other.classification is True
    again = other.state_dict()
    assert _equal({**again, "time": None}, {**taken, "time": None})
    assert again["time"] >= taken["time"]

    with pytest.raises(ValueError, match=r"saved with the callbacks \['EarlyStopping'\]"):
        _state(_classifier()).load_state_dict(taken)


def test_the_state_dict_at_an_epoch_end_starts_the_next_epoch() -> None:
    state = _state(_classifier())
    state.position = Position(epoch=1, step=20, batch=0)
    state.sums = EpochSums(loss_sum=3.0, seen=10)  # ignored: the epoch is over
    done = state.state_dict(epoch_done=True)
    assert done["position"] == {"epoch": 2, "step": 20, "batch": 0}
    assert done["running"]["seen"] == 0 and done["running"]["loss_sum"] == 0.0
    assert torch.equal(done["batches"]["generator"], state.train.generator.get_state())


def test_the_position_reads_through_the_state() -> None:
    state = _state(_classifier())
    state.step += 5
    state.epoch = 2
    assert state.position == Position(epoch=2, step=5, batch=0)
    assert state.batches_per_epoch == 10 and not state.amp
