"""The shared journal: every row's state in Redis, with the SQLite journal's state model.

A campaign named ``NAME`` keeps these keys (the braces keep them in one Redis Cluster
slot): ``asmtp:{NAME}:def`` its definition, ``:state`` each row's state, ``:rows`` each
row's details (JSON), ``:counts`` the rows in each state, ``:lease:BATCH`` which worker
holds a batch, ``:rate`` the shared rate limit. Every move is one Lua script
(``_scripts``), so a state and its count never disagree, whatever stops when.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

import anyio
import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript

from .._errors import CampaignError
from .._journal import STATES, RowRecord
from . import _scripts

__all__ = ["Lease", "Outcome", "RedisJournal", "redis_client", "redis_options"]

_SCAN: Final = 1000
_LEASE_POLL: Final = 0.2
_DIED: Final = "a worker stopped while it was in flight"
_NOSCRIPT_RETRIES: Final = 3


def redis_options(patience: float) -> dict[str, Any]:
    """Client options riding out a Redis outage of about ``patience`` seconds: every
    command is retried (with backoff, at most 0.5 s apart) while the connection fails."""
    retries = max(1, int(patience / 0.5) + 4)
    return {
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), retries),
        "retry_on_error": [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
        "socket_connect_timeout": 2.0,
        "health_check_interval": 5,
    }


def redis_client(url: str, *, patience: float = 30.0) -> redis.asyncio.Redis:
    """A client for ``url`` (``redis://host:port/db``) with the options that ride out a Redis outage of ``patience`` seconds (every command retried with backoff)."""
    return redis.asyncio.Redis.from_url(url, **redis_options(patience))


class RedisJournal:
    """The journal of campaign ``name`` in Redis, shared by its producer and workers.

    ``client`` is a ``redis.asyncio.Redis``; the journal never closes it. Rows are
    in the states of :data:`asmtp.campaign.STATES`; :class:`~asmtp.campaign.CampaignError` when the
    campaign is not in Redis (for reads that need it).
    """

    def __init__(self, client: redis.asyncio.Redis, name: str) -> None:
        if not name or any(c in name for c in "{}\r\n"):
            raise CampaignError(f"a campaign name cannot be empty or hold braces: {name!r}")
        self.client = client
        self.name = name
        prefix = f"asmtp:{{{name}}}:"
        self.keys = (prefix + "state", prefix + "rows", prefix + "counts")
        self._definition = prefix + "def"
        self._lease = prefix + "lease:"
        self.rate_key = prefix + "rate"
        self._define = client.register_script(_scripts.DEFINE)
        self._enqueue = client.register_script(_scripts.ENQUEUE)
        self._claim = client.register_script(_scripts.CLAIM)
        self._record = client.register_script(_scripts.RECORD)
        self._keep = client.register_script(_scripts.LEASE_KEEP)
        self._drop = client.register_script(_scripts.LEASE_DROP)

    # -- the campaign's definition ------------------------------------------------------

    async def definition(self) -> dict[str, Any]:
        """The campaign's definition (empty when Redis does not know it)."""
        found = await self.client.hgetall(self._definition)
        return {_text(key): json.loads(value) for key, value in found.items()}

    async def define(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        """Keep ``definition`` unless the campaign has one already; the one kept (the first
        producer's, so every worker renders the same message)."""
        pairs = [item for key, value in definition.items() for item in (key, json.dumps(value))]
        await self._define(keys=[self._definition], args=pairs)
        return await self.definition()

    async def update(self, settings: Mapping[str, Any]) -> None:
        """Change some of the definition's settings (e.g. ``resend_unknown``, ``rate``)."""
        await self.client.hset(
            self._definition, mapping={key: json.dumps(value) for key, value in settings.items()}
        )

    # -- rows -------------------------------------------------------------------------

    async def states(self, ids: Sequence[str]) -> list[str | None]:
        """The state of each row of ``ids`` (None: not enqueued)."""
        if not ids:
            return []
        found = await self.client.hmget(self.keys[0], list(ids))
        return [None if state is None else _text(state) for state in found]

    async def enqueue(
        self,
        stream: str,
        payload: bytes,
        rows: Iterable[tuple[str, int, str | None]],
        *,
        retry: Iterable[str] = (),
    ) -> bool:
        """Make ``(id, line, recipient)`` rows pending and add ``payload`` (the job that
        sends them) to ``stream``, in one step; False (and nothing written) when one of
        the rows is known already in a state not in ``retry``."""
        args: list[str | bytes | int] = [payload, ",".join(retry)]
        listed = list(rows)
        args.append(len(listed))
        for row_id, line, recipient in listed:
            args += [row_id, line, recipient or ""]
        done = await self._enqueue(keys=[*self.keys, stream], args=args)
        return int(done) >= 0

    async def claim(self, row_id: str, *, resend_unknown: bool = False) -> str:
        """Before the row's first byte: ``"send"`` when it is now in flight (it was
        pending), ``"unknown"`` when a stopped worker left it in flight, else its state
        (nothing to do)."""
        return (await self.claim_many([row_id], resend_unknown=resend_unknown))[0]

    async def claim_many(self, ids: Sequence[str], *, resend_unknown: bool = False) -> list[str]:
        """:meth:`claim` for each of ``ids``, in one round trip."""
        now = repr(time.time())
        flag = "1" if resend_unknown else "0"
        found = await self._run_each(self._claim, [[row_id, flag, now, _DIED] for row_id in ids])
        return [
            _text(answer) if isinstance(answer, bytes | str) else str(answer) for answer in found
        ]

    async def record(
        self,
        row_id: str,
        state: str,
        *,
        code: int | None = None,
        reply: str | None = None,
        recipients: Mapping[str, tuple[int, str]] | None = None,
        error: str | None = None,
    ) -> bool:
        """Write the outcome of a row in flight; False when it was not in flight."""
        written = await self.record_many([Outcome(row_id, state, code, reply, recipients, error)])
        return written[0]

    async def record_many(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """:meth:`record` for each of ``outcomes``, in one round trip."""
        for outcome in outcomes:
            if outcome.state not in STATES:
                raise ValueError(f"not a state: {outcome.state!r}")
        now = repr(time.time())
        written = await self._run_each(self._record, [o.arguments(now) for o in outcomes])
        return [bool(answer) for answer in written]

    async def _run_each(self, script: AsyncScript, calls: Sequence[Sequence[str]]) -> list[Any]:
        """Run ``script`` on the journal's keys once with each of ``calls``' arguments, in
        one round trip; their answers, in order.

        A pipeline checks that Redis knows its scripts before it runs, but a Redis that
        restarts in between (its connection is then retried) has forgotten them and
        answers NOSCRIPT without running anything. Those calls alone run again (the
        others have moved rows and must not run twice), after the script is loaded.
        """
        answers: list[Any] = [None] * len(calls)
        waiting = list(range(len(calls)))
        for _ in range(_NOSCRIPT_RETRIES):
            async with self.client.pipeline(transaction=False) as pipe:
                for index in waiting:
                    await script(keys=self.keys, args=calls[index], client=pipe)
                found = await pipe.execute(raise_on_error=False)
            forgotten = []
            for index, answer in zip(waiting, found, strict=True):
                if isinstance(answer, redis.exceptions.NoScriptError):
                    forgotten.append(index)
                elif isinstance(answer, Exception):
                    raise answer
                else:
                    answers[index] = answer
            if not forgotten:
                return answers
            waiting = forgotten
        raise CampaignError(
            f"Redis kept forgetting the journal's scripts ({_NOSCRIPT_RETRIES} tries)"
        )

    # -- reports ------------------------------------------------------------------------

    async def counts(self) -> dict[str, int]:
        """How many rows are in each state (every state named, zeros included)."""
        found = await self.client.hgetall(self.keys[2])
        counted = {_text(key): int(value) for key, value in found.items()}
        return {state: counted.get(state, 0) for state in STATES}

    async def rows(self, states: Iterable[str] | None = None) -> list[RowRecord]:
        """Every row (or those in ``states``), in input order, as the SQLite journal's
        :meth:`~asmtp.campaign.Journal.rows` gives them."""
        wanted = set(states) if states is not None else None
        found: list[RowRecord] = []
        async for batch in self._scan():
            ids = [row_id for row_id, state in batch if wanted is None or state in wanted]
            if not ids:
                continue
            details = await self.client.hmget(self.keys[1], ids)
            by_id = dict(batch)
            for row_id, raw in zip(ids, details, strict=True):
                detail = json.loads(raw) if raw else {}
                found.append(_record(row_id, by_id[row_id], detail))
        found.sort(key=lambda record: (record["line"] or 0, record["id"]))
        return found

    async def _scan(self) -> AsyncIterator[list[tuple[str, str]]]:
        cursor = 0
        while True:
            cursor, chunk = await self.client.hscan(self.keys[0], cursor, count=_SCAN)
            assert isinstance(chunk, dict)  # noqa: S101 - HSCAN answers a mapping
            yield [(_text(key), _text(value)) for key, value in chunk.items()]
            if cursor == 0:
                return

    # -- leases -------------------------------------------------------------------------

    @asynccontextmanager
    async def lease(self, batch: str, *, ttl: float) -> AsyncIterator[Lease]:
        """Hold batch ``batch`` while the block runs: wait while another live worker holds
        it (a job delivered twice), renew it every ``ttl / 4`` seconds, drop it at the
        end. A worker that dies stops renewing; after ``ttl`` seconds another may take
        over, and the one that lost it (it was only slow, or Redis was away) sees
        :attr:`Lease.held` turn False."""
        lease = Lease(self.client, self._lease + batch, ttl)
        while not await self.client.set(lease.key, lease.token, nx=True, px=lease.milliseconds):
            if await lease.ours():
                break  # our own SET, retried after a lost reply
            await anyio.sleep(_LEASE_POLL)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(lease.renew, self._keep)
            try:
                yield lease
            finally:
                tasks.cancel_scope.cancel()
                with anyio.CancelScope(shield=True):
                    await self._drop(keys=[lease.key], args=[lease.token])


@dataclass(frozen=True)
class Outcome:
    """A row's outcome for :meth:`RedisJournal.record_many`, as :meth:`~RedisJournal.record`
    takes it."""

    row_id: str
    state: str
    code: int | None = None
    reply: str | None = None
    recipients: Mapping[str, tuple[int, str]] | None = None
    error: str | None = None

    def arguments(self, now: str) -> list[str]:
        """The arguments of the ``RECORD`` script."""
        return [
            self.row_id,
            self.state,
            now,
            "" if self.code is None else str(self.code),
            self.reply or "",
            json.dumps(self.recipients) if self.recipients else "",
            self.error or "",
        ]


class Lease:
    """A batch held by this worker (see :meth:`RedisJournal.lease`)."""

    def __init__(self, client: redis.asyncio.Redis, key: str, ttl: float) -> None:
        self.client = client
        self.key = key
        self.token = secrets.token_hex(8)
        self.milliseconds = max(1, int(ttl * 1000))
        self.held = True
        """False once a renewal found the lease taken by another worker or expired."""

    async def ours(self) -> bool:
        """Whether the lease is this holder's now (asked of Redis)."""
        return await self.client.get(self.key) == self.token.encode()

    async def renew(self, keep: Any) -> None:
        """Renew the lease with the script ``keep`` until it is found lost (or cancelled)."""
        while self.held:
            await anyio.sleep(self.milliseconds / 4000)
            try:
                renewed = await keep(keys=[self.key], args=[self.token, self.milliseconds])
            except redis.exceptions.RedisError:
                continue  # Redis away for longer than the client's patience: try again
            self.held = bool(renewed)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _record(row_id: str, state: str, detail: dict[str, Any]) -> RowRecord:
    recipients = detail.get("recipients")
    return {
        "id": row_id,
        "line": detail.get("line"),
        "recipient": detail.get("recipient"),
        "state": state,
        "attempts": detail.get("attempts", 0),
        "code": detail.get("code"),
        "reply": detail.get("reply"),
        "recipients": recipients if isinstance(recipients, dict) else {},
        "error": detail.get("error"),
        "started": detail.get("started"),
        "finished": detail.get("finished"),
    }
