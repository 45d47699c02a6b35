"""``fit()`` against a bare hand-written loop: same model, data and steps (target <= 1.10x).

An MLP on MNIST-1D-sized data, Adam, batch size 100, 5 epochs; ``fit`` with its
progress bar and live plot off (their cost is a display's, not the loop's), no
validation. The bare loop is the five lines every tutorial writes.
"""

from __future__ import annotations

import argparse

import torch
from _common import paired_seconds, report
from torch import nn

from dlcourse.data import Batches
from dlcourse.train import fit


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(40, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(),
                         nn.Linear(100, 10))  # fmt: skip


def run(repeats: int, epochs: int) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 40, generator=gen)
    y = torch.randint(0, 10, (4000,), generator=gen)
    loss_fn = nn.CrossEntropyLoss()

    def with_fit() -> None:
        model = _model()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        fit(model, loss_fn, opt, Batches(x, y, 100, seed=0), epochs=epochs, progress=False,
            live_plot=False)  # fmt: skip

    def bare() -> None:
        model = _model()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        batches = Batches(x, y, 100, seed=0)
        for _ in range(epochs):
            for xb, yb in batches:
                opt.zero_grad()
                loss_fn(model(xb), yb).backward()
                opt.step()

    t_fit, t_bare = paired_seconds(with_fit, bare, repeats=repeats)
    report(f"fit() vs bare loop, {epochs} epochs", t_fit, t_bare, target="<= 1.10x the time")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    run(args.repeats, args.epochs)
