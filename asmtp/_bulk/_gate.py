"""Who holds a pooled connection, who waits, and whose message rides on whose connection.

At most ``limit`` callers hold a connection at once; the others queue, first come first
served. A holder may take queued jobs into its connection's batch; their owners keep
waiting until the job is done, and are woken with its own result. A :class:`Tracker`
follows one message across its attempts, so a send abandoned midway can say what became
of it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import anyio

from .._client import ConnectionWatch, OnProgress, Outgoing, Session
from .._results import SendOutcome, SendResult

__all__ = ["Gate", "Job", "Tracker"]

_Waiter = asyncio.Future[None] | anyio.Event


def _wake(waiter: _Waiter) -> None:
    """Wake the job's owner; a future its cancelled owner no longer awaits stays as is."""
    if isinstance(waiter, asyncio.Future):
        if not waiter.done():
            waiter.set_result(None)
    else:
        waiter.set()


class Job:
    """One attempt at one message: queued, then run alone or in some connection's batch."""

    __slots__ = (
        "batchable",
        "carried_before",
        "deadline",
        "done",
        "error",
        "expires",
        "fresh",
        "hook_error",
        "item",
        "on_progress",
        "on_start",
        "promoted",
        "result",
        "reused",
        "session",
        "started",
        "taken",
        "wake",
    )

    def __init__(
        self,
        item: Outgoing,
        *,
        batchable: bool,
        deadline: float | None,
        expires: float,
        on_start: Callable[[], object] | None = None,
        fresh: bool = False,
        on_progress: OnProgress | None = None,
    ) -> None:
        self.item = item
        self.batchable = batchable
        self.deadline = deadline
        self.expires = expires  # time.monotonic() past which the send waits no longer
        self.on_start = on_start
        self.on_progress = on_progress  # the caller's upload progress callback
        self.fresh = fresh  # must run on a newly opened connection, not an idle one
        self.wake: _Waiter | None = None  # made when the job queues at the gate
        self.promoted = False  # handed a place at the gate: it runs a connection itself
        self.taken = False  # taken into another caller's batch
        self.started = False  # its first byte is about to be, or was, written
        self.done = False
        self.result: SendResult | None = None
        self.error: Exception | None = None
        self.hook_error: Exception | None = None  # on_start raised: the send was not made
        self.session: Session | None = None  # the connection it ran on, when it ran its own
        self.reused = False  # that connection came from the idle ones
        self.carried_before = 0  # messages that connection had carried before this one

    def start(self) -> None:
        """The message's first byte is about to be written: call the caller's hook.

        A hook that raises stops the send before anything of it is written.
        """
        self.started = True
        if self.on_start is not None:
            try:
                self.on_start()
            except Exception as exc:
                self.hook_error = exc
                raise

    def finish(self, result: SendResult | Exception) -> None:
        """Record the result and wake the job's owner."""
        if isinstance(result, Exception):
            self.error = result
        else:
            self.result = result
        self.done = True
        if self.wake is not None:
            _wake(self.wake)

    def outcome(self) -> SendResult:
        """The job's result, or its exception raised."""
        if self.error is not None:
            raise self.error
        assert self.result is not None  # noqa: S101 - finish() set one of the two
        return self.result

    def known_outcome(self) -> SendOutcome:
        """What can be said of this attempt now, for a send abandoned before it ended.

        Unknown (``accepted=None``) while the message may yet reach the server: its end of
        data went out unanswered, or it rides on another caller's connection.
        """
        if self.done:
            error = self.error
            if error is None:
                assert self.result is not None  # noqa: S101 - done: one of the two is set
                return self.result.outcome
            outcome = getattr(error, "outcome", None)
            return outcome if isinstance(outcome, SendOutcome) else SendOutcome(False)
        if self.session is not None and self.session.last_progress is not None and self.started:
            return self.session.last_progress.outcome()
        return SendOutcome(None if self.taken else False)


class Tracker:
    """The attempts of one send, so that a send abandoned midway can say what became of it."""

    __slots__ = ("attempts", "job")

    def __init__(self) -> None:
        self.attempts = 0
        self.job: Job | None = None

    def connection_watch(self) -> ConnectionWatch | None:
        """The observer's watch of the connection the latest attempt ran on, if known."""
        session = self.job.session if self.job is not None else None
        return session.watch if session is not None else None

    def known_outcome(self) -> SendOutcome:
        """What is known of the send now (see :meth:`Job.known_outcome`)."""
        if self.job is None:
            return SendOutcome(False, attempts=0)
        return self.job.known_outcome().with_attempts(self.attempts)


class Gate:
    """Places at the pool's connections, handed out first come, first served.

    A released place goes straight to the oldest job still queued, whose owner then runs
    a connection itself.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self._waiters: deque[Job] = deque()
        self._event_class: type[anyio.Event] | None = None  # trio's, through anyio

    async def enter(self, job: Job) -> bool:
        """Wait for a place (True) or for another holder to finish ``job`` (False).

        A ``fresh`` job, the retry of a message its worn-out connection refused, queues
        first: it came before the sends now waiting, and goes at once on a new connection.
        """
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            return True
        wake = job.wake = self._waiter()
        if job.fresh:
            self._waiters.appendleft(job)
        else:
            self._waiters.append(job)
        try:
            if isinstance(wake, asyncio.Future):
                await wake
            else:
                await wake.wait()
        except BaseException:
            if job.promoted:
                self.release()  # handed a place but cancelled: pass it on
            elif not job.taken:
                self._waiters.remove(job)
            # A taken job is on another connection's wire: it completes, unobserved.
            raise
        return job.promoted

    def _waiter(self) -> _Waiter:
        """What a queued job waits on: under asyncio a bare future. An ``anyio.Event`` there
        is an ``asyncio.Event``, its deque, a future and two coroutines more for every send
        waiting, which the garbage collector walks over and over while they wait. Under
        trio, the backend's event, its class found once: ``anyio.Event()`` finds the
        backend on every call, at several times the cost of the event itself."""
        loop = asyncio._get_running_loop()
        if loop is not None:
            return loop.create_future()
        if self._event_class is None:
            self._event_class = type(anyio.Event())
        return self._event_class()

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
            assert job.wake is not None  # noqa: S101 - a job is queued with its waiter
            _wake(job.wake)
        else:
            self.in_use -= 1
