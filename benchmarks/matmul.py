"""Matrix-product throughput: the device `dl.setup` picks against the CPU (claim C0.2).

Prints GFLOP/s for several sizes and the device/CPU ratio. On a machine without
a GPU the device is the CPU and the ratio is 1.
"""

from __future__ import annotations

import argparse

import torch

import dlcourse as dl


def run(sizes: list[int], repeats: int) -> None:
    device = dl.pick_device()
    for dtype in (torch.float32, torch.float64):
        if device.type == "mps" and dtype == torch.float64:
            continue  # MPS has no float64
        for n in sizes:
            cpu = dl.benchmark.matmul_gflops("cpu", n, dtype=dtype, repeats=repeats)
            dev = dl.benchmark.matmul_gflops(device, n, dtype=dtype, repeats=repeats)
            name = str(dtype).removeprefix("torch.")
            print(
                f"{name:8s} n={n:5d}  cpu {cpu:9.1f} GFLOP/s  {device.type} {dev:9.1f} GFLOP/s"
                f"  ratio {dev / cpu:6.1f}x"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 2048])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    dl.setup(seed=0)
    run(args.sizes, args.repeats)
