"""Callbacks: what the training loop does besides training, one class each.

First used in ``notebooks/00_welcome.ipynb`` (early stopping); every notebook
that trains passes some to ``dl.train.fit(..., callbacks=[...])``.

A callback overrides the hooks it needs. They are named after the moments of
the loop (fastai's and Keras's convention), and each receives the run's
:class:`~dlcourse.train_state.TrainState`: the model, optimizer, history,
position, and the rest of the run.

===================  ==================================================
``on_fit_start``     before the first epoch (or after resuming)
``on_epoch_start``   before each epoch's first batch
``on_backward_end``  gradients are ready, before the optimizer step
``on_step_end``      after the optimizer step
``on_epoch_end``     after validation; ``state.stop = True`` ends training
``on_fit_end``       after the last epoch, after Ctrl-C, or after a stop
===================  ==================================================

A method whose name looks like a hook but is not one (``on_batch_end``,
``after_backward``) is an error when the class is defined: it would never run.

At each hook the callbacks run by their ``order``, lowest first (ties keep the
order they were given): the progress bar and live plot at 80, after the
callbacks that change the run; :class:`Checkpoint` at 100, last, so what it
saves includes what the others did at that moment (a scheduler's step, early
stopping's count). State that must survive a resume goes in ``state_dict``.

Here: :class:`EarlyStopping`, :class:`LRScheduler`, :class:`GradientClipping`,
:class:`GradNormRecorder`, :class:`Checkpoint`, and :class:`ProgressBar` and
:class:`LivePlot`, which ``fit(progress=True, live_plot=True)`` adds for you.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from dlcourse import checkpoint
from dlcourse._validate import choice, integer, number
from dlcourse.diagnostics import parameter_grad_norms
from dlcourse.train_state import TrainState

HOOKS = (
    "on_fit_start",
    "on_epoch_start",
    "on_backward_end",
    "on_step_end",
    "on_epoch_end",
    "on_fit_end",
)
_HOOK_LIKE = re.compile(r"^(on|before|after)_\w+$")


class Callback:
    """Base class: override the hooks you need (see the module docstring).

    ``order``: when this callback runs at each hook, relative to the others (lower first).
    ``main_process_only``: under torchrun, only rank 0 runs it (what it shows is once enough).
    """

    order: ClassVar[int] = 0
    main_process_only: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in vars(cls):
            if _HOOK_LIKE.match(name) and name not in HOOKS:
                close = difflib.get_close_matches(name, HOOKS, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise TypeError(
                    f"{cls.__name__}.{name} looks like a hook but is not one{hint}, so it would "
                    f"never run. The hooks are: {', '.join(HOOKS)}."
                )

    def on_fit_start(self, state: TrainState) -> None: ...
    def on_epoch_start(self, state: TrainState) -> None: ...
    def on_backward_end(self, state: TrainState) -> None: ...
    def on_step_end(self, state: TrainState) -> None: ...
    def on_epoch_end(self, state: TrainState) -> None: ...
    def on_fit_end(self, state: TrainState) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        """What must survive a resume (empty: nothing)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class EarlyStopping(Callback):
    """Stop once ``monitor`` has gone more than ``patience`` epochs without improving; restore
    the best epoch's weights (조기 종료, notebook 05).

    An epoch improves when its value beats the best so far by more than ``min_delta``.
    ``patience`` counts the epochs without improvement that are tolerated, as torch's
    ``ReduceLROnPlateau`` counts them: training stops after the ``patience + 1``-th in a row
    (``patience=0``: at the first epoch that does not improve). Keras and Lightning stop one
    epoch earlier for the same number.

    Args:
        monitor: an epoch series, e.g. ``'val_loss'`` or ``'val_accuracy'``.
        mode: ``'min'`` or ``'max'``: which direction is better.
        patience: epochs without improvement tolerated before stopping.
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
        self.monitor = monitor
        self.mode = choice(mode, "mode", ("min", "max"))
        self.patience = integer(patience, "patience", minimum=0)
        self.min_delta = number(min_delta, "min_delta", low=0)
        self.restore_best = restore_best
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
                state.history.stop_reason = self._reason(state.epoch)

    def _reason(self, epoch: int) -> str:
        """What happened, in epochs: ``self.wait`` of them in a row, ending with ``epoch``."""
        if self.wait == 1:
            epochs = f"1 epoch (epoch {epoch})"
        else:
            epochs = f"{self.wait} epochs in a row (epochs {epoch - self.wait + 1}-{epoch})"
        return (
            f"early stopping: {self.monitor} did not improve for {epochs}, more than "
            f"patience={self.patience}; the best was {self.best:.4g}, at epoch {self.best_epoch}"
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
        choice(interval, "interval", ("epoch", "step"))
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

    The norm before clipping goes into ``history.steps['grad_norm']``. Under torchrun it sees
    the global gradient: it runs after the backward, in which DDP has averaged the gradients.
    """

    def __init__(self, max_norm: float, *, norm_type: float = 2.0) -> None:
        self.max_norm = number(max_norm, "max_norm", low=0, low_open=True)
        self.norm_type = norm_type

    def on_backward_end(self, state: TrainState) -> None:
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
        self.every = integer(every, "every", minimum=1)
        self.include_bias = include_bias

    def on_backward_end(self, state: TrainState) -> None:
        if state.step % self.every:
            return
        norms = parameter_grad_norms(state.model, include_bias=self.include_bias)
        state.history.log_step(**{f"grad_norm/{name}": norm for name, norm in norms.items()})


class Checkpoint(Callback):
    """Save everything needed to resume, atomically, every ``every_epochs`` and/or ``every_steps``.

    Resume with ``fit(..., resume=path)`` (see :mod:`dlcourse.checkpoint`). The file is
    replaced only once the new one is completely written, so a crash mid-save keeps the
    previous one. Runs last at every hook. Under torchrun every process runs it (saving sums
    the processes' numbers) and rank 0 alone writes the file.
    """

    order = 100

    def __init__(
        self, path: str | Path, *, every_epochs: int | None = 1, every_steps: int | None = None
    ) -> None:
        if every_epochs is None and every_steps is None:
            raise ValueError("give every_epochs or every_steps (or both)")
        if every_epochs is not None:
            every_epochs = integer(every_epochs, "every_epochs", minimum=1)
        if every_steps is not None:
            every_steps = integer(every_steps, "every_steps", minimum=1)
        self.path = Path(path)
        self.every_epochs, self.every_steps = every_epochs, every_steps

    def on_step_end(self, state: TrainState) -> None:
        if self.every_steps and state.step % self.every_steps == 0:
            checkpoint.save(state, self.path)

    def on_epoch_end(self, state: TrainState) -> None:
        if self.every_epochs and (state.epoch + 1) % self.every_epochs == 0:
            checkpoint.save(state, self.path, epoch_done=True)


class ProgressBar(Callback):
    """A progress bar over all the run's steps (tqdm), with the last epoch's losses beside it."""

    order = 80
    main_process_only = True

    def __init__(self) -> None:
        self.bar: Any = None

    def on_fit_start(self, state: TrainState) -> None:
        from tqdm.auto import tqdm

        total = state.batches_per_epoch * state.epochs or None
        self.bar = tqdm(total=total, initial=state.step, desc="training", unit="step", leave=False)

    def on_step_end(self, state: TrainState) -> None:
        self.bar.update(1)

    def on_epoch_end(self, state: TrainState) -> None:
        last = state.history.epochs
        postfix = {"loss": f"{last['train_loss'][-1]:.3g}"}
        if "val_loss" in last:
            postfix["val_loss"] = f"{last['val_loss'][-1]:.3g}"
        self.bar.set_postfix(postfix)

    def on_fit_end(self, state: TrainState) -> None:
        if self.bar is not None:
            self.bar.close()


class LivePlot(Callback):
    """The training curves, redrawn after each epoch in JupyterLab; one figure at the end
    when there is no live front end (a script, ``DLCOURSE_HEADLESS=1``). Drawn by
    :class:`dlcourse.plot.LiveFigure`."""

    order = 80
    main_process_only = True

    def __init__(self, *, min_interval: float = 0.5) -> None:
        self.min_interval = min_interval
        self.figure: Any = None

    def on_fit_start(self, state: TrainState) -> None:
        from dlcourse.plot import LiveFigure

        self.figure = LiveFigure(min_interval=self.min_interval)

    def on_epoch_end(self, state: TrainState) -> None:
        self.figure.update(state.history)

    def on_fit_end(self, state: TrainState) -> None:
        if self.figure is not None:
            self.figure.close(state.history)
