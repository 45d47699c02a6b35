"""Data parallelism (dlcourse.distributed; fit, Batches, checkpoints under torchrun).

The multi-process tests start two ranks on the CPU with gloo, as a launcher would (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), running tests/_ddp_script.py; one test uses
the real torchrun on examples/ddp_mnist1d.py. Every process has a timeout and its process
group is killed when a test ends, passed or not.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from dlcourse import checkpoint, distributed
from dlcourse.data import Batches
from dlcourse.train_state import TrainState

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCRIPT = HERE / "_ddp_script.py"
EXAMPLE = ROOT / "examples" / "ddp_mnist1d.py"
LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
TIMEOUT_S = 120


# --------------------------------------------------------------------------- one process


def test_without_a_launcher_there_is_no_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert distributed.join() is None and not distributed.launched()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main_process()) == (
        0,
        1,
        True,
    )
    t = torch.tensor([1.0, 2.0])
    assert torch.equal(distributed.all_reduce_sum(t), torch.tensor([1.0, 2.0]))
    distributed.barrier()  # nothing to wait for


def test_a_half_set_environment_says_to_use_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert distributed.launched()
    with pytest.raises(RuntimeError, match=r"RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT.*torchrun"):
        distributed.join()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_nccl_without_cuda_is_refused() -> None:
    with pytest.raises(RuntimeError, match=r"NCCL, which needs CUDA.*gloo"):
        distributed._device_for("nccl", 0)


def test_a_process_group_that_disagrees_with_world_size_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch.distributed as dist

    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1
    )
    try:
        assert distributed.join() is None  # a group of one: one process, as before
        monkeypatch.setenv("WORLD_SIZE", "2")
        with pytest.raises(RuntimeError, match=r"WORLD_SIZE=2 .* the process group has 1"):
            distributed.join()
    finally:
        dist.destroy_process_group()


def test_fit_under_torchrun_wants_batches() -> None:
    from dlcourse.train import _data_parallel

    group = distributed.ProcessGroup(0, 2, 0, "gloo", torch.device("cpu"))
    batches = [(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))]
    with pytest.raises(TypeError, match=r"train is a list.*pass Batches\(x, y"):
        _data_parallel(group, nn.Linear(2, 2), batches)


@pytest.mark.parametrize(
    ("n", "world", "drop_last"),
    [(10, 2, False), (10, 3, False), (10, 3, True), (7, 4, False), (3, 4, False)],
)
def test_shares_are_strided_padded_or_dropped(n: int, world: int, drop_last: bool) -> None:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    shares = [distributed.shares_of(order, r, world, drop_last=drop_last) for r in range(world)]
    per_process, padded = distributed.strided_counts(n, world, drop_last=drop_last)
    assert all(len(s) == per_process for s in shares)  # every process the same number
    together = torch.stack(shares, 1).reshape(-1)  # back in the permutation's order
    if drop_last:
        assert padded == 0 and torch.equal(together, order[: per_process * world])
    else:  # all of it, then its start repeated (DistributedSampler's padding)
        assert torch.equal(together[:n], order)
        assert torch.equal(together[n:], order.repeat(world)[:padded])


def test_sharded_batches_split_the_global_batch_of_one_process() -> None:
    """Process r's k-th batch is the r-th stride of one process's k-th batch of world x size."""
    x, y = torch.arange(40.0).reshape(20, 2), torch.arange(20)
    whole = list(Batches(x, y, 8, seed=3, drop_last=True))
    parts = []
    for r in range(2):
        b = Batches(x, y, 4, seed=3, drop_last=True)
        b.shard(r, 2)
        assert len(b) == len(whole) == 2
        parts.append(list(b))
    for k, (xb, yb) in enumerate(whole):
        assert torch.equal(yb[0::2], parts[0][k][1]) and torch.equal(yb[1::2], parts[1][k][1])
        assert torch.equal(xb[1::2], parts[1][k][0])


def test_sharded_transform_is_per_process_and_repeats() -> None:
    def noise(xb: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return xb + torch.randn(xb.shape, generator=generator)

    x, y = torch.zeros(16, 3), torch.arange(16)

    def first_pass(rank: int) -> tuple[torch.Tensor, torch.Tensor]:
        b = Batches(x, y, 8, seed=5, transform=noise)
        b.shard(rank, 2)
        state = b.state_dict()
        xb, yb = next(iter(b))
        b.load_state_dict(state)  # drawn again from the same state: the same batch
        again = next(iter(b))
        assert torch.equal(xb, again[0]) and torch.equal(yb, again[1])
        return xb, yb

    (x0, y0), (x1, y1) = first_pass(0), first_pass(1)
    assert set(y0.tolist()).isdisjoint(y1.tolist())  # different samples...
    assert not torch.equal(x0, x1)  # ...and each process its own noise
    assert torch.equal(first_pass(0)[0], x0)  # reproducible from the seed


def test_a_shard_too_small_for_a_batch_says_what_to_do() -> None:
    b = Batches(torch.zeros(10, 1), torch.zeros(10), 8, drop_last=True)
    with pytest.raises(ValueError, match=r"leave 5 each.*batch_size=8.*lower batch_size"):
        b.shard(0, 2)
    with pytest.raises(ValueError, match="rank 2 is not one of the 2"):
        Batches(torch.zeros(10, 1), torch.zeros(10), 2).shard(2, 2)


def test_a_checkpoint_of_another_process_count_is_refused() -> None:
    net = nn.Linear(2, 2)
    state = TrainState(net, nn.MSELoss(), torch.optim.SGD(net.parameters(), lr=0.1), epochs=1)
    ckpt = checkpoint.capture(state)  # one process: no rng_by_rank

    class TwoProcesses:
        world_size, rank, is_main = 2, 0, True

    state.group = TwoProcesses()
    with pytest.raises(ValueError, match=r"run of 1 process\(es\), this one has 2.*as many"):
        checkpoint.restore(state, ckpt)


# --------------------------------------------------------------------------- several processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    env.update(
        PYTHONPATH=str(ROOT),
        CUDA_VISIBLE_DEVICES="",
        OMP_NUM_THREADS="1",
        DLCOURSE_HEADLESS="1",
        **extra,
    )
    return env


def _start(args: list[str], world: int = 2) -> list[subprocess.Popen]:
    """``world`` ranks of ``python args...``, each in its own process group, as torchrun would."""
    port = str(_free_port())
    return [
        subprocess.Popen(
            [sys.executable, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env=_env(
                RANK=str(r),
                LOCAL_RANK=str(r),
                WORLD_SIZE=str(world),
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=port,
            ),
        )
        for r in range(world)
    ]


def _kill(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=30)


def _finish(procs: list[subprocess.Popen]) -> list[tuple[str, str]]:
    """Each rank's (stdout, stderr), once all have exited 0; every one killed on a failure."""
    deadline = time.monotonic() + TIMEOUT_S
    try:
        outputs = [p.communicate(timeout=max(1.0, deadline - time.monotonic())) for p in procs]
    finally:
        _kill(procs)
    for r, (p, (_, err)) in enumerate(zip(procs, outputs, strict=True)):
        assert p.returncode == 0, f"rank {r} failed:\n{err[-3000:]}"
    return outputs


def _one_process(args: list[str]) -> tuple[str, str]:
    p = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=_env(), timeout=TIMEOUT_S
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout, p.stderr


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """tests/_ddp_script.py's 'train' runs, in one process and in two, each of the two ranks'."""
    tmp = tmp_path_factory.mktemp("ddp")
    procs = _start([str(SCRIPT), "train", str(tmp / "two")])
    single = _one_process([str(SCRIPT), "train", str(tmp / "one")])  # meanwhile
    outputs = _finish(procs)
    load = lambda name: torch.load(tmp / name, weights_only=False)  # noqa: E731
    return {
        "one": load("one.rank0.pt"),
        "ranks": [load(f"two.rank{r}.pt") for r in (0, 1)],
        "outputs": outputs,
        "single_output": single,
    }


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])  # torch's SGD with momentum; dl.optim.Adam
def test_two_processes_train_the_weights_of_one_with_twice_the_batch(
    trained: dict, optimizer: str
) -> None:
    one = trained["one"][optimizer]
    for rank in trained["ranks"]:
        two = rank[optimizer]
        difference = _max_difference(one["model"], two["model"])
        print(f"{optimizer}: max |w_1 - w_2| = {difference:.2e}")
        assert difference < 1e-5
        torch.manual_seed(0)  # the script's starting weights
        start = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Dropout(0), nn.Linear(32, 3))
        assert _max_difference(one["model"], start.state_dict()) > 1e-2  # it did train
    # every process holds the same weights
    ranks = [r[optimizer]["model"] for r in trained["ranks"]]
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])


@pytest.mark.slow
def test_the_history_holds_the_global_batch_and_the_whole_validation_set(trained: dict) -> None:
    for optimizer in ("sgd", "adam"):
        one = trained["one"][optimizer]["history"]
        for rank in trained["ranks"]:
            two = rank[optimizer]["history"]
            assert len(two["steps"]["loss"]) == len(one["steps"]["loss"]) == 4 * 256 // 32
            assert two["steps"]["loss"] == pytest.approx(one["steps"]["loss"], abs=1e-5)
            assert two["steps"]["grad_norm"] == pytest.approx(one["steps"]["grad_norm"], rel=1e-4)
            for key in ("train_loss", "val_loss"):
                assert two["epochs"][key] == pytest.approx(one["epochs"][key], abs=1e-5), key
            for key in ("train_accuracy", "val_accuracy", "step", "epoch"):
                assert two["epochs"][key] == one["epochs"][key], key


@pytest.mark.slow
def test_early_stopping_stops_every_process_and_only_rank_0_writes_and_prints(
    trained: dict,
) -> None:
    one = trained["one"]["early"]["history"]
    epochs = [rank["early"]["history"]["epochs"]["epoch"] for rank in trained["ranks"]]
    assert epochs[0] == epochs[1] == one["epochs"]["epoch"] == [0, 1, 2]  # patience=1
    assert all("early stopping" in r["early"]["history"]["stop_reason"] for r in trained["ranks"])
    writes = [rank["writes"] for rank in trained["ranks"]]
    assert len(writes[0]) == 3 and writes[1] == []  # a checkpoint each epoch, by rank 0 alone
    (out0, err0), (out1, err1) = trained["outputs"]
    assert "data parallel: 2 processes (gloo, cpu), 16 samples each" in out0
    assert "global batch of 32" in out0
    assert "training" in err0  # the progress bar
    assert out1 == "" and "training" not in err1
    assert "data parallel" not in trained["single_output"][0]  # one process: as before


@pytest.mark.slow
def test_a_killed_rank_resumes_with_the_uninterrupted_weights(tmp_path: Path) -> None:
    """SIGKILL rank 1 mid-epoch, resume both from rank 0's last checkpoint: the same weights,
    dropout (each rank its own generator) and a random transform included."""
    full = _start([str(SCRIPT), "full", str(tmp_path / "full")])
    _finish(full)
    ckpt = tmp_path / "killed.ckpt"
    slow = _start([str(SCRIPT), "slow", str(tmp_path / "slow"), str(ckpt)])
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:  # a checkpoint some way into the second epoch
            if ckpt.exists() and torch.load(ckpt, weights_only=False)["position"]["step"] >= 18:
                break
            assert all(p.poll() is None for p in slow), "a rank ended before it was killed"
            time.sleep(0.05)
        os.killpg(slow[1].pid, signal.SIGKILL)  # one rank; the other cannot go on without it
        slow[1].wait(timeout=30)
        assert slow[1].returncode == -signal.SIGKILL
    finally:
        _kill(slow)
    position = torch.load(ckpt, weights_only=False)["position"]
    assert position["epoch"] == 1 and position["batch"] > 0  # mid-epoch, mid-run

    _finish(_start([str(SCRIPT), "resume", str(tmp_path / "resumed"), str(ckpt)]))
    for r in (0, 1):
        want = torch.load(tmp_path / f"full.rank{r}.pt", weights_only=False)
        got = torch.load(tmp_path / f"resumed.rank{r}.pt", weights_only=False)
        difference = _max_difference(want["model"], got["model"])
        print(f"rank {r}: max |w_full - w_resumed| = {difference}")
        for key, value in want["model"].items():
            assert torch.equal(value, got["model"][key]), key
        assert want["history"]["steps"]["loss"] == got["history"]["steps"]["loss"]
        assert want["history"]["epochs"]["val_loss"] == got["history"]["epochs"]["val_loss"]


@pytest.mark.slow
def test_the_example_runs_alone_and_under_torchrun(tmp_path: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip(f"no torchrun beside {sys.executable}")
    args = [str(EXAMPLE), "--epochs", "1"]
    launched = subprocess.Popen(
        [str(torchrun), "--nproc-per-node", "2", "--master-port", str(_free_port()), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        start_new_session=True,
    )
    out, _ = _one_process(args)
    assert "1 process(es), global batch 50" in out and "test accuracy" in out
    ((out2, err2),) = _finish([launched])
    assert out2.count("test accuracy") == 1  # rank 0 alone prints
    assert "2 process(es), global batch 100" in out2, err2[-2000:]


@pytest.mark.skipif(
    torch.cuda.device_count() < 2,
    reason=f"needs 2 GPUs for NCCL (found {torch.cuda.device_count()}); the CPU tests cover gloo",
)
@pytest.mark.slow
def test_the_example_runs_on_two_gpus_with_nccl() -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**_env(), "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "0,1")}
    launched = subprocess.Popen(
        [
            str(torchrun),
            "--nproc-per-node",
            "2",
            "--master-port",
            str(_free_port()),
            str(EXAMPLE),
            "--epochs",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    ((out, err),) = _finish([launched])
    assert "(nccl, cuda)" in out and "2 process(es), global batch 100" in out, err[-2000:]
