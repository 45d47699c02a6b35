"""dlcourse.checkpoint: atomic saves, and runs that resume exactly (even after SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dlcourse import callbacks, checkpoint
from tests._training import classifier as _classifier
from tests._training import fit as _fit

HERE = Path(__file__).resolve().parent


def test_checkpoint_is_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ckpt.pt"
    _fit(epochs=1, callbacks=[callbacks.Checkpoint(path)])
    before = path.read_bytes()

    def broken_save(obj, fh):
        fh.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        _fit(epochs=1, callbacks=[callbacks.Checkpoint(path)])
    assert path.read_bytes() == before  # the old checkpoint survived
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left


def test_resume_after_a_clean_stop_continues_exactly(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    full, h_full = _fit(_classifier(), epochs=4)
    part = _classifier()
    opt = torch.optim.Adam(part.parameters(), lr=1e-2)
    _fit(part, epochs=2, optimizer=opt, callbacks=[callbacks.Checkpoint(path)])
    resumed = _classifier(5)  # different start: everything must come from the checkpoint
    opt = torch.optim.Adam(resumed.parameters(), lr=1e-2)
    _, h = _fit(
        resumed, epochs=4, optimizer=opt, callbacks=[callbacks.Checkpoint(path)], resume=path
    )
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
         callbacks=[callbacks.Checkpoint(path), callbacks.LRScheduler(sched)])  # fmt: skip
    saved = torch.load(path, weights_only=False)
    (scheduler,) = [c["scheduler"] for _, c in saved["callbacks"] if "scheduler" in c]
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
    for key in ("val_loss", "train_loss", "train_accuracy"):  # the epoch's sums came back too
        assert full["history"]["epochs"][key] == resumed["history"]["epochs"][key], key


def test_a_run_with_a_random_transform_resumes_bit_exactly(tmp_path: Path) -> None:
    """Interrupted mid-epoch and resumed, a run with random augmentation repeats every batch."""
    from dlcourse import train
    from dlcourse.data import Batches
    from tests._training import spirals

    def jitter(xb: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return xb + 0.1 * torch.randn(xb.shape, generator=generator)

    class StopAt(callbacks.Callback):
        def __init__(self, step: int) -> None:
            self.step = step

        def on_step_end(self, state):
            if state.step == self.step:
                raise KeyboardInterrupt  # a stop in the middle of epoch 2

    def run(model, path, stop=None, resume=None):
        x, y = spirals()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        extra = [StopAt(stop)] if stop else []
        return train.fit(
            model, torch.nn.CrossEntropyLoss(), opt,
            Batches(x, y, 32, seed=0, transform=jitter), (x, y), epochs=3,
            callbacks=[callbacks.Checkpoint(path, every_epochs=None, every_steps=1), *extra],
            progress=False, live_plot=False, resume=resume,
        )  # fmt: skip

    full = _classifier()
    h_full = run(full, tmp_path / "full.pt")
    part = _classifier()
    run(part, tmp_path / "part.pt", stop=14)
    assert (
        torch.load(tmp_path / "part.pt", weights_only=False)["position"]["batch"] == 3
    )  # saved at step 13
    resumed = _classifier(7)
    h = run(resumed, tmp_path / "part.pt", resume=tmp_path / "part.pt")
    assert h.steps["loss"] == h_full.steps["loss"]
    for a, b in zip(full.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    # the interrupted epoch's running sums (3 batches' losses and hits) were restored, then
    # added to in the same order: its train_loss and train_accuracy are the same numbers
    assert h.epochs == h_full.epochs | {"time": h.epochs["time"]}


def test_a_checkpoint_names_the_callbacks_it_needs(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    _fit(epochs=1, callbacks=[callbacks.Checkpoint(path), callbacks.EarlyStopping()])
    with pytest.raises(ValueError, match=r"saved with the callbacks \['EarlyStopping'"):
        _fit(epochs=2, callbacks=[callbacks.Checkpoint(path)], resume=path)
    # a progress bar or a live plot has no state: adding one does not matter
    _fit(epochs=2, callbacks=[callbacks.Checkpoint(path), callbacks.EarlyStopping()],
         resume=path, progress=True)  # fmt: skip


def test_a_checkpoint_of_another_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    for version in (1, 3):
        checkpoint.save_atomically({"version": version}, path)
        with pytest.raises(ValueError, match=rf"another format \(version {version};.*start afresh"):
            _fit(resume=path)


def test_a_version_2_checkpoint_built_the_old_way_resumes_exactly(tmp_path: Path) -> None:
    """The format did not change when TrainState got state_dict(): a checkpoint written before,
    key by key as the old capture() wrote it at the end of an epoch, continues the run exactly."""
    from dlcourse import train
    from dlcourse.data import Batches
    from tests._training import spirals

    full, h_full = _fit(_classifier(), epochs=4)
    x, y = spirals()
    model, batches = _classifier(), Batches(x, y, 32, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    h = train.fit(model, torch.nn.CrossEntropyLoss(), opt, batches, (x, y), epochs=2,
                  progress=False, live_plot=False)  # fmt: skip
    old = {
        "version": 2,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scaler": None,
        "callbacks": [],  # (class name, state) of each callback with state
        "history": h.as_dict(),
        "position": {"epoch": 2, "step": 20, "batch": 0},
        "running": {
            "loss_sum": 0.0,
            "correct": 0,
            "labelled": 0,
            "seen": 0,
            "classification": True,
        },
        "rng": checkpoint.rng_states(),
        "batches": batches.state_dict(),  # where the next epoch's shuffling starts
        "time": h["time"][-1],
    }
    path = tmp_path / "v2.pt"
    checkpoint.save_atomically(old, path)
    resumed = _classifier(5)  # different start: everything must come from the checkpoint
    opt = torch.optim.Adam(resumed.parameters(), lr=1e-2)
    _, h = _fit(resumed, epochs=4, optimizer=opt, resume=path)
    for a, b in zip(full.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    assert h.steps["loss"] == h_full.steps["loss"] and h["epoch"] == [0, 1, 2, 3]
    assert h["train_accuracy"] == h_full["train_accuracy"]
