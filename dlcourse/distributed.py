"""Data parallelism: one training run in several processes, each with its share of every batch.

Not in a notebook: used by :func:`dlcourse.train.fit` when a script is started with
``torchrun --nproc-per-node N script.py`` (``examples/ddp_mnist1d.py``; ``docs/data-parallelism.md``
explains the idea). A learner's script does not change: ``fit`` finds the launcher's
environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), joins the
process group (NCCL on CUDA, gloo on the CPU), and then

- puts this process's model on its device (``cuda:LOCAL_RANK``, or the CPU under gloo) and wraps
  it in ``DistributedDataParallel``, whose backward averages the gradients across processes;
- gives each process a strided share of each pass's permutation
  (:meth:`dlcourse.data.Batches.shard`, as ``DistributedSampler`` does);
- sums the step losses, the accuracy counts and the validation sums across processes, so the
  history holds the numbers of the whole global batch and the whole validation set;
- lets only the main process (rank 0) print, draw and write checkpoints.

With no launcher (no ``WORLD_SIZE`` above 1 and no process group) :func:`join` returns ``None``
and ``fit`` is the one-process loop, unchanged.

This module imports ``torch.distributed`` only inside its functions.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = [
    "ProcessGroup",
    "all_reduce_sum",
    "barrier",
    "is_main_process",
    "join",
    "launched",
    "rank",
    "world_size",
]

_LAUNCHER_VARIABLES = ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def _initialized() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def launched() -> bool:
    """Whether this process is one of several: a process group exists, or a launcher such as
    torchrun set ``WORLD_SIZE`` above 1."""
    if _initialized():
        import torch.distributed as dist

        return dist.get_world_size() > 1
    return int(os.environ.get("WORLD_SIZE", "1") or "1") > 1


def rank() -> int:
    """This process's number among all of them, from 0 (0 with no process group)."""
    if not _initialized():
        return 0
    import torch.distributed as dist

    return dist.get_rank()


def world_size() -> int:
    """The number of processes (1 with no process group)."""
    if not _initialized():
        return 1
    import torch.distributed as dist

    return dist.get_world_size()


def is_main_process() -> bool:
    """Rank 0, or the only process: the one that prints, draws and writes files."""
    return rank() == 0


def barrier() -> None:
    """Wait until every process gets here (nothing to wait for in one process)."""
    if _initialized():
        import torch.distributed as dist

        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over every process, in place (and returned); unchanged in one process."""
    if _initialized():
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place in a data-parallel run: what :func:`join` found or set up."""

    rank: int  # this process, 0 .. world_size - 1
    world_size: int  # processes in the run
    local_rank: int  # this process among those on this machine: its GPU under NCCL
    backend: str  # 'nccl' (CUDA) or 'gloo' (CPU)
    device: torch.device  # where this process trains

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that prints, draws the progress bar and plot, writes checkpoints."""
        return self.rank == 0

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over every process (a copy on this process's device, then back)."""
        # gloo sums CPU tensors, NCCL CUDA ones: move to the group's device and back
        summed = tensor.to(self.device, copy=True)
        all_reduce_sum(summed)
        return summed.to(tensor.device)

    def main_says(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every process: one decision (say, stop now) for all of them."""
        import torch.distributed as dist

        value = torch.tensor([int(flag)], device=self.device)
        dist.broadcast(value, src=0)
        return bool(value.item())

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj`` (picklable), in rank order, on every process."""
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def align_buffers(self, model: nn.Module) -> None:
        """Give every process rank 0's buffers (batch norm's running statistics, which each
        process updates from its own share of the batch)."""
        import torch.distributed as dist

        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)

    def share(self, x: torch.Tensor) -> torch.Tensor:
        """This process's strided share of ``x``'s samples: ``x[rank::world_size]``."""
        return x[self.rank :: self.world_size]

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` wrapped in ``DistributedDataParallel``: every process starts from rank 0's
        weights, and each backward averages the gradients over the processes."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def describe(self, samples_per_batch: int) -> str:
        """One line for rank 0 to print as training starts."""
        return (
            f"data parallel: {self.world_size} processes ({self.backend}, {self.device.type}), "
            f"{samples_per_batch} samples each per step, a global batch of "
            f"{samples_per_batch * self.world_size}"
        )


def _environment() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from the launcher's variables, checked."""
    missing = [name for name in _LAUNCHER_VARIABLES if not os.environ.get(name)]
    if missing:
        raise RuntimeError(
            f"WORLD_SIZE={os.environ.get('WORLD_SIZE')} says this is one of several processes, "
            f"but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: start the "
            "script with torchrun (torchrun --nproc-per-node 2 script.py), which sets them all, "
            "or unset WORLD_SIZE to train in one process"
        )
    try:
        values = tuple(int(os.environ[name]) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    except ValueError as exc:
        raise RuntimeError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers: {exc}") from exc
    return values  # type: ignore[return-value]


def _device_for(backend: str, local_rank: int) -> torch.device:
    if backend != "nccl":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError(
            "the process group uses NCCL, which needs CUDA, but torch sees no GPU: use gloo "
            "on the CPU (torch.distributed.init_process_group('gloo'), or let fit choose)"
        )
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise RuntimeError(
            f"this is process {local_rank} on this machine, but it has {count} GPU(s): start "
            f"at most {count} processes per machine (torchrun --nproc-per-node {count}), or "
            "hide the GPUs (CUDA_VISIBLE_DEVICES=) to train on the CPU with gloo"
        )
    return torch.device("cuda", local_rank)


def join() -> ProcessGroup | None:
    """This process's :class:`ProcessGroup`, or ``None`` when it is the only process.

    Uses the process group you have set up (``torch.distributed.init_process_group``), or
    sets one up from the launcher's environment: NCCL when torch sees a GPU, gloo otherwise
    (it is destroyed when the process exits). Under NCCL, this process's GPU is
    ``cuda:LOCAL_RANK``, made the current one.
    """
    import torch.distributed as dist

    env_world = int(os.environ.get("WORLD_SIZE", "1") or "1")
    if not dist.is_available():
        if env_world > 1:
            raise RuntimeError(
                "WORLD_SIZE > 1 but this torch has no torch.distributed: install a build with "
                "distributed support, or run one process"
            )
        return None
    if dist.is_initialized():
        world = dist.get_world_size()
        if "WORLD_SIZE" in os.environ and env_world != world:
            raise RuntimeError(
                f"WORLD_SIZE={env_world} in the environment, but the process group has {world} "
                "processes: set up the group with the launcher's WORLD_SIZE (or unset it)"
            )
        if world == 1:
            return None
        backend = str(dist.get_backend())
        local_rank = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    else:
        if env_world <= 1:
            return None
        _, _, local_rank = _environment()
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(_device_for(backend, local_rank))
        dist.init_process_group(backend)
        atexit.register(_leave)
        world = dist.get_world_size()
    device = _device_for(backend, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return ProcessGroup(dist.get_rank(), world, local_rank, backend, device)


def _leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def strided_counts(num_samples: int, world: int, *, drop_last: bool) -> tuple[int, int]:
    """``(per_process, padded)``: how many samples each of ``world`` processes gets, and how many
    are repeated from the start of the permutation to make the shares equal (0 under
    ``drop_last``, which drops the ``num_samples % world`` last ones instead)."""
    if drop_last:
        return num_samples // world, 0
    per_process = -(-num_samples // world)  # ceil
    return per_process, per_process * world - num_samples


def shares_of(order: torch.Tensor, rank: int, world: int, *, drop_last: bool) -> torch.Tensor:
    """Process ``rank``'s strided share of a pass's permutation ``order`` (``DistributedSampler``'s
    rule): padded by repeating its start, or cut to a multiple of ``world`` under ``drop_last``."""
    per_process, padded = strided_counts(len(order), world, drop_last=drop_last)
    if padded:
        repeats = -(-padded // len(order))
        order = torch.cat([order, order.repeat(repeats)[:padded]])  # (per_process * world,)
    return order[: per_process * world][rank::world]  # (per_process,)


def check_ranks_agree(group: ProcessGroup, values: Sequence[int], what: str) -> None:
    """Fail on every process when they do not hold the same ``values`` (say, batches per pass)."""
    gathered = group.gather(list(values))
    if any(v != gathered[0] for v in gathered):
        raise RuntimeError(
            f"the processes disagree on {what}: {gathered} (by rank). Every process must run the "
            "same script on the same data"
        )
