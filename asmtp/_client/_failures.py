"""The one place where core and transport failures become smtplib's vocabulary.

:func:`translate` decides, for any exception that ends a public call, what the caller sees
and whether the connection must be dropped; :func:`message_failure` builds the exception
for one message a failure interrupted, with its :class:`~asmtp.SendOutcome`. Both are
pure: the session performs the clean-up they ask for.
"""

from __future__ import annotations

import enum
import ssl

import anyio

from ..errors import (
    SMTPException,
    SMTPProtocolError,
    SMTPServerDisconnected,
    SMTPTransactionInterrupted,
    SMTPTransactionTimeout,
)
from ..protocol import RemoteProtocolError
from ._progress import Progress

__all__ = ["Cleanup", "message_failure", "translate"]


class Cleanup(enum.Enum):
    """What the connection needs after a failure."""

    KEEP = "keep"
    """Nothing happened to the conversation (a refusal, a bad argument found up front)."""
    CLOSE_IF_OUT_OF_STEP = "close if out of step"
    """Close unless no reply is owed and no body is half sent (cancellation, timeouts)."""
    CLOSE = "close"
    """The connection cannot be used again (lost, desynchronised, TLS failed)."""


def translate(exc: BaseException, progress: Progress | None) -> tuple[BaseException, Cleanup]:
    """The exception the caller sees for ``exc``, and the clean-up the connection needs.

    Inside a send (``progress`` not finished), disconnects, timeouts and protocol errors
    say what became of the message; the original stays as ``__cause__``.
    """
    if isinstance(exc, RemoteProtocolError):
        return _for_send(SMTPProtocolError(str(exc)), progress), Cleanup.CLOSE
    if isinstance(exc, SMTPServerDisconnected):
        return _for_send(exc, progress), Cleanup.CLOSE
    if isinstance(exc, ssl.SSLError):
        return exc, Cleanup.CLOSE  # a failed handshake stays an ssl error, as in smtplib
    if isinstance(exc, SMTPException):
        return exc, Cleanup.KEEP  # smtplib's own verdicts
    if isinstance(exc, TimeoutError):
        return _for_send(exc, progress), Cleanup.CLOSE_IF_OUT_OF_STEP
    if isinstance(exc, OSError):
        lost = SMTPServerDisconnected(f"connection lost: {exc}")
        return _for_send(lost, progress), Cleanup.CLOSE
    # Cancellation, or a caller's bad input discovered mid-body.
    return exc, Cleanup.CLOSE_IF_OUT_OF_STEP


def _for_send(new: BaseException, progress: Progress | None) -> BaseException:
    if progress is None or progress.finished:
        return new
    return message_failure(new, progress)


def message_failure(exc: BaseException, progress: Progress) -> Exception:
    """The exception for one message whose send ``exc`` interrupted, with its outcome."""
    outcome = progress.outcome()
    new: Exception
    if isinstance(exc, SMTPTransactionTimeout):
        new = SMTPTransactionTimeout(str(exc), outcome)
    elif isinstance(exc, TimeoutError):
        new = SMTPTransactionTimeout(f"timed out during a send: {exc}", outcome)
    elif isinstance(exc, SMTPProtocolError):
        text = exc.smtp_error
        new = SMTPProtocolError(
            text.decode("utf-8", "replace") if isinstance(text, bytes) else text, outcome
        )
    elif isinstance(exc, anyio.get_cancelled_exc_class()):
        new = SMTPTransactionInterrupted("the connection's task was cancelled", outcome)
    else:
        new = SMTPTransactionInterrupted(str(exc) or type(exc).__name__, outcome)
    if new is not exc:
        new.__cause__ = exc
    return new
