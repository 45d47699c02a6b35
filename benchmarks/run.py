"""Run every benchmark and print its ratios: ``python benchmarks/run.py [--quick] [--device D]``.

``--quick`` uses few repeats: it checks that the benchmarks still run (CI does
this through ``tests/test_benchmarks.py``); its numbers are too noisy to quote.
``--device cuda`` runs only the layer benchmarks, on that device (the GPU check,
``.ci/gpu``, uses it); by default the CPU-only ones run too, then the layers on
every device present.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import batches
import batchnorm
import conv
import fit_overhead
import grading
import matmul
import optimizers
import rnn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repeats: a smoke test")
    parser.add_argument(
        "--device",
        help="only the layer benchmarks, on this device (cpu, cuda, cuda:1, mps)",
    )
    args = parser.parse_args()
    quick = args.quick
    torch_threads = __import__("torch").get_num_threads()
    print(
        f"benchmarks on {torch_threads} CPU threads{' (quick: numbers are noisy)' if quick else ''}"
    )
    torch = __import__("torch")
    if args.device:
        from dlcourse.env import pick_device

        devices = [str(pick_device(args.device))]  # a readable error if it is not here
    else:
        batches.run(repeats=3 if quick else 20)
        fit_overhead.run(repeats=1 if quick else 7, epochs=1 if quick else 5)
        grading.run(notebooks=2 if quick else 8, repeats=1 if quick else 3)
        matmul.run(sizes=[128] if quick else [256, 1024, 2048], repeats=2 if quick else 5)
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        batchnorm.run(repeats=2 if quick else 30, device=torch.device(device))
        conv.run(repeats=2 if quick else 30, device=torch.device(device))
        rnn.run(repeats=1 if quick else 10, device=torch.device(device))
        optimizers.run(
            repeats=1 if quick else 7, steps=2 if quick else 10, device=torch.device(device)
        )


if __name__ == "__main__":
    main()
