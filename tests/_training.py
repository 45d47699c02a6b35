"""Shared set-up of the training tests (test_train, test_callbacks, test_checkpoint)."""

from __future__ import annotations

import torch
from torch import nn

from dlcourse import train
from dlcourse.data import Batches, make_spirals


def classifier(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 3))


def spirals(n: int = 300) -> tuple[torch.Tensor, torch.Tensor]:
    return make_spirals(n, seed=0)


def fit(model=None, epochs=3, **kwargs) -> tuple[nn.Module, train.History]:
    model = model or classifier()
    x, y = spirals()
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
