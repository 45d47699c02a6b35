"""A training run's state: what :func:`dlcourse.train.fit` was given, and how far it has got.

Met in the callbacks the notebooks write: ``notebooks/04_batch_norm.ipynb``'s ``StopAt``
reads ``state.history`` and sets ``state.stop``. Every callback (:mod:`dlcourse.callbacks`)
receives the run's :class:`TrainState` at each event of the loop. It holds

- what ``fit`` was given: the model, loss function, optimizer, data, callbacks;
- what the run has done, which a checkpoint saves: the :class:`History`, the
  :class:`Position` (epoch, step, batch) and the current epoch's :class:`EpochSums`;
- the moment: the current step's ``loss``, and ``stop``, which a callback sets to
  end training after this epoch.

Like a ``torch.nn.Module``, the state has ``state_dict()`` and ``load_state_dict()``:
:mod:`dlcourse.checkpoint` writes the first to a file (with the random generators) and
puts it back with the second. This module is below the loop, the callbacks and the
checkpoints, and imports none of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn

from dlcourse._validate import choice

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = ["EpochSums", "History", "Position", "StepResult", "TrainState", "count_hits"]


# --------------------------------------------------------------------------- history


@dataclass
class History:
    """What a run measured.

    ``steps``: one value per optimizer step (``loss``, ``lr``, and whatever
    callbacks add, e.g. ``grad_norm``). ``epochs``: one value per epoch
    (``epoch``, ``step``, ``train_loss``, ``val_loss``, ``train_accuracy``,
    ``val_accuracy`` where they apply, ``lr``, ``time`` in seconds since the start).
    """

    steps: dict[str, list[float]] = field(default_factory=dict)
    epochs: dict[str, list[float]] = field(default_factory=dict)
    label: str = ""
    stop_reason: str = ""  # why training ended early ('' when it ran all epochs)

    def log_step(self, **values: float) -> None:
        for key, value in values.items():
            self.steps.setdefault(key, []).append(value)

    def log_epoch(self, **values: float) -> None:
        for key, value in values.items():
            self.epochs.setdefault(key, []).append(value)

    def __getitem__(self, key: str) -> list[float]:
        """``history['val_loss']``: an epoch series, else a step series."""
        if key in self.epochs:
            return self.epochs[key]
        if key in self.steps:
            return self.steps[key]
        known = sorted(set(self.epochs) | set(self.steps))
        raise KeyError(f"no series {key!r} in this history; it has {known}")

    def __contains__(self, key: str) -> bool:
        return key in self.epochs or key in self.steps

    @property
    def num_epochs(self) -> int:
        return len(self.epochs.get("epoch", []))

    @property
    def num_steps(self) -> int:
        return len(self.steps.get("loss", []))

    def best(self, key: str = "val_loss", mode: str = "min") -> tuple[int, float]:
        """``(epoch, value)`` of the best value of an epoch series: the lowest for
        ``mode='min'``, the highest for ``mode='max'`` (the first, on a tie)."""
        choice(mode, "mode", ("min", "max"))
        if key not in self.epochs:
            kind = "a step series, not an epoch series" if key in self.steps else "not recorded"
            raise KeyError(
                f"best() looks at an epoch series; {key!r} is {kind} in this history. "
                f"Its epoch series are {sorted(self.epochs)}"
            )
        values = self.epochs[key]
        value = min(values) if mode == "min" else max(values)
        return int(self.epochs["epoch"][values.index(value)]), value

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "epochs": self.epochs,
            "label": self.label,
            "stop_reason": self.stop_reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls(
            steps={k: list(v) for k, v in data["steps"].items()},
            epochs={k: list(v) for k, v in data["epochs"].items()},
            label=data.get("label", ""),
            stop_reason=data.get("stop_reason", ""),
        )


# --------------------------------------------------------------------------- progress


@dataclass
class Position:
    """Where a run stands."""

    epoch: int = 0  # the current epoch, counting from 0
    step: int = 0  # optimizer steps taken so far, in all epochs
    batch: int = 0  # batches done in the current epoch

    def next_epoch(self) -> Position:
        """Where the run stands once this epoch has ended: at the start of the next."""
        return Position(epoch=self.epoch + 1, step=self.step, batch=0)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "step": self.step, "batch": self.batch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.step, self.batch = state["epoch"], state["step"], state["batch"]


@dataclass
class EpochSums:
    """The current epoch's running sums, from which its ``train_loss`` and ``train_accuracy``
    come. Python numbers: the steps' tensors wait in :attr:`TrainState.pending` until a flush."""

    loss_sum: float = 0.0  # each sample's loss, summed: a batch adds its mean loss x its size
    correct: int = 0  # labelled positions classified correctly
    labelled: int = 0  # labelled positions (samples, or the steps of labelled sequences)
    seen: int = 0  # samples

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / max(self.seen, 1)

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.labelled, 1)

    def state_dict(self) -> dict[str, float | int]:
        return {
            "loss_sum": self.loss_sum,
            "correct": self.correct,
            "labelled": self.labelled,
            "seen": self.seen,
        }

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        self.loss_sum, self.seen = float(state["loss_sum"]), int(state["seen"])
        self.correct, self.labelled = int(state["correct"]), int(state["labelled"])


class StepResult(NamedTuple):
    """One optimizer step's numbers, kept as tensors until :meth:`TrainState.flush`.

    Reading a GPU tensor (``float(loss)``) waits for the GPU to finish its work; done at
    every step, that would slow training down. The labels are kept as the batch gave them
    (no copy), so a batch iterator must not overwrite a batch it has handed out.
    """

    loss: torch.Tensor  # 0-d float32: the batch's mean loss
    lr: float  # the first parameter group's learning rate at this step
    samples: int
    predicted: torch.Tensor | None  # (N, *) classes, for classification; None otherwise
    labels: torch.Tensor | None  # (N, *) the batch's labels, for classification


def count_hits(
    predicted: torch.Tensor, labels: torch.Tensor, ignore_index: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(correct, labelled)`` positions, as 0-d tensors: positions labelled ``ignore_index``
    (padding, for ``nn.CrossEntropyLoss(ignore_index=...)``) count in neither."""
    correct = predicted == labels
    if ignore_index is None:
        return correct.count_nonzero(), torch.tensor(labels.numel(), device=labels.device)
    labelled = labels != ignore_index
    return (correct & labelled).count_nonzero(), labelled.count_nonzero()


def _global_losses(group: Any, steps: list[StepResult]) -> tuple[list[float], list[int]]:
    """Each step's mean loss over the global batch, and its size: the processes' sums of
    loss x samples and of samples, divided (not a mean of their means)."""
    local = torch.stack([s.loss.double() for s in steps])  # (steps,)
    samples = torch.tensor([s.samples for s in steps], dtype=torch.float64, device=local.device)
    summed = group.sum(torch.stack([local * samples, samples]))  # (2, steps)
    return (summed[0] / summed[1]).tolist(), [int(n) for n in summed[1].tolist()]


def _resumable(data: Any) -> bool:
    """Whether the batches can say where they stand (``Batches`` can), and go back there."""
    return hasattr(data, "state_dict") and hasattr(data, "load_state_dict")


# --------------------------------------------------------------------------- the run's state


@dataclass
class TrainState:
    """One run of :func:`~dlcourse.train.fit`: what callbacks see and may change.

    Callbacks read ``model``, ``optimizer``, ``history``, ``epoch``, ``step``, ``batch``
    and ``loss``; they may set ``stop``. ``epoch``, ``step`` and ``batch`` are
    ``state.position``'s, reachable from the state itself.

    The history's step series are filled at the end of each epoch (and before a
    checkpoint), not at every step: during an epoch, the current step's loss is
    ``state.loss``.
    """

    # what fit was given
    model: nn.Module
    loss_fn: LossFn
    optimizer: torch.optim.Optimizer
    epochs: int  # the total number of epochs (a resumed run counts those already done)
    train: Iterable = ()  # the training batches
    val: Any = None  # validation data: Batches or an (x, y) pair, or None
    callbacks: list[Any] = field(default_factory=list)  # Callback objects, in the order they run
    on_nonfinite: str = "stop"  # what a NaN or infinite loss does: 'stop', 'raise', 'continue'
    scaler: Any = None  # a torch.amp.GradScaler under mixed precision (fit(amp=True))
    # under torchrun: this process's dlcourse.distributed.ProcessGroup, and the model wrapped in
    # DistributedDataParallel (its backward averages the gradients); None in one process
    group: Any = None
    ddp: nn.Module | None = None

    # what the run has done: a checkpoint saves it
    history: History = field(default_factory=History)
    position: Position = field(default_factory=Position)
    sums: EpochSums = field(default_factory=EpochSums)
    classification: bool | None = None  # count accuracy? known from the first batch

    # the moment
    loss: torch.Tensor | None = None  # the current step's loss
    stop: bool = False  # set by a callback to end training after this epoch
    interrupted: bool = False  # Ctrl-C

    # internals
    pending: list[StepResult] = field(default_factory=list, repr=False)  # not yet flushed
    data_at_epoch_start: dict[str, Any] | None = field(default=None, repr=False)
    time_before: float = 0.0  # seconds of training before a resume
    start_time: float = field(default_factory=time.perf_counter, repr=False)

    # ---- the position, as callbacks read it: state.epoch, state.step, state.batch

    @property
    def epoch(self) -> int:
        return self.position.epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self.position.epoch = value

    @property
    def step(self) -> int:
        return self.position.step

    @step.setter
    def step(self, value: int) -> None:
        self.position.step = value

    @property
    def batch(self) -> int:
        return self.position.batch

    @batch.setter
    def batch(self, value: int) -> None:
        self.position.batch = value

    @property
    def amp(self) -> bool:
        """Mixed precision: float16 autocast with a gradient scaler (CUDA)."""
        return self.scaler is not None

    @property
    def is_main_process(self) -> bool:
        """The process that prints, draws and writes checkpoints: rank 0, or the only one."""
        return self.group is None or self.group.is_main

    @property
    def batches_per_epoch(self) -> int:
        """The number of training batches in an epoch (0 when the data cannot say)."""
        return len(self.train) if hasattr(self.train, "__len__") else 0

    # ---- what the loop calls

    def call(self, hook: str) -> None:
        """Run ``hook`` of every callback, in order."""
        for cb in self.callbacks:
            getattr(cb, hook)(self)

    def note_epoch_start(self) -> None:
        """Remember where the batches stand as an epoch begins: a run resumed in the middle of
        the epoch draws them again from there (and skips those done)."""
        if _resumable(self.train):
            self.data_at_epoch_start = self.train.state_dict()

    def flush(self) -> None:
        """Copy the pending steps' numbers into the history and the epoch's sums, with one
        wait for the device for all of them."""
        if not self.pending:
            return
        steps, self.pending = self.pending, []
        losses = torch.stack([s.loss for s in steps]).tolist()
        samples = [s.samples for s in steps]
        if self.group is not None:  # the global batch's: every process's losses and samples
            losses, samples = _global_losses(self.group, steps)
        for step, loss, n in zip(steps, losses, samples, strict=True):  # in order: a resumed
            self.history.log_step(loss=loss, lr=step.lr)  # run adds the same numbers the same way
            self.sums.loss_sum += loss * n
            self.sums.seen += n
        classified = [s for s in steps if s.predicted is not None]
        if classified:  # every position of every step at once: (positions,)
            predicted = torch.cat([s.predicted.reshape(-1) for s in classified])
            labels = torch.cat([s.labels.reshape(-1) for s in classified])
            ignore_index = getattr(self.loss_fn, "ignore_index", None)
            correct, labelled = count_hits(predicted, labels, ignore_index)
            if self.group is not None:  # every process's counts
                correct, labelled = self.group.sum(torch.stack([correct, labelled]))
            self.sums.correct += int(correct)
            self.sums.labelled += int(labelled)

    def elapsed(self) -> float:
        """Seconds of training so far, counting the time before a resume."""
        return self.time_before + time.perf_counter() - self.start_time

    # ---- checkpoints

    def _stateful_callbacks(self) -> list[tuple[Any, dict[str, Any]]]:
        """``(callback, its state)`` of each callback that has state (a progress bar has none)."""
        return [(cb, cb_state) for cb in self.callbacks if (cb_state := cb.state_dict())]

    def state_dict(self, *, epoch_done: bool = False) -> dict[str, Any]:
        """Everything needed to continue the run from here (the pending steps flushed first).

        ``epoch_done``: the current epoch has ended (validated, its callbacks run), so the
        run continues with the next one; otherwise it continues inside this epoch, drawing
        the epoch's batches again from where they stood when it began.
        """
        self.flush()
        position, sums, data = self.position, self.sums, self.data_at_epoch_start
        if epoch_done:
            position, sums = position.next_epoch(), EpochSums()
            data = self.train.state_dict() if _resumable(self.train) else None
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "callbacks": [(type(cb).__name__, s) for cb, s in self._stateful_callbacks()],
            "history": self.history.as_dict(),
            "position": position.state_dict(),
            "running": {**sums.state_dict(), "classification": self.classification},
            "batches": data,
            "time": self.elapsed(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put the run back where :meth:`state_dict` took it; the callbacks must be the same."""
        saved = [name for name, _ in state["callbacks"]]
        current = [cb for cb, _ in self._stateful_callbacks()]
        if saved != [type(cb).__name__ for cb in current]:
            raise ValueError(
                f"the checkpoint was saved with the callbacks {saved}, this run has "
                f"{[type(cb).__name__ for cb in current]}: resume with the same callbacks"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        for cb, (_, cb_state) in zip(current, state["callbacks"], strict=True):
            cb.load_state_dict(cb_state)
        self.history = History.from_dict(state["history"])
        self.position.load_state_dict(state["position"])
        running = dict(state["running"])
        self.classification = running.pop("classification")
        self.sums.load_state_dict(running)
        self.pending = []
        self.data_at_epoch_start = state["batches"]
        if _resumable(self.train) and state["batches"] is not None:
            self.train.load_state_dict(state["batches"])
        self.time_before = state["time"]
