"""Retries and backoff for :class:`asmtp.SMTPPool`: what is retried, and when to try again.

Plain synchronous bookkeeping (no I/O, no awaits): :func:`is_retryable` judges a failed
send, :func:`retry_delay` spaces a message's own retries, and :class:`ConnectBackoff` says
when the pool may open a connection to a destination that is failing, as an MTA's queue
manager does: after a connection-level failure nobody connects until one shared delay has
passed, then a single probe goes out; consecutive failures grow the delay, a success ends
it, and after ``RetryPolicy.attempts`` of them in a row the pool gives up on the sends
waiting for a connection.
"""

from __future__ import annotations

import math
import random
import ssl
from dataclasses import dataclass

from ..errors import (
    SMTPConnectError,
    SMTPDataError,
    SMTPException,
    SMTPRecipientsRefused,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTransactionInterrupted,
    SMTPTransactionTimeout,
)

__all__ = [
    "Admission",
    "ConnectBackoff",
    "GaveUp",
    "RetryPolicy",
    "died_unanswered",
    "is_retryable",
    "own_copy",
    "retry_delay",
    "wants_fresh_connection",
]

_RNG = random.Random()  # noqa: S311 - jitter for retries, not secrecy


@dataclass(frozen=True)
class RetryPolicy:
    """How :class:`SMTPPool` retries a send the server cannot have accepted.

    ``attempts`` counts the first one; delays grow as ``base_delay * 2**n`` up to
    ``max_delay``, each multiplied by a random factor in ``[0.5, 1.5)`` when ``jitter``.
    Failures to connect are counted for the pool as a whole: after ``attempts`` of them in
    a row, the sends waiting for a connection fail with the server's error.
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


def wants_fresh_connection(exc: object) -> bool:
    """True for a transient (4xx) refusal of MAIL: retry on another connection, not this one.

    Servers refuse MAIL with a 4xx when the session itself is worn out (OpenSMTPD's
    ``452 4.5.3 Too many messages`` after its ``max-mails``), so the same connection would
    only refuse again.
    """
    return isinstance(exc, SMTPSenderRefused) and 400 <= exc.smtp_code < 500


def died_unanswered(exc: object, *, answered: bool) -> bool:
    """True when the connection was lost before the server answered anything of the send.

    A reused connection that fails so was dead before the send began (the server closed it
    while it idled, and the close crossed the first write): the send did not fail, its
    connection did. ``answered`` says whether any reply of the send arrived.
    """
    return (
        isinstance(exc, SMTPTransactionInterrupted)
        and exc.outcome.accepted is False
        and not answered
    )


@dataclass(frozen=True, slots=True)
class Admission:
    """What a send that needs a new connection does now: exactly one field says it."""

    token: int | None = None
    """Open a connection now, and report how it went with this token."""
    wait: float = 0.0
    """Else wait this many seconds (``inf``: until the probe in flight settles), then ask again."""
    error: Exception | None = None
    """Else give up with the destination's last error."""


class ConnectBackoff:
    """When the pool may open a connection to its one destination (a circuit breaker).

    Connection-level failures (refused, a 4xx or 5xx greeting, TLS or login failure, a
    timeout while connecting) are counted once per round: the connections already being
    opened when one fails cannot tell the pool anything new, so their failures are not
    counted again. A failure that retrying cannot cure counts as all the attempts at once.
    """

    def __init__(self, policy: RetryPolicy, rng: random.Random | None = None) -> None:
        self.policy = policy
        self._rng = rng
        self.failures = 0
        """Connection failures counted in a row."""
        self.failed_total = 0
        """Every failure counted so far: a send compares it to know how many it waited through."""
        self.retry_at = 0.0
        self.error: Exception | None = None
        self._probing = False
        self._round = 0

    @property
    def gave_up(self) -> bool:
        """True once ``policy.attempts`` failures came in a row."""
        return self.failures >= self.policy.attempts

    def admit(self, now: float, *, expires: float = math.inf, live: int = 0) -> Admission:
        """Whether a send may open a connection at ``now``.

        ``expires`` is when the send's own deadline passes; ``live`` how many connections
        the pool holds, which a send may still get once one is free.
        """
        if not self.failures:
            return Admission(token=self._round)
        if self.gave_up and not live and now < self.retry_at:
            return Admission(error=self.error)
        if not self._probing and now >= self.retry_at:
            self._probing = True  # one probe at a time while the destination fails
            return Admission(token=self._round)
        until = math.inf if self._probing else self.retry_at
        if expires <= now or (until > expires and not live):
            return Admission(error=self.error)  # the send's deadline comes first
        return Admission(wait=min(until, expires) - now)

    def opened(self) -> None:
        """A connection was opened: the destination works again."""
        self.failures, self.retry_at, self.error = 0, 0.0, None
        self._probing = False
        self._round += 1

    def failed(self, token: int, exc: Exception, now: float, *, retryable: bool) -> bool:
        """Count a failure to open a connection; False when its round was already counted."""
        if token != self._round:
            return False
        self._round += 1
        self._probing = False  # while probing, only the probe holds this round's token
        self.failures = (
            self.failures + 1 if retryable else max(self.failures + 1, self.policy.attempts)
        )
        self.failed_total += 1
        self.retry_at = now + retry_delay(self.policy, self.failures, self._rng)
        self.error = exc
        return True

    def abandoned(self, token: int) -> None:
        """A connection attempt was cancelled: its probe, if it was one, is free again."""
        if token == self._round:
            self._probing = False


class GaveUp(Exception):
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
