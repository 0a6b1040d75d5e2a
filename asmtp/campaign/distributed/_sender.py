"""Sending one job's rows, whatever carries the jobs: the part of a worker that is not taskiq.

A :class:`Sender` holds one process's :class:`~asmtp.SMTPPool` and Redis client. For each
job (a batch of one campaign's rows) it takes the batch's lease (a job delivered twice is
sent by one worker at a time), then for each row, as the pool takes it: waits for the
shared rate limit, claims the row in the journal (in flight, before its first byte; a row
a dead worker left in flight becomes ``unknown``), renders it and sends it (rows are
claimed a few at a time, in one round trip, unless a rate limit spaces them); the
outcomes are written as the pool reports them, a few at a time. :meth:`Sender.send`
returns once every outcome is written: only then may the job be acknowledged. It raises
when the job was cut short (the SMTP server unreachable, Redis gone for longer than the
client's patience, the lease lost, the sender closed meanwhile): the job must then come
back, unacknowledged.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import anyio
import redis.asyncio

import asmtp

from .._errors import CampaignError, RenderError
from .._identity import date_header, message_id
from .._outcomes import unreachable, verdict
from .._template import Template
from ._journal import Lease, Outcome, RedisJournal, redis_client
from ._rate import SharedRateLimit

__all__ = ["LeaseLost", "Sender", "ServerUnavailable"]

_UNREACHABLE_IN_A_ROW: Final = 10
# Seconds a campaign's definition is used before it is read again: a producer run again
# with another rate (or --force and another template) reaches running workers this soon.
_DEFINITION_KEPT: Final = 10.0
_CLAIM_AHEAD: Final = 8  # rows claimed in one round trip when no rate limit spaces them
_RECORD_EVERY: Final = 8  # outcomes written in one round trip ...
_RECORD_AFTER: Final = 0.2  # ... or once the oldest of them waited this long (seconds)
_CLOSE_WAIT: Final = 5.0  # seconds aclose() waits for jobs in progress to write their outcomes


class LeaseLost(CampaignError):
    """The batch's lease expired while this worker sent it (Redis was away, or the worker
    stalled) and another worker may hold the job now: it is left to that one, not
    acknowledged here."""


class ServerUnavailable(CampaignError):
    """The SMTP server could not be reached for several messages in a row: the job stops
    taking rows and is not acknowledged (it comes back after the broker's ``claim_after``)."""


@dataclass(frozen=True)
class _Definition:
    campaign: str
    template: Template
    sender: str | None
    domain: str
    recipient_column: str
    rate: float | None
    resend_unknown: bool


class Sender:
    """Sends the jobs of distributed campaigns; one per worker process, for any job queue.

    ``pool`` makes the process's :class:`~asmtp.SMTPPool` (called by :meth:`start`);
    ``redis_url`` is the Redis holding the journals. ``lease`` is how long a batch stays
    taken by a worker that stopped renewing it (it died); ``patience`` how long a Redis
    outage is ridden out (every command retried) before :meth:`send` raises;
    ``batches_at_once`` how many jobs are sent at the same time. :class:`Worker` runs one
    under taskiq; a Celery task can run one on its process's event loop (see the docs).
    """

    def __init__(
        self,
        redis_url: str,
        pool: Callable[[], asmtp.SMTPPool],
        *,
        lease: float = 10.0,
        patience: float = 30.0,
        batches_at_once: int = 2,
    ) -> None:
        if not lease > 0:
            raise ValueError("lease must be more than 0")
        self.redis_url = redis_url
        self.lease = lease
        self.patience = patience
        self._make_pool = pool
        self._pool: asmtp.SMTPPool | None = None
        self._redis: redis.asyncio.Redis | None = None
        self._definitions: dict[str, tuple[float, _Definition]] = {}
        self._batches_at_once = batches_at_once
        self._batches = anyio.Semaphore(batches_at_once)
        self._closing = False

    @property
    def redis(self) -> redis.asyncio.Redis:
        """The Redis client :meth:`start` made. Raises :exc:`RuntimeError` before."""
        if self._redis is None:
            raise RuntimeError("the sender has not started: await its start() first")
        return self._redis

    async def start(self) -> None:
        """Make the pool and the Redis client, and connect once: a wrong address or
        password shows now, as :exc:`OSError` or :exc:`~asmtp.SMTPException` (the sender
        is started all the same, and connects again for the first message)."""
        self._redis = redis_client(self.redis_url, patience=self.patience)
        self._pool = self._make_pool()
        await self._pool.connect()

    async def aclose(self) -> None:
        """Close the pool (QUIT on every idle connection), then the Redis client.

        A job still sending (a worker process told to stop runs this on the same loop)
        takes no further row, and a row the closed pool refused goes back to pending: it
        was never sent, and the job's next delivery sends it. Redis is closed once such
        jobs have written their outcomes (at most a few seconds).
        """
        self._closing = True
        try:
            if self._pool is not None:
                await self._pool.aclose()
            await self._jobs_ended()
        finally:
            if self._redis is not None:
                await self._redis.aclose()

    async def _jobs_ended(self) -> None:
        """Wait (bounded) until no job is sending: every place at once is free again."""
        taken = 0
        with anyio.move_on_after(_CLOSE_WAIT):
            while taken < self._batches_at_once:
                await self._batches.acquire()
                taken += 1
        for _ in range(taken):
            self._batches.release()

    async def send(self, campaign: str, batch: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Send the rows of one job; how many were sent. Raises (and the job is not
        acknowledged) when it could not go through: see the module."""
        if self._pool is None or self._redis is None:
            raise RuntimeError("the sender has not started: await its start() first")
        pool, client = self._pool, self._redis
        journal = RedisJournal(client, campaign)
        definition = await self._definition(journal)
        async with self._batches, journal.lease(batch, ttl=self.lease) as lease:
            batch_sender = _Batch(journal, definition, client, lease, lambda: self._closing)
            sent = await batch_sender.send(pool, rows)
            if self._closing:  # rows may be left pending: the job must come back
                raise CampaignError(
                    f"campaign {campaign!r}: the sender closed before batch {batch} ended"
                )
            if not (lease.held and await lease.ours()):
                raise LeaseLost(f"campaign {campaign!r}: lost the lease of batch {batch}")
            return sent

    async def _definition(self, journal: RedisJournal) -> _Definition:
        cached = self._definitions.get(journal.name)
        if cached is not None and time.monotonic() - cached[0] < _DEFINITION_KEPT:
            return cached[1]
        kept = await journal.definition()
        if not kept:
            raise CampaignError(f"campaign {journal.name!r} is not in Redis")
        template = Template(
            kept["template"].encode("latin-1"),
            name=kept["template_name"],
            attachments=kept["attachments"],
        )
        if template.digest != kept["digest"]:
            raise CampaignError(
                f"campaign {journal.name!r}: the attachments read here differ from the producer's"
            )
        found = _Definition(
            kept["campaign"],
            template,
            kept["sender"],
            kept["message_id_domain"],
            kept["recipient_column"],
            kept.get("rate"),
            bool(kept.get("resend_unknown")),
        )
        self._definitions[journal.name] = (time.monotonic(), found)
        return found


class _Batch:
    """One job's rows through the pool, each claimed before it is handed over."""

    def __init__(
        self,
        journal: RedisJournal,
        definition: _Definition,
        client: redis.asyncio.Redis,
        lease: Lease,
        closing: Callable[[], bool],
    ) -> None:
        self.journal = journal
        self.closing = closing
        self.lease = lease
        self.definition = definition
        self.limit = (
            None
            if definition.rate is None
            else SharedRateLimit(client, journal.rate_key, definition.rate)
        )
        self.unreachable = 0
        self.sent = 0
        self._pending: list[Outcome] = []
        self._oldest = 0.0

    async def send(self, pool: asmtp.SMTPPool, rows: Sequence[Mapping[str, Any]]) -> int:
        # A small window: a row is claimed (in flight) only shortly before its first byte.
        stream = pool.send_each(self._messages(rows), window=pool.max_connections * 4, grace=30)
        try:
            async with stream as results:
                async for row_id, outcome in results:
                    await self._record(row_id, outcome)
        finally:
            with anyio.CancelScope(shield=True):
                for row_id, outcome in stream.unreported:
                    await self._record(row_id, outcome)
                await self._flush()
        if self.unreachable >= _UNREACHABLE_IN_A_ROW:
            raise ServerUnavailable(f"{pool!r}: unreachable for {self.unreachable} messages")
        return self.sent

    async def _messages(
        self, rows: Sequence[Mapping[str, Any]]
    ) -> AsyncIterator[tuple[str, asmtp.Outgoing]]:
        # Rows are claimed a few at a time (one round trip), one at a time under a rate
        # limit, whose slots they must each wait for before their claim.
        ahead = 1 if self.limit is not None else _CLAIM_AHEAD
        for start in range(0, len(rows), ahead):
            if self.unreachable >= _UNREACHABLE_IN_A_ROW or not self.lease.held or self.closing():
                return  # the rest stays pending; the job comes back (or is another's)
            group = rows[start : start + ahead]
            if self.limit is not None:
                await self.limit.wait()
            ids = [str(row["id"]) for row in group]
            claimed = await self.journal.claim_many(
                ids, resend_unknown=self.definition.resend_unknown
            )
            for row_id, row, answer in zip(ids, group, claimed, strict=True):
                if answer != "send":
                    continue
                try:
                    outgoing = self._render(row_id, row["fields"])
                except RenderError as exc:
                    self._pending.append(Outcome(row_id, "failed", error=f"cannot render: {exc}"))
                    continue
                yield row_id, outgoing

    def _render(self, row_id: str, fields: Mapping[str, Any]) -> asmtp.Outgoing:
        definition = self.definition
        recipient = fields.get(definition.recipient_column)
        return definition.template.render(
            fields,
            message_id=message_id(definition.campaign, row_id, definition.domain),
            sender=definition.sender,
            recipient=None if recipient is None else str(recipient),
            date=date_header(),
        )

    async def _record(self, row_id: str, outcome: asmtp.SendOutcome) -> None:
        """Keep the outcome, written with the next few (the job is acknowledged only once
        every outcome is written)."""
        found = verdict(outcome)
        state = found.state
        if state == "failed" and found.code is None and self.closing():
            # Not sent (no server reply, nothing accepted): the pool closed under it.
            state = "pending"
        if not self._pending:
            self._oldest = time.monotonic()
        self._pending.append(
            Outcome(row_id, state, found.code, found.reply, found.recipients, found.error)
        )
        self.sent += 1
        self.unreachable = self.unreachable + 1 if unreachable(outcome) else 0
        if len(self._pending) >= _RECORD_EVERY or time.monotonic() - self._oldest >= _RECORD_AFTER:
            await self._flush()

    async def _flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            await self.journal.record_many(pending)
