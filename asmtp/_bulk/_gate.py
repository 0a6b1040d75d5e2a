"""Who holds a pooled connection, who waits, and whose message rides on whose connection.

At most ``limit`` callers hold a connection at once; the others queue, first come first
served. A holder may take queued jobs into its connection's batch; their owners keep
waiting until the job is done, and are woken with its own result.
"""

from __future__ import annotations

from collections import deque

import anyio

from .._client import Outgoing, Session
from .._results import SendResult

__all__ = ["Gate", "Job"]


class Job:
    """One attempt at one message: queued, then run alone or in some connection's batch."""

    __slots__ = (
        "batchable",
        "deadline",
        "done",
        "error",
        "expires",
        "item",
        "promoted",
        "result",
        "session",
        "taken",
        "wake",
    )

    def __init__(
        self, item: Outgoing, *, batchable: bool, deadline: float | None, expires: float
    ) -> None:
        self.item = item
        self.batchable = batchable
        self.deadline = deadline
        self.expires = expires  # time.monotonic() past which the send waits no longer
        self.wake = anyio.Event()
        self.promoted = False  # handed a place at the gate: it runs a connection itself
        self.taken = False  # taken into another caller's batch
        self.done = False
        self.result: SendResult | None = None
        self.error: Exception | None = None
        self.session: Session | None = None  # the connection it ran on, when it ran alone

    def finish(self, result: SendResult | Exception) -> None:
        """Record the result and wake the job's owner."""
        if isinstance(result, Exception):
            self.error = result
        else:
            self.result = result
        self.done = True
        self.wake.set()

    def outcome(self) -> SendResult:
        """The job's result, or its exception raised."""
        if self.error is not None:
            raise self.error
        assert self.result is not None  # noqa: S101 - finish() set one of the two
        return self.result


class Gate:
    """Places at the pool's connections, handed out first come, first served.

    A released place goes straight to the oldest job still queued, whose owner then runs
    a connection itself.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self._waiters: deque[Job] = deque()

    async def enter(self, job: Job) -> bool:
        """Wait for a place (True) or for another holder to finish ``job`` (False)."""
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            return True
        self._waiters.append(job)
        try:
            await job.wake.wait()
        except BaseException:
            if job.promoted:
                self.release()  # handed a place but cancelled: pass it on
            elif not job.taken:
                self._waiters.remove(job)
            # A taken job is on another connection's wire: it completes, unobserved.
            raise
        return job.promoted

    def take(self) -> Job | None:
        """The oldest queued job, if it may join a batch; it leaves the queue."""
        if self._waiters and self._waiters[0].batchable:
            job = self._waiters.popleft()
            job.taken = True
            return job
        return None

    def release(self) -> None:
        """Give the place back: to the oldest queued job, or to the pool."""
        if self._waiters:
            job = self._waiters.popleft()  # the place changes hands; in_use is unchanged
            job.promoted = True
            job.wake.set()
        else:
            self.in_use -= 1
