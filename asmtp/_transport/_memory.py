"""An in-memory transport to a peer that answers synchronously: fast, deterministic tests.

The peer is plain code (a scripted dialogue, a small fake server): whatever the client
writes is handed to it at once, and whatever it answers is what the client reads next.
Because nothing can arrive later, a read with nothing to read and the peer silent times out
at once instead of waiting for its deadline (the peer may say how long it would stay silent,
so a generous deadline still gets the late answer). Each call is an await point, so
cancellation lands where it would on a socket.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Callable
from typing import Protocol

import anyio
import anyio.lowlevel

from ._interface import Connector, Transport

__all__ = ["MemoryPeer", "MemoryTransport", "memory_connector"]


class MemoryPeer(Protocol):
    """The server end of an in-memory connection."""

    def connected(self, host: str, port: int, tls: bool) -> bytes:
        """Called on connect (``tls``: implicit TLS); returns what the server sends first."""
        ...

    def received(self, data: bytes) -> bytes:
        """Called with each write; returns what the server answers now (maybe ``b""``)."""
        ...

    def silence(self) -> tuple[float, bytes]:
        """When the client reads with nothing to read: ``(seconds, data)``, the server's
        answer after ``seconds`` (``math.inf``: it never speaks again unprompted)."""
        ...

    def start_tls(self, server_hostname: str | None) -> None:
        """The client starts TLS; raise :class:`ssl.SSLError` to fail the handshake."""
        ...

    @property
    def closed(self) -> bool:
        """True once the server closed its end (after its answers were read)."""
        ...

    def client_closed(self) -> None:
        """The client closed the connection."""
        ...


class MemoryTransport:
    """A :class:`~asmtp._transport.Transport` to a :class:`MemoryPeer`."""

    __slots__ = ("_inbox", "_open", "_peer", "_tls")

    def __init__(self, peer: MemoryPeer, first: bytes, *, tls: bool) -> None:
        self._peer, self._inbox, self._tls, self._open = peer, bytearray(first), tls, True

    @property
    def local_address(self) -> str | None:
        return None

    @property
    def is_tls(self) -> bool:
        return self._tls

    @property
    def tls_version(self) -> str | None:
        return "TLSv1.3" if self._tls else None  # what an in-memory peer stands for

    async def send(self, data: bytes, deadline: float) -> None:
        await anyio.lowlevel.checkpoint()
        if not self._open or self._peer.closed:
            raise ConnectionResetError("the connection was lost while sending")
        self._inbox += self._peer.received(data)

    async def receive(self, deadline: float) -> bytes:
        await anyio.lowlevel.checkpoint()
        if not self._open:
            raise ConnectionResetError("the connection is closed")
        if not self._inbox:
            if self._peer.closed:
                return b""
            seconds, later = self._peer.silence()
            if seconds == math.inf and deadline == math.inf:
                raise AssertionError("the client waits forever for a peer that never speaks")
            if anyio.current_time() + seconds > deadline:
                raise TimeoutError("read timed out")
            self._inbox += later
            if not self._inbox:
                return b"" if self._peer.closed else await self.receive(deadline)
        data = bytes(self._inbox)
        self._inbox.clear()
        return data

    def receive_nowait(self) -> bytes | None:
        if self._inbox:
            data = bytes(self._inbox)
            self._inbox.clear()
            return data
        return b"" if self._peer.closed else None

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, deadline: float
    ) -> None:
        await anyio.lowlevel.checkpoint()
        self._peer.start_tls(server_hostname)
        self._tls = True

    async def aclose(self) -> None:
        if self._open:
            self._open = False
            self._peer.client_closed()

    @property
    def unread(self) -> bytes:
        """What the peer sent that the client has not read yet."""
        return bytes(self._inbox)


def memory_connector(peer: MemoryPeer | Callable[[], MemoryPeer]) -> Connector:
    """A :class:`~asmtp._transport.Connector` to ``peer``: the server end of every
    connection, or a callable returning a fresh one for each (it may raise
    :class:`ConnectionRefusedError` to refuse the connection), so connections can be open
    side by side as on a real server."""
    accept: Callable[[], MemoryPeer] = peer if callable(peer) else lambda: peer

    async def connect(
        host: str,
        port: int,
        *,
        tls_context: ssl.SSLContext | None,
        server_hostname: str | None,
        source_address: tuple[str, int] | None,
        deadline: float,
    ) -> Transport:
        await anyio.lowlevel.checkpoint()
        server = accept()
        tls = tls_context is not None
        if tls:
            server.start_tls(server_hostname)
        return MemoryTransport(server, server.connected(host, port, tls), tls=tls)

    return connect
