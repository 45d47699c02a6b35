"""Run by tests/test_train.py in a subprocess: train, possibly slowly so it can be killed.

usage: python _resume_script.py MODE CHECKPOINT OUTPUT
MODE: 'full' (uninterrupted), 'slow' (pauses each step; killed by the test), 'resume'.
"""

import sys
import time

import torch
from torch import nn

from dlcourse.callbacks import Callback, Checkpoint, EarlyStopping, LRScheduler
from dlcourse.data import Batches, make_spirals
from dlcourse.train import fit


class Pause(Callback):
    """Slows the 'slow' run down so the test can kill it mid-run (every run has it)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_step_end(self, state):
        time.sleep(self.seconds)


def main() -> None:
    mode, ckpt, out = sys.argv[1:4]
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, y = make_spirals(300, seed=0)
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.7)
    callbacks = [
        LRScheduler(sched),
        EarlyStopping("val_loss", patience=100, restore_best=False),
        Checkpoint(ckpt, every_epochs=None, every_steps=3),
        Pause(0.05 if mode == "slow" else 0.0),
    ]
    history = fit(
        model,
        nn.CrossEntropyLoss(),
        opt,
        Batches(x, y, 32, seed=1),
        (x, y),
        epochs=6,
        callbacks=callbacks,
        progress=False,
        live_plot=False,
        resume=ckpt if mode == "resume" else None,
    )
    torch.save({"model": model.state_dict(), "history": history.as_dict()}, out)


if __name__ == "__main__":
    main()
