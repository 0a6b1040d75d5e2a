"""SMTPPool: many concurrent sends over a bounded set of reused connections.

The bookkeeping (``_idle``, ``_gate``, ``_backoff``) is plain code that says what to reuse,
open, close or wait for; the awaits happen here. A connection goes back to the pool only
when it is in step with the server; a message is retried only when the server cannot have
accepted it; a destination that fails to connect is backed off from by the pool as a whole.
"""

from __future__ import annotations

import email.message
import math
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType

import anyio

from .._client import (
    DEFAULT_TIMEOUT,
    Outgoing,
    Session,
    TLSMode,
    client_settings,
    open_session,
    quit_session,
    send_batch,
    send_one,
)
from .._results import SendOutcome, SendResult
from ..auth import Mechanism, Secret
from ..errors import SMTPException, SMTPTransactionInterrupted
from ..protocol import Param, State
from ._backoff import ConnectBackoff, RetryPolicy, is_retryable, retry_delay
from ._gate import Gate, Job
from ._idle import Idle, RateLimiter, Slot

__all__ = ["SMTPPool", "own_copy"]

_QUIT_TIMEOUT = 5.0


class SMTPPool:
    """A pool of SMTP connections for many concurrent sends.

    Takes the one-shot functions' connection settings (host, port, ``tls`` policy,
    credentials) plus the pool's: ``max_connections``, ``max_messages_per_connection``,
    ``idle_timeout`` (seconds), ``rate_limit`` (messages per second for the whole pool) and
    ``retry``. :meth:`sendmail` and :meth:`send_message` are safe to call from thousands of
    tasks; they return a :class:`~asmtp.SendResult` (the refused dict, with ``attempts``)
    and raise what :class:`~asmtp.SMTP` raises, the final exception carrying ``attempts``
    too. ``mechanism`` is a factory: SASL mechanisms are stateful, so each connection gets
    one. ``chunking=False`` keeps DATA even where the server offers CHUNKING.

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
    ) -> None:
        secret = Secret(password) if isinstance(password, str) else password
        del password  # tracebacks keep every frame's locals: only the Secret stays
        if max_connections < 1 or max_messages_per_connection < 1 or max_batch < 1:
            raise ValueError(
                "max_connections, max_messages_per_connection and max_batch must be >= 1"
            )
        self._settings = client_settings(
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
        )
        del url  # it may hold the password
        self.retry = retry or RetryPolicy()
        self.max_batch = max_batch
        self.max_connections = max_connections
        self._gate = Gate(max_connections)
        self._idle = Idle(idle_timeout, max_messages_per_connection)
        self._rate = RateLimiter(rate_limit)
        self._backoff = ConnectBackoff(self.retry)
        self._live = 0  # connections open, idle or in use
        self._changed: anyio.Event | None = None  # set when a send waiting to connect may go on
        self._closed = False

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
        return f"<SMTPPool {self.host}:{self.port} idle={len(self._idle)}>"

    async def __aenter__(self) -> SMTPPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """QUIT and close every idle connection; later sends raise :class:`RuntimeError`."""
        self._closed = True
        self._notify()
        await self._close_all(self._idle.drain())

    async def sendmail(
        self,
        from_addr: str,
        to_addrs: str | Sequence[str],
        msg: object,
        mail_options: Sequence[Param] = (),
        rcpt_options: Sequence[Param] = (),
        *,
        deadline: float | None = None,
    ) -> SendResult:
        """:meth:`~asmtp.SMTP.sendmail` on a pooled connection, retried while safe.

        A message given as a file or an iterator is read once, so it is retried only
        when none of its body had been read.
        """
        item = Outgoing.checked(from_addr, to_addrs, msg, mail_options, rcpt_options)
        return await self._with_retries(item, deadline=deadline)

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
    ) -> SendResult:
        """:meth:`~asmtp.SMTP.send_message` on a pooled connection, retried while safe."""
        item = Outgoing.message(
            msg, from_addr, to_addrs, mail_options, rcpt_options, add_missing_headers
        )
        return await self._with_retries(item, deadline=deadline)

    async def _with_retries(self, item: Outgoing, *, deadline: float | None) -> SendResult:
        replayable = item.replayable
        # A deadline or a one-shot stream belongs to its own caller's connection turn.
        batchable = (
            replayable and deadline is None and self.max_batch > 1 and not self._rate.limited
        )
        expires = time.monotonic() + deadline if deadline is not None else math.inf
        failures_before = self._backoff.failed_total
        attempt = 0
        while True:
            attempt += 1
            job = Job(item, batchable=batchable, deadline=deadline, expires=expires)
            try:
                result = await self._attempt(job)
            except _GaveUp as gave_up:
                # Each connection attempt that failed while this send waited was one of its own.
                error = gave_up.error
                waited = self._backoff.failed_total - failures_before
                error.attempts = attempt - 1 + waited  # type: ignore[attr-defined]
                raise error from error.__cause__
            except Exception as exc:
                last = job.session.last_progress if job.session is not None else None
                # A streamed body can be read only once: retry it only if none was read.
                can_replay = replayable or last is None or not last.body_started
                if not (can_replay and is_retryable(exc) and attempt < self.retry.attempts):
                    exc.attempts = attempt  # type: ignore[attr-defined]
                    raise
                await anyio.sleep(retry_delay(self.retry, attempt))
                continue
            return SendResult(result.outcome.with_attempts(attempt))

    async def _attempt(self, job: Job) -> SendResult:
        if self._closed:
            raise RuntimeError("the pool is closed")
        if not await self._gate.enter(job):
            return job.outcome()  # another caller's connection sent it
        try:
            wait = self._rate.reserve(time.monotonic())
            if wait:
                await anyio.sleep(wait)
            slot = await self._connection_for(job)
            try:
                if not job.batchable:
                    slot.sent += 1
                    job.session = slot.session
                    return await slot.session.run(
                        send_one, slot.session, job.item, deadline=job.deadline
                    )
                await self._run_batch(job, slot)
                return job.outcome()
            finally:
                if self._closed or not self._idle.checkin(slot, time.monotonic()):
                    await self._close_all([slot])
                else:
                    self._notify()  # a send waiting for the backoff can have it
        finally:
            self._gate.release()

    async def _connection_for(self, job: Job) -> Slot:
        """An idle connection, or a new one when the backoff allows (:class:`ConnectBackoff`).

        While the destination fails, the send waits here, within its own deadline, for the
        shared delay, the probe in flight, or a connection coming back to the pool. Raises
        :class:`_GaveUp` when the pool gives up.
        """
        while True:
            if self._closed:
                raise RuntimeError("the pool is closed")
            now = time.monotonic()
            slot, expired = self._idle.checkout(now)
            if expired:
                await self._close_all(expired)
            if slot is not None:
                return slot
            admission = self._backoff.admit(now, expires=job.expires, live=self._live)
            if admission.error is not None:
                raise _GaveUp(admission.error)
            if admission.token is not None:
                session = await self._open_counted(admission.token)
                if session is not None:
                    return Slot(session)
                continue
            if self._changed is None:
                self._changed = anyio.Event()
            with anyio.move_on_after(admission.wait):
                await self._changed.wait()

    async def _open_counted(self, token: int) -> Session | None:
        """Open a connection and tell the backoff how it went; ``None`` when it failed."""
        try:
            session = await self._open()
        except Exception as exc:
            self._backoff.failed(token, exc, time.monotonic(), retryable=is_retryable(exc))
            self._notify()
            return None
        except BaseException:
            self._backoff.abandoned(token)
            self._notify()
            raise
        self._backoff.opened()
        self._live += 1
        self._notify()
        return session

    def _notify(self) -> None:
        """Wake the sends waiting to connect: the backoff or the idle connections changed."""
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def _run_batch(self, first: Job, slot: Slot) -> None:
        """Send ``first`` and, back to back on the same connection, jobs queued meanwhile.

        Each next job is taken only when the connection is ready for it, up to
        ``max_batch`` and the connection's message limit; their owners are woken as soon
        as each reply is in.
        """
        taken: list[Job] = []

        def jobs() -> Iterator[tuple[Job, Outgoing]]:
            job: Job | None = first
            while job is not None:
                taken.append(job)
                slot.sent += 1
                yield job, job.item
                if len(taken) >= self.max_batch or slot.sent >= self._idle.max_messages:
                    return
                job = None if self._closed else self._gate.take()

        try:
            await send_batch(slot.session, jobs(), Job.finish)
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

    async def _open(self) -> Session:
        session = Session(self._settings)
        await open_session(session)
        return session

    async def _close_all(self, slots: list[Slot]) -> None:
        self._live -= len(slots)
        if slots:
            self._notify()
        for slot in slots:
            session = slot.session
            with anyio.move_on_after(_QUIT_TIMEOUT, shield=True):
                try:
                    if session.is_connected and session.state is State.READY:
                        await session.run(quit_session, session)
                except (OSError, SMTPException):
                    pass  # e.g. the server already closed it
                finally:
                    await session.close()


class _GaveUp(Exception):
    """The pool gave up connecting for a send; carries the error that send raises."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = own_copy(error)


def own_copy(error: Exception) -> Exception:
    """``error`` for one more send to raise: sends in many tasks cannot share one object
    (each gets its own ``attempts`` and traceback), so each raises a copy caused by it.

    Built without calling ``__init__``, whose parameters need not be the ``args`` it keeps.
    """
    mine = type(error).__new__(type(error), *error.args)
    mine.args = error.args  # OSError.__new__ leaves them to an overriding __init__
    mine.__dict__.update(vars(error))
    mine.__cause__ = error
    return mine
