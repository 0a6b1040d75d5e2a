"""SMTPPool: many concurrent sends over a bounded set of reused connections.

The pool's connections (``_connections``) and its bookkeeping (``_idle``, ``_gate``,
``_backoff``) say what to reuse, open, close or wait for; this module sends: alone or in
batches, retried only when the server cannot have accepted the message, and as a stream of
outcomes (``_stream``). It also owns the pool's lifecycle: which event loop it belongs to,
and the task that closes idle connections while it is open.
"""

from __future__ import annotations

import dataclasses
import email.message
import math
import ssl
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import TypeVar

import anyio
from anyio.abc import TaskGroup

from .._client import (
    DEFAULT_TIMEOUT,
    OnProgress,
    Outgoing,
    Proxy,
    TLSMode,
    client_settings,
    current_observer,
    observed,
    send_batch,
    send_one,
)
from .._dkim import DKIMSigner
from .._results import SendOutcome, SendResult
from ..auth import Mechanism, Secret
from ..errors import SMTPTransactionInterrupted
from ..protocol import Param
from ._backoff import (
    GaveUp,
    RetryPolicy,
    died_unanswered,
    is_retryable,
    retry_delay,
    wants_fresh_connection,
)
from ._connections import Connections
from ._gate import Job, Tracker
from ._idle import RateLimiter, Slot
from ._loop import LoopOwner
from ._stream import SendStream, failure_outcome

__all__ = ["SMTPPool"]

K = TypeVar("K")


class SMTPPool:
    """A pool of SMTP connections for many concurrent sends.

    Takes the one-shot functions' connection settings (host, port, ``tls`` policy,
    credentials) plus the pool's: ``max_connections``, ``max_messages_per_connection``,
    ``idle_timeout`` (seconds), ``rate_limit`` (messages per second for the whole pool) and
    ``retry``. :meth:`sendmail` and :meth:`send_message` are safe to call from thousands of
    tasks; they return a :class:`~asmtp.SendResult` (the refused dict, with ``attempts``)
    and raise what :class:`~asmtp.SMTP` raises, the final exception carrying ``attempts``
    too. ``mechanism`` is a factory: SASL mechanisms are stateful, so each connection gets
    one. ``chunking=False`` keeps DATA where the server offers CHUNKING. ``proxy`` (a URL
    or :class:`~asmtp.Proxy`) opens every connection through a SOCKS or HTTP CONNECT proxy
    (failing: :class:`~asmtp.ProxyError`); ``dkim`` (a :class:`~asmtp.DKIMSigner`) signs.

    While every connection is busy, sends queue; a caller whose turn comes sends its own
    message and then up to ``max_batch - 1`` queued ones back to back on its connection,
    each next transaction written with the previous end of data (RFC 2920 §3.1, see
    :meth:`~asmtp.SMTP.sendmail_many`). Each queued caller gets its own result as soon as
    its reply is in. Sends with a ``deadline``, a streamed body or under a ``rate_limit``
    run alone; ``max_batch=1`` turns batching off. A caller cancelled while its message is
    on another caller's connection stops waiting; that message still completes, so the
    connection stays in step.

    A failure to connect (refused, a 4xx or 5xx greeting, TLS or login failure, a timeout)
    makes the whole pool back off, as an MTA's queue manager does: no new connection until
    one shared delay (``retry``'s, growing with each failure in a row, with jitter) has
    passed, then one probe at a time; a success ends it. Sends wait meanwhile, within their
    own ``deadline``. After ``retry.attempts`` failures in a row each waiting send raises the
    server's own error, whose ``attempts`` counts the tries it waited through, and until the
    delay passes new sends do the same at once (``attempts`` 0) unless a connection is open.
    A ``tls`` that is not a :data:`~asmtp.TLSMode` raises :class:`ValueError` here, as do
    a ``password`` without a ``username`` and a malformed ``url`` (the server as one string
    instead of ``host`` and ``port``, as :func:`asmtp.connect` takes it).

    An idle connection the server closed or wrote to is never reused; one that turns out
    dead before the server answered anything of a send is replaced without counting an
    attempt. A 4xx to MAIL closes the connection and retries on a new one. ``lmtp=True``
    speaks LMTP (RFC 2033), whose per-recipient replies land in ``outcome.replies``.

    The pool belongs to the event loop that first uses it until :meth:`aclose`; using it
    from another raises :class:`RuntimeError`. ``async with pool:`` opens it (again, once
    closed) with a task that closes idle connections after ``idle_timeout`` (without it, a
    send that finds one expired closes it). :meth:`connect` checks the settings at start-up.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 0,
        *,
        url: str | None = None,
        tls: TLSMode = "auto",
        username: str | None = None,
        password: str | Secret | None = None,
        mechanism: Callable[[], Mechanism] | None = None,
        context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        source_address: tuple[str, int] | None = None,
        max_connections: int = 10,
        max_messages_per_connection: int = 1000,
        idle_timeout: float = 30.0,
        rate_limit: float | None = None,
        retry: RetryPolicy | None = None,
        chunking: bool = True,
        max_batch: int = 16,
        lmtp: bool = False,
        proxy: str | Proxy | None = None,
        dkim: DKIMSigner | None = None,
    ) -> None:
        secret = Secret(password) if isinstance(password, str) else password
        del password  # tracebacks keep every frame's locals: only the Secret stays
        if max_connections < 1 or max_messages_per_connection < 1 or max_batch < 1:
            raise ValueError(
                "max_connections, max_messages_per_connection and max_batch must be >= 1"
            )
        settings = client_settings(
            host,
            port,
            url=url,
            tls=tls,
            username=username,
            password=secret,
            mechanism=mechanism,
            context=context,
            local_hostname=local_hostname,
            timeout=timeout,
            source_address=source_address,
            chunking=chunking,
            proxy=proxy,
            dkim=dkim,
        )
        del url  # it may hold the password
        self._settings = dataclasses.replace(settings, lmtp=True) if lmtp else settings
        self.retry = retry or RetryPolicy()
        self.max_batch = max_batch
        self.max_connections = max_connections
        self._connections = Connections(
            self._settings,
            max_connections=max_connections,
            max_messages=max_messages_per_connection,
            idle_timeout=idle_timeout,
            retry=self.retry,
        )
        self._rate = RateLimiter(rate_limit)
        self._owner = LoopOwner()
        self._reaper: TaskGroup | None = None  # open in `async with`: closes idle connections
        self._reaping: anyio.CancelScope | None = None

    @property
    def host(self) -> str:
        """The server's host name (or Unix socket path)."""
        return self._settings.host

    @property
    def port(self) -> int:
        """The server's port (0: the default for the TLS policy)."""
        return self._settings.port

    @property
    def tls(self) -> TLSMode:
        """The TLS policy."""
        return self._settings.tls

    @property
    def chunking(self) -> bool:
        """Whether bodies go out with BDAT where the server offers CHUNKING."""
        return self._settings.chunking

    def __repr__(self) -> str:
        return f"<SMTPPool {self.host}:{self.port} idle={len(self._connections.idle)}>"

    @property
    def lmtp(self) -> bool:
        """Whether the pool speaks LMTP (RFC 2033): one reply per recipient after the data."""
        return self._settings.lmtp

    # -- lifecycle --------------------------------------------------------------------

    async def __aenter__(self) -> SMTPPool:
        """Open the pool in the running event loop, with a task that closes idle connections
        as they pass ``idle_timeout``.

        A closed pool opens again, in this event loop or another; a pool already open in an
        ``async with`` block raises :class:`RuntimeError`.
        """
        if self._reaper is not None:
            raise RuntimeError("this SMTPPool is already open in an `async with` block")
        self._owner.claim()
        self._connections.reopen()
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._reaper, self._reaping = task_group, anyio.CancelScope()
        task_group.start_soon(self._reap, self._reaping)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task_group = self._reaper
        try:
            await self.aclose()
        finally:
            self._reaper = None
            if task_group is not None:
                # The reaper is cancelled; the body's own exception must reach the caller as
                # it is, not wrapped in an exception group by the task group.
                await task_group.__aexit__(None, None, None)

    async def aclose(self) -> None:
        """QUIT and close every idle connection. Sends then raise :class:`RuntimeError` until
        the pool is entered again (``async with pool:``), in this event loop or another."""
        self._owner.claim()
        if self._reaping is not None:
            self._reaping.cancel()
        await self._connections.close_idle()
        self._owner.release()

    async def connect(self) -> None:
        """Open a connection now, as each pooled one is opened, and keep it for the next send.

        A check at start-up: a wrong host, port, certificate or password fails here, with
        the error of that step, neither retried nor counted by the backoff, instead of at
        the first send. Opens nothing if one is idle or ``max_connections`` are open.
        """
        self._check_open()
        await self._connections.ready()

    def _check_open(self) -> None:
        """:class:`RuntimeError` when closed, or open in another event loop."""
        self._connections.check_open()
        self._owner.claim()

    async def _reap(self, scope: anyio.CancelScope) -> None:
        with scope:
            await self._connections.reap()

    # -- sending ----------------------------------------------------------------------

    async def sendmail(
        self,
        from_addr: str,
        to_addrs: str | Sequence[str],
        msg: object,
        mail_options: Sequence[Param] = (),
        rcpt_options: Sequence[Param] = (),
        *,
        deadline: float | None = None,
        on_progress: OnProgress | None = None,
    ) -> SendResult:
        """:meth:`~asmtp.SMTP.sendmail` on a pooled connection, retried while safe.

        A message given as a file or an iterator is read once, so it is retried only
        when none of its body had been read. With ``on_progress`` the message runs alone
        on its connection, and a retry reports its body from zero again.
        """
        item = Outgoing.checked(from_addr, to_addrs, msg, mail_options, rcpt_options)
        return await self._with_retries(item, deadline=deadline, on_progress=on_progress)

    async def send_message(
        self,
        msg: email.message.Message,
        from_addr: str | None = None,
        to_addrs: str | Sequence[str] | None = None,
        mail_options: Sequence[Param] = (),
        rcpt_options: Sequence[Param] = (),
        *,
        deadline: float | None = None,
        add_missing_headers: bool = True,
        on_progress: OnProgress | None = None,
    ) -> SendResult:
        """:meth:`~asmtp.SMTP.send_message` on a pooled connection, retried while safe."""
        item = Outgoing.message(
            msg, from_addr, to_addrs, mail_options, rcpt_options, add_missing_headers
        )
        return await self._with_retries(item, deadline=deadline, on_progress=on_progress)

    def send_each(
        self,
        messages: Iterable[tuple[K, Outgoing]] | AsyncIterable[tuple[K, Outgoing]],
        *,
        window: int | None = None,
        on_start: Callable[[K], object] | None = None,
        grace: float = 5.0,
    ) -> SendStream[K]:
        """Send ``(key, Outgoing)`` pairs; yield ``(key, SendOutcome)`` as each completes.

        ::

            async with pool.send_each(rows) as results:
                async for key, outcome in results:
                    ...

        Every message gets exactly one outcome, failures included (``accepted`` False or
        None, ``error`` set): nothing is raised for one message. At most ``window``
        messages (default ``max_connections * max_batch``) are held between the input and
        the consumer; the input is read as room frees. ``on_start(key)`` is called just
        before the first byte of each attempt of a message is written; if it raises, that
        message is not sent and its outcome carries the exception. Messages are retried as
        :meth:`sendmail` retries them.

        If the consumer stops early (cancelled, ``break``), no more input is read, the
        messages in flight get ``grace`` seconds to finish, and their outcomes land in
        ``results.unreported``. An exception from the input ends the stream with that
        exception, once the messages in flight are yielded.
        """
        window = window if window is not None else self.max_connections * self.max_batch
        return SendStream(
            self._outcome_of,
            messages,
            window=window,
            on_start=on_start,
            grace=grace,
            check=self._check_open,
        )

    async def _outcome_of(
        self, item: Outgoing, on_start: Callable[[], object] | None, tracker: Tracker
    ) -> SendOutcome:
        try:
            result = await self._with_retries(
                item, deadline=None, on_start=on_start, tracker=tracker
            )
        except Exception as exc:
            return failure_outcome(exc)
        return result.outcome

    def _with_retries(
        self,
        item: Outgoing,
        *,
        deadline: float | None,
        on_start: Callable[[], object] | None = None,
        tracker: Tracker | None = None,
        on_progress: OnProgress | None = None,
    ) -> Awaitable[SendResult]:
        observer = current_observer()
        if observer is None:  # returned, not awaited: a waiting send keeps one frame less
            return self._retried(item, deadline, on_start, tracker, on_progress)
        tracker = tracker or Tracker()
        # One watch for the caller's send: its wait for a connection and all its attempts.
        send = self._retried(item, deadline, on_start, tracker, on_progress)
        return observed(observer, self, item, send, tracker.connection_watch)

    async def _retried(
        self,
        item: Outgoing,
        deadline: float | None,
        on_start: Callable[[], object] | None,
        tracker: Tracker | None,
        on_progress: OnProgress | None,
    ) -> SendResult:
        replayable = item.replayable
        # A deadline, a one-shot stream or a progress callback belongs to its own caller's turn.
        batchable = replayable and deadline is None and on_progress is None
        batchable = batchable and self.max_batch > 1 and not self._rate.limited
        expires = time.monotonic() + deadline if deadline is not None else math.inf
        failures_before = self._connections.backoff.failed_total
        fresh, attempt, replaced = False, 0, 0  # replaced: dead idle connections, uncounted
        while True:
            attempt += 1
            job = Job(
                item,
                batchable=batchable and not fresh,  # another caller's batch is no new connection
                deadline=deadline,
                expires=expires,
                on_start=on_start,
                fresh=fresh,
                on_progress=on_progress,
            )
            if tracker is not None:
                tracker.attempts, tracker.job = attempt, job
            try:
                result = await self._attempt(job)
            except GaveUp as gave_up:
                # Each connection attempt that failed while this send waited was one of its own.
                error = gave_up.error
                waited = self._connections.backoff.failed_total - failures_before
                error.attempts = attempt - 1 + waited  # type: ignore[attr-defined]
                raise error from error.__cause__
            except Exception as exc:
                if job.hook_error is not None:  # the caller's on_start failed: nothing went out
                    job.hook_error.attempts = attempt  # type: ignore[attr-defined]
                    raise job.hook_error from None
                last = job.session.last_progress if job.session is not None else None
                # A streamed body can be read only once: retry it only if none was read.
                can_replay = replayable or last is None or not last.body_started
                answered = last is not None and last.answered
                if (
                    job.reused
                    and can_replay
                    and replaced < self.max_connections
                    and died_unanswered(exc, answered=answered)
                ):
                    # The idle connection was dead before this send began: not an attempt.
                    attempt -= 1
                    replaced += 1
                    continue
                if not (can_replay and is_retryable(exc) and attempt < self.retry.attempts):
                    exc.attempts = attempt  # type: ignore[attr-defined]
                    raise
                fresh = wants_fresh_connection(exc)
                if not (fresh and job.carried_before):  # a worn connection is no reason to wait
                    await anyio.sleep(retry_delay(self.retry, attempt))
                continue
            return result if attempt == 1 else SendResult(result.outcome.with_attempts(attempt))

    async def _attempt(self, job: Job) -> SendResult:
        self._check_open()
        connections = self._connections
        if not await connections.gate.enter(job):
            return job.outcome()  # another caller's connection sent it
        try:
            wait = self._rate.reserve(time.monotonic())
            if wait:
                await anyio.sleep(wait)
            slot = await connections.get(job)
            job.session = slot.session
            try:
                if job.batchable:
                    await self._run_batch(job, slot)
                    return job.outcome()
                job.carried_before = slot.sent
                slot.sent += 1
                try:
                    return await slot.session.run(
                        send_one,
                        slot.session,
                        job.item,
                        deadline=job.deadline,
                        on_start=job.start,
                        on_progress=job.on_progress,
                    )
                except Exception as exc:
                    slot.worn = slot.worn or wants_fresh_connection(exc)
                    raise
            finally:
                await connections.put_back(slot)
        finally:
            connections.gate.release()

    async def _run_batch(self, first: Job, slot: Slot) -> None:
        """Send ``first`` and, back to back on the same connection, jobs queued meanwhile.

        Each next job is taken only when the connection is ready for it, up to
        ``max_batch`` and the connection's message limit, and none after a 4xx to MAIL
        (the connection is worn out); their owners are woken as soon as each reply is in.
        """
        connections = self._connections
        taken: list[Job] = []

        def jobs() -> Iterator[tuple[Job, Outgoing]]:
            job: Job | None = first
            while job is not None:
                taken.append(job)
                job.carried_before = slot.sent
                slot.sent += 1
                yield job, job.item
                if len(taken) >= self.max_batch or slot.sent >= connections.idle.max_messages:
                    return
                job = None if connections.closed or slot.worn else connections.gate.take()

        def report(job: Job, result: SendResult | Exception) -> None:
            slot.worn = slot.worn or wants_fresh_connection(result)
            job.finish(result)

        try:
            await send_batch(slot.session, jobs(), report, on_start=Job.start)
        except Exception as exc:
            if not first.done:
                first.finish(exc)  # the connection failed before its message began
        finally:
            # send_batch reports every job it took; this only guards the bookkeeping.
            for job in taken:
                if not job.done:
                    job.finish(
                        SMTPTransactionInterrupted("the batch ended", SendOutcome(accepted=False))
                    )
