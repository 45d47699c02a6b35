"""Convolution and pooling, forward and backward, ours against torch's (target <= 2x the time).

A training step's worth of work on CNN-sized inputs, float32: a batch of 64 MNIST-sized
images through a first layer (1 -> 16 maps, 5x5, 28x28) and a second (16 -> 32 maps, 3x3,
14x14), each forward and backward for the input, the kernel and the bias; and 2x2 max and
average pooling of 64 x 16 x 28 x 28 maps. Ours is ``dlcourse.conv`` (im2col and one matrix
product, the backward written out); the reference ``torch.nn.functional`` (oneDNN on the CPU,
cuDNN on a GPU).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from _common import paired_seconds, report, run_on_every_device

from dlcourse import conv

LAYERS = [  # name, input shape, weight shape, padding
    ("conv 1->16, 5x5, 28x28", (64, 1, 28, 28), (16, 1, 5, 5), 2),
    ("conv 16->32, 3x3, 14x14", (64, 16, 14, 14), (32, 16, 3, 3), 1),
]
POOL_SHAPE = (64, 16, 28, 28)


def _step(forward, inputs, grad, device: torch.device):
    def run() -> None:
        for t in inputs:
            t.grad = None
        forward(*inputs).backward(grad)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return run


def run(repeats: int, device: torch.device) -> None:
    gen = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(shape, generator=gen).to(device).requires_grad_(True)

    print(f"convolution and pooling on {device.type}, forward + backward, float32")
    for name, x_shape, w_shape, padding in LAYERS:
        x, w, b = randn(*x_shape), randn(*w_shape), randn(w_shape[0])
        grad = torch.randn(F.conv2d(x, w, b, padding=padding).shape, generator=gen).to(device)
        t_ours, t_ref = paired_seconds(
            _step(
                lambda x, w, b, p=padding: conv.conv2d(x, w, b, padding=p), (x, w, b), grad, device
            ),
            _step(lambda x, w, b, p=padding: F.conv2d(x, w, b, padding=p), (x, w, b), grad, device),
            repeats=repeats,
        )
        report(f"  {name} vs F.conv2d", t_ours, t_ref, target="<= 2x the time")
    x = randn(*POOL_SHAPE)
    grad = torch.randn(F.max_pool2d(x, 2).shape, generator=gen).to(device)
    for name, ours, theirs in (
        ("max_pool2d 2x2", conv.max_pool2d, F.max_pool2d),
        ("avg_pool2d 2x2", conv.avg_pool2d, F.avg_pool2d),
    ):
        t_ours, t_ref = paired_seconds(
            _step(lambda x, f=ours: f(x, 2), (x,), grad, device),
            _step(lambda x, f=theirs: f(x, 2), (x,), grad, device),
            repeats=repeats,
        )
        report(f"  {name} vs F.{name.split()[0]}", t_ours, t_ref, target="<= 2x the time")


if __name__ == "__main__":
    run_on_every_device(run, __doc__.splitlines()[0])
