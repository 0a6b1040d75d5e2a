"""What the client needs from a byte stream, whichever event loop and library carry it.

A transport knows nothing of SMTP. Each method takes an absolute ``deadline`` on the event
loop's clock (``math.inf``: none) and enforces it itself, raising :class:`TimeoutError` once
it passed, so the client computes deadlines and never needs to know which transport runs.
Failures are the builtin ``ConnectionError`` family (``b""`` from :meth:`Transport.receive`
at a clean end of stream) and :class:`ssl.SSLError` for TLS; nothing library-specific escapes.
"""

from __future__ import annotations

import ssl
from typing import Final, Protocol

__all__ = ["CLOSE_GRACE", "Connector", "Transport"]

CLOSE_GRACE: Final = 2.0
"""Seconds :meth:`Transport.aclose` may wait for a graceful close (the last bytes written, a
TLS close_notify answered) before it cuts the connection."""


class Transport(Protocol):
    """An open byte stream to the server."""

    async def send(self, data: bytes, deadline: float) -> None:
        """Write ``data`` (returns once it is handed to the OS, or buffered below a limit)."""
        ...

    async def receive(self, deadline: float) -> bytes:
        """Bytes received (at least one), or ``b""`` once the server closed the stream."""
        ...

    def receive_nowait(self) -> bytes | None:
        """What arrived since the last read, without waiting: ``None`` if nothing did,
        ``b""`` once the server closed. Under TLS, records that carry no application data
        (TLS 1.3 session tickets) give ``None``."""
        ...

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, deadline: float
    ) -> None:
        """Run the TLS handshake on the live stream (STARTTLS).

        Bytes the transport still holds arrived in plain text: the caller takes them with
        :meth:`receive_nowait` first. A handshake the server cuts short raises
        :class:`ssl.SSLEOFError`, any other failure :class:`ssl.SSLError`.
        """
        ...

    async def aclose(self) -> None:
        """Close; never raises, and returns within :data:`CLOSE_GRACE` seconds.

        The close starts before the first await, so a caller cancelled while it waits
        still releases the connection (cut off rather than closed gracefully).
        """
        ...

    @property
    def local_address(self) -> str | None:
        """The local IP address, or ``None`` (a Unix socket, an in-memory stream)."""
        ...

    @property
    def is_tls(self) -> bool:
        """True once the stream is encrypted."""
        ...

    @property
    def tls_version(self) -> str | None:
        """The TLS version in use as :meth:`ssl.SSLSocket.version` names it (``"TLSv1.3"``),
        or ``None`` without TLS."""
        ...


class Connector(Protocol):
    """Opens a :class:`Transport`: TCP (with TLS from the first byte when given a context),
    or a Unix socket when ``host`` is an absolute path."""

    async def __call__(
        self,
        host: str,
        port: int,
        *,
        tls_context: ssl.SSLContext | None,
        server_hostname: str | None,
        source_address: tuple[str, int] | None,
        deadline: float,
    ) -> Transport: ...
