"""The training loop: ``fit``, ``evaluate`` and ``predict``.

First used in ``notebooks/00_welcome.ipynb``; every notebook that trains uses it.

::

    history = dl.train.fit(model, nn.CrossEntropyLoss(), optimizer, train_batches,
                           val=(x_val, y_val), epochs=20,
                           callbacks=[dl.callbacks.EarlyStopping("val_loss")])

One loop, written once: ``_train_epoch`` is forward, loss, backward and step for
each batch, with the bookkeeping in named helpers around it. What it does besides
training (early stopping, learning rate schedules, gradient clipping, checkpoints,
the progress bar and the live plot) are callbacks, in :mod:`dlcourse.callbacks`,
called at the loop's events with the run's :class:`~dlcourse.train_state.TrainState`
(in :mod:`dlcourse.train_state` with the :class:`History`; both can be imported from
here too); checkpoints and exact resumption are in :mod:`dlcourse.checkpoint`.

Classification is recognised from the output and the labels: outputs ``(N, C)``
with integer labels ``(N,)``, or, for a label at every position of a sequence or
image, outputs ``(N, C, *)`` with labels ``(N, *)`` (what ``nn.CrossEntropyLoss``
accepts); positions labelled with the loss's ``ignore_index`` (padding) count
towards neither the loss nor the accuracy.

Started by ``torchrun --nproc-per-node N``, ``fit`` trains one model in N processes, each on
its share of every batch (:mod:`dlcourse.distributed`; ``docs/data-parallelism.md``); the
history holds the numbers of the whole global batch, and the script does not change.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlcourse import _validate, checkpoint, distributed
from dlcourse import callbacks as _callbacks
from dlcourse.data import Batches
from dlcourse.train_state import EpochSums, History, LossFn, StepResult, TrainState, count_hits

__all__ = ["History", "TrainState", "evaluate", "fit", "predict"]

ValData = Batches | tuple[torch.Tensor, torch.Tensor] | None

# The callbacks were once reachable from here too (dl.train.EarlyStopping): they still are,
# with a DeprecationWarning that gives their home, dl.callbacks.
_MOVED_TO_CALLBACKS = frozenset(
    {
        "Callback",
        "Checkpoint",
        "EarlyStopping",
        "GradientClipping",
        "GradNormRecorder",
        "LivePlot",
        "LRScheduler",
        "ProgressBar",
    }
)


def __getattr__(name: str) -> Any:
    """``dl.train.EarlyStopping`` and the other callbacks: found in :mod:`dlcourse.callbacks`."""
    if name in _MOVED_TO_CALLBACKS:
        warnings.warn(
            f"dl.train.{name} is dl.callbacks.{name}: import it from there "
            f"(from dlcourse.callbacks import {name})",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(_callbacks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


# --------------------------------------------------------------------------- evaluate, predict


def _as_batches(data: Batches | tuple[torch.Tensor, torch.Tensor], batch_size: int) -> Iterable:
    if isinstance(data, Batches):
        return Batches(data.x, data.y, batch_size=max(batch_size, data.batch_size), shuffle=False)
    if isinstance(data, tuple | list) and len(data) == 2:
        x, y = data
        return Batches(x, y, batch_size=batch_size, shuffle=False)
    raise TypeError(f"expected Batches or an (x, y) pair of tensors, got {type(data).__name__}")


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
    loss_sum, correct, labelled, seen, classification = _evaluation_sums(
        model, loss_fn, _as_batches(data, batch_size)
    )
    result = {"loss": float(loss_sum) / seen}
    if classification:
        result["accuracy"] = float(correct) / max(int(labelled), 1)
    return result


@torch.no_grad()
def _evaluation_sums(
    model: nn.Module, loss_fn: LossFn, batches: Iterable
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, bool]:
    """``(loss_sum, correct, labelled, seen, classification)`` over ``batches``, in eval mode."""
    was_training = model.training
    model.eval()
    device = _device_of(model)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    labelled = torch.zeros((), device=device, dtype=torch.long)
    seen, classification = 0, False
    try:
        for xb, yb in batches:
            xb, yb = xb.to(device), yb.to(device)
            out = model(xb)
            loss_sum += _compute_loss(loss_fn, out, yb).detach() * len(xb)
            if _is_classification(out, yb):
                classification = True
                ignore_index = getattr(loss_fn, "ignore_index", None)
                hits, count = count_hits(out.argmax(1), yb, ignore_index)
                correct += hits
                labelled += count
            seen += len(xb)
    finally:
        model.train(was_training)
    return loss_sum, correct, labelled, seen, classification


def _validation(s: TrainState) -> dict[str, float]:
    """``evaluate`` on the validation data; under torchrun each process evaluates its strided
    share and the sums of all of them give the whole set's loss and accuracy."""
    if s.group is None:
        return evaluate(s.model, s.loss_fn, s.val)
    x, y = (s.val.x, s.val.y) if isinstance(s.val, Batches) else s.val
    x, y = s.group.share(x), s.group.share(y)
    batches = _as_batches((x, y), 1024) if len(x) else ()
    loss_sum, correct, labelled, seen, classification = _evaluation_sums(
        s.model, s.loss_fn, batches
    )
    local = [float(loss_sum), float(correct), float(labelled), seen, float(classification)]
    loss_sum, correct, labelled, seen, classification = s.group.sum(
        torch.tensor(local, dtype=torch.float64)
    ).tolist()
    result = {"loss": loss_sum / seen}
    if classification:
        result["accuracy"] = correct / max(labelled, 1)
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
    """One pass over the training data: for each batch, forward, loss, backward, step."""
    model = s.model if s.ddp is None else s.ddp  # under torchrun, DDP's wrapper: see fit
    model.train()
    for xb, yb in _batches_to_do(s):  # those not done yet, after a resume mid-epoch
        s.optimizer.zero_grad(set_to_none=True)
        with _autocast(s):  # float16 where it is safe, under amp=True; otherwise nothing
            out = model(xb)  # forward; under torchrun, backward averages the processes' gradients
            s.loss = _compute_loss(s.loss_fn, out, yb)
        _backward(s)  # s.loss.backward(), scaled under amp
        s.call("on_backward_end")
        _optimizer_step(s)  # s.optimizer.step(), through the scaler under amp
        _record_step(s, out, yb)  # the numbers wait on the device; the position moves on
        s.call("on_step_end")


def _batches_to_do(s: TrainState) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The epoch's batches, the first of them checked.

    A run resumed in the middle of an epoch draws again the batches it had done and skips
    them, so the shuffling and any random transform repeat exactly.
    """
    s.note_epoch_start()
    done = s.batch
    empty = True
    for i, (xb, yb) in enumerate(s.train):
        empty = False
        if i < done:
            continue
        if i == done:
            _check_first_batch(s, xb, yb)
        yield xb, yb
    if empty:
        raise ValueError("the training data yielded no batch: is the dataset empty?")


def _autocast(s: TrainState) -> contextlib.AbstractContextManager:
    if s.amp:
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def _backward(s: TrainState) -> None:
    if not s.amp:
        s.loss.backward()
        return
    # mixed precision: scale the loss up so small float16 gradients do not underflow to 0,
    # then scale the gradients back, so on_backward_end (clipping) sees the true ones
    s.scaler.scale(s.loss).backward()
    s.scaler.unscale_(s.optimizer)


def _optimizer_step(s: TrainState) -> None:
    if not s.amp:
        s.optimizer.step()
        return
    s.scaler.step(s.optimizer)  # skipped if a gradient overflowed...
    s.scaler.update()  # ...and then the scale is lowered


def _record_step(s: TrainState, out: torch.Tensor, yb: torch.Tensor) -> None:
    """Keep the step's loss, learning rate and predicted classes for the history and the
    epoch's sums, as tensors (reading them here would wait for the GPU every step); count it."""
    if s.classification is None:
        s.classification = _is_classification(out, yb)
    predicted, labels = (out.argmax(1), yb) if s.classification else (None, None)  # (N, *)
    lr = float(s.optimizer.param_groups[0]["lr"])
    s.pending.append(StepResult(s.loss.detach().float(), lr, len(yb), predicted, labels))
    s.position.step += 1
    s.position.batch += 1


def _end_epoch(s: TrainState) -> bool:
    """Record the epoch; return False when a non-finite loss stops the run."""
    s.flush()
    steps = s.history.steps["loss"]
    first_bad = next(
        (i for i in range(len(steps) - s.batch, len(steps)) if not math.isfinite(steps[i])),
        None,
    )
    values: dict[str, float] = {"epoch": s.epoch, "step": s.step, "train_loss": s.sums.mean_loss}
    if s.classification:
        values["train_accuracy"] = s.sums.accuracy
    if s.group is not None:  # batch norm's running statistics: rank 0's, as its checkpoint has
        s.group.align_buffers(s.model)
    if s.val is not None and first_bad is None:
        for key, value in _validation(s).items():
            values[f"val_{key}"] = value
    values["lr"] = float(s.optimizer.param_groups[0]["lr"])
    values["time"] = s.elapsed()
    s.history.log_epoch(**values)
    s.position.batch, s.sums = 0, EpochSums()
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
            if s.is_main_process:
                print(f"Stopped: {reason}")
            return False
    return True


def _run(s: TrainState) -> History:
    s.call("on_fit_start")
    try:
        while s.epoch < s.epochs and not s.stop:
            s.call("on_epoch_start")
            _train_epoch(s)
            if not _end_epoch(s):
                break
            s.call("on_epoch_end")
            if s.group is not None:  # every process stops at the same epoch: rank 0's decision
                s.stop = s.group.main_says(s.stop)
            s.epoch += 1
    except KeyboardInterrupt:
        if s.group is not None:  # torchrun stops every process; resume from a checkpoint
            raise
        s.interrupted = True
        s.flush()
        s.history.stop_reason = (
            f"interrupted (Ctrl-C) in epoch {s.epoch} after {s.step} steps; the model and "
            "history are as they stood"
        )
        if s.is_main_process:
            print(s.history.stop_reason)
    s.call("on_fit_end")
    return s.history


def _data_parallel(group: distributed.ProcessGroup, model: nn.Module, train: Iterable) -> nn.Module:
    """Under torchrun: this process's model on its device, its share of every pass of the
    batches, and the model wrapped in ``DistributedDataParallel``, which is returned."""
    model.to(group.device)
    if not isinstance(train, Batches):
        raise TypeError(
            f"under torchrun, fit shares out Batches among the processes, but train is a "
            f"{type(train).__name__}, which every process would go through whole: pass "
            "Batches(x, y, batch_size=...) (batch_size per process)"
        )
    train.shard(group.rank, group.world_size, device=group.device)
    distributed.check_ranks_agree(group, [len(train), train.num_samples], "batches and samples")
    if group.is_main:
        n, world = train.num_samples, group.world_size
        remainder = (
            f"; {train.padded} samples repeated to even out the shares (drop_last=True drops "
            "the remainder instead)"
            if train.padded
            else f"; drop_last drops {n % world} samples each pass"
            if n % world
            else ""
        )
        print(f"{group.describe(train.batch_size)}{remainder}")
    return group.wrap(model)


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    train: Batches | Iterable[tuple[torch.Tensor, torch.Tensor]],
    val: ValData = None,
    *,
    epochs: int,
    callbacks: Sequence[_callbacks.Callback] = (),
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

    Ctrl-C stops training cleanly: the model and the history are returned as they stand
    (under torchrun it stops the processes: continue from a checkpoint).

    Started by torchrun (or any launcher that sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``),
    every process runs the same script and ``fit`` trains one model with all of them: see
    :mod:`dlcourse.distributed`. ``train``'s ``batch_size`` is then each process's.
    """
    epochs = _validate.integer(epochs, "epochs", minimum=1)
    _validate.choice(on_nonfinite, "on_nonfinite", ("stop", "raise", "continue"))
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    if isinstance(train, tuple):
        raise TypeError("train must yield batches: wrap the tensors, Batches(x, y, batch_size=64)")
    if isinstance(train, Batches) and train.num_samples == 0:
        raise ValueError("the training set is empty")
    for cb in callbacks:
        if not isinstance(cb, _callbacks.Callback):
            raise TypeError(f"callbacks must be Callback instances, got {type(cb).__name__}")
    added: list[_callbacks.Callback] = []
    if progress and not any(isinstance(cb, _callbacks.ProgressBar) for cb in callbacks):
        added.append(_callbacks.ProgressBar())
    if live_plot and not any(isinstance(cb, _callbacks.LivePlot) for cb in callbacks):
        added.append(_callbacks.LivePlot())
    group = distributed.join()  # None in one process: then none of this run is distributed
    ddp = _data_parallel(group, model, train) if group is not None else None
    main = group is None or group.is_main
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
        epochs=epochs,
        train=train,
        val=val,
        # by their order; sorted() is stable, so ties keep the order they were given in
        callbacks=sorted(
            [cb for cb in [*callbacks, *added] if main or not cb.main_process_only],
            key=lambda cb: cb.order,
        ),
        on_nonfinite=on_nonfinite,
        scaler=scaler,
        history=History(label=label),
        group=group,
        ddp=ddp,
    )
    if resume is not None:
        checkpoint.restore(state, checkpoint.read(resume))
        state.history.label = label or state.history.label
    return _run(state)
