"""The device-resident batch iterator against torch's DataLoader, per epoch (issue: >= 20x).

Data the size of MNIST-1D (4,000 sequences of 40 floats, 10 classes), batch
size 100, shuffled; DataLoader with its default settings (no workers).
"""

from __future__ import annotations

import argparse

import torch
from _common import paired_seconds, report
from torch.utils.data import DataLoader, TensorDataset

from dlcourse.data import Batches


def run(repeats: int) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 40, generator=gen)
    y = torch.randint(0, 10, (4000,), generator=gen)
    ours = Batches(x, y, batch_size=100, seed=0)
    loader = DataLoader(TensorDataset(x, y), batch_size=100, shuffle=True)

    def epoch(iterable) -> None:
        for _xb, _yb in iterable:
            pass

    t_ours, t_loader = paired_seconds(lambda: epoch(ours), lambda: epoch(loader), repeats=repeats)
    report("Batches vs DataLoader, one epoch", t_ours, t_loader, target=">= 20x faster")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    run(parser.parse_args().repeats)
