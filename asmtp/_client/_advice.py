"""Error texts that tell the caller what to do: mistakes the library can recognise.

A plain client on the implicit-TLS port (it waits for a greeting the server will never send
before a TLS handshake), an implicit-TLS client on a plain-text port, and a client used
before ``connect()`` (smtplib's constructor connects, asmtp's cannot). Pure: the session
decides when they apply.
"""

from __future__ import annotations

import ssl
from typing import Final

from ..errors import SMTPProtocolError
from ._settings import SMTP_SSL_PORT

__all__ = [
    "NEVER_CONNECTED",
    "NOT_CONNECTED",
    "check_greeting",
    "implicit_tls_advice",
    "is_tls_record",
    "no_greeting_advice",
    "plain_text_advice",
]

NEVER_CONNECTED: Final = (
    "please run connect() first: unlike smtplib's, asmtp's constructor does not connect; "
    "use 'async with asmtp.SMTP(host, port) as smtp:' or 'await smtp.connect()'"
)
NOT_CONNECTED: Final = "please run connect() first: the connection is closed"

# RFC 8446 §5.1: a record starts with its content type (change_cipher_spec 20, alert 21,
# handshake 22, application_data 23), then the legacy version's major byte, 3.
_TLS_CONTENT_TYPES: Final = frozenset({20, 21, 22, 23})


def is_tls_record(data: bytes) -> bool:
    """Whether ``data``, the first bytes a server sent, start a TLS record.

    An SMTP reply starts with a digit, so a first byte that is a TLS content type is never
    the start of a greeting.
    """
    return bool(data) and data[0] in _TLS_CONTENT_TYPES and (len(data) < 2 or data[1] == 3)


def implicit_tls_advice(port: int, *, received: bool) -> str:
    """What to say when a plain connection to ``port`` got no greeting (or a TLS record:
    ``received``); empty when the port says nothing."""
    if not received and port != SMTP_SSL_PORT:
        return ""
    where = "the server expects" if received else f"port {port} usually expects"
    return (
        f"; {where} TLS from the first byte (implicit TLS, RFC 8314): "
        "use asmtp.SMTP_SSL, or tls='implicit'"
    )


def check_greeting(data: bytes, where: str, port: int, encrypted: bool) -> None:
    """Raise at once when the first bytes of a plain connection start a TLS record."""
    if is_tls_record(data) and not encrypted:
        raise SMTPProtocolError(
            f"{where} answered with a TLS record, not an SMTP greeting"
            + implicit_tls_advice(port, received=True)
        )


def no_greeting_advice(greeting: bool, port: int, encrypted: bool) -> str:
    """What to add when no greeting came on a plain connection to ``port``."""
    if not greeting or encrypted:
        return ""
    return implicit_tls_advice(port, received=False)


def plain_text_advice(exc: ssl.SSLError, where: str) -> ssl.SSLError:
    """``exc`` from an implicit-TLS handshake, saying what to use when the server answered
    in plain text (OpenSSL's ``WRONG_VERSION_NUMBER``: the bytes were no TLS record, most
    likely a ``220`` greeting). Any other failure is returned as it is."""
    # Set by the ssl module on the errors it raises; absent from one made in Python.
    if getattr(exc, "reason", None) != "WRONG_VERSION_NUMBER":
        return exc
    advised = ssl.SSLError(
        exc.errno,
        f"{exc.strerror or exc}: {where} does not speak TLS from the first byte (it answered "
        "in plain text); for STARTTLS use asmtp.SMTP and starttls(), or tls='starttls'",
    )
    advised.reason, advised.library = exc.reason, exc.library
    return advised
