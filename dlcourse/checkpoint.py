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
(``tests/test_checkpoint.py`` kills a run with SIGKILL to check).

Files are written atomically: to a temporary file beside the target, then
renamed over it, so a crash while saving leaves the previous checkpoint intact.

Under torchrun (:mod:`dlcourse.distributed`) every process takes the snapshot and
rank 0 alone writes it, with each process's generators (``rng_by_rank``), so a
run resumed with as many processes continues exactly.

What the run holds comes from :meth:`TrainState.state_dict
<dlcourse.train_state.TrainState.state_dict>` (as a model's comes from its
``state_dict``); this module adds the format's version and the generators, and
writes the file. It does not import the training loop.

The format is version 2 since running sums began to count labelled positions
(sequence outputs); a file of another version is refused with a message that says
to start afresh.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dlcourse.machinery.atomic import write_atomically
from dlcourse.train_state import TrainState

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


def capture(state: TrainState, *, epoch_done: bool = False) -> dict[str, Any]:
    """Everything needed to continue the run from here, as one dictionary: the run's
    :meth:`~dlcourse.train_state.TrainState.state_dict`, the generators' states and the version.

    ``epoch_done``: the current epoch has ended (validated, callbacks run), so the run
    continues with the next one; otherwise it continues inside this epoch.
    """
    ckpt = {
        "version": CHECKPOINT_VERSION,
        **state.state_dict(epoch_done=epoch_done),
        "rng": rng_states(),
    }
    if state.group is not None:  # under torchrun: every process's generators (dropout's, ...)
        ckpt["rng_by_rank"] = state.group.gather(ckpt["rng"])
    return ckpt


def save(state: TrainState, path: str | Path, *, epoch_done: bool = False) -> None:
    """Write :func:`capture`'s dictionary to ``path``, atomically.

    Under torchrun every process calls it (capturing sums the numbers of all of them), and
    the main process alone writes the file: the weights, optimizer and history are the same
    in every process.
    """
    ckpt = capture(state, epoch_done=epoch_done)
    if state.is_main_process:
        save_atomically(ckpt, path)


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
    version = ckpt.get("version") if isinstance(ckpt, dict) else None
    if version != CHECKPOINT_VERSION:
        raise ValueError(
            f"{path} is a checkpoint of another format (version {version!r}; this dlcourse "
            f"reads version {CHECKPOINT_VERSION}), so the run cannot continue from it: start "
            "afresh (call fit without resume=, or delete the file)"
        )
    return ckpt


def restore(state: TrainState, ckpt: dict[str, Any]) -> None:
    """Put the run back where :func:`capture` took it: weights, callbacks, position, generators."""
    state.load_state_dict(ckpt)
    if state.group is None:
        set_rng_states(ckpt["rng"])
        return
    by_rank = ckpt.get("rng_by_rank")
    if by_rank is None or len(by_rank) != state.group.world_size:
        saved = len(by_rank) if by_rank else 1
        raise ValueError(
            f"the checkpoint was written by a run of {saved} process(es), this one has "
            f"{state.group.world_size}: resume with as many processes as it was saved with "
            "(torchrun --nproc-per-node), so every process continues with its own generators"
        )
    set_rng_states(by_rank[state.group.rank])
