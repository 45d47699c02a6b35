"""Recurrent layers, forward and backward, ours against torch's (target for the LSTM <= 1.5x).

A batch of 64 sequences of 100 steps, 64 input features, 128 hidden units, float32: the
layer's forward pass, then the backward pass for the input and every weight. Ours is
``dlcourse.rnn``: the input projections of all steps in one matrix product, the recurrence step
by step. The LSTM and the GRU run their fused functions by default (``LSTMFunction`` and
``GRUFunction`` in ``dlcourse/_rnn_fast.py``: back-propagation through time written out); they
are measured a second time with ``fused=False``, the readable loop of ``lstm_step`` and
``gru_step`` through autograd, which is what the RNN always runs. The reference is ``torch.nn``
(oneDNN's fused RNN kernels on the CPU, cuDNN on a GPU).
"""

from __future__ import annotations

from typing import Any

import torch
from _common import paired_seconds, report, run_on_every_device
from torch import nn

from dlcourse import rnn

LENGTH, BATCH, INPUT, HIDDEN = 100, 64, 64, 128

# (layer, what ours is built with, label, target)
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("LSTM", {}, "", "<= 1.5x the time"),
    ("LSTM", {"fused": False}, " (loop)", "(for the record: the readable loop)"),
    ("GRU", {}, "", "(for the record)"),
    ("GRU", {"fused": False}, " (loop)", "(for the record: the readable loop)"),
    ("RNN", {}, "", "(for the record: the readable loop, its only path)"),
]


def _step(layer, x: torch.Tensor, grad: torch.Tensor, device: torch.device):
    def run() -> None:
        layer.zero_grad()
        x.grad = None
        layer(x)[0].backward(grad)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return run


def run(repeats: int, device: torch.device) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(LENGTH, BATCH, INPUT, generator=gen).to(device).requires_grad_(True)
    grad = torch.randn(LENGTH, BATCH, HIDDEN, generator=gen).to(device)
    print(
        f"recurrent layers on {device.type}, {BATCH} sequences of {LENGTH} steps, {INPUT} -> "
        f"{HIDDEN}, forward + backward"
    )
    for name, kwargs, label, target in CASES:
        theirs = getattr(nn, name)(INPUT, HIDDEN).to(device)
        ours = getattr(rnn, name)(INPUT, HIDDEN, **kwargs).to(device)
        ours.load_state_dict(theirs.state_dict())
        t_ours, t_ref = paired_seconds(
            _step(ours, x, grad, device), _step(theirs, x, grad, device), repeats=repeats
        )
        report(f"  {name:4s}{label} vs nn.{name}", t_ours, t_ref, target=target)


if __name__ == "__main__":
    run_on_every_device(run, __doc__.splitlines()[0], repeats=10)
