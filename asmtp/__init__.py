"""asmtp: an async SMTP and LMTP client with smtplib's API, on a sans-IO core.

Runs on asyncio and trio (through anyio). Exceptions are smtplib's own classes, so existing
``except smtplib.SMTPException`` handlers keep working.
"""

from __future__ import annotations

from ._api import send_message, sendmail
from ._client import DEFAULT_TIMEOUT, SMTP, SendmailResult
from .errors import (
    BadArgument,
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPDataError,
    SMTPException,
    SMTPHeloError,
    SMTPNotSupportedError,
    SMTPProtocolError,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "SMTP",
    "BadArgument",
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
    "SendmailResult",
    "send_message",
    "sendmail",
]

__version__ = "0.1.0"
