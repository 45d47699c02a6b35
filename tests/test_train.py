"""dlcourse.train: fit, evaluate, predict, History, callbacks, checkpoints, exact resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from dlcourse import train
from dlcourse.data import Batches, make_regression_1d, make_spirals

HERE = Path(__file__).resolve().parent


def _classifier(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 3))


def _spirals(n: int = 300) -> tuple[torch.Tensor, torch.Tensor]:
    return make_spirals(n, seed=0)


def _fit(model=None, epochs=3, **kwargs) -> tuple[nn.Module, train.History]:
    model = model or _classifier()
    x, y = _spirals()
    opt = kwargs.pop("optimizer", None) or torch.optim.Adam(model.parameters(), lr=1e-2)
    hist = train.fit(
        model,
        nn.CrossEntropyLoss(),
        opt,
        Batches(x, y, 32, seed=0),
        kwargs.pop("val", (x, y)),
        epochs=epochs,
        progress=kwargs.pop("progress", False),
        live_plot=kwargs.pop("live_plot", False),
        **kwargs,
    )
    return model, hist


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


def test_progress_bar_and_headless_live_plot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.pyplot as plt

    shown = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: shown.append(plt.gcf()))
    monkeypatch.setattr(plt, "get_backend", lambda: "module://matplotlib_inline.backend_inline")
    _, h = _fit(epochs=2, progress=True, live_plot=True)
    assert h.num_epochs == 2
    assert len(shown) == 1  # one static figure at the end, not one per epoch
    assert [ax.get_ylabel() for ax in shown[0].axes] == ["loss", "accuracy"]


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
        ({"epochs": 0}, "epochs"),
        ({"epochs": 1, "on_nonfinite": "ignore"}, "on_nonfinite"),
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


class Poison(train.Callback):
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
    class Interrupt(train.Callback):
        def on_step_end(self, state):
            if state.step == 13:
                raise KeyboardInterrupt

    model, h = _fit(epochs=5, callbacks=[Interrupt()])
    assert h.num_steps == 13 and h.num_epochs == 1
    assert "interrupted" in h.stop_reason and "interrupted" in capsys.readouterr().out
    assert all(torch.isfinite(p).all() for p in model.parameters())


# --------------------------------------------------------------------------- callbacks


def test_hooks_run_in_order() -> None:
    calls = []

    class Spy(train.Callback):
        def __getattribute__(self, name):
            if name.startswith(("on_", "after_")):
                calls.append(name)
            return object.__getattribute__(self, name)

    _fit(epochs=1, callbacks=[Spy()])
    assert calls[0] == "on_fit_start" and calls[1] == "on_epoch_start"
    assert calls[2:4] == ["after_backward", "on_step_end"]
    assert calls.count("after_backward") == 10
    assert calls[-2:] == ["on_epoch_end", "on_fit_end"]


def test_early_stopping_stops_and_restores_the_best_weights() -> None:
    model = _classifier()
    stopper = train.EarlyStopping("val_loss", patience=1, min_delta=10.0)  # nothing counts
    snapshots = []

    class Snap(train.Callback):
        def on_epoch_end(self, state):
            snapshots.append({k: v.clone() for k, v in state.model.state_dict().items()})

    _, h = _fit(model, epochs=10, callbacks=[Snap(), stopper])
    assert h.num_epochs == 3  # best at epoch 0, then 2 epochs without improvement > patience 1
    assert "early stopping" in h.stop_reason
    for k, v in model.state_dict().items():
        assert torch.equal(v, snapshots[0][k])


def test_early_stopping_needs_its_metric() -> None:
    with pytest.raises(ValueError, match="pass val="):
        _fit(val=None, callbacks=[train.EarlyStopping("val_loss")])
    with pytest.raises(ValueError, match="mode"):
        train.EarlyStopping(mode="up")


@pytest.mark.parametrize("interval", ["epoch", "step"])
def test_lr_scheduler_interval(interval: str) -> None:
    model = _classifier()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    _, h = _fit(model, epochs=2, optimizer=opt,
                callbacks=[train.LRScheduler(sched, interval=interval)])  # fmt: skip
    if interval == "epoch":
        assert h.steps["lr"][:10] == [1.0] * 10 and h.steps["lr"][10] == 0.5
    else:
        assert h.steps["lr"][:3] == [1.0, 0.5, 0.25]


def test_reduce_on_plateau_gets_the_metric() -> None:
    model = _classifier()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, threshold=10.0)
    _, h = _fit(model, epochs=3, optimizer=opt, callbacks=[train.LRScheduler(sched)])
    assert h["lr"][-1] < 1.0
    with pytest.raises(ValueError, match="interval='epoch'"):
        train.LRScheduler(sched, interval="step")


def test_gradient_clipping_bounds_the_norm() -> None:
    seen = []

    class After(train.Callback):
        def after_backward(self, state):
            norms = [p.grad.norm() for p in state.model.parameters()]
            seen.append(float(torch.linalg.vector_norm(torch.stack(norms))))

    _, h = _fit(epochs=1, callbacks=[train.GradientClipping(0.01), After()])
    assert max(seen) <= 0.01 + 1e-6
    assert len(h.steps["grad_norm"]) == 10 and max(h.steps["grad_norm"]) > 0.01
    with pytest.raises(ValueError, match="max_norm"):
        train.GradientClipping(0)


def test_grad_norm_recorder_per_layer() -> None:
    _, h = _fit(epochs=1, callbacks=[train.GradNormRecorder(every=2)])
    assert set(k for k in h.steps if k.startswith("grad_norm/")) == {
        "grad_norm/0.weight",
        "grad_norm/2.weight",
    }
    assert len(h.steps["grad_norm/0.weight"]) == 5
    assert all(v > 0 for v in h.steps["grad_norm/2.weight"])


def test_history_helpers() -> None:
    _, h = _fit(epochs=3)
    epoch, value = h.best("val_loss")
    assert value == min(h["val_loss"]) and epoch in (0, 1, 2)
    assert train.History.from_dict(h.as_dict()).as_dict() == h.as_dict()
    with pytest.raises(KeyError, match="it has"):
        h["nope"]


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_is_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ckpt.pt"
    _fit(epochs=1, callbacks=[train.Checkpoint(path)])
    before = path.read_bytes()

    def broken_save(obj, fh):
        fh.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        _fit(epochs=1, callbacks=[train.Checkpoint(path)])
    assert path.read_bytes() == before  # the old checkpoint survived
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left


def test_resume_after_a_clean_stop_continues_exactly(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    full, h_full = _fit(_classifier(), epochs=4)
    part = _classifier()
    opt = torch.optim.Adam(part.parameters(), lr=1e-2)
    _fit(part, epochs=2, optimizer=opt, callbacks=[train.Checkpoint(path)])
    resumed = _classifier(5)  # different start: everything must come from the checkpoint
    opt = torch.optim.Adam(resumed.parameters(), lr=1e-2)
    _, h = _fit(resumed, epochs=4, optimizer=opt, callbacks=[train.Checkpoint(path)], resume=path)
    for a, b in zip(full.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    assert h.steps["loss"] == h_full.steps["loss"]
    assert h["epoch"] == [0, 1, 2, 3]


def test_checkpoint_saves_after_the_other_callbacks(tmp_path: Path) -> None:
    """Listed first, a Checkpoint still records the scheduler's step of the same epoch."""
    path = tmp_path / "ckpt.pt"
    model = _classifier()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    _fit(model, epochs=2, optimizer=opt,
         callbacks=[train.Checkpoint(path), train.LRScheduler(sched)])  # fmt: skip
    saved = torch.load(path, weights_only=False)
    (scheduler,) = [c["scheduler"] for c in saved["callbacks"] if "scheduler" in c]
    assert scheduler["last_epoch"] == 2
    assert saved["optimizer"]["param_groups"][0]["lr"] == 0.25


def test_resume_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        _fit(resume=tmp_path / "none.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        _fit(resume=bad)


@pytest.mark.slow
def test_killed_run_resumes_bit_identically(tmp_path: Path) -> None:
    """SIGKILL a training process mid-run, resume from its last checkpoint: same final weights."""
    script = HERE / "_resume_script.py"
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}

    def run(mode: str, ckpt: Path, out: Path) -> None:
        subprocess.run([sys.executable, str(script), mode, str(ckpt), str(out)], env=env,
                       check=True, timeout=300)  # fmt: skip

    run("full", tmp_path / "full.pt", tmp_path / "full_out.pt")

    ckpt = tmp_path / "killed.pt"
    proc = subprocess.Popen([sys.executable, str(script), "slow", str(ckpt), str(tmp_path / "x")],
                            env=env)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait for a checkpoint some way into the second epoch
        if ckpt.exists() and torch.load(ckpt, weights_only=False)["position"]["step"] >= 15:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    position = torch.load(ckpt, weights_only=False)["position"]
    assert 0 < position["step"] < 60 and position["batch"] > 0  # killed mid-epoch, mid-run

    run("resume", ckpt, tmp_path / "resumed_out.pt")
    full = torch.load(tmp_path / "full_out.pt", weights_only=False)
    resumed = torch.load(tmp_path / "resumed_out.pt", weights_only=False)
    for key, value in full["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    assert full["history"]["steps"]["loss"] == resumed["history"]["steps"]["loss"]
    assert full["history"]["epochs"]["val_loss"] == resumed["history"]["epochs"]["val_loss"]
