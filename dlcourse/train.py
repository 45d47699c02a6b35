"""The training loop: ``fit``, ``evaluate``, ``predict``, a ``History`` and the run's state.

First used in ``notebooks/00_welcome.ipynb``; every notebook that trains uses it.

::

    history = dl.train.fit(model, nn.CrossEntropyLoss(), optimizer, train_batches,
                           val=(x_val, y_val), epochs=20,
                           callbacks=[dl.callbacks.EarlyStopping("val_loss")])

One loop, written once. What it does besides training (early stopping, learning
rate schedules, gradient clipping, checkpoints, the progress bar and the live
plot) are callbacks, in :mod:`dlcourse.callbacks`, called at the loop's events
with the run's :class:`TrainState`; checkpoints and exact resumption are in
:mod:`dlcourse.checkpoint`.

Classification is recognised from the output and the labels: outputs ``(N, C)``
with integer labels ``(N,)``, or, for a label at every position of a sequence or
image, outputs ``(N, C, *)`` with labels ``(N, *)`` (what ``nn.CrossEntropyLoss``
accepts); positions labelled with the loss's ``ignore_index`` (padding) count
towards neither the loss nor the accuracy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlcourse import checkpoint
from dlcourse.callbacks import (  # noqa: F401  (also reachable as dl.train.X, as before)
    Callback,
    Checkpoint,
    EarlyStopping,
    GradientClipping,
    GradNormRecorder,
    LivePlot,
    LRScheduler,
    ProgressBar,
)
from dlcourse.data import Batches

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ValData = Batches | tuple[torch.Tensor, torch.Tensor] | None


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
        """``(epoch, value)`` of the best value of an epoch series."""
        values = self.epochs[key]
        pick = min if mode == "min" else max
        value = pick(values)
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


@dataclass
class TrainState:
    """One run of :func:`fit`: its objects, where it stands, and what callbacks see and change.

    Callbacks read the model, optimizer, history and position; they may set ``stop``.
    Checkpoints save and restore all of it (:mod:`dlcourse.checkpoint`).
    """

    model: nn.Module
    loss_fn: LossFn
    optimizer: torch.optim.Optimizer
    history: History
    epochs: int
    train: Iterable = ()  # the training batches
    val: ValData = None
    callbacks: list[Callback] = field(default_factory=list)  # in the order they run
    amp: bool = False  # mixed precision (CUDA)
    on_nonfinite: str = "stop"
    scaler: Any = None  # torch.amp.GradScaler with mixed precision
    epoch: int = 0  # the current epoch, counting from 0
    step: int = 0  # optimizer steps taken so far, in all epochs
    batch: int = 0  # batches done in the current epoch
    batches_per_epoch: int = 0
    loss: torch.Tensor | None = None  # the current step's loss
    stop: bool = False  # set by a callback to end training after this epoch
    interrupted: bool = False  # Ctrl-C
    # running sums of the current epoch (saved in checkpoints)
    loss_sum: float | torch.Tensor = 0.0
    correct: int | torch.Tensor = 0  # correctly classified labelled positions
    labelled: int | torch.Tensor = 0  # labelled positions (samples, or sequence steps)
    seen: int = 0  # samples
    classification: bool | None = None  # known from the first batch
    epoch_start_data: dict[str, Any] | None = None  # the batches' state when the epoch began
    time_offset: float = 0.0  # wall time of the run before a resume
    start_time: float = field(default_factory=time.perf_counter)
    pending: list[torch.Tensor] = field(default_factory=list, repr=False)  # step losses not
    pending_lr: list[float] = field(default_factory=list, repr=False)  # yet in the history

    def flush(self) -> None:
        """Copy the pending step losses into the history (one device sync)."""
        if self.pending:
            losses = torch.stack(self.pending).tolist()
            for loss, lr in zip(losses, self.pending_lr, strict=True):
                self.history.log_step(loss=loss, lr=lr)
            self.pending.clear()
            self.pending_lr.clear()

    def elapsed(self) -> float:
        """Seconds of training so far, counting the time before a resume."""
        return self.time_offset + time.perf_counter() - self.start_time

    def call(self, hook: str) -> None:
        """Run ``hook`` of every callback, in order."""
        for cb in self.callbacks:
            getattr(cb, hook)(self)


# --------------------------------------------------------------------------- checks


def _device_of(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _describe(t: torch.Tensor) -> str:
    return f"{tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}"


_CLASSIFICATION_LOSSES = (nn.CrossEntropyLoss, nn.NLLLoss)


def _compute_loss(loss_fn: LossFn, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``loss_fn(out, y)``, with a readable error for the usual label mistakes."""
    if isinstance(loss_fn, _CLASSIFICATION_LOSSES) and out.dim() == y.dim() + 1:
        name = type(loss_fn).__name__
        if y.is_floating_point():
            raise ValueError(
                f"{name} needs class indices as int64 labels of shape {_label_shape(out)}, "
                f"but the labels are {_describe(y)}: convert them with y.long()."
            )
        if out.dim() >= 3 and out.shape[2:] != y.shape[1:] and out.shape[1:-1] == y.shape[1:]:
            raise ValueError(
                f"{name} wants the classes in dimension 1, (N, C, ...), but the model's output "
                f"is {_describe(out)} for labels {_describe(y)}: the classes are last. Move "
                "them with out.movedim(-1, 1) (a sequence model's (N, L, C) becomes (N, C, L))."
            )
    regression = isinstance(loss_fn, nn.MSELoss | nn.L1Loss | nn.SmoothL1Loss | nn.HuberLoss)
    if regression and out.shape != y.shape:
        raise ValueError(
            f"{type(loss_fn).__name__}: the model's output is {_describe(out)} but the targets "
            f"are {_describe(y)}; they would broadcast to the wrong shape. Make them match, "
            "e.g. y.reshape(out.shape) or y.unsqueeze(1)."
        )
    try:
        return loss_fn(out, y)
    except (RuntimeError, ValueError, IndexError) as exc:
        raise ValueError(
            f"the loss could not be computed from the model's output {_describe(out)} and the "
            f"labels {_describe(y)}: {exc}"
        ) from exc


def _label_shape(out: torch.Tensor) -> str:
    return str(tuple(["N", *out.shape[2:]])).replace("'", "")  # (N,) or (N, L)


def _is_classification(out: torch.Tensor, y: torch.Tensor) -> bool:
    """Class scores ``(N, C, *)`` for integer labels ``(N, *)``, with more than one class."""
    return (
        not y.is_floating_point()
        and out.dim() == y.dim() + 1
        and out.shape[1] > 1
        and out.shape[0] == y.shape[0]
        and out.shape[2:] == y.shape[1:]
    )


def _hits(out: torch.Tensor, y: torch.Tensor, loss_fn: LossFn) -> tuple[torch.Tensor, torch.Tensor]:
    """``(correct, labelled)`` positions of a classification batch, as 0-d tensors.

    Positions labelled with the loss's ``ignore_index`` (padding) count in neither.
    """
    ignore = getattr(loss_fn, "ignore_index", None)
    labelled = y != ignore if ignore is not None else torch.ones_like(y, dtype=torch.bool)
    correct = (out.argmax(1) == y) & labelled
    return correct.sum(), labelled.sum()


# --------------------------------------------------------------------------- evaluate, predict


def _as_batches(data: Batches | tuple[torch.Tensor, torch.Tensor], batch_size: int) -> Iterable:
    if isinstance(data, Batches):
        return Batches(data.x, data.y, batch_size=max(batch_size, data.batch_size), shuffle=False)
    if isinstance(data, tuple | list) and len(data) == 2:
        x, y = data
        return Batches(x, y, batch_size=batch_size, shuffle=False)
    raise TypeError(f"expected Batches or an (x, y) pair of tensors, got {type(data).__name__}")


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loss_fn: LossFn,
    data: Batches | tuple[torch.Tensor, torch.Tensor],
    *,
    batch_size: int = 1024,
) -> dict[str, float]:
    """Mean loss (and accuracy, for classification) over ``data``, in eval mode.

    The loss is the mean over samples; the accuracy is over labelled positions (every
    sample, or every step of a labelled sequence). The model's train/eval mode is restored.
    """
    was_training = model.training
    model.eval()
    device = _device_of(model)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    labelled = torch.zeros((), device=device, dtype=torch.long)
    seen, classification = 0, False
    try:
        for xb, yb in _as_batches(data, batch_size):
            xb, yb = xb.to(device), yb.to(device)
            out = model(xb)
            loss_sum += _compute_loss(loss_fn, out, yb).detach() * len(xb)
            if _is_classification(out, yb):
                classification = True
                hits, count = _hits(out, yb, loss_fn)
                correct += hits
                labelled += count
            seen += len(xb)
    finally:
        model.train(was_training)
    result = {"loss": float(loss_sum) / seen}
    if classification:
        result["accuracy"] = float(correct) / max(int(labelled), 1)
    return result


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
    """The model's outputs for all of ``x``, in eval mode, batch by batch, on the model's device."""
    was_training = model.training
    model.eval()
    device = _device_of(model)
    try:
        outs = [model(x[i : i + batch_size].to(device)) for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(outs)


# --------------------------------------------------------------------------- the loop


def _check_first_batch(state: TrainState, xb: torch.Tensor, yb: torch.Tensor) -> None:
    device = _device_of(state.model)
    for name, t in (("inputs", xb), ("labels", yb)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"the training data's {name} must be tensors, got {type(t).__name__}")
        if t.device != device:
            raise ValueError(
                f"the model is on {device} but the batches' {name} are on {t.device}: "
                f"move one to the other, e.g. model.to({str(t.device)!r}) or "
                f"Batches(x, y, device={str(device)!r})"
            )


def _train_epoch(s: TrainState) -> None:
    model, optimizer = s.model, s.optimizer
    model.train()
    if isinstance(s.train, Batches):
        s.epoch_start_data = s.train.state_dict()
    skip = s.batch  # batches already done in this epoch (when resuming mid-epoch)
    loss_sum = correct = labelled = None  # running sums, kept on the device (no sync per step)
    any_batch = False
    for i, (xb, yb) in enumerate(s.train):
        any_batch = True
        if i < skip:
            continue
        if loss_sum is None:
            _check_first_batch(s, xb, yb)
            loss_sum = torch.tensor(float(s.loss_sum), device=xb.device)
            correct = torch.tensor(int(s.correct), device=xb.device)
            labelled = torch.tensor(int(s.labelled), device=xb.device)
        optimizer.zero_grad(set_to_none=True)
        if s.amp:
            with torch.autocast(device_type="cuda", dtype=torch.float16):
                out = model(xb)
                loss = _compute_loss(s.loss_fn, out, yb)
            s.scaler.scale(loss).backward()
            s.scaler.unscale_(optimizer)
        else:
            out = model(xb)
            loss = _compute_loss(s.loss_fn, out, yb)
            loss.backward()
        s.loss = loss
        s.call("on_backward_end")
        if s.amp:
            s.scaler.step(optimizer)
            s.scaler.update()
        else:
            optimizer.step()
        detached = loss.detach()
        s.pending.append(detached.float())
        s.pending_lr.append(float(optimizer.param_groups[0]["lr"]))
        loss_sum += detached.float() * len(xb)
        if s.classification is None:
            s.classification = _is_classification(out, yb)
        if s.classification:
            hits, count = _hits(out.detach(), yb, s.loss_fn)
            correct += hits
            labelled += count
        s.seen += len(xb)
        s.step += 1
        s.batch = i + 1
        s.loss_sum, s.correct, s.labelled = loss_sum, correct, labelled  # tensors until the end
        s.call("on_step_end")
    if not any_batch:
        raise ValueError("the training data yielded no batch: is the dataset empty?")
    if loss_sum is not None:
        s.loss_sum, s.correct, s.labelled = float(loss_sum), int(correct), int(labelled)


def _end_epoch(s: TrainState) -> bool:
    """Record the epoch; return False when a non-finite loss stops the run."""
    s.flush()
    steps = s.history.steps["loss"]
    first_bad = next(
        (i for i in range(len(steps) - s.batch, len(steps)) if not math.isfinite(steps[i])),
        None,
    )
    values: dict[str, float] = {
        "epoch": s.epoch,
        "step": s.step,
        "train_loss": s.loss_sum / max(s.seen, 1),
    }
    if s.classification:
        values["train_accuracy"] = s.correct / max(s.labelled, 1)
    if s.val is not None and first_bad is None:
        for key, value in evaluate(s.model, s.loss_fn, s.val).items():
            values[f"val_{key}"] = value
    values["lr"] = float(s.optimizer.param_groups[0]["lr"])
    values["time"] = s.elapsed()
    s.history.log_epoch(**values)
    s.batch, s.loss_sum, s.correct, s.labelled, s.seen = 0, 0.0, 0, 0, 0
    if first_bad is not None:
        reason = (
            f"the loss became {steps[first_bad]} at step {first_bad + 1} (epoch {s.epoch}): "
            "training diverged. Lower the learning rate, or clip gradients "
            "(callbacks=[GradientClipping(1.0)])."
        )
        if s.on_nonfinite == "raise":
            raise FloatingPointError(reason)
        if s.on_nonfinite == "stop":
            s.history.stop_reason = reason
            print(f"Stopped: {reason}")
            return False
    return True


def _run(s: TrainState) -> History:
    s.batches_per_epoch = len(s.train) if hasattr(s.train, "__len__") else 0
    s.call("on_fit_start")
    try:
        while s.epoch < s.epochs and not s.stop:
            s.call("on_epoch_start")
            _train_epoch(s)
            if not _end_epoch(s):
                break
            s.call("on_epoch_end")
            s.epoch += 1
    except KeyboardInterrupt:
        s.interrupted = True
        s.flush()
        s.history.stop_reason = (
            f"interrupted (Ctrl-C) in epoch {s.epoch} after {s.step} steps; the model and "
            "history are as they stood"
        )
        print(s.history.stop_reason)
    s.call("on_fit_end")
    return s.history


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    train: Batches | Iterable[tuple[torch.Tensor, torch.Tensor]],
    val: ValData = None,
    *,
    epochs: int,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    live_plot: bool = True,
    amp: bool = False,
    on_nonfinite: str = "stop",
    resume: str | Path | None = None,
    label: str = "",
) -> History:
    """Train ``model`` for ``epochs`` passes over ``train``; return the :class:`History`.

    Args:
        model: on the device the batches are on.
        loss_fn: ``loss_fn(output, target)``, e.g. ``nn.CrossEntropyLoss()``.
        optimizer: any ``torch.optim.Optimizer`` (the course's own included).
        train: a :class:`~dlcourse.data.Batches`, or any iterable of ``(x, y)`` batches.
        val: validation data, ``Batches`` or an ``(x, y)`` pair, evaluated after each epoch.
        epochs: the total number of epochs (a resumed run counts those already done).
        callbacks: :mod:`dlcourse.callbacks`; they run in their ``order``.
        progress: add a :class:`~dlcourse.callbacks.ProgressBar` (tqdm).
        live_plot: add a :class:`~dlcourse.callbacks.LivePlot` of the loss (and accuracy);
            one static figure when headless.
        amp: mixed precision (float16 autocast with gradient scaling); CUDA only.
        on_nonfinite: when the loss becomes NaN or infinite: ``'stop'`` (print why,
            return the history), ``'raise'`` (``FloatingPointError``) or ``'continue'``.
        resume: a checkpoint written by :class:`~dlcourse.callbacks.Checkpoint` to continue from.
        label: a name for the run, shown in comparison plots.

    Ctrl-C stops training cleanly: the model and the history are returned as they stand.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if on_nonfinite not in ("stop", "raise", "continue"):
        raise ValueError(
            f"on_nonfinite must be 'stop', 'raise' or 'continue', got {on_nonfinite!r}"
        )
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    if isinstance(train, tuple):
        raise TypeError("train must yield batches: wrap the tensors, Batches(x, y, batch_size=64)")
    if isinstance(train, Batches) and train.num_samples == 0:
        raise ValueError("the training set is empty")
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks must be Callback instances, got {type(cb).__name__}")
    added: list[Callback] = []
    if progress and not any(isinstance(cb, ProgressBar) for cb in callbacks):
        added.append(ProgressBar())
    if live_plot and not any(isinstance(cb, LivePlot) for cb in callbacks):
        added.append(LivePlot())
    device = _device_of(model)
    scaler = None
    if amp:
        if device.type != "cuda":
            raise ValueError(f"amp=True (mixed precision) needs CUDA; the model is on {device}")
        scaler = torch.amp.GradScaler("cuda")
    state = TrainState(
        model=model,
        loss_fn=loss_fn,
        optimizer=optimizer,
        history=History(label=label),
        epochs=epochs,
        train=train,
        val=val,
        callbacks=sorted([*callbacks, *added], key=lambda cb: cb.order),  # stable: ties keep
        amp=amp,  # the order they were given
        on_nonfinite=on_nonfinite,
        scaler=scaler,
    )
    if resume is not None:
        checkpoint.restore(state, checkpoint.read(resume))
        state.history.label = label or state.history.label
    return _run(state)
