"""A Jupyter kernel client that never waits long on one poll (for ``notebooks.execute``).

Why. ``jupyter_client``'s asyncio channels wait for a kernel's message with one ``zmq.asyncio``
poll for the whole timeout (600 s a cell here). Now and then that poll misses the wake-up of a
message that has arrived; nothing looks again until the timeout fires, when pyzmq's final
non-blocking check finds the message and the run carries on as if nothing happened. Seen here
as a notebook that passed after 619 s, its kernel idle in every thread the whole time (py-spy),
and in CI as a robustness run idle for about 600 s. Polling in slices of at most
:data:`POLL_SLICE_S` seconds bounds what a missed wake-up costs to one slice; timeouts keep
their meaning.
"""

from __future__ import annotations

import time
from queue import Empty
from typing import Any

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from traitlets import Type

POLL_SLICE_S = 1.0


class SlicedPollChannel(AsyncZMQSocketChannel):
    """A channel whose ``get_msg`` polls at most :data:`POLL_SLICE_S` at a time."""

    async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = POLL_SLICE_S if deadline is None else deadline - time.monotonic()
            try:
                return await super().get_msg(timeout=min(POLL_SLICE_S, max(left, 0.0)))
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise


class SlicedPollClient(AsyncKernelClient):
    """``AsyncKernelClient`` with :class:`SlicedPollChannel` on every channel."""

    shell_channel_class = Type(SlicedPollChannel)  # type: ignore[assignment]
    iopub_channel_class = Type(SlicedPollChannel)  # type: ignore[assignment]
    stdin_channel_class = Type(SlicedPollChannel)  # type: ignore[assignment]
    control_channel_class = Type(SlicedPollChannel)  # type: ignore[assignment]
