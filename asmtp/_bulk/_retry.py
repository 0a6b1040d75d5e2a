"""When a send may be tried again, and how long to wait first.

Plain synchronous code: the pool asks, and does the waiting itself.
"""

from __future__ import annotations

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

__all__ = ["RetryPolicy", "is_retryable", "retry_delay"]

_RNG = random.Random()  # noqa: S311 - jitter for retries, not secrecy


@dataclass(frozen=True)
class RetryPolicy:
    """How :class:`~asmtp.SMTPPool` retries a send the server cannot have accepted.

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
    return isinstance(exc, OSError)
