"""Checkpoints: save a training run atomically, and resume it exactly.

First used through ``dl.callbacks.Checkpoint`` and ``dl.train.fit(..., resume=path)``.

A checkpoint holds everything a run needs to continue as if it had never
stopped: the model, the optimizer (and the mixed-precision scaler), every
callback's state (schedulers, early stopping), the history, the position (epoch,
step, batch within the epoch, the epoch's running sums), the random-number
generators of Python, NumPy and torch, and the batch iterator's generator as it
stood when the epoch began (the batches already done are drawn again and
skipped, so shuffling and random transforms repeat exactly). On the CPU a
resumed run is bit-identical to one that was never interrupted
(``tests/test_train.py`` kills a run with SIGKILL to check).

Files are written atomically: to a temporary file beside the target, then
renamed over it, so a crash while saving leaves the previous checkpoint intact.

The functions take the run's :class:`~dlcourse.train.TrainState`; this module
does not import the training loop.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dlcourse.machinery.atomic import write_atomically

if TYPE_CHECKING:
    from dlcourse.train import TrainState

CHECKPOINT_VERSION = 2  # 2: running sums count labelled positions (sequence outputs)


def save_atomically(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then renamed over it."""
    write_atomically(path, lambda fh: torch.save(obj, fh))


def rng_states() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's global generators (CUDA's too, if present)."""
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Put back what :func:`rng_states` captured."""
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _callback_states(state: TrainState) -> list[tuple[str, dict[str, Any]]]:
    """``(class name, state)`` of each callback that has state (a progress bar has none)."""
    found = []
    for cb in state.callbacks:
        cb_state = cb.state_dict()
        if cb_state:
            found.append((type(cb).__name__, cb_state))
    return found


def _resumable(data: Any) -> bool:
    return hasattr(data, "state_dict") and hasattr(data, "load_state_dict")


def capture(state: TrainState, *, epoch_done: bool = False) -> dict[str, Any]:
    """Everything needed to continue the run from here, as one dictionary.

    ``epoch_done``: the current epoch has ended (validated, callbacks run), so the run
    continues with the next one; otherwise it continues inside this epoch.
    """
    state.flush()
    s = state
    running = {
        "loss_sum": 0.0 if epoch_done else float(s.loss_sum),
        "correct": 0 if epoch_done else int(s.correct),
        "labelled": 0 if epoch_done else int(s.labelled),
        "seen": 0 if epoch_done else s.seen,
        "classification": s.classification,
    }
    data = None
    if _resumable(s.train):
        data = s.train.state_dict() if epoch_done else s.epoch_start_data
    return {
        "version": CHECKPOINT_VERSION,
        "model": s.model.state_dict(),
        "optimizer": s.optimizer.state_dict(),
        "scaler": s.scaler.state_dict() if s.scaler is not None else None,
        "callbacks": _callback_states(s),
        "history": s.history.as_dict(),
        "position": {
            "epoch": s.epoch + 1 if epoch_done else s.epoch,
            "step": s.step,
            "batch": 0 if epoch_done else s.batch,
        },
        "running": running,
        "rng": rng_states(),
        "batches": data,
        "time": s.elapsed(),
    }


def save(state: TrainState, path: str | Path, *, epoch_done: bool = False) -> None:
    """Write :func:`capture`'s dictionary to ``path``, atomically."""
    save_atomically(capture(state, epoch_done=epoch_done), path)


def read(path: str | Path) -> dict[str, Any]:
    """A checkpoint written by :func:`save`, checked; a clear error if it is missing or foreign."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path} to resume from")
    try:
        # To the CPU: the generators' states must stay CPU tensors, and load_state_dict
        # moves weights and optimizer state to where the model's parameters are.
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ValueError(f"{path} is not a readable checkpoint ({exc}); delete it") from exc
    if not isinstance(ckpt, dict) or ckpt.get("version") != CHECKPOINT_VERSION:
        raise ValueError(
            f"{path} is a checkpoint of another format (this is version {CHECKPOINT_VERSION}); "
            "start afresh"
        )
    return ckpt


def restore(state: TrainState, ckpt: dict[str, Any]) -> None:
    """Put the run back where :func:`capture` took it: weights, callbacks, position, generators."""
    s = state
    saved = [name for name, _ in ckpt["callbacks"]]
    current = [cb for cb in s.callbacks if cb.state_dict()]
    if saved != [type(cb).__name__ for cb in current]:
        raise ValueError(
            f"the checkpoint was saved with the callbacks {saved}, this run has "
            f"{[type(cb).__name__ for cb in current]}: resume with the same callbacks"
        )
    s.model.load_state_dict(ckpt["model"])
    s.optimizer.load_state_dict(ckpt["optimizer"])
    if s.scaler is not None and ckpt["scaler"] is not None:
        s.scaler.load_state_dict(ckpt["scaler"])
    for cb, (_, cb_state) in zip(current, ckpt["callbacks"], strict=True):
        cb.load_state_dict(cb_state)
    s.history = type(s.history).from_dict(ckpt["history"])
    pos = ckpt["position"]
    s.epoch, s.step, s.batch = pos["epoch"], pos["step"], pos["batch"]
    running = ckpt["running"]
    s.loss_sum, s.correct, s.seen = running["loss_sum"], running["correct"], running["seen"]
    s.labelled, s.classification = running["labelled"], running["classification"]
    set_rng_states(ckpt["rng"])
    if _resumable(s.train) and ckpt["batches"] is not None:
        s.train.load_state_dict(ckpt["batches"])
    s.time_offset = ckpt["time"]
