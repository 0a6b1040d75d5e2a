"""SMTPPool: many concurrent sends over a bounded set of reused connections.

The bookkeeping (:class:`_Idle`, :class:`_RateLimiter`, :func:`retry_delay`) is plain
synchronous code that says what to reuse, close or wait for; the awaits happen in
:class:`SMTPPool`. A connection goes back to the pool only when it is in step with the
server; a message is retried only when the server cannot have accepted it.
"""

from __future__ import annotations

import email.message
import random
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType

import anyio

from ._api import TLSMode, check_tls_mode, new_client, secure_and_login
from ._batch import Outgoing, send_batch
from ._client import DEFAULT_TIMEOUT, SMTP, SendmailResult
from ._outcome import SendOutcome
from .auth import Mechanism, Secret
from .errors import (
    SMTPConnectError,
    SMTPDataError,
    SMTPException,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTransactionInterrupted,
    SMTPTransactionTimeout,
)
from .protocol import Param, State

__all__ = ["RetryPolicy", "SMTPPool", "SendResult", "is_retryable", "retry_delay"]

_QUIT_TIMEOUT = 5.0
_RNG = random.Random()  # noqa: S311 - jitter for retries, not secrecy


class SendResult(dict[str, tuple[int, bytes]]):
    """The refused-recipients dict, plus how many attempts the send took."""

    attempts: int

    def __init__(self, refused: SendmailResult, attempts: int) -> None:
        super().__init__(refused)
        self.attempts = attempts


@dataclass(frozen=True)
class RetryPolicy:
    """How :class:`SMTPPool` retries a send the server cannot have accepted.

    ``attempts`` counts the first one; delays grow as ``base_delay * 2**n`` up to
    ``max_delay``, each multiplied by a random factor in ``[0.5, 1.5)`` when ``jitter``.
    """

    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: bool = True


def retry_delay(policy: RetryPolicy, attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before attempt number ``attempt + 1`` (``attempt`` >= 1)."""
    delay = min(policy.max_delay, policy.base_delay * 2.0 ** (attempt - 1))
    if policy.jitter:
        delay *= 0.5 + (rng or _RNG).random()
    return delay


def is_retryable(exc: BaseException) -> bool:
    """True when sending again cannot deliver the message twice and may succeed.

    A transient (4xx) refusal of the sender, of every recipient or of the data, and a lost
    connection or timeout before the end of the data could reach the server. An unknown
    outcome is never retried.
    """
    if isinstance(exc, (SMTPTransactionInterrupted, SMTPTransactionTimeout)):
        return exc.outcome.accepted is False
    if isinstance(exc, SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return bool(codes) and all(400 <= code < 500 for code in codes)
    if isinstance(exc, (SMTPSenderRefused, SMTPDataError, SMTPConnectError)):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, SMTPServerDisconnected):
        return True  # lost before any transaction began (a send in flight says so above)
    if isinstance(exc, (SMTPException, ssl.SSLError)):
        return False  # a permanent answer, a missing feature, or a certificate that will not change
    # Failures while connecting, greeting or saying EHLO: no transaction had started.
    # (anyio reports a refused connection as a plain OSError.)
    return isinstance(exc, OSError)


def _replayable(msg: object) -> bool:
    """Whether ``msg`` can be sent again from the start (not a one-shot stream)."""
    return isinstance(msg, (str, bytes, bytearray, memoryview, email.message.Message, list, tuple))


@dataclass
class _Slot:
    smtp: SMTP
    sent: int = 0
    idle_since: float = 0.0


class _Idle:
    """Idle connections, newest last; says which to reuse and which to close."""

    def __init__(self, idle_timeout: float, max_messages: int) -> None:
        self.idle_timeout = idle_timeout
        self.max_messages = max_messages
        self._slots: deque[_Slot] = deque()

    def __len__(self) -> int:
        return len(self._slots)

    def checkout(self, now: float) -> tuple[_Slot | None, list[_Slot]]:
        """A connection to reuse (or ``None``: open one) and the expired ones to close."""
        expired: list[_Slot] = []
        while self._slots:
            slot = self._slots.pop()
            if now - slot.idle_since > self.idle_timeout:
                expired.append(slot)
                expired.extend(self._slots)  # older still: all expired
                self._slots.clear()
            elif slot.smtp.is_connected and slot.smtp.state is State.READY:
                return slot, expired
            else:
                expired.append(slot)
        return None, expired

    def checkin(self, slot: _Slot, now: float) -> bool:
        """Keep ``slot`` for reuse if it is in step and under its message limit."""
        if slot.sent >= self.max_messages or not slot.smtp.is_connected:
            return False
        if slot.smtp.state is not State.READY:
            return False
        slot.idle_since = now
        self._slots.append(slot)
        return True

    def drain(self) -> list[_Slot]:
        """Every idle connection, for closing."""
        slots, self._slots = list(self._slots), deque()
        return slots


class _Job:
    """One attempt at one message: queued, then run alone or in some connection's batch."""

    __slots__ = (
        "batchable",
        "deadline",
        "done",
        "error",
        "item",
        "promoted",
        "result",
        "smtp",
        "taken",
        "wake",
    )

    def __init__(self, item: Outgoing, *, batchable: bool, deadline: float | None) -> None:
        self.item = item
        self.batchable = batchable
        self.deadline = deadline
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


class _Gate:
    """At most ``limit`` callers hold a connection at once; the others queue, first come first served.

    A holder may take queued jobs into its connection's batch (:meth:`take`); their owners
    keep waiting until the job is done. A released place goes straight to the oldest job
    still queued, whose owner then runs a connection itself.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self._waiters: deque[_Job] = deque()

    async def enter(self, job: _Job) -> bool:
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

    def take(self) -> _Job | None:
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


class _RateLimiter:
    """Spaces sends at ``rate`` per second across the pool (``None``: no limit)."""

    def __init__(self, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate_limit must be positive, got {rate}")
        self._interval = 1.0 / rate if rate else 0.0
        self._next = 0.0

    @property
    def limited(self) -> bool:
        return bool(self._interval)

    def reserve(self, now: float) -> float:
        """Seconds to wait before the next send may start."""
        if not self._interval:
            return 0.0
        start = max(now, self._next)
        self._next = start + self._interval
        return start - now


class SMTPPool:
    """A pool of SMTP connections for many concurrent sends.

    Takes the one-shot functions' connection settings (host, port, ``tls`` policy,
    credentials) plus the pool's: ``max_connections``, ``max_messages_per_connection``,
    ``idle_timeout`` (seconds), ``rate_limit`` (messages per second for the whole pool) and
    ``retry``. :meth:`sendmail` and :meth:`send_message` are safe to call from thousands of
    tasks; they return the refused dict (a :class:`SendResult` with ``attempts``) and raise
    what :class:`SMTP` raises, the final exception carrying ``attempts`` too.
    ``mechanism`` is a factory: SASL mechanisms are stateful, so each connection gets one.
    ``chunking=False`` keeps DATA even where the server offers CHUNKING. A ``tls`` that is
    not a :data:`~asmtp.TLSMode` raises :class:`ValueError` here, before any connection.

    While every connection is busy, sends queue; a caller whose turn comes sends its own
    message and then up to ``max_batch - 1`` queued ones back to back on its connection,
    each next transaction written with the previous end of data (RFC 2920 §3.1, see
    :meth:`SMTP.sendmail_many`). Each queued caller gets its own result as soon as its
    reply is in. Sends with a ``deadline``, a streamed body or under a ``rate_limit`` run
    alone; ``max_batch=1`` turns batching off. A caller cancelled while its message is on
    another caller's connection stops waiting; that message still completes, so the
    connection stays in step.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 0,
        *,
        tls: TLSMode = "auto",
        username: str | None = None,
        password: str | None = None,
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
        if max_connections < 1 or max_messages_per_connection < 1 or max_batch < 1:
            raise ValueError(
                "max_connections, max_messages_per_connection and max_batch must be >= 1"
            )
        self.host, self.port, self.tls = host, port, check_tls_mode(tls)
        self._username = username
        self._password = Secret(password) if password is not None else None
        self._mechanism = mechanism
        self._context = context
        self._local_hostname = local_hostname
        self._timeout = timeout
        self._source_address = source_address
        self.retry = retry or RetryPolicy()
        self.chunking = chunking
        self.max_batch = max_batch
        self.max_connections = max_connections
        self._gate = _Gate(max_connections)
        self._idle = _Idle(idle_timeout, max_messages_per_connection)
        self._rate = _RateLimiter(rate_limit)
        self._closed = False

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
        """:meth:`SMTP.sendmail` on a pooled connection, retried while safe.

        A message given as a file or an iterator is read once, so it is retried only
        when none of its body had been read.
        """
        item = Outgoing(from_addr, to_addrs, msg, mail_options, rcpt_options)
        return await self._with_retries(item, replayable=_replayable(msg), deadline=deadline)

    async def send_message(
        self,
        msg: email.message.Message,
        from_addr: str | None = None,
        to_addrs: str | Sequence[str] | None = None,
        mail_options: Sequence[Param] = (),
        rcpt_options: Sequence[Param] = (),
        *,
        deadline: float | None = None,
    ) -> SendResult:
        """:meth:`SMTP.send_message` on a pooled connection, retried while safe."""
        item = Outgoing.message(msg, from_addr, to_addrs, mail_options, rcpt_options)
        return await self._with_retries(item, replayable=True, deadline=deadline)

    async def _with_retries(
        self, item: Outgoing, *, replayable: bool, deadline: float | None
    ) -> SendResult:
        # A deadline or a one-shot stream belongs to its own caller's connection turn.
        batchable = (
            replayable and deadline is None and self.max_batch > 1 and not self._rate.limited
        )
        attempt = 0
        while True:
            attempt += 1
            job = _Job(item, batchable=batchable, deadline=deadline)
            try:
                refused = await self._attempt(job)
            except Exception as exc:
                outcome = job.smtp.last_outcome if job.smtp is not None else None
                # A streamed body can be read only once: retry it only if none was read.
                can_replay = replayable or outcome is None or not outcome.body_started
                retry = can_replay and is_retryable(exc) and attempt < self.retry.attempts
                if not retry:
                    exc.attempts = attempt  # type: ignore[attr-defined]
                    raise
                await anyio.sleep(retry_delay(self.retry, attempt))
                continue
            return SendResult(refused, attempt)

    async def _attempt(self, job: _Job) -> SendmailResult:
        if self._closed:
            raise RuntimeError("the pool is closed")
        if not await self._gate.enter(job):
            return job.outcome()  # another caller's connection sent it
        try:
            now = time.monotonic()
            wait = self._rate.reserve(now)
            if wait:
                await anyio.sleep(wait)
                now = time.monotonic()
            slot, expired = self._idle.checkout(now)
            if expired:
                await self._close_all(expired)
            if slot is None:
                slot = _Slot(await self._open())
            try:
                if not job.batchable:
                    slot.sent += 1
                    return await job.run_alone(slot.smtp)
                await self._run_batch(job, slot)
                return job.outcome()
            finally:
                if self._closed or not self._idle.checkin(slot, time.monotonic()):
                    await self._close_all([slot])
        finally:
            self._gate.release()

    async def _run_batch(self, first: _Job, slot: _Slot) -> None:
        """Send ``first`` and, back to back on the same connection, jobs queued meanwhile.

        Each next job is taken only when the connection is ready for it, up to
        ``max_batch`` and the connection's message limit; their owners are woken as soon
        as each reply is in.
        """
        taken: list[_Job] = []

        def jobs() -> Iterator[tuple[_Job, Outgoing]]:
            job: _Job | None = first
            while job is not None:
                taken.append(job)
                slot.sent += 1
                yield job, job.item
                if len(taken) >= self.max_batch or slot.sent >= self._idle.max_messages:
                    return
                job = None if self._closed else self._gate.take()

        try:
            await send_batch(slot.smtp, jobs(), _Job.finish)
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

    async def _open(self) -> SMTP:
        smtp = new_client(
            self.host,
            self.port,
            tls=self.tls,
            context=self._context,
            local_hostname=self._local_hostname,
            timeout=self._timeout,
            source_address=self._source_address,
        )
        smtp.use_chunking = self.chunking
        await smtp.__aenter__()
        try:
            await secure_and_login(
                smtp,
                tls=self.tls,
                username=self._username,
                password=self._password.reveal() if self._password is not None else None,
                mechanism=self._mechanism() if self._mechanism is not None else None,
                context=self._context,
            )
        except BaseException:
            await smtp.close()
            raise
        return smtp

    async def _close_all(self, slots: list[_Slot]) -> None:
        for slot in slots:
            with anyio.move_on_after(_QUIT_TIMEOUT, shield=True):
                try:
                    if slot.smtp.is_connected and slot.smtp.state is State.READY:
                        await slot.smtp.quit()
                except (OSError, SMTPResponseException):
                    pass
                finally:
                    await slot.smtp.close()
