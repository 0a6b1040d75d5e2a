"""Byte transports on anyio: TCP, implicit TLS, STARTTLS on a live stream, Unix sockets.

Knows nothing of SMTP. Every anyio exception is mapped here, once, to the builtin
``ConnectionError`` family (``b""`` for a clean end of stream), so the client sees one
vocabulary whatever the event loop. TLS failures surface as :class:`ssl.SSLError`. Under
asyncio the same interface is served by asyncio's own transports, which are faster.
"""

from __future__ import annotations

import asyncio
import functools
import math
import ssl
from typing import Protocol

import anyio
from anyio.abc import ByteStream, SocketAttribute
from anyio.streams.tls import TLSStream

from ._asyncio_transport import open_asyncio_tcp, open_asyncio_unix

__all__ = [
    "AnyioTransport",
    "Transport",
    "connect_tcp",
    "connect_unix",
    "default_ssl_context",
    "new_ssl_context",
]

_RECEIVE_SIZE = 65536


def new_ssl_context() -> ssl.SSLContext:
    """A fresh default context: verifies the chain and the host name, TLS 1.2 at least.

    The standard library's default context; making one loads the CA store (milliseconds).
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@functools.cache
def default_ssl_context() -> ssl.SSLContext:
    """The context used when the caller gives none, made once per process.

    Shared by every connection, so it must never be handed to a caller, who could change
    it for all of them: a client that exposes a context makes its own
    (:func:`new_ssl_context`). A context the caller passes is never modified.
    """
    return new_ssl_context()


class Transport(Protocol):
    """What the client needs from a byte stream.

    ``deadline`` is an absolute time on the event loop's clock. A transport whose
    ``enforces_deadlines`` is true raises :class:`TimeoutError` once it passed; otherwise
    it ignores it and the caller bounds the wait with a cancel scope.
    """

    enforces_deadlines: bool

    async def send(self, data: bytes, deadline: float = math.inf) -> None: ...

    async def receive(self, deadline: float = math.inf) -> bytes: ...

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str | None) -> None: ...

    async def aclose(self) -> None: ...

    @property
    def local_address(self) -> str | None: ...

    @property
    def is_tls(self) -> bool: ...


class AnyioTransport:
    """A :class:`Transport` over any anyio byte stream."""

    __slots__ = ("_local_address", "_stream")

    enforces_deadlines = False  # anyio's cancel scopes bound its waits (see Transport)

    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream
        address = stream.extra(SocketAttribute.local_address, None)  # noqa: S610
        self._local_address = address[0] if isinstance(address, tuple) else None

    @property
    def local_address(self) -> str | None:
        """The local IP address, or ``None`` for a Unix socket."""
        return self._local_address

    @property
    def is_tls(self) -> bool:
        """True once the stream is encrypted."""
        return isinstance(self._stream, TLSStream)

    async def send(self, data: bytes, deadline: float = math.inf) -> None:
        try:
            await self._stream.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise ConnectionResetError("the connection was lost while sending") from exc

    async def receive(self, deadline: float = math.inf) -> bytes:
        try:
            return await self._stream.receive(_RECEIVE_SIZE)
        except anyio.EndOfStream:
            return b""
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise ConnectionResetError("the connection was lost while receiving") from exc

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        """Run the TLS handshake on the live stream (STARTTLS)."""
        try:
            self._stream = await TLSStream.wrap(
                self._stream,
                hostname=server_hostname,
                ssl_context=context,
                standard_compatible=False,
            )
        except anyio.BrokenResourceError as exc:
            raise ConnectionResetError("the connection was lost during the TLS handshake") from exc

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass


ASYNCIO_FAST_PATH = True
"""Under asyncio, use asyncio's own transports (see ``_asyncio_transport``); trio uses anyio."""


def _on_asyncio() -> bool:
    if not ASYNCIO_FAST_PATH:
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def connect_tcp(
    host: str,
    port: int,
    *,
    source_address: tuple[str, int] | None = None,
    tls_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> Transport:
    """Open a TCP connection, with TLS from the first byte when ``tls_context`` is given."""
    if _on_asyncio():
        return await open_asyncio_tcp(
            host,
            port,
            local_addr=(source_address[0], source_address[1]) if source_address else None,
            ssl_context=tls_context,
            server_hostname=server_hostname,
        )
    local_host, local_port = source_address if source_address else (None, None)
    try:
        if tls_context is None:
            stream: ByteStream = await anyio.connect_tcp(
                host, port, local_host=local_host, local_port=local_port or None
            )
        else:
            stream = await anyio.connect_tcp(
                host,
                port,
                local_host=local_host,
                local_port=local_port or None,
                ssl_context=tls_context,
                tls_hostname=server_hostname,
                tls_standard_compatible=False,
            )
    except anyio.BrokenResourceError as exc:
        raise ConnectionResetError("the connection was lost during the TLS handshake") from exc
    return AnyioTransport(stream)


async def connect_unix(path: str) -> Transport:
    """Open a Unix domain socket connection (LMTP to a local delivery agent)."""
    if _on_asyncio():
        return await open_asyncio_unix(path)
    return AnyioTransport(await anyio.connect_unix(path))
