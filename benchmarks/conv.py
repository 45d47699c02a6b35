"""Convolution and pooling, forward and backward, ours against torch's (target <= 2x the time).

A training step's worth of work on CNN-sized inputs, float32: a batch of 64 MNIST-sized
images through a first layer (1 -> 16 maps, 5x5, 28x28), a second (16 -> 32 maps, 3x3,
14x14) and a wider one (32 -> 64 maps, 3x3, 14x14), each forward and backward for the input,
the kernel and the bias; and 2x2 max and average pooling of 64 x 16 x 28 x 28 maps. Ours is
``dlcourse.conv`` (the fast path: im2col and one matrix product, the backward written out);
the reference ``torch.nn.functional`` (oneDNN on the CPU, cuDNN on a GPU).

For each convolution, two more lines: the definition (``fast=False``, autograd through a sum
over the windows), for the record; and the three matrix products the fast path cannot avoid
(the output, the kernel's gradient, the windows' gradient), timed alone on matrices of the same
shapes, against torch's whole step: the floor under im2col's ratio. Whatever the fast path
adds (gathering the windows, adding their gradients back, the layout copies) comes on top.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from _common import paired_seconds, report, run_on_every_device

from dlcourse import _conv_fast, conv

LAYERS = [  # name, input shape, weight shape, padding
    ("conv 1->16, 5x5, 28x28", (64, 1, 28, 28), (16, 1, 5, 5), 2),
    ("conv 16->32, 3x3, 14x14", (64, 16, 14, 14), (32, 16, 3, 3), 1),
    ("conv 32->64, 3x3, 14x14", (64, 32, 14, 14), (64, 32, 3, 3), 1),
]
POOL_SHAPE = (64, 16, 28, 28)


def _step(forward, inputs, grad, device: torch.device):
    def run() -> None:
        for t in inputs:
            t.grad = None
        forward(*inputs).backward(grad)
        _sync(device)

    return run


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _three_products(x, w, grad, device: torch.device):
    """The products of the fast path's step, on random matrices of the same shapes: the
    output ``(N Ho Wo, K) x (K, O)``, the kernel's gradient ``(O, N Ho Wo) x (N Ho Wo, K)``
    and the windows' shares ``(N Ho Wo, O) x (O, kH kW C)``, K = kH kW C."""
    o, c, kh, kw = w.shape
    rows = grad.numel() // o  # N Ho Wo
    gen = torch.Generator().manual_seed(1)
    cols = torch.randn(rows, c * kh * kw, generator=gen).to(device)
    w2 = torch.randn(o, c * kh * kw, generator=gen).to(device)
    g = torch.randn(rows, o, generator=gen).to(device)
    weight = w.detach()

    def run() -> None:
        cols @ w2.t()
        g.t() @ cols
        _conv_fast._window_shares(g, weight)
        _sync(device)

    return run


def run(repeats: int, device: torch.device) -> None:
    gen = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(shape, generator=gen).to(device).requires_grad_(True)

    threads = f", {torch.get_num_threads()} threads" if device.type == "cpu" else ""
    print(f"convolution and pooling on {device.type}{threads}, forward + backward, float32")
    for name, x_shape, w_shape, padding in LAYERS:
        x, w, b = randn(*x_shape), randn(*w_shape), randn(w_shape[0])
        grad = torch.randn(F.conv2d(x, w, b, padding=padding).shape, generator=gen).to(device)
        theirs = _step(
            lambda x, w, b, p=padding: F.conv2d(x, w, b, padding=p), (x, w, b), grad, device
        )
        for fast in (True, False):
            ours = _step(
                lambda x, w, b, p=padding, fast=fast: conv.conv2d(x, w, b, padding=p, fast=fast),
                (x, w, b),
                grad,
                device,
            )
            t_ours, t_ref = paired_seconds(ours, theirs, repeats=repeats)
            if fast:
                report(f"  {name} vs F.conv2d", t_ours, t_ref, target="<= 2x the time")
            else:
                report("    definition (fast=False)", t_ours, t_ref, target="none (readable)")
        t_mm, t_ref = paired_seconds(_three_products(x, w, grad, device), theirs, repeats=repeats)
        report("    its 3 matrix products alone", t_mm, t_ref, target="the floor under im2col")
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
