"""dlcourse.machinery.kernel_client: waits for a kernel's messages in slices of at most a second."""

from __future__ import annotations

import asyncio
import time
from queue import Empty
from typing import Any

import pytest
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.manager import AsyncKernelManager

from dlcourse.machinery import kernel_client
from dlcourse.machinery.kernel_client import SlicedPollChannel, SlicedPollClient
from dlcourse.machinery.notebooks import kernel_config


class _Missed:
    """Stands in for the base channel's one poll: a message has been there since the start,
    but its wake-up was missed, so a poll sees it only when it ends (as pyzmq's final check)."""

    def __init__(self, arrives_after: float | None) -> None:
        self.start = time.monotonic()
        self.arrives_after = arrives_after
        self.waits: list[float | None] = []

    async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:
        self.waits.append(timeout)
        assert timeout is not None, "a poll without an end: a missed wake-up would wait forever"
        await asyncio.sleep(timeout)
        if self.arrives_after is not None and time.monotonic() - self.start >= self.arrives_after:
            return {"msg_type": "execute_reply"}
        raise Empty


@pytest.fixture
def missed(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(arrives_after: float | None) -> _Missed:
        fake = _Missed(arrives_after)
        monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", fake.get_msg)
        monkeypatch.setattr(kernel_client, "POLL_SLICE_S", 0.05)
        return fake

    return install


def _get(timeout: float | None) -> tuple[Any, float]:
    channel = SlicedPollChannel.__new__(SlicedPollChannel)  # no socket: the base is stubbed
    start = time.monotonic()
    try:
        result: Any = asyncio.run(channel.get_msg(timeout=timeout))
    except Empty:
        result = Empty
    return result, time.monotonic() - start


def test_a_missed_wake_up_costs_one_slice_not_the_whole_timeout(missed: Any) -> None:
    fake = missed(arrives_after=0.0)
    result, took = _get(timeout=600)
    assert result == {"msg_type": "execute_reply"} and took < 1.0
    assert fake.waits == [0.05]


def test_no_timeout_polls_in_slices_until_the_message_comes(missed: Any) -> None:
    fake = missed(arrives_after=0.2)
    result, _ = _get(timeout=None)
    assert result == {"msg_type": "execute_reply"}
    assert len(fake.waits) >= 4 and set(fake.waits) == {0.05}


def test_the_timeout_keeps_its_meaning(missed: Any) -> None:
    fake = missed(arrives_after=None)
    result, took = _get(timeout=0.3)
    assert result is Empty and 0.3 <= took < 0.6
    assert all(w is not None and w <= 0.05 for w in fake.waits) and fake.waits[-1] < 0.05 + 1e-9


def test_notebooks_execute_uses_the_sliced_client(tmp_path: Any) -> None:
    client = AsyncKernelManager(config=kernel_config(str(tmp_path))).client()
    assert isinstance(client, SlicedPollClient)
    for name in ("shell", "iopub", "stdin", "control"):
        assert getattr(client, f"{name}_channel_class") is SlicedPollChannel
