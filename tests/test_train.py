"""dlcourse.train: fit, evaluate, predict, History, callbacks, checkpoints, exact resume."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlcourse import callbacks, train
from dlcourse.data import Batches, make_regression_1d
from tests._training import classifier as _classifier
from tests._training import fit as _fit
from tests._training import spirals as _spirals

# --------------------------------------------------------------------------- the loop


def test_fit_records_steps_and_epochs() -> None:
    _, h = _fit(epochs=4)
    assert h.num_epochs == 4 and h.epochs["epoch"] == [0, 1, 2, 3]
    assert h.num_steps == 4 * 10 == h.epochs["step"][-1]  # 300 samples / 32 -> 10 batches
    assert len(h.steps["lr"]) == h.num_steps
    for key in ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr", "time"):
        assert len(h[key]) == 4, key
    assert h["time"] == sorted(h["time"])
    assert h["train_loss"][-1] < h["train_loss"][0]
    assert 0 <= h["val_accuracy"][-1] <= 1
    assert h.stop_reason == ""


def test_fit_matches_a_hand_written_loop_exactly() -> None:
    """fit adds bookkeeping, never arithmetic: the same steps give the same weights."""
    x, y = _spirals()
    a = _classifier(1)
    _fit(a, epochs=2, val=None, optimizer=torch.optim.SGD(a.parameters(), lr=0.1))
    b = _classifier(1)
    opt = torch.optim.SGD(b.parameters(), lr=0.1)
    batches = Batches(x, y, 32, seed=0)
    for _ in range(2):
        for xb, yb in batches:
            opt.zero_grad()
            nn.functional.cross_entropy(b(xb), yb).backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_epoch_train_loss_is_the_sample_weighted_mean_of_step_losses() -> None:
    _, h = _fit(epochs=1, val=None)
    sizes = [32] * 9 + [300 - 9 * 32]
    expected = sum(s * v for s, v in zip(sizes, h.steps["loss"], strict=True)) / 300
    assert h["train_loss"][0] == pytest.approx(expected, rel=1e-6)


def test_regression_records_no_accuracy() -> None:
    x, y = make_regression_1d(64)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    h = train.fit(model, nn.MSELoss(), opt, Batches(x, y, 16), (x, y), epochs=2, progress=False)
    assert "train_accuracy" not in h and "val_accuracy" not in h
    assert "val_loss" in h


def test_evaluate_and_predict_restore_the_mode() -> None:
    x, y = _spirals()
    model = _classifier()
    model.train()
    result = train.evaluate(model, nn.CrossEntropyLoss(), (x, y), batch_size=50)
    assert model.training and set(result) == {"loss", "accuracy"}
    with torch.no_grad():
        direct = nn.functional.cross_entropy(model(x), y).item()
    assert result["loss"] == pytest.approx(direct, rel=1e-5)
    model.eval()
    out = train.predict(model, x, batch_size=64)
    assert not model.training and out.shape == (300, 3)
    assert torch.allclose(out, model(x), atol=1e-6)


def test_fit_on_every_device(device: torch.device) -> None:
    x, y = _spirals()
    model = _classifier().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    h = train.fit(
        model, nn.CrossEntropyLoss(), opt, Batches(x, y, 32, device=device), (x, y), epochs=2,
        progress=False,
    )  # fmt: skip
    assert h.num_epochs == 2 and h["train_loss"][-1] < h["train_loss"][0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="mixed precision needs CUDA")
def test_mixed_precision_on_cuda() -> None:
    x, y = _spirals()
    model = _classifier().cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    h = train.fit(
        model, nn.CrossEntropyLoss(), opt, Batches(x, y, 32, device="cuda"), epochs=3,
        amp=True, progress=False,
    )  # fmt: skip
    assert h["train_loss"][-1] < h["train_loss"][0]


# --------------------------------------------------------------------------- bad input


def test_float_labels_for_cross_entropy() -> None:
    x, y = _spirals()
    model = _classifier()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"int64 labels.*y\.long\(\)"):
        train.fit(model, nn.CrossEntropyLoss(), opt, Batches(x, y.float(), 32), epochs=1,
                  progress=False)  # fmt: skip


def test_regression_shape_mismatch() -> None:
    x, y = make_regression_1d(32)
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"would broadcast.*unsqueeze"):
        train.fit(model, nn.MSELoss(), opt, Batches(x, y.squeeze(1), 8), epochs=1, progress=False)


def test_wrong_number_of_classes() -> None:
    x, y = _spirals()
    model = nn.Linear(2, 2)  # 3 classes in the data
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"loss could not be computed.*\(32, 2\) float32"):
        train.fit(model, nn.CrossEntropyLoss(), opt, Batches(x, y, 32), epochs=1, progress=False)


def test_model_and_data_on_different_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _spirals()
    model = _classifier()
    monkeypatch.setattr(train, "_device_of", lambda m: torch.device("cuda", 0))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"model is on cuda:0 but the batches' inputs are on cpu"):
        train.fit(model, nn.CrossEntropyLoss(), opt, Batches(x, y, 32), epochs=1, progress=False)


def test_empty_training_data() -> None:
    model = _classifier()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="no batch"):
        train.fit(model, nn.CrossEntropyLoss(), opt, [], epochs=1, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, "epochs must be a positive int, got 0"),
        ({"epochs": True}, "epochs must be a positive int, got True"),
        ({"epochs": 1, "on_nonfinite": "ignore"}, "on_nonfinite must be 'stop', 'raise' or"),
        ({"epochs": 1, "amp": True}, "needs CUDA"),
        ({"epochs": 1, "callbacks": [object()]}, "Callback"),
    ],
)
def test_bad_arguments(kwargs, message) -> None:
    x, y = _spirals()
    model = _classifier()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises((ValueError, TypeError), match=message):
        train.fit(model, nn.CrossEntropyLoss(), opt, Batches(x, y, 32), progress=False, **kwargs)
    with pytest.raises(TypeError, match="Batches"):
        train.fit(model, nn.CrossEntropyLoss(), opt, (x, y), epochs=1)


class Poison(callbacks.Callback):
    """Puts a NaN into the first weight after step 5, as a diverging run would."""

    def on_step_end(self, state):
        if state.step == 5:
            with torch.no_grad():
                next(state.model.parameters())[0, 0] = float("nan")


def test_nonfinite_loss_stops_and_names_the_step(capsys: pytest.CaptureFixture[str]) -> None:
    _, h = _fit(epochs=5, callbacks=[Poison()])
    assert h.num_epochs == 1
    assert "the loss became nan at step 6 (epoch 0)" in h.stop_reason
    assert "Lower the learning rate" in capsys.readouterr().out


def test_nonfinite_loss_can_raise_or_continue() -> None:
    with pytest.raises(FloatingPointError, match="at step 6"):
        _fit(callbacks=[Poison()], on_nonfinite="raise")
    _, h = _fit(epochs=2, callbacks=[Poison()], on_nonfinite="continue")
    assert h.num_epochs == 2


def test_ctrl_c_returns_what_there_is(capsys: pytest.CaptureFixture[str]) -> None:
    class Interrupt(callbacks.Callback):
        def on_step_end(self, state):
            if state.step == 13:
                raise KeyboardInterrupt

    model, h = _fit(epochs=5, callbacks=[Interrupt()])
    assert h.num_steps == 13 and h.num_epochs == 1
    assert "interrupted" in h.stop_reason and "interrupted" in capsys.readouterr().out
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_the_callbacks_are_still_reachable_from_train_with_a_warning() -> None:
    """A learner who typed dl.train.EarlyStopping gets the class, and its new address."""
    for name in ("Callback", "Checkpoint", "EarlyStopping", "LRScheduler", "ProgressBar"):
        with pytest.warns(DeprecationWarning, match=rf"dl\.callbacks\.{name}\b"):
            assert getattr(train, name) is getattr(callbacks, name)
    with pytest.warns(DeprecationWarning, match="from dlcourse.callbacks import GradientClipping"):
        from dlcourse.train import GradientClipping
    assert GradientClipping is callbacks.GradientClipping
    with pytest.raises(AttributeError, match="has no attribute 'EarlyStop'"):
        train.EarlyStop  # noqa: B018
    assert train.TrainState.__module__ == "dlcourse.train_state"  # importable from here


def test_history_helpers() -> None:
    _, h = _fit(epochs=3)
    epoch, value = h.best("val_loss")
    assert value == min(h["val_loss"]) and epoch in (0, 1, 2)
    assert train.History.from_dict(h.as_dict()).as_dict() == h.as_dict()
    with pytest.raises(KeyError, match="it has"):
        h["nope"]


# --------------------------------------------------------------------------- sequence outputs


class _PerStep(nn.Module):
    """Scores (N, C, L) for a label at every step of a sequence (N, L): the class of each step
    is the sign of its input, which a 1x1 'convolution' learns."""

    def __init__(self) -> None:
        super().__init__()
        self.score = nn.Conv1d(1, 2, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, L)
        return self.score(x.unsqueeze(1))  # (N, 2, L)


def _sequences(n: int = 64, length: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, length, generator=gen)  # (N, L)
    return x, (x > 0).long()  # (N, L): a label per step


def test_a_label_per_position_is_classification() -> None:
    x, y = _sequences()
    torch.manual_seed(0)
    model = _PerStep()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    h = train.fit(model, nn.CrossEntropyLoss(), opt, Batches(x, y, 16), (x, y), epochs=15,
                  progress=False, live_plot=False)  # fmt: skip
    assert h["val_accuracy"][-1] > 0.95 and h["train_accuracy"][-1] > 0.9
    result = train.evaluate(model, nn.CrossEntropyLoss(), (x, y))
    by_hand = (train.predict(model, x).argmax(1) == y).double().mean().item()
    assert result["accuracy"] == pytest.approx(by_hand)


def test_padding_counts_in_neither_the_loss_nor_the_accuracy() -> None:
    x, y = _sequences(8, 6)
    torch.manual_seed(0)
    model = _PerStep()
    padded = y.clone()
    padded[:, 3:] = -100  # the second half of every sequence is padding
    wrong = 1 - y  # labels the model gets wrong everywhere...
    wrong[:, 3:] = -100  # ...except where they are ignored
    loss_fn = nn.CrossEntropyLoss(ignore_index=-100)
    with torch.no_grad():
        model.score.weight.fill_(0.0)
        model.score.weight[1] = 10.0  # class 1 where x > 0: always right on y
    assert train.evaluate(model, loss_fn, (x, padded))["accuracy"] == 1.0
    assert train.evaluate(model, loss_fn, (x, wrong))["accuracy"] == 0.0
    half = y.clone()
    half[:, 3:] = 1 - y[:, 3:]  # wrong on the second half, which counts now
    assert train.evaluate(model, loss_fn, (x, half))["accuracy"] == pytest.approx(0.5)


def test_classes_in_the_last_dimension_are_named() -> None:
    x, y = _sequences(8, 6)
    model = nn.Sequential(_PerStep())

    class Transposed(nn.Module):
        def forward(self, x):
            return model(x).transpose(1, 2)  # (N, L, C): what an RNN layer returns

    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"classes in dimension 1.*movedim\(-1, 1\)"):
        train.fit(Transposed(), nn.CrossEntropyLoss(), opt, Batches(x, y, 4), epochs=1,
                  progress=False, live_plot=False)  # fmt: skip
    with pytest.raises(ValueError, match=r"int64 labels of shape \(N, 6\)"):
        train.fit(model, nn.CrossEntropyLoss(), opt, Batches(x, y.float(), 4), epochs=1,
                  progress=False, live_plot=False)  # fmt: skip
