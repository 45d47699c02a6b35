"""MNIST-1D's table at full scale: the course's models and loop against torch's, then the ablation.

The benchmark is S. Greydanus, D. Kobak, "Scaling down deep learning with MNIST-1D", ICML 2024
(https://arxiv.org/abs/2011.14439): test accuracies of 32% (logistic regression), 68% (MLP),
94% (CNN) and 91% (GRU), each from one run of one recipe: Adam with learning rate 1e-2, batches
of 100, 6,000 steps on 4,000 training examples (150 epochs), scored on 1,000 test examples.

**The table.** For each of the paper's four rows, *ours* is ``dlcourse.capstone.train`` with
``Recipe(model=kind)``: the model from the course's layers (``dlcourse.conv.Conv1d``,
``dlcourse.rnn.GRU``), ``dlcourse.optim.Adam``, ``dlcourse.train.fit`` and ``Batches``. The
*reference*, measured in the same run, is the same architecture from torch's own layers
(``nn.Conv1d``, ``nn.GRU``) trained by ``torch.optim.Adam`` in the bare loop every tutorial
writes, from the same initial weights (ours' state dict loaded into it) and on the same batches
in the same order (the seed that shuffles ``Batches`` shuffles it too). The logistic regression
and the MLP are torch's ``nn.Linear`` on both sides, so their ratio measures only the training
loop (``fit``, ``Batches`` and the course's Adam against the bare loop and ``torch.optim.Adam``);
the CNN's and the GRU's add the layers' own cost. Printed per row: the paper's accuracy, ours,
torch's, both wall times (training only; the test set is scored once, after the clock stops)
and the ratio. The two accuracies differ only by rounding: the same arithmetic, in another
order, over 6,000 steps.

**The ablation.** The CNN with the course's techniques added one at a time, as notebook 08 does
(paper's recipe, + batch norm, + cosine schedule, + weight decay 5e-2 with AdamW, + shift/scale
augmentation), then each of four more alone on top of the last (Kaiming-uniform init, gradient
clipping at 1.0, dropout 0.2, early stopping with a patience of 3 epochs); and the GRU with the
two that apply to it (+ cosine schedule, + clipping at 1.0). Printed as
``dlcourse.capstone.ablation_table``: mean, spread and worst seed, the gain over the row each
builds on, the wall time.

    python benchmarks/mnist1d.py                         # everything, seed 0: several minutes
    python benchmarks/mnist1d.py --seeds 0,1,2 --only table
    python benchmarks/mnist1d.py --quick                 # one epoch per run: a smoke test

Not in ``run.py``: at full scale it takes minutes on a 2-core CPU. Times are printed, never
asserted.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Sequence

import torch
from torch import nn

from dlcourse import capstone
from dlcourse.capstone import PAPER, PAPER_BATCH, PAPER_LR, Recipe
from dlcourse.data import load_mnist1d
from dlcourse.env import seed_everything

QUICK_STEPS = 40  # one epoch of 40 batches: every row runs, the accuracies mean nothing


# --------------------------------------------------------------------------- torch's twins


class TorchCNN(nn.Module):
    """The paper's CNN from ``nn.Conv1d``, with the parameter names of ``capstone.CNN``."""

    def __init__(self, channels: int = 25) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, kernel in ((1, 5), (channels, 3), (channels, 3)):
            layers += [nn.Conv1d(c_in, channels, kernel, stride=2, padding=1), nn.ReLU()]
        self.features = nn.Sequential(*layers)  # (N, 1, 40) -> 19 -> 10 -> (N, C, 5)
        self.linear = nn.Linear(channels * 5, capstone.CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, 40)
        return self.linear(self.features(x.unsqueeze(1)).flatten(1))  # (N, 10)


class TorchGRU(nn.Module):
    """The paper's GRU from ``nn.GRU``, with the parameter names of ``capstone.GRUClassifier``."""

    def __init__(self, hidden_size: int = 6, length: int = capstone.LENGTH) -> None:
        super().__init__()
        self.gru = nn.GRU(1, hidden_size, batch_first=True, bidirectional=True)
        self.linear = nn.Linear(2 * hidden_size * length, capstone.CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, 40)
        states, _ = self.gru(x.unsqueeze(-1))  # (N, 40, 2 H)
        return self.linear(states.flatten(1))  # (N, 10)


def torch_twin(kind: str, seed: int) -> nn.Module:
    """torch's version of the paper's ``kind`` of model, with the initial weights ``train``
    gives ours for ``seed``: it seeds, then builds the model (with torch's default
    initialisation and no early stopping, nothing is drawn in between)."""
    seed_everything(seed)
    ours = capstone.paper_model(kind)
    if kind in ("logistic", "mlp"):  # nn.Linear on both sides
        return copy.deepcopy(ours)
    twin = TorchCNN() if kind == "cnn" else TorchGRU()
    twin.load_state_dict(ours.state_dict())  # strict: every name and shape must match
    return twin


def train_torch(
    kind: str, data: capstone.Data, *, seed: int, steps: int, device: torch.device
) -> tuple[float, float]:
    """The reference: torch's layers, ``torch.optim.Adam``, a bare loop over the batches
    ``Batches`` would draw for ``seed``. Returns (test accuracy, seconds of training)."""
    x, y, x_test, y_test = (t.to(device) for t in data)
    model = torch_twin(kind, seed).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=PAPER_LR)
    loss_fn = nn.CrossEntropyLoss()
    shuffle = torch.Generator().manual_seed(seed)  # as Batches(seed=seed): the same orders
    n = len(x)
    epochs = capstone.epochs_for(steps, n, PAPER_BATCH)
    model.train()
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(n, generator=shuffle).to(device)
        for i in range(0, n, PAPER_BATCH):
            index = order[i : i + PAPER_BATCH]
            opt.zero_grad()
            loss_fn(model(x[index]), y[index]).backward()
            opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    return accuracy, seconds


# --------------------------------------------------------------------------- the three parts


def _mean_sd(values: Sequence[float]) -> str:
    """Percent, with the spread over seeds when there are several."""
    text = f"{100 * statistics.fmean(values):5.1f}"
    return text + (f" ±{100 * statistics.stdev(values):3.1f}" if len(values) > 1 else "")


def table(data: capstone.Data, seeds: Sequence[int], steps: int, device: torch.device) -> None:
    """The paper's four rows: ours against torch's, same weights and batches."""
    width = 11 if len(seeds) > 1 else 5
    print(
        f"{'row':9s} {'paper':>5s}  {'ours':>{width}s}  {'torch':>{width}s}  "
        f"{'ours':>7s} {'torch':>7s}  ratio (accuracy in %, time per run)"
    )
    for kind in capstone.KINDS:
        ours = [
            capstone.train(Recipe(model=kind, steps=steps), data, seed=s, device=device)
            for s in seeds
        ]
        theirs = [train_torch(kind, data, seed=s, steps=steps, device=device) for s in seeds]
        t_ours = statistics.fmean(r.seconds for r in ours)
        t_ref = statistics.fmean(t for _, t in theirs)
        print(
            f"{kind:9s} {100 * PAPER[kind]:5.1f}  {_mean_sd([r.accuracy for r in ours]):>{width}s}"
            f"  {_mean_sd([a for a, _ in theirs]):>{width}s}  {t_ours:6.2f}s {t_ref:6.2f}s  "
            f"{t_ours / t_ref:.2f}x the time"
        )


def cnn_steps(steps: int) -> list[capstone.Step]:
    """Notebook 08's path for the CNN, then four techniques each alone on top of its end."""
    paper = Recipe(model="cnn", steps=steps)
    bn = paper.but(batch_norm=True)
    cosine = bn.but(schedule="cosine")
    decay = cosine.but(weight_decay=5e-2)
    aug = decay.but(augment=True)
    top = "+ augmentation"
    return [
        ("paper's CNN", paper),
        ("+ batch norm", bn),
        ("+ cosine schedule", cosine),
        ("+ AdamW decay 5e-2", decay),
        (top, aug),
        ("+ kaiming init", aug.but(init="kaiming_uniform"), top),
        ("+ clip 1.0", aug.but(clip=1.0), top),
        ("+ dropout 0.2", aug.but(dropout=0.2), top),
        ("+ early stopping", aug.but(early_stopping=3), top),
    ]


def gru_steps(steps: int) -> list[capstone.Step]:
    """The GRU with the techniques that apply to it: a schedule, then clipping."""
    paper = Recipe(model="gru", steps=steps)
    cosine = paper.but(schedule="cosine")
    return [
        ("paper's GRU", paper),
        ("+ cosine schedule", cosine),
        ("+ clip 1.0", cosine.but(clip=1.0)),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0", help="comma-separated, e.g. 0,1,2 (default 0)")
    parser.add_argument("--steps", type=int, default=None, help="default: the paper's 6000")
    parser.add_argument("--only", choices=("table", "ablation", "gru"), default=None)
    parser.add_argument("--device", default="cpu", help="where to train (default cpu)")
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_STEPS} steps a run: a smoke test"
    )
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds takes comma-separated integers, got {args.seeds!r}")
    if not seeds:
        parser.error("--seeds: give at least one seed")
    steps = args.steps if args.steps is not None else (QUICK_STEPS if args.quick else None)
    steps = steps if steps is not None else capstone.PAPER_STEPS
    if steps < 1:
        parser.error(f"--steps must be at least 1, got {steps}")
    device = torch.device(args.device)
    data = load_mnist1d()
    n = len(data[0])
    epochs = capstone.epochs_for(steps, n)
    print(
        f"MNIST-1D ({n} training, {len(data[2])} test examples): {epochs} epoch(s) of "
        f"{-(-n // PAPER_BATCH)} batches of {PAPER_BATCH} (~{steps} steps), Adam lr {PAPER_LR}; "
        f"seeds {seeds}; {device.type}, {torch.get_num_threads()} threads"
        + (" (quick: the accuracies mean nothing)" if args.quick else "")
    )
    start = time.perf_counter()
    if args.only in (None, "table"):
        print("\nthe paper's table: ours (the course's layers, Adam, fit, Batches) vs torch's")
        table(data, seeds, steps, device)
    if args.only in (None, "ablation"):
        print("\nthe CNN, one technique at a time (gain: over the row in 'over')")
        rows = capstone.ablation(cnn_steps(steps), data, seeds, device=device)
        print(capstone.ablation_table(rows, against=PAPER["cnn"]))
    if args.only in (None, "gru"):
        print("\nthe GRU, one technique at a time")
        rows = capstone.ablation(gru_steps(steps), data, seeds, device=device)
        print(capstone.ablation_table(rows, against=PAPER["gru"]))
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
