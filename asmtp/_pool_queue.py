"""The queue of sends waiting for one of :class:`asmtp.SMTPPool`'s connections.

A :class:`Job` is one attempt at one message; the :class:`Gate` lets at most ``limit``
callers hold a connection at once and queues the others, first come first served, from
where a holder may take them into its connection's batch. The pool decides the rest.
"""

from __future__ import annotations

import email.message
from collections import deque

import anyio

from ._batch import Outgoing
from ._client import SMTP, SendmailResult

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
        "smtp",
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
        self.result: SendmailResult = {}
        self.error: Exception | None = None
        self.smtp: SMTP | None = None  # the connection it ran on, when it ran alone

    def finish(self, result: SendmailResult | Exception) -> None:
        if isinstance(result, Exception):
            self.error = result
        else:
            self.result = result
        self.done = True
        self.wake.set()

    def outcome(self) -> SendmailResult:
        if self.error is not None:
            raise self.error
        return self.result

    async def run_alone(self, smtp: SMTP) -> SendmailResult:
        self.smtp = smtp
        item = self.item
        if item.from_headers:
            assert isinstance(item.msg, email.message.Message)  # noqa: S101 - Outgoing checks it
            return await smtp.send_message(
                item.msg,
                item.from_addr,
                item.to_addrs,
                item.mail_options,
                item.rcpt_options,
                deadline=self.deadline,
            )
        assert item.from_addr is not None and item.to_addrs is not None  # noqa: S101 - ditto
        return await smtp.sendmail(
            item.from_addr,
            item.to_addrs,
            item.msg,
            item.mail_options,
            item.rcpt_options,
            deadline=self.deadline,
        )


class Gate:
    """At most ``limit`` callers hold a connection at once; the others queue, first come first served.

    A holder may take queued jobs into its connection's batch (:meth:`take`); their owners
    keep waiting until the job is done. A released place goes straight to the oldest job
    still queued, whose owner then runs a connection itself.
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
        if self._waiters:
            job = self._waiters.popleft()  # the place changes hands; in_use is unchanged
            job.promoted = True
            job.wake.set()
        else:
            self.in_use -= 1
