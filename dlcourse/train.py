"""The training loop: ``fit``, ``evaluate``, ``predict``, a ``History``, and callbacks.

First used in ``notebooks/00_welcome.ipynb``; every notebook that trains uses it.

::

    history = dl.train.fit(model, nn.CrossEntropyLoss(), optimizer, train_batches,
                           val=(x_val, y_val), epochs=20)

One loop, written once, with hooks named after the moments of the loop
(fastai's idea). A callback overrides the ones it needs:

=================  ==================================================
``on_fit_start``    before the first epoch (or after resuming)
``on_epoch_start``  before each epoch's first batch
``after_backward``  gradients are ready, before the optimizer step
``on_step_end``     after the optimizer step
``on_epoch_end``    after validation; ``state.stop = True`` ends training
``on_fit_end``      after the last epoch, after Ctrl-C, or after a stop
=================  ==================================================

Built in: :class:`EarlyStopping`, :class:`LRScheduler`, :class:`GradientClipping`,
:class:`GradNormRecorder`, :class:`Checkpoint`.

Checkpoints are written atomically (temporary file, then rename) and hold
everything needed to continue exactly: model, optimizer, callback states
(schedulers included), RNG states, history and position. ``fit(...,
resume=path)`` continues from one; on the CPU the result is bit-identical to a
run that was never interrupted (``tests/test_train.py`` kills a run with
SIGKILL to check).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dlcourse.atomic import write_atomically
from dlcourse.data import Batches
from dlcourse.diagnostics import parameter_grad_norms

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ValData = Batches | tuple[torch.Tensor, torch.Tensor] | None

CHECKPOINT_VERSION = 1


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
    """What callbacks see: the run's objects and where it stands."""

    model: nn.Module
    loss_fn: LossFn
    optimizer: torch.optim.Optimizer
    history: History
    epochs: int
    epoch: int = 0  # the current epoch, counting from 0
    step: int = 0  # optimizer steps taken so far, in all epochs
    batch: int = 0  # batches done in the current epoch
    batches_per_epoch: int = 0
    loss: torch.Tensor | None = None  # the current step's loss
    stop: bool = False  # set by a callback to end training after this epoch
    interrupted: bool = False  # Ctrl-C
    scaler: Any = None  # torch.amp.GradScaler with mixed precision
    # running sums of the current epoch (saved in checkpoints)
    loss_sum: float | torch.Tensor = 0.0
    correct: int | torch.Tensor = 0
    seen: int = 0


# --------------------------------------------------------------------------- callbacks


class Callback:
    """Base class: override the hooks you need. State to checkpoint goes in ``state_dict``."""

    def on_fit_start(self, state: TrainState) -> None: ...
    def on_epoch_start(self, state: TrainState) -> None: ...
    def after_backward(self, state: TrainState) -> None: ...
    def on_step_end(self, state: TrainState) -> None: ...
    def on_epoch_end(self, state: TrainState) -> None: ...
    def on_fit_end(self, state: TrainState) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs; restore the best weights.

    Args:
        monitor: an epoch series, e.g. ``'val_loss'`` or ``'val_accuracy'``.
        mode: ``'min'`` or ``'max'``: which direction is better.
        patience: epochs without improvement before stopping.
        min_delta: the least change that counts as an improvement.
        restore_best: load the best epoch's weights into the model at the end.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        mode: str = "min",
        patience: int = 5,
        min_delta: float = 0.0,
        restore_best: bool = True,
    ) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if patience < 0 or min_delta < 0:
            raise ValueError(f"patience and min_delta must be >= 0, got {patience}, {min_delta}")
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.min_delta, self.restore_best = min_delta, restore_best
        self.best: float | None = None
        self.best_epoch = -1
        self.wait = 0
        self.best_weights: dict[str, torch.Tensor] | None = None

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, state: TrainState) -> None:
        if self.monitor not in state.history.epochs:
            raise ValueError(
                f"EarlyStopping monitors {self.monitor!r}, which this run does not record "
                f"(it records {sorted(state.history.epochs)}); pass val=... to fit for val_* series"
            )
        value = state.history.epochs[self.monitor][-1]
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, state.epoch, 0
            if self.restore_best:
                self.best_weights = {
                    k: v.detach().clone() for k, v in state.model.state_dict().items()
                }
        else:
            self.wait += 1
            if self.wait > self.patience:
                state.stop = True
                state.history.stop_reason = (
                    f"early stopping: {self.monitor} did not improve for {self.patience} epochs "
                    f"after epoch {self.best_epoch} ({self.best:.4g})"
                )

    def on_fit_end(self, state: TrainState) -> None:
        if self.restore_best and self.best_weights is not None:
            state.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "best_weights": self.best_weights,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.wait, self.best_weights = state["wait"], state["best_weights"]


class LRScheduler(Callback):
    """Change the learning rate after every step or every epoch.

    ``scheduler`` is a ``torch.optim.lr_scheduler`` scheduler, or a plain
    function ``lr(t)`` of the step (or epoch) count, such as those in
    :mod:`dlcourse.schedules`; a function sets every parameter group's rate,
    from ``t = 0`` before the first step. ``ReduceLROnPlateau`` is stepped with
    the epoch's ``monitor`` value.
    """

    def __init__(
        self, scheduler: Any, *, interval: str = "epoch", monitor: str = "val_loss"
    ) -> None:
        if interval not in ("epoch", "step"):
            raise ValueError(f"interval must be 'epoch' or 'step', got {interval!r}")
        if not (hasattr(scheduler, "step") or callable(scheduler)):
            raise TypeError("scheduler must be a torch scheduler or a function lr(t)")
        self.scheduler, self.interval, self.monitor = scheduler, interval, monitor
        self._function = not hasattr(scheduler, "step")
        self.count = 0  # steps or epochs so far, for a function
        self._plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        if self._plateau and interval == "step":
            raise ValueError("ReduceLROnPlateau watches an epoch metric: use interval='epoch'")

    def _set(self, state: TrainState) -> None:
        lr = float(self.scheduler(self.count))
        for group in state.optimizer.param_groups:
            group["lr"] = lr

    def on_fit_start(self, state: TrainState) -> None:
        if self._function:
            self._set(state)

    def _advance(self, state: TrainState) -> None:
        if self._function:
            self.count += 1
            self._set(state)
        elif self._plateau:
            self.scheduler.step(state.history[self.monitor][-1])
        else:
            self.scheduler.step()

    def on_step_end(self, state: TrainState) -> None:
        if self.interval == "step":
            self._advance(state)

    def on_epoch_end(self, state: TrainState) -> None:
        if self.interval == "epoch":
            self._advance(state)

    def state_dict(self) -> dict[str, Any]:
        if self._function:
            return {"count": self.count}
        return {"scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self._function:
            self.count = state["count"]
        else:
            self.scheduler.load_state_dict(state["scheduler"])


class GradientClipping(Callback):
    """Rescale the gradients so their total norm is at most ``max_norm``; record the norm before.

    The norm before clipping goes into ``history.steps['grad_norm']``.
    """

    def __init__(self, max_norm: float, *, norm_type: float = 2.0) -> None:
        if not max_norm > 0:
            raise ValueError(f"max_norm must be positive, got {max_norm}")
        self.max_norm, self.norm_type = max_norm, norm_type

    def after_backward(self, state: TrainState) -> None:
        norm = nn.utils.clip_grad_norm_(
            state.model.parameters(), self.max_norm, norm_type=self.norm_type
        )
        state.history.log_step(grad_norm=float(norm))


class GradNormRecorder(Callback):
    """Record each weight's gradient norm every ``every`` steps, as ``steps['grad_norm/NAME']``.

    Shows which layers learn and which do not (vanishing gradients, notebook 02).
    Only weights by default (``include_bias=False``).
    """

    def __init__(self, *, every: int = 1, include_bias: bool = False) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.every, self.include_bias = every, include_bias

    def after_backward(self, state: TrainState) -> None:
        if state.step % self.every:
            return
        norms = parameter_grad_norms(state.model, include_bias=self.include_bias)
        state.history.log_step(**{f"grad_norm/{name}": norm for name, norm in norms.items()})


class Checkpoint(Callback):
    """Save everything needed to resume, atomically, every ``every_epochs`` and/or ``every_steps``.

    Resume with ``fit(..., resume=path)``. The file is replaced only once the
    new one is completely written, so a crash mid-save keeps the previous one.
    """

    def __init__(
        self, path: str | Path, *, every_epochs: int | None = 1, every_steps: int | None = None
    ) -> None:
        if every_epochs is None and every_steps is None:
            raise ValueError("give every_epochs or every_steps (or both)")
        for name, value in (("every_epochs", every_epochs), ("every_steps", every_steps)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.path = Path(path)
        self.every_epochs, self.every_steps = every_epochs, every_steps
        self.fit: _Fit | None = None  # set by fit()

    def on_step_end(self, state: TrainState) -> None:
        if self.every_steps and state.step % self.every_steps == 0 and self.fit is not None:
            self.fit.save(self.path)

    def on_epoch_end(self, state: TrainState) -> None:
        if self.every_epochs and (state.epoch + 1) % self.every_epochs == 0 and self.fit:
            self.fit.save(self.path, epoch_done=True)


# --------------------------------------------------------------------------- checks


def _device_of(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _describe(t: torch.Tensor) -> str:
    return f"{tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}"


def _compute_loss(loss_fn: LossFn, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``loss_fn(out, y)``, with a readable error for the usual label mistakes."""
    classification = isinstance(loss_fn, nn.CrossEntropyLoss | nn.NLLLoss)
    if classification and out.dim() == 2 and y.dim() == 1 and y.is_floating_point():
        raise ValueError(
            f"{type(loss_fn).__name__} needs class indices as int64 labels of shape (N,), "
            f"but the labels are {_describe(y)}: convert them with y.long()."
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


def _is_classification(out: torch.Tensor, y: torch.Tensor) -> bool:
    return out.dim() == 2 and y.dim() == 1 and not y.is_floating_point() and out.shape[1] > 1


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

    The model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    device = _device_of(model)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen, classification = 0, False
    try:
        for xb, yb in _as_batches(data, batch_size):
            xb, yb = xb.to(device), yb.to(device)
            out = model(xb)
            loss_sum += _compute_loss(loss_fn, out, yb).detach() * len(xb)
            if _is_classification(out, yb):
                classification = True
                correct += (out.argmax(1) == yb).sum()
            seen += len(xb)
    finally:
        model.train(was_training)
    result = {"loss": float(loss_sum) / seen}
    if classification:
        result["accuracy"] = float(correct) / seen
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


# --------------------------------------------------------------------------- fit


def _rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_atomically(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then renamed over it."""
    write_atomically(path, lambda fh: torch.save(obj, fh))


class _Fit:
    """One run of :func:`fit`: the loop, and saving/loading its position."""

    def __init__(
        self,
        state: TrainState,
        train: Iterable,
        val: ValData,
        callbacks: Sequence[Callback],
        amp: bool,
        on_nonfinite: str,
        progress: bool,
        live_plot: bool,
    ) -> None:
        self.state, self.train, self.val = state, train, val
        # Checkpoints run last at every hook, so what they save includes what the other
        # callbacks did at that moment (a scheduler's step, early stopping's count).
        self.callbacks = sorted(callbacks, key=lambda cb: isinstance(cb, Checkpoint))
        self.amp, self.on_nonfinite = amp, on_nonfinite
        self.progress, self.live_plot = progress, live_plot
        self.epoch_start_rng: dict[str, Any] | None = None  # Batches' generator at epoch start
        self.pending: list[torch.Tensor] = []  # step losses not yet copied to the history
        self.pending_lr: list[float] = []
        self.classification: bool | None = None  # known from the first batch
        self.time_offset = 0.0  # wall time of the run before a resume
        self.start_time = time.perf_counter()

    # -- checkpoints

    def _flush(self) -> None:
        """Copy pending step losses into the history (one device sync)."""
        if self.pending:
            losses = torch.stack(self.pending).tolist()
            for loss, lr in zip(losses, self.pending_lr, strict=True):
                self.state.history.log_step(loss=loss, lr=lr)
            self.pending.clear()
            self.pending_lr.clear()

    def save(self, path: Path, *, epoch_done: bool = False) -> None:
        self._flush()
        s = self.state
        position = {"epoch": s.epoch + 1 if epoch_done else s.epoch, "step": s.step}
        position["batch"] = 0 if epoch_done else s.batch
        save_atomically(
            {
                "version": CHECKPOINT_VERSION,
                "model": s.model.state_dict(),
                "optimizer": s.optimizer.state_dict(),
                "scaler": s.scaler.state_dict() if s.scaler is not None else None,
                "callbacks": [cb.state_dict() for cb in self.callbacks],
                "history": s.history.as_dict(),
                "position": position,
                "running": {
                    "loss_sum": 0.0 if epoch_done else float(s.loss_sum),
                    "correct": 0 if epoch_done else int(s.correct),
                    "seen": 0 if epoch_done else s.seen,
                    "classification": self.classification,
                },
                "rng": _rng_states(),
                "batches": None
                if not isinstance(self.train, Batches)
                else (self.train.state_dict() if epoch_done else self.epoch_start_rng),
                "time": self.time_offset + time.perf_counter() - self.start_time,
            },
            path,
        )

    def load(self, path: Path) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint at {path} to resume from")
        try:
            # Load to the CPU: the RNG states must stay CPU tensors, and load_state_dict
            # moves weights and optimizer state to where the model's parameters are.
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise ValueError(f"{path} is not a readable checkpoint ({exc}); delete it") from exc
        if ckpt.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"{path} is a checkpoint of another format version; start afresh")
        s = self.state
        s.model.load_state_dict(ckpt["model"])
        s.optimizer.load_state_dict(ckpt["optimizer"])
        if s.scaler is not None and ckpt["scaler"] is not None:
            s.scaler.load_state_dict(ckpt["scaler"])
        if len(ckpt["callbacks"]) != len(self.callbacks):
            raise ValueError(
                f"{path} was saved with {len(ckpt['callbacks'])} callbacks, this run has "
                f"{len(self.callbacks)}: resume with the same callbacks"
            )
        for cb, cb_state in zip(self.callbacks, ckpt["callbacks"], strict=True):
            cb.load_state_dict(cb_state)
        s.history = History.from_dict(ckpt["history"])
        pos = ckpt["position"]
        s.epoch, s.step, s.batch = pos["epoch"], pos["step"], pos["batch"]
        running = ckpt["running"]
        s.loss_sum, s.correct, s.seen = running["loss_sum"], running["correct"], running["seen"]
        self.classification = running["classification"]
        _set_rng_states(ckpt["rng"])
        if isinstance(self.train, Batches) and ckpt["batches"] is not None:
            self.train.load_state_dict(ckpt["batches"])
        self.time_offset = ckpt["time"]

    # -- the loop

    def _call(self, hook: str) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self.state)

    def _check_first_batch(self, xb: torch.Tensor, yb: torch.Tensor) -> None:
        device = _device_of(self.state.model)
        for name, t in (("inputs", xb), ("labels", yb)):
            if not isinstance(t, torch.Tensor):
                raise TypeError(
                    f"the training data's {name} must be tensors, got {type(t).__name__}"
                )
            if t.device != device:
                raise ValueError(
                    f"the model is on {device} but the batches' {name} are on {t.device}: "
                    f"move one to the other, e.g. model.to({str(t.device)!r}) or "
                    f"Batches(x, y, device={str(device)!r})"
                )

    def _train_epoch(self, bar: Any) -> None:
        s = self.state
        model, optimizer = s.model, s.optimizer
        model.train()
        if isinstance(self.train, Batches):
            self.epoch_start_rng = self.train.state_dict()
        skip = s.batch  # batches already done in this epoch (when resuming mid-epoch)
        loss_sum = correct = None  # running sums, kept on the device (no sync per step)
        any_batch = False
        for i, (xb, yb) in enumerate(self.train):
            any_batch = True
            if i < skip:
                continue
            if loss_sum is None:
                self._check_first_batch(xb, yb)
                loss_sum = torch.tensor(float(s.loss_sum), device=xb.device)
                correct = torch.tensor(int(s.correct), device=xb.device)
            optimizer.zero_grad(set_to_none=True)
            if self.amp:
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
            self._call("after_backward")
            if self.amp:
                s.scaler.step(optimizer)
                s.scaler.update()
            else:
                optimizer.step()
            detached = loss.detach()
            self.pending.append(detached.float())
            self.pending_lr.append(float(optimizer.param_groups[0]["lr"]))
            loss_sum += detached.float() * len(xb)
            if self.classification is None:
                self.classification = _is_classification(out, yb)
            if self.classification:
                correct += (out.detach().argmax(1) == yb).sum()
            s.seen += len(xb)
            s.step += 1
            s.batch = i + 1
            s.loss_sum, s.correct = loss_sum, correct  # kept as tensors until the epoch ends
            self._call("on_step_end")
            if bar is not None:
                bar.update(1)
        if not any_batch:
            raise ValueError("the training data yielded no batch: is the dataset empty?")
        if loss_sum is not None:
            s.loss_sum, s.correct = float(loss_sum), int(correct)

    def _end_epoch(self) -> bool:
        """Record the epoch; return False when a non-finite loss stops the run."""
        s = self.state
        self._flush()
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
        if self.classification:
            values["train_accuracy"] = s.correct / max(s.seen, 1)
        if self.val is not None and first_bad is None:
            for key, value in evaluate(s.model, s.loss_fn, self.val).items():
                values[f"val_{key}"] = value
        values["lr"] = float(s.optimizer.param_groups[0]["lr"])
        values["time"] = self.time_offset + time.perf_counter() - self.start_time
        s.history.log_epoch(**values)
        s.batch, s.loss_sum, s.correct, s.seen = 0, 0.0, 0, 0
        if first_bad is not None:
            reason = (
                f"the loss became {steps[first_bad]} at step {first_bad + 1} (epoch {s.epoch}): "
                "training diverged. Lower the learning rate, or clip gradients "
                "(callbacks=[GradientClipping(1.0)])."
            )
            if self.on_nonfinite == "raise":
                raise FloatingPointError(reason)
            if self.on_nonfinite == "stop":
                s.history.stop_reason = reason
                print(f"Stopped: {reason}")
                return False
        return True

    def run(self) -> History:
        s = self.state
        per_epoch = len(self.train) if hasattr(self.train, "__len__") else 0
        s.batches_per_epoch = per_epoch
        bar = plot = None
        if self.progress:
            from tqdm.auto import tqdm

            total = per_epoch * s.epochs if per_epoch else None
            bar = tqdm(total=total, initial=s.step, desc="training", unit="step", leave=False)
        if self.live_plot:
            from dlcourse.plot import LivePlot

            plot = LivePlot()
        self._call("on_fit_start")
        try:
            while s.epoch < s.epochs and not s.stop:
                self._call("on_epoch_start")
                self._train_epoch(bar)
                keep_going = self._end_epoch()
                if plot is not None:
                    plot.update(s.history)
                if bar is not None:
                    last = s.history.epochs
                    postfix = {"loss": f"{last['train_loss'][-1]:.3g}"}
                    if "val_loss" in last:
                        postfix["val_loss"] = f"{last['val_loss'][-1]:.3g}"
                    bar.set_postfix(postfix)
                if not keep_going:
                    break
                self._call("on_epoch_end")
                s.epoch += 1
        except KeyboardInterrupt:
            s.interrupted = True
            self._flush()
            s.history.stop_reason = (
                f"interrupted (Ctrl-C) in epoch {s.epoch} after {s.step} steps; the model and "
                "history are as they stood"
            )
            print(s.history.stop_reason)
        finally:
            if bar is not None:
                bar.close()
        self._call("on_fit_end")
        if plot is not None:
            plot.close(s.history)
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
        callbacks: see the module docstring.
        progress: show a progress bar (tqdm).
        live_plot: plot the loss (and accuracy) as training goes; one static figure
            when headless.
        amp: mixed precision (float16 autocast with gradient scaling); CUDA only.
        on_nonfinite: when the loss becomes NaN or infinite: ``'stop'`` (print why,
            return the history), ``'raise'`` (``FloatingPointError``) or ``'continue'``.
        resume: a checkpoint written by :class:`Checkpoint` to continue from.
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
        scaler=scaler,
    )
    run = _Fit(state, train, val, callbacks, amp, on_nonfinite, progress, live_plot)
    for cb in callbacks:
        if isinstance(cb, Checkpoint):
            cb.fit = run
    if resume is not None:
        run.load(Path(resume))
        state.history.label = label or state.history.label
    return run.run()
