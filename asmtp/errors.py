"""Exceptions: smtplib's own classes, re-exported, plus the few asmtp adds as subclasses.

``except smtplib.SMTPRecipientsRefused`` catches what asmtp raises, because it is the same
class. Timeouts are the builtin :class:`TimeoutError`; bad arguments are :class:`ValueError`
(:class:`asmtp.protocol.BadArgument`); a proxy that fails is a :class:`ConnectionError`
(:class:`ProxyError`).
"""

from __future__ import annotations

from smtplib import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPDataError,
    SMTPException,
    SMTPHeloError,
    SMTPNotSupportedError,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from typing import Literal

from ._results import SendOutcome
from ._transport import ProxyError
from .protocol import BadArgument

__all__ = [
    "BadArgument",
    "EightBitNotSupportedError",
    "MalformedHeaderError",
    "ProxyError",
    "SMTPAuthenticationError",
    "SMTPConnectError",
    "SMTPDataError",
    "SMTPException",
    "SMTPHeloError",
    "SMTPNotSupportedError",
    "SMTPProtocolError",
    "SMTPRecipientsRefused",
    "SMTPResponseException",
    "SMTPSenderRefused",
    "SMTPServerDisconnected",
    "SMTPServerNotGenuine",
    "SMTPTransactionInterrupted",
    "SMTPTransactionTimeout",
    "SendOutcome",
    "TLSRequiredError",
    "TLSRequiredReason",
]


class SMTPProtocolError(SMTPResponseException):
    """The server broke the protocol (malformed or oversized reply, injected bytes).

    The connection has been closed. ``smtp_code`` is ``-1``, as smtplib reports an
    unparsable reply; ``smtp_error`` describes the fault. The core's
    :class:`~asmtp.protocol.RemoteProtocolError` is kept as ``__cause__``.
    """

    def __init__(self, message: str, outcome: SendOutcome | None = None) -> None:
        super().__init__(-1, message.encode("utf-8", "replace"))
        self.outcome = outcome
        """What became of the message when this interrupted a send, else ``None``."""


class EightBitNotSupportedError(BadArgument):
    """The message asmtp encoded is 8-bit and the server offers no way to declare it.

    A ``str`` with non-ASCII characters (sent as UTF-8), or a message object flattened to
    8-bit bytes, needs BODY=8BITMIME (RFC 6152), and SMTPUTF8 as well when the 8-bit octets
    are in the header block (RFC 6531, RFC 6532). Raised before MAIL; smtplib raises
    :class:`UnicodeEncodeError` for such a ``str``. Encode the message yourself (RFC 2047
    headers, a quoted-printable or base64 body) or send bytes, which go as given.
    """


class MalformedHeaderError(BadArgument):
    """A message's header would not come out as one header field; nothing of it was sent.

    A line break in a value that is not folding (not followed by a space or tab), or a name
    that is not printable ASCII without a colon, would add a line of its own to the header
    block or end it early (header injection). The message names the header or the line.
    """


TLSRequiredReason = Literal["no-starttls", "credentials-in-clear"]
"""Why a :class:`TLSRequiredError` was raised (its ``reason``)."""


class TLSRequiredError(SMTPNotSupportedError):
    """The connection could not be encrypted and the TLS policy forbids going on in the clear.

    Raised before any credential or message is sent. ``reason`` says why, for callers that
    word their own message:

    - ``"no-starttls"``: the policy requires TLS (``tls="starttls"``) and the server does
      not offer STARTTLS;
    - ``"credentials-in-clear"``: credentials were given, the server offers no STARTTLS
      (``tls="auto"``), and they would go out unencrypted (``tls="none"`` allows it).
    """

    def __init__(self, message: str, reason: TLSRequiredReason) -> None:
        super().__init__(message)
        self.reason: TLSRequiredReason = reason


class SMTPTransactionInterrupted(SMTPServerDisconnected):
    """The connection was lost in the middle of a send; ``outcome`` says what happened.

    ``outcome.accepted`` is ``False`` when the server cannot have accepted the message and
    ``None`` when the end of the data was sent but its reply never came.
    """

    def __init__(self, message: str, outcome: SendOutcome) -> None:
        super().__init__(message)
        self.outcome = outcome


class SMTPTransactionTimeout(TimeoutError):
    """A send timed out (per operation or its whole deadline); ``outcome`` says how far it got."""

    def __init__(self, message: str, outcome: SendOutcome) -> None:
        super().__init__(message)
        self.outcome = outcome


class SMTPServerNotGenuine(SMTPAuthenticationError):
    """The server could not prove it knows the password (SCRAM): it may be an impostor.

    The connection has been closed, and ``login()`` tries no other mechanism, so the
    password never reaches such a server.
    """
