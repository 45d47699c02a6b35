"""Run by tests/test_distributed.py, in one process or as each rank of several (a launcher's
environment: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).

usage: python _ddp_script.py SCENARIO OUT [CHECKPOINT]
SCENARIO:
  'train': three runs in a row, each from the same start: torch's SGD with momentum, the
      course's Adam (dl.optim.Adam), then early stopping with a checkpoint every epoch and a
      progress bar. The global batch is GLOBAL_BATCH whatever the number of processes.
  'full', 'slow', 'resume': one run with dropout and checkpoints every 3 steps; 'slow' pauses
      each step so the test can kill a rank; 'resume' continues from CHECKPOINT.
Each process writes what it saw to OUT.rank<R>.pt.
"""

import os
import sys
import time

import torch
from torch import nn

from dlcourse import checkpoint
from dlcourse import optim as dl_optim
from dlcourse.callbacks import Callback, Checkpoint, EarlyStopping, GradientClipping
from dlcourse.data import Batches, make_spirals
from dlcourse.train import fit

GLOBAL_BATCH = 32
SAMPLES = 256  # a multiple of the global batch: every process gets whole batches


class Pause(Callback):
    """Slows the 'slow' run down so the test can kill a rank mid-epoch."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_step_end(self, state):
        time.sleep(self.seconds)


def data() -> tuple[torch.Tensor, ...]:
    x, y = make_spirals(SAMPLES + 101, seed=0)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]  # the spirals come class by class: mix them
    return x[:SAMPLES], y[:SAMPLES], x[SAMPLES:], y[SAMPLES:]  # a validation set of 101


def model(dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Dropout(dropout), nn.Linear(32, 3))


def train_scenario(ckpt: str) -> dict:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    x, y, xv, yv = data()
    results = {}
    writes = []
    save = checkpoint.save_atomically
    checkpoint.save_atomically = lambda obj, path: (writes.append(str(path)), save(obj, path))
    for name in ("sgd", "adam", "early"):
        net = model()
        if name == "adam":
            opt = dl_optim.Adam(net.parameters(), lr=1e-2)
        else:
            opt = torch.optim.SGD(net.parameters(), lr=0.3, momentum=0.9)
        callbacks = [GradientClipping(1.0)]
        if name == "early":  # min_delta so large that no epoch after the first improves
            callbacks += [EarlyStopping("val_loss", patience=1, min_delta=100.0), Checkpoint(ckpt)]
        history = fit(
            net,
            nn.CrossEntropyLoss(),
            opt,
            Batches(x, y, GLOBAL_BATCH // world, seed=1, drop_last=True),
            (xv, yv),
            epochs=4 if name != "early" else 10,
            callbacks=callbacks,
            progress=name == "early",
            live_plot=False,
        )
        results[name] = {"model": net.state_dict(), "history": history.as_dict()}
    results["writes"] = writes
    return results


def resume_scenario(mode: str, ckpt: str) -> dict:
    rank = int(os.environ.get("RANK", "0"))
    x, y, xv, yv = data()
    net = model(dropout=0.2)
    torch.manual_seed(100 + rank)  # each process its own dropout masks
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    history = fit(
        net,
        nn.CrossEntropyLoss(),
        opt,
        Batches(x, y, 8, seed=1, transform=jitter),
        (xv, yv),
        epochs=3,
        callbacks=[
            Checkpoint(ckpt, every_epochs=None, every_steps=3),
            Pause(0.1 * (mode == "slow")),
        ],
        progress=False,
        live_plot=False,
        resume=ckpt if mode == "resume" else None,
    )
    return {"model": net.state_dict(), "history": history.as_dict()}


def jitter(xb: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random transform: it must repeat exactly on a resume, in every process."""
    return xb + 0.01 * torch.randn(xb.shape, generator=generator)


def main() -> None:
    scenario, out = sys.argv[1:3]
    ckpt = sys.argv[3] if len(sys.argv) > 3 else out + ".ckpt"
    torch.set_num_threads(1)
    result = train_scenario(ckpt) if scenario == "train" else resume_scenario(scenario, ckpt)
    torch.save(result, f"{out}.rank{os.environ.get('RANK', '0')}.pt")


if __name__ == "__main__":
    main()
