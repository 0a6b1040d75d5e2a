"""asmtp: an async SMTP and LMTP client with smtplib's API, on a sans-IO core.

Runs on asyncio and trio (through anyio). Exceptions are smtplib's own classes, so existing
``except smtplib.SMTPException`` handlers keep working.
"""

from __future__ import annotations

from . import auth, errors, protocol
from ._bulk import RetryPolicy, SendStream, SMTPPool
from ._client import (
    DEFAULT_TIMEOUT,
    LMTP,
    LMTP_PORT,
    SMTP,
    SMTP_SSL,
    SMTP_SSL_PORT,
    OnProgress,
    Outgoing,
    TLSMode,
    connect,
    send_message,
    sendmail,
)
from ._dkim import DKIMSigner
from ._results import SendOutcome, SendResult
from ._transport import Proxy
from .errors import (
    BadArgument,
    EightBitNotSupportedError,
    MalformedHeaderError,
    ProxyError,
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
    SMTPServerNotGenuine,
    SMTPTransactionInterrupted,
    SMTPTransactionTimeout,
    TLSRequiredError,
    TLSRequiredReason,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "LMTP",
    "LMTP_PORT",
    "SMTP",
    "SMTP_SSL",
    "SMTP_SSL_PORT",
    "BadArgument",
    "DKIMSigner",
    "EightBitNotSupportedError",
    "MalformedHeaderError",
    "OnProgress",
    "Outgoing",
    "Proxy",
    "ProxyError",
    "RetryPolicy",
    "SMTPAuthenticationError",
    "SMTPConnectError",
    "SMTPDataError",
    "SMTPException",
    "SMTPHeloError",
    "SMTPNotSupportedError",
    "SMTPPool",
    "SMTPProtocolError",
    "SMTPRecipientsRefused",
    "SMTPResponseException",
    "SMTPSenderRefused",
    "SMTPServerDisconnected",
    "SMTPServerNotGenuine",
    "SMTPTransactionInterrupted",
    "SMTPTransactionTimeout",
    "SendOutcome",
    "SendResult",
    "SendStream",
    "TLSMode",
    "TLSRequiredError",
    "TLSRequiredReason",
    "auth",
    "connect",
    "errors",
    "protocol",
    "send_message",
    "sendmail",
]

__version__ = "0.1.0"
