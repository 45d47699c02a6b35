"""One optimizer step, ours against torch.optim's fastest, on ~1M parameters (target <= 1.2x).

For each optimizer of ``dlcourse.optim``: 1,052,672 float32 parameters in 8
tensors (four 1024x256 weights and their biases), gradients fixed, ``steps``
steps per timed call. The reference is the faster of torch's default
implementation (the for-loop on CPU, the ``_foreach`` path on CUDA) and
``foreach=True``; both are printed. Run on the CPU, and on CUDA when present.
"""

from __future__ import annotations

import argparse

import torch
from _common import paired_seconds, report

from dlcourse import optim

SETTINGS = {
    "SGD": {"lr": 0.01, "momentum": 0.9},
    "Adagrad": {"lr": 0.01},
    "RMSprop": {"lr": 0.01},
    "Adadelta": {},
    "Adam": {"lr": 1e-3},
    "AdamW": {"lr": 1e-3},
}


def _params(device: torch.device) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    params = []
    for _ in range(4):
        for shape in ((1024, 256), (1024,)):
            p = torch.randn(*shape, generator=gen).to(device).requires_grad_(True)
            p.grad = torch.randn(*shape, generator=gen).to(device)
            params.append(p)
    return params


def _stepper(opt: torch.optim.Optimizer, steps: int, device: torch.device):
    def run() -> None:
        for _ in range(steps):
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    return run


def run(repeats: int, steps: int, device: torch.device) -> None:
    n = sum(p.numel() for p in _params(torch.device("cpu")))
    print(f"optimizer step on {device.type}, {n:,} parameters in 8 tensors, {steps} steps per call")
    for name, kwargs in SETTINGS.items():
        ours = _stepper(getattr(optim, name)(_params(device), **kwargs), steps, device)
        default = _stepper(getattr(torch.optim, name)(_params(device), **kwargs), steps, device)
        foreach = _stepper(
            getattr(torch.optim, name)(_params(device), foreach=True, **kwargs), steps, device
        )
        t_ours, t_default = paired_seconds(ours, default, repeats=repeats)
        _, t_foreach = paired_seconds(ours, foreach, repeats=repeats)
        fastest = min(t_default, t_foreach)
        which = "default" if t_default <= t_foreach else "foreach=True"
        report(
            f"  {name:8s} vs torch ({which}; default {t_default * 1e3:.2f} ms, "
            f"foreach {t_foreach * 1e3:.2f} ms)",
            t_ours,
            fastest,
            target="<= 1.2x the time",
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    run(args.repeats, args.steps, torch.device("cpu"))
    if torch.cuda.is_available():
        run(args.repeats, args.steps, torch.device("cuda"))
