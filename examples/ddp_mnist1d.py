"""The capstone's CNN on MNIST-1D, trained by several processes at once (data parallelism).

Run it in one process, as any script::

    python examples/ddp_mnist1d.py

or in two (or N) processes, on a laptop's CPU (gloo) or on a machine with N GPUs (NCCL)::

    torchrun --nproc-per-node 2 examples/ddp_mnist1d.py

The script is the same either way: ``dl.train.fit`` sees torchrun's environment, puts each
process on its device, gives each its share of every batch, and averages the gradients
(``docs/data-parallelism.md`` explains what changes and what does not). ``--batch-size`` is
per process, so the global batch is N times it: the learning rate is scaled with N (the
linear scaling rule, Goyal et al. 2017), and only rank 0 prints.

Options: ``--epochs`` (default 10), ``--batch-size`` (per process, default 50: the paper's
batch of 100 on two processes), ``--lr`` (for one process of ``--batch-size``; default 1e-2),
``--checkpoint PATH`` (saved every epoch; run again to continue from it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

import dlcourse as dl
from dlcourse import distributed
from dlcourse.callbacks import Checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=50, help="per process")
    parser.add_argument("--lr", type=float, default=1e-2, help="for one process")
    parser.add_argument("--checkpoint", type=Path, default=None)
    args = parser.parse_args()

    group = distributed.join()  # None in one process; fit would join by itself as well
    processes = 1 if group is None else group.world_size
    dl.seed_everything(0)  # the same weights and data in every process
    x, y, x_test, y_test = dl.data.load_mnist1d()
    model = dl.capstone.CNN()
    # the global batch is processes x batch_size: scale the learning rate with it (Goyal et al.)
    optimizer = dl.optim.Adam(model.parameters(), lr=args.lr * processes)
    callbacks = [Checkpoint(args.checkpoint)] if args.checkpoint else []
    resume = args.checkpoint if args.checkpoint and args.checkpoint.is_file() else None
    history = dl.train.fit(
        model,
        nn.CrossEntropyLoss(),
        optimizer,
        dl.data.Batches(x, y, batch_size=args.batch_size, seed=0),
        (x_test, y_test),
        epochs=args.epochs,
        callbacks=callbacks,
        live_plot=False,
        resume=resume,
    )
    if distributed.is_main_process():
        last = {key: round(values[-1], 4) for key, values in history.epochs.items()}
        print(f"{processes} process(es), global batch {processes * args.batch_size}: {last}")
        print(f"test accuracy {last['val_accuracy']:.3f} after {history.num_steps} steps")


if __name__ == "__main__":
    torch.set_num_threads(1)  # one thread per process: the processes share the cores
    main()
