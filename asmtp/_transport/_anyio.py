"""A Transport on anyio streams: TCP, implicit TLS, STARTTLS on a live stream, Unix sockets.

Serves trio (and any loop but asyncio, which has its own faster transport). Every anyio
exception is mapped here, once, to the builtin ``ConnectionError`` family (``b""`` for a
clean end of stream); TLS failures surface as :class:`ssl.SSLError`. Each wait runs in a
cancel scope with the deadline it was given.
"""

from __future__ import annotations

import ssl

import anyio
from anyio.abc import ByteStream, SocketAttribute
from anyio.streams.tls import TLSStream

__all__ = ["AnyioTransport", "open_anyio"]

_RECEIVE_SIZE = 65536


class AnyioTransport:
    """A :class:`~asmtp._transport.Transport` over any anyio byte stream."""

    __slots__ = ("_local_address", "_stream")

    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream
        address = stream.extra(SocketAttribute.local_address, None)  # noqa: S610
        self._local_address = address[0] if isinstance(address, tuple) else None

    @property
    def local_address(self) -> str | None:
        return self._local_address

    @property
    def is_tls(self) -> bool:
        return isinstance(self._stream, TLSStream)

    async def send(self, data: bytes, deadline: float) -> None:
        with anyio.CancelScope(deadline=deadline) as scope:
            try:
                await self._stream.send(data)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                raise ConnectionResetError("the connection was lost while sending") from exc
        if scope.cancelled_caught:
            raise TimeoutError("write timed out")

    async def receive(self, deadline: float) -> bytes:
        with anyio.CancelScope(deadline=deadline):
            try:
                return await self._stream.receive(_RECEIVE_SIZE)
            except anyio.EndOfStream:
                return b""
            except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                raise ConnectionResetError("the connection was lost while receiving") from exc
        raise TimeoutError("read timed out")  # only the deadline cancels this scope

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, deadline: float
    ) -> None:
        with anyio.CancelScope(deadline=deadline) as scope:
            try:
                self._stream = await TLSStream.wrap(
                    self._stream,
                    hostname=server_hostname,
                    ssl_context=context,
                    standard_compatible=False,
                )
            except anyio.BrokenResourceError as exc:
                raise ConnectionResetError(
                    "the connection was lost during the TLS handshake"
                ) from exc
        if scope.cancelled_caught:
            raise TimeoutError("TLS handshake timed out")

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass


async def open_anyio(
    host: str,
    port: int,
    *,
    tls_context: ssl.SSLContext | None,
    server_hostname: str | None,
    source_address: tuple[str, int] | None,
    deadline: float,
) -> AnyioTransport:
    """Connect over TCP (TLS from the first byte with ``tls_context``) or a Unix socket."""
    with anyio.CancelScope(deadline=deadline):
        try:
            if host.startswith("/"):
                return AnyioTransport(await anyio.connect_unix(host))
            local_host, local_port = source_address if source_address else (None, None)
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
                    tls_hostname=server_hostname or host,
                    tls_standard_compatible=False,
                )
        except anyio.BrokenResourceError as exc:
            raise ConnectionResetError("the connection was lost during the TLS handshake") from exc
        return AnyioTransport(stream)
    raise TimeoutError("connect timed out")  # only the deadline cancels this scope
