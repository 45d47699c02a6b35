"""Two CPU processes (torchrun, gloo) against one, on the same global batch: data parallelism's
overhead on a laptop.

The capstone's CNN on MNIST-1D (4,000 signals), ``dl.optim.Adam``, a global batch of 100:
one process of batch 100 against two processes of 50 each (``dl.train.fit`` under
``torchrun --nproc-per-node 2``), one thread per process. The time is ``fit``'s own (the
history's ``time``: training and validation, without starting Python, importing torch or
joining the process group), the median over runs that alternate one and two processes. Ideal:
two processes on two free cores take 0.5x the time; the all-reduce of the gradients (about
8,000 numbers a step) and the lock-step between the processes are what keeps it above that.
Not in ``run.py``: it starts processes, and on a busy machine the processes wait for cores.

``--channels 100`` makes the CNN's work per step about 16x larger for the same data, so the
fixed costs of a step weigh less.

Usage: ``python benchmarks/ddp.py [--repeats 3] [--epochs 3] [--channels 25] [--quick]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GLOBAL_BATCH = 100


def worker(epochs: int, channels: int) -> None:
    """One rank (or the only process): train, and print fit's seconds as JSON on rank 0."""
    import torch
    from torch import nn

    import dlcourse as dl
    from dlcourse import distributed

    torch.set_num_threads(1)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dl.seed_everything(0)
    x, y, x_test, y_test = dl.data.load_mnist1d()
    model = dl.capstone.CNN(channels)
    optimizer = dl.optim.Adam(model.parameters(), lr=1e-2)
    batches = dl.data.Batches(x, y, GLOBAL_BATCH // world, seed=0)
    history = dl.train.fit(model, nn.CrossEntropyLoss(), optimizer, batches, (x_test, y_test),
                           epochs=epochs, progress=False, live_plot=False)  # fmt: skip
    if distributed.is_main_process():
        print(json.dumps({"seconds": history["time"][-1], "val_loss": history["val_loss"][-1]}))


def _seconds(processes: int, epochs: int, channels: int) -> float:
    worker_args = [str(Path(__file__).resolve()), "--worker", "--epochs", str(epochs),
                   "--channels", str(channels)]  # fmt: skip
    if processes == 1:
        command = [sys.executable, *worker_args]
    else:
        torchrun = Path(sys.executable).with_name("torchrun")
        command = [str(torchrun), "--nproc-per-node", str(processes), *worker_args]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=True)
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("{")][-1]
    return json.loads(line)["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--channels", type=int, default=25, help="the CNN's (25: the paper's)")
    parser.add_argument("--quick", action="store_true", help="one run of one epoch each")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.epochs, args.channels)
        return
    repeats, epochs = (1, 1) if args.quick else (args.repeats, args.epochs)
    one, two = [], []
    for _ in range(repeats):  # alternately, so both see the same machine
        one.append(_seconds(1, epochs, args.channels))
        two.append(_seconds(2, epochs, args.channels))
    t1, t2 = statistics.median(one), statistics.median(two)
    runs = f"one {[round(t, 2) for t in one]} s, two {[round(t, 2) for t in two]} s"
    print(f"cores: {os.cpu_count()}, CNN channels {args.channels}, epochs {epochs}, runs: {runs}")
    print(
        f"ddp: two processes {t2:.2f} s, one process {t1:.2f} s, ratio {t2 / t1:.2f}x the time "
        f"({t1 / t2:.2f}x faster); ideal 0.50x on two free cores"
    )


if __name__ == "__main__":
    main()
