"""The taskiq worker: a :class:`Sender` run by taskiq, one per worker process.

The sender's pool is made in taskiq's worker start-up hook and closed (QUIT) in its
shut-down hook. Each job's task sends the job's rows through the sender and, once every
outcome is written, acknowledges the job itself (``ack_type="manual"``). A job cut short
is not acknowledged and comes back later: taskiq-redis claims it, and every worker also
puts stale jobs back on the stream (:func:`requeue_stale`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

import anyio
import redis.asyncio
import redis.exceptions
from taskiq import Context, TaskiqDepends, TaskiqEvents, TaskiqState
from taskiq.api import run_receiver_task
from taskiq_redis import RedisStreamBroker

import asmtp

from ._queue import STREAM, TASK_NAME, make_broker, requeue_stale
from ._sender import Sender

__all__ = ["Worker"]

logger = logging.getLogger("asmtp.campaign")
_CONTEXT: Final[Any] = TaskiqDepends()  # taskiq fills in the running job's Context


class Worker:
    """The sending side of distributed campaigns, one per worker process.

    ``pool`` makes the process's :class:`~asmtp.SMTPPool` (called in the start-up hook);
    ``redis_url`` is the Redis holding the queue and the journals. ``lease`` is how long
    a batch stays taken by a worker that stopped renewing it (it died); ``claim_after``,
    ``patience`` and ``batches_at_once`` are :func:`make_broker`'s. ``broker`` is the
    taskiq broker to run: ``taskiq worker module:broker``.
    """

    def __init__(
        self,
        redis_url: str,
        pool: Callable[[], asmtp.SMTPPool],
        *,
        stream: str = STREAM,
        lease: float = 10.0,
        claim_after: float = 60.0,
        patience: float = 30.0,
        batches_at_once: int = 2,
    ) -> None:
        if not 0 < lease < claim_after:
            raise ValueError("lease must be more than 0 and less than claim_after")
        self.redis_url = redis_url
        self.lease = lease
        self.patience = patience
        self.stream = stream
        self.claim_after = claim_after
        self.sender = Sender(
            redis_url, pool, lease=lease, patience=patience, batches_at_once=batches_at_once
        )
        """The :class:`Sender` that sends each job's rows."""
        self._requeuing: asyncio.Task[None] | None = None
        self.broker: RedisStreamBroker = make_broker(
            redis_url,
            stream=stream,
            claim_after=claim_after,
            patience=patience,
            batches_at_once=batches_at_once,
        )
        self.broker.add_event_handler(TaskiqEvents.WORKER_STARTUP, self._startup)
        self.broker.add_event_handler(TaskiqEvents.WORKER_SHUTDOWN, self._shutdown)

        async def send_rows(
            campaign: str,
            batch: str,
            rows: list[dict[str, Any]],
            context: Context = _CONTEXT,
        ) -> int:
            sent = await self.sender.send(campaign, batch, rows)
            await context.ack()  # the outcomes are in the journal: the job is done
            return sent

        self.broker.register_task(send_rows, task_name=TASK_NAME, ack_type="manual")

    async def _startup(self, state: TaskiqState) -> None:
        try:
            await self.sender.start()  # a wrong address or password shows now, in the log
        except (OSError, asmtp.SMTPException) as exc:
            logger.warning("cannot connect to the SMTP server yet: %s", exc)
        # taskiq runs its workers on asyncio: a plain task lives until the shut-down hook.
        self._requeuing = asyncio.get_running_loop().create_task(self._requeue(self.sender.redis))

    async def _requeue(self, client: redis.asyncio.Redis) -> None:
        """Every ``claim_after / 4`` seconds, jobs a worker left unacknowledged for
        ``claim_after`` go back on the stream."""
        while True:
            await anyio.sleep(self.claim_after / 4)
            try:
                await requeue_stale(client, stream=self.stream, claim_after=self.claim_after)
            except redis.exceptions.RedisError as exc:
                logger.warning("cannot look for jobs to requeue: %s", exc)

    async def _shutdown(self, state: TaskiqState) -> None:
        if self._requeuing is not None:
            self._requeuing.cancel()
        await self.sender.aclose()  # QUIT on every idle connection

    @asynccontextmanager
    async def running(self, *, jobs_at_once: int = 2) -> AsyncIterator[Worker]:
        """Run this worker in the current process while the block runs: taskiq's start-up
        hook (the pool), its receiver taking jobs from the stream (``jobs_at_once`` at a
        time), and on the way out its shut-down hook (QUIT). To try a campaign, in tests,
        or inside an asyncio application; ``taskiq worker`` (``asmtp bulk worker``) runs
        workers in production, with processes restarted when one dies."""
        receiving = asyncio.get_running_loop().create_task(
            run_receiver_task(self.broker, run_startup=True, max_async_tasks=jobs_at_once)
        )
        try:
            yield self
        finally:
            receiving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiving
            await self.broker.shutdown()

    async def send(self, campaign: str, batch: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Send the rows of one job (:meth:`Sender.send`); how many were sent."""
        return await self.sender.send(campaign, batch, rows)
