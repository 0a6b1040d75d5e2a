"""The connection settings shared by every way of connecting, checked once.

``SMTP``, ``connect()``, the one-shot functions and ``SMTPPool`` keep their public keyword
arguments; inside the package they become one frozen :class:`ClientSettings`, so each
setting is validated in one place and passed on as one value.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal, get_args

from .._dkim import DKIMSigner
from .._transport import Connector, connect
from ..auth import Mechanism, Secret
from ..protocol._connection import DEFAULT_MAX_PENDING
from ..protocol._replies import (
    DEFAULT_MAX_LINE_LENGTH,
    DEFAULT_MAX_REPLY_BYTES,
    DEFAULT_MAX_REPLY_LINES,
)
from ._checks import (
    check_context,
    check_int,
    check_port,
    check_seconds,
    check_source_address,
    check_text,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "LMTP_PORT",
    "SMTP_SSL_PORT",
    "ClientSettings",
    "Limits",
    "TLSMode",
    "check_tls",
]

DEFAULT_TIMEOUT: Final = 60.0
"""Seconds a connect, a write or a whole reply may take (smtplib's default waits forever)."""

SMTP_SSL_PORT: Final = 465
"""The implicit TLS submission port (RFC 8314 §3.3), :class:`SMTP_SSL`'s default."""
LMTP_PORT: Final = 2003
"""smtplib's LMTP port (RFC 2033 assigns none)."""

TLSMode = Literal["auto", "implicit", "starttls", "none"]
"""How the one-shot functions and the pool secure the connection.

- ``"auto"`` (default): implicit TLS on port 465; elsewhere STARTTLS when the server
  advertises it. Credentials are refused on a connection that stayed unencrypted.
- ``"implicit"``: TLS from the first byte (RFC 8314).
- ``"starttls"``: STARTTLS is required; fails if the server does not offer it.
- ``"none"``: plain text, even with credentials; only for trusted local servers.
"""


_TLS_MODES: Final = get_args(TLSMode)


def check_tls(tls: object) -> TLSMode:
    """``tls`` if it is one of :data:`TLSMode`'s values; :class:`ValueError` otherwise.

    A near miss (``"STARTTLS"``, ``True``, ``"required"``) must not quietly mean ``"auto"``,
    which goes on in the clear when STARTTLS is stripped.
    """
    if not isinstance(tls, str) or tls not in _TLS_MODES:
        choices = ", ".join(repr(mode) for mode in _TLS_MODES)
        raise ValueError(f"tls= must be one of {choices}, not {tls!r}")
    return tls  # type: ignore[return-value]  # checked against the Literal's values


@dataclass(frozen=True, slots=True)
class Limits:
    """The core's bounds on what a server may send (:class:`asmtp.protocol.ClientConnection`)."""

    max_line_length: int = DEFAULT_MAX_LINE_LENGTH
    max_reply_lines: int = DEFAULT_MAX_REPLY_LINES
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES
    max_pending: int = DEFAULT_MAX_PENDING

    def __post_init__(self) -> None:
        for name in ("max_line_length", "max_reply_lines", "max_reply_bytes", "max_pending"):
            check_int(name, getattr(self, name))


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Where to connect and how: one value for every connection a client or pool opens.

    ``host`` starting with ``/`` is a Unix socket path. ``implicit_tls`` wraps the
    connection in TLS from the first byte; ``tls`` is the policy the one-shot functions and
    the pool apply after connecting (:data:`TLSMode`). ``mechanism`` is a factory because
    SASL mechanisms hold per-exchange state. ``connector`` opens the byte stream (tests use
    an in-memory one). ``dkim`` signs every message sent (after Bcc removal, on the bytes
    as they go out).
    """

    host: str = "localhost"
    port: int = 0
    tls: TLSMode = "auto"
    implicit_tls: bool = False
    context: ssl.SSLContext | None = None
    server_hostname: str | None = None
    username: str | None = None
    password: Secret | None = field(default=None, repr=False)
    mechanism: Callable[[], Mechanism] | None = None
    local_hostname: str | None = None
    timeout: float | None = DEFAULT_TIMEOUT
    source_address: tuple[str, int] | None = None
    lmtp: bool = False
    chunking: bool = True
    limits: Limits = Limits()
    connector: Connector = connect
    dkim: DKIMSigner | None = None

    def __post_init__(self) -> None:
        check_text("host", self.host)
        check_port(self.port)
        check_tls(self.tls)
        check_context(self.context)
        for name in ("server_hostname", "username", "local_hostname"):
            check_text(name, getattr(self, name), optional=True)
        if self.password is not None and not isinstance(self.password, Secret):
            raise TypeError(f"password must be a str or None, not {type(self.password).__name__}")
        if self.mechanism is not None and not callable(self.mechanism):
            raise TypeError("mechanism must be an asmtp.auth.Mechanism")
        check_seconds("timeout", self.timeout)
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"timeout must be positive or None, not {self.timeout!r}")
        check_source_address(self.source_address)
        if self.dkim is not None and not isinstance(self.dkim, DKIMSigner):
            raise TypeError(
                f"dkim must be an asmtp.DKIMSigner or None, not {type(self.dkim).__name__}"
            )
