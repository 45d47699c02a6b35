"""Batch normalisation, forward and backward, ours against nn.BatchNorm2d (target <= 1.5x the time).

A training step's worth of work on a CNN-sized input, ``(64, 32, 16, 16)`` float32:
the layer's forward pass, then the backward pass for the input, the scale and the shift.
Ours is ``dlcourse.norm.BatchNorm2d``, whose backward is the closed form; the naive
version (the same formula left to autograd) is timed too, for the record.
"""

from __future__ import annotations

import torch
from _common import paired_seconds, report, run_on_every_device
from torch import nn

from dlcourse import norm

SHAPE = (64, 32, 16, 16)


def _naive(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), keepdim=True, correction=0)
    return (x - mean) / torch.sqrt(var + 1e-5) * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)


def _step(forward, x: torch.Tensor, grad: torch.Tensor, device: torch.device):
    def run() -> None:
        x.grad = None
        forward(x).backward(grad)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return run


def run(repeats: int, device: torch.device) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(SHAPE, generator=gen).to(device).requires_grad_(True)
    grad = torch.randn(SHAPE, generator=gen).to(device)
    ours, theirs = norm.BatchNorm2d(SHAPE[1]).to(device), nn.BatchNorm2d(SHAPE[1]).to(device)
    weight = torch.ones(SHAPE[1], device=device, requires_grad=True)
    bias = torch.zeros(SHAPE[1], device=device, requires_grad=True)
    print(f"batch norm on {device.type}, input {SHAPE}, forward + backward")
    t_ours, t_ref = paired_seconds(
        _step(ours, x, grad, device), _step(theirs, x, grad, device), repeats=repeats
    )
    report("  BatchNorm2d vs nn.BatchNorm2d", t_ours, t_ref, target="<= 1.5x the time")
    t_naive, t_ref = paired_seconds(
        _step(lambda t: _naive(t, weight, bias), x, grad, device),
        _step(theirs, x, grad, device),
        repeats=repeats,
    )
    report("  naive autograd version vs nn.BatchNorm2d", t_naive, t_ref, target="(for the record)")


if __name__ == "__main__":
    run_on_every_device(run, __doc__.splitlines()[0])
