"""Transports over a connection someone else opened: a proxy's tunnel, or the caller's own.

A connected :class:`socket.socket` becomes asyncio's own transport under asyncio (the loop
adopts the socket) and anyio's elsewhere; an anyio byte stream becomes anyio's transport on
any loop. Implicit TLS then starts on it with the mail server's name.
"""

from __future__ import annotations

import socket
import ssl
from typing import TypeAlias

from anyio.abc import ByteStream, SocketStream, UNIXSocketStream

from ._anyio import adopt_anyio
from ._asyncio import adopt_asyncio
from ._connect import on_asyncio_fast_path
from ._interface import Transport

__all__ = ["PreConnected", "StreamConnector", "adopt", "check_pre_connected"]

PreConnected: TypeAlias = socket.socket | ByteStream
"""What ``sock=`` takes: a connected stream socket (TCP or Unix), or an anyio byte stream."""


def check_pre_connected(stream: object) -> PreConnected:
    """``stream`` if it can carry a connection; :class:`TypeError` or :class:`ValueError` if not.

    A socket must be a connected stream socket: a datagram socket or one never connected
    fails here, before anything is sent.
    """
    if isinstance(stream, ByteStream):
        return stream
    if not isinstance(stream, socket.socket):
        raise TypeError(
            f"sock= takes a connected socket.socket or an anyio ByteStream, not {type(stream)}"
        )
    if stream.type != socket.SOCK_STREAM:
        raise ValueError("sock= needs a stream socket (SOCK_STREAM), not a datagram socket")
    try:
        stream.getpeername()
    except OSError:
        raise ValueError("sock= needs a connected socket: this one has no peer") from None
    return stream


async def adopt(
    stream: PreConnected,
    *,
    tls_context: ssl.SSLContext | None,
    server_hostname: str | None,
    deadline: float,
) -> Transport:
    """A transport over ``stream``, TLS from the first byte with ``tls_context``.

    The transport owns ``stream`` from here on; it is closed if this fails.
    """
    if isinstance(stream, socket.socket):
        if on_asyncio_fast_path():
            return await adopt_asyncio(
                stream, tls_context=tls_context, server_hostname=server_hostname, deadline=deadline
            )
        sock = stream
        wrapper = UNIXSocketStream if sock.family == socket.AF_UNIX else SocketStream
        try:
            stream = await wrapper.from_socket(sock)
        except BaseException:
            sock.close()
            raise
    return await adopt_anyio(
        stream, tls_context=tls_context, server_hostname=server_hostname, deadline=deadline
    )


class StreamConnector:
    """The :class:`~asmtp._transport.Connector` for ``sock=``: hands over one connection.

    The caller's stream serves the first connect; a second one (after ``quit()``, or a
    reconnect) raises :class:`ConnectionError`, since a used stream cannot be reopened.
    ``host`` and ``port`` are not dialled: the host is the name TLS checks the server's
    certificate against.
    """

    __slots__ = ("_stream",)

    def __init__(self, stream: PreConnected) -> None:
        self._stream: PreConnected | None = check_pre_connected(stream)

    def __repr__(self) -> str:
        return f"<StreamConnector {'unused' if self._stream is not None else 'used'}>"

    async def __call__(
        self,
        host: str,
        port: int,
        *,
        tls_context: ssl.SSLContext | None,
        server_hostname: str | None,
        source_address: tuple[str, int] | None,
        deadline: float,
    ) -> Transport:
        stream, self._stream = self._stream, None
        if stream is None:
            raise ConnectionError(
                "the stream given as sock= served an earlier connection: "
                "a pre-connected stream connects once"
            )
        return await adopt(
            stream, tls_context=tls_context, server_hostname=server_hostname, deadline=deadline
        )
