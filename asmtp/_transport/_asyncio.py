"""A Transport on asyncio's own transports and protocols: the fast path under asyncio.

anyio's stream layer costs several event-loop round trips per read on asyncio; SMTP's many
small replies make that visible. This transport keeps the same small interface as
``AnyioTransport`` (and the same error vocabulary: the builtin ``ConnectionError`` family,
``b""`` at end of stream), so neither the core nor the client knows which one runs. trio
and anything else keep using anyio. Reads are bounded by one watchdog timer per connection;
connecting and the TLS handshake by ``asyncio.wait_for``.
"""

from __future__ import annotations

import asyncio
import math
import socket
import ssl
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar, cast

from ._errors import connect_failed, unresolvable
from ._interface import CLOSE_GRACE

__all__ = ["AsyncioTransport", "adopt_asyncio", "open_asyncio"]

_T = TypeVar("_T")
_HIGH_WATER = 256 * 1024
# Received bytes held before reading from the socket pauses: a flooding server cannot make
# the client buffer more than this (the core's own limits apply on top).
_READ_HIGH_WATER = 256 * 1024
# Bytes asyncio's own loops may read from the socket at once, into the connection's own
# buffer (_BufferedProtocol).
_READ_SIZE = 16 * 1024


class _Protocol(asyncio.Protocol):
    """Buffers received data and wakes one waiting reader; handles write flow control.

    A waiting reader has an absolute deadline on the loop's clock. One watchdog timer per
    connection enforces it: the timer is armed when none is pending and, when it fires
    before the current deadline (a later read moved it), re-armed for that deadline. So a
    read that waits costs a clock reading, not a timer, however many replies arrive.
    """

    __slots__ = (
        "_loop",
        "_reader",
        "_reader_deadline",
        "_watchdog",
        "_writable",
        "buffered",
        "chunks",
        "closed",
        "eof",
        "error",
        "reading_paused",
        "transport",
    )

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.reading_paused = False
        self.eof = False
        self.error: BaseException | None = None
        self._reader: asyncio.Future[None] | None = None
        self._reader_deadline = math.inf
        self._watchdog: asyncio.TimerHandle | None = None
        self._writable: asyncio.Future[None] | None = None
        self.transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self.closed = self._loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports quack like asyncio.Transport without subclassing it. Both
        # loops set TCP_NODELAY on every TCP transport themselves.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=_HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > _READ_HIGH_WATER and not self.reading_paused and self.transport:
            self.transport.pause_reading()
            self.reading_paused = True
        reader = self._reader
        if reader is not None and not reader.done():
            reader.set_result(None)

    def take(self) -> bytes:
        """Everything buffered (at most about the high-water mark), resuming reads."""
        data = self.chunks.popleft() if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        if self.reading_paused and self.transport and not self.transport.is_closing():
            self.transport.resume_reading()
            self.reading_paused = False
        return data

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if not self.closed.done():
            self.closed.set_result(None)
        self._wake_reader()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def _wake_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)

    async def wait_readable(self, deadline: float) -> None:
        """Wait for data, end of stream or an error; TimeoutError once ``deadline`` passed."""
        self._reader = reader = self._loop.create_future()
        self._reader_deadline = deadline
        if deadline != math.inf:
            watchdog = self._watchdog
            if watchdog is None or watchdog.when() > deadline:
                if watchdog is not None:
                    watchdog.cancel()
                self._watchdog = self._loop.call_at(deadline, self._check_deadline)
        try:
            await reader
        finally:
            self._reader = None

    def _check_deadline(self) -> None:
        self._watchdog = None
        reader = self._reader
        if reader is None or reader.done():
            return  # nobody waits: the next wait arms a new timer
        if self._loop.time() >= self._reader_deadline:
            reader.set_exception(TimeoutError("no complete reply within the timeout"))
        else:
            self._watchdog = self._loop.call_at(self._reader_deadline, self._check_deadline)

    def writing_paused(self) -> bool:
        """Whether the write buffer is over its mark (:meth:`wait_writable` would wait)."""
        return self._writable is not None and not self._writable.done()

    async def wait_writable(self, deadline: float) -> None:
        """Wait until the write buffer drained below its mark (rare: bodies on slow links)."""
        if self._writable is not None and not self._writable.done():
            timeout = None if deadline == math.inf else max(0.0, deadline - self._loop.time())
            try:
                await asyncio.wait_for(asyncio.shield(self._writable), timeout)
            except asyncio.TimeoutError:  # not the builtin before Python 3.11
                raise TimeoutError("could not write within the timeout") from None


class _BufferedProtocol(_Protocol, asyncio.BufferedProtocol):
    """:class:`_Protocol` reading into a buffer of its own, for asyncio's own loops.

    Given a plain protocol, they allocate 256 KiB per read (``max_size``), which glibc may
    serve with mmap, mremap and munmap each time: several system calls per reply. uvloop
    reads into one buffer shared by every connection and makes the bytes object itself;
    there a buffer per connection only spreads the reads over more memory.
    """

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        super().__init__()
        self._buffer = memoryview(bytearray(_READ_SIZE))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        # The loop reads into the same buffer next time: keep a copy of what arrived.
        self.data_received(bytes(self._buffer[:nbytes]))


def _protocol_for(loop: asyncio.AbstractEventLoop) -> type[_Protocol]:
    """The protocol that reads cheapest on ``loop`` (see :class:`_BufferedProtocol`)."""
    return _BufferedProtocol if isinstance(loop, asyncio.BaseEventLoop) else _Protocol


class AsyncioTransport:
    """:class:`~asmtp._transport.Transport` over an ``asyncio.Transport``."""

    __slots__ = ("_protocol", "_tls", "_transport")

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol, tls: bool) -> None:
        self._transport, self._protocol, self._tls = transport, protocol, tls

    @property
    def local_address(self) -> str | None:
        address = self._transport.get_extra_info("sockname")
        return address[0] if isinstance(address, tuple) else None

    @property
    def is_tls(self) -> bool:
        return self._tls

    @property
    def tls_version(self) -> str | None:
        # asyncio's and uvloop's TLS layers both expose an object with ssl's version().
        ssl_object = self._transport.get_extra_info("ssl_object") if self._tls else None
        version = getattr(ssl_object, "version", None)
        name = version() if callable(version) else None
        return name if isinstance(name, str) else None

    async def send(self, data: bytes, deadline: float) -> None:
        transport, protocol = self._transport, self._protocol
        if transport.is_closing():
            raise ConnectionResetError("the connection was lost while sending")
        transport.write(data)
        if protocol.writing_paused():
            await protocol.wait_writable(deadline)
        if protocol.error is not None or transport.is_closing():
            raise ConnectionResetError("the connection was lost while sending")

    async def receive(self, deadline: float) -> bytes:
        protocol = self._protocol
        while not protocol.chunks:
            if protocol.eof:
                return self._end_of_stream()
            await protocol.wait_readable(deadline)
        return protocol.take()

    def receive_nowait(self) -> bytes | None:
        """What arrived since the last read, without waiting: ``None`` if nothing did."""
        protocol = self._protocol
        if protocol.chunks:
            return protocol.take()
        return self._end_of_stream() if protocol.eof else None

    def _end_of_stream(self) -> bytes:
        error = self._protocol.error
        if error is not None and not isinstance(error, ssl.SSLError):
            raise ConnectionResetError(str(error)) from error
        return b""

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, deadline: float
    ) -> None:
        """Run the TLS handshake on the live connection (STARTTLS).

        From here on the loop's TLS layer reads the socket: bytes this transport still
        holds arrived in plain text, so the caller takes them first (:meth:`receive_nowait`).
        """
        loop = asyncio.get_running_loop()
        try:
            transport = await _within(
                deadline,
                loop.start_tls(
                    self._transport, self._protocol, context, server_hostname=server_hostname
                ),
                "TLS handshake timed out",
            )
        except ConnectionError as exc:
            raise _closed_during_handshake() from exc
        if transport is None:
            raise _closed_during_handshake()
        self._transport, self._tls = transport, True
        self._protocol.transport = transport

    async def aclose(self) -> None:
        """Close and wait until the loop has released the socket, within the grace."""
        transport, protocol = self._transport, self._protocol
        if transport.get_protocol() is not protocol:
            # A failed STARTTLS handshake left the socket to the loop's TLS protocol, which
            # may never pass the close on to ours: nothing to wait for.
            transport.abort()
            return
        if protocol.error is not None:
            transport.abort()
        else:
            transport.close()
        closed = protocol.closed
        if closed.done():
            return
        # Plain text with nothing left to write is released on the loop's next turn. TLS
        # waits for the server's close_notify, unsent bytes for the server to read them:
        # cut off after the grace. (Awaiting the future itself, not a shield around it,
        # saves the turns a shield's callbacks take.)
        cut_off = None
        if self._tls or transport.get_write_buffer_size():
            cut_off = asyncio.get_running_loop().call_later(CLOSE_GRACE, transport.abort)
        try:
            await closed
        except BaseException:
            transport.abort()  # cancelled: release the socket now instead
            raise
        finally:
            if cut_off is not None:
                cut_off.cancel()


async def open_asyncio(
    host: str,
    port: int,
    *,
    tls_context: ssl.SSLContext | None,
    server_hostname: str | None,
    source_address: tuple[str, int] | None,
    deadline: float,
) -> AsyncioTransport:
    """Connect over TCP (TLS from the first byte with ``tls_context``) or a Unix socket."""
    loop = asyncio.get_running_loop()
    if tls_context is None and source_address is None:
        # The loop makes and connects the socket itself: uvloop does that in C, with fewer
        # trips round the loop than when it takes over a socket connected here.
        transport, protocol = await _within(
            deadline,
            _first_accepting(host, port, partial(_loop_connects, loop)),
            "connect timed out",
        )
        return AsyncioTransport(transport, protocol, False)
    sock = await _within(
        deadline,
        _first_accepting(host, port, partial(_socket_connected, loop, source_address)),
        "connect timed out",
    )
    return await adopt_asyncio(
        sock, tls_context=tls_context, server_hostname=server_hostname, deadline=deadline
    )


async def adopt_asyncio(
    sock: socket.socket,
    *,
    tls_context: ssl.SSLContext | None,
    server_hostname: str | None,
    deadline: float,
) -> AsyncioTransport:
    """A transport over a connected socket (a proxy's tunnel, or the caller's own), TLS
    from the first byte with ``tls_context``. The socket is closed if this fails."""
    loop = asyncio.get_running_loop()
    name = server_hostname if tls_context is not None else None
    protocol = _protocol_for(loop)
    try:
        if sock.family == socket.AF_UNIX:
            opening = loop.create_unix_connection(
                protocol, sock=sock, ssl=tls_context, server_hostname=name
            )
        else:
            opening = loop.create_connection(
                protocol, sock=sock, ssl=tls_context, server_hostname=name
            )
        return await _opened(opening, sock, tls_context, deadline)
    except BaseException:
        sock.close()  # the loop closes it too once it took it over; twice is harmless
        raise


async def _opened(
    opening: Awaitable[tuple[asyncio.Transport, _Protocol]],
    sock: socket.socket,
    tls_context: ssl.SSLContext | None,
    deadline: float,
) -> AsyncioTransport:
    """The transport once the loop took ``sock`` over (and, with ``tls_context``, the TLS
    handshake ran); ``sock`` is closed if that fails."""
    try:
        if tls_context is None:  # the loop only wraps the socket: nothing to wait for
            transport, protocol = await opening
        else:
            transport, protocol = await _within(deadline, opening, "TLS handshake timed out")
    except BaseException as exc:
        sock.close()
        if isinstance(exc, ConnectionResetError) and tls_context is not None:
            raise _closed_during_handshake() from exc  # the TCP connection was up: TLS failed
        raise
    return AsyncioTransport(transport, protocol, tls_context is not None)


async def _first_accepting(
    host: str, port: int, connect: Callable[[int, Any], Awaitable[_T]]
) -> _T:
    """``connect(family, address)`` to the first of ``host``'s addresses that accepts, in
    order as asyncio's ``create_connection`` tries them, every address's error kept for the
    message."""
    errors: list[OSError] = []
    for family, address in await _addresses(host, port):
        try:
            connected = await connect(family, address)
        except OSError as exc:  # noqa: PERF203 - one attempt per address, each error kept
            errors.append(exc)
        else:
            return connected
    raise connect_failed(host, port, errors) from (errors[0] if errors else None)


async def _addresses(host: str, port: int) -> list[tuple[int, Any]]:
    """``(family, address)`` for each of ``host``'s addresses (``host`` a Unix socket's path
    if it starts with "/")."""
    if host.startswith("/"):
        return [(socket.AF_UNIX, host)]
    if (literal := _ip_literal(host)) is not None:
        return [(literal, (host, port))]  # nothing to resolve: no worker thread
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise unresolvable(host, port, exc) from exc
    return [(family, address) for family, _, _, _, address in infos]


async def _loop_connects(
    loop: asyncio.AbstractEventLoop, family: int, address: Any
) -> tuple[asyncio.Transport, _Protocol]:
    """A plain connection to one address, socket made and connected by the loop."""
    protocol = _protocol_for(loop)
    if family == socket.AF_UNIX:
        return await loop.create_unix_connection(protocol, address)
    # A scoped IPv6 address keeps its scope in the host's text ("fe80::1%eth0").
    return await loop.create_connection(protocol, address[0], address[1], family=family)


async def _socket_connected(
    loop: asyncio.AbstractEventLoop,
    source_address: tuple[str, int] | None,
    family: int,
    address: Any,
) -> socket.socket:
    """A socket connected to one address, bound to ``source_address`` first if given."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if source_address is not None and family != socket.AF_UNIX:
            sock.bind(source_address)
        await loop.sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock


def _ip_literal(host: str) -> int | None:
    """The address family of ``host`` if it is an IP address (as asyncio checks, so that
    ``getaddrinfo`` and its worker thread are not needed), else ``None``."""
    families = (socket.AF_INET, socket.AF_INET6) if socket.has_ipv6 else (socket.AF_INET,)
    for family in families:
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):  # not this family's form (or a NUL in it)
            continue
        return family
    return None


def _closed_during_handshake() -> ssl.SSLEOFError:
    # What the ssl module (and so smtplib) raises when the peer closes mid-handshake.
    return ssl.SSLEOFError(
        ssl.SSL_ERROR_EOF, "the server closed the connection during the TLS handshake"
    )


async def _within(deadline: float, awaitable: Awaitable[_T], message: str) -> _T:
    """Await ``awaitable`` until ``deadline``; :class:`TimeoutError` after it."""
    if deadline == math.inf:
        return await awaitable
    try:
        if sys.version_info >= (3, 11):  # a timer, not a task as wait_for makes
            async with asyncio.timeout_at(deadline):
                return await awaitable
        timeout = max(0.0, deadline - asyncio.get_running_loop().time())
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:  # the builtin TimeoutError from Python 3.11
        raise TimeoutError(message) from None
