"""A Transport on anyio streams: TCP, implicit TLS, STARTTLS on a live stream, Unix sockets.

Serves trio (and any loop but asyncio, which has its own faster transport). Every anyio
exception is mapped here, once, to the builtin ``ConnectionError`` family (``b""`` for a
clean end of stream); TLS failures surface as :class:`ssl.SSLError`, and a handshake the
server cuts short as :class:`ssl.SSLEOFError`, as the ssl module reports it to smtplib.
Each wait runs in a cancel scope with the deadline it was given, except a plain-text read
on trio, which ``_trio_waits`` bounds more cheaply.

TLS runs on an :class:`ssl.SSLObject` over memory BIOs owned here (not anyio's TLSStream), so
:meth:`AnyioTransport.receive_nowait` can decrypt what already arrived without waiting: TLS
1.3 sends records that carry no application data (session tickets), and only decrypting tells
them from a reply.
"""

from __future__ import annotations

import asyncio
import math
import select
import socket
import ssl
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Protocol, TypeVar

import anyio
from anyio.abc import ByteStream, SocketAttribute

from ._errors import connect_failed, unresolvable
from ._interface import CLOSE_GRACE

__all__ = ["AnyioTransport", "adopt_anyio", "open_anyio"]

_RECEIVE_SIZE = 65536
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)  # trio's sockets are non-blocking anyway
_T = TypeVar("_T")


class _Scope(Protocol):
    """A cancel scope: anyio's, or trio's own where the transport knows it runs on trio."""

    @property
    def cancelled_caught(self) -> bool: ...

    def __enter__(self) -> object: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None: ...


class _Bounded:
    """Bound the waits inside by ``deadline``; :class:`TimeoutError` naming ``what``.

    A class rather than a generator-based context manager: it wraps every read and write.
    """

    __slots__ = ("_scope", "_what")

    def __init__(
        self, deadline: float, what: str, scope: Callable[..., _Scope] = anyio.CancelScope
    ) -> None:
        self._scope = scope(deadline=deadline)
        self._what = what

    def __enter__(self) -> None:
        self._scope.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        swallowed = self._scope.__exit__(exc_type, exc, tb)
        if self._scope.cancelled_caught:
            raise TimeoutError(f"{self._what} timed out")
        return bool(swallowed)


def _readable_socket(stream: ByteStream) -> socket.socket | None:
    """The stream's socket if reading it directly cannot overtake bytes the stream holds.

    anyio's trio streams read the socket only when asked; its asyncio streams buffer in a
    protocol (and are used only when the asyncio fast path is off). Without a socket (an
    in-memory stream), :meth:`AnyioTransport.receive_nowait` cannot see anything.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        sock: socket.socket | None = stream.extra(SocketAttribute.raw_socket, None)  # noqa: S610
        return sock
    return None


def _on_trio() -> tuple[Callable[[socket.socket, float], Awaitable[None]], Callable[..., _Scope]]:
    """trio's wait for a readable socket, bounded by a deadline (``_trio_waits``), and its
    cancel scope, without anyio's layer.

    anyio's streams run on asyncio or trio, and asyncio has a transport of its own, so a
    stream with a readable socket runs on trio.
    """
    import trio

    from ._trio_waits import wait_readable

    return wait_readable, trio.CancelScope


def _attempts(exc: OSError) -> list[OSError]:
    """The error of each address tried: anyio keeps them as the cause of its own."""
    cause = exc.__cause__
    if isinstance(cause, OSError):
        return [cause]
    group = getattr(cause, "exceptions", None)  # an ExceptionGroup of every attempt's error
    if group:
        return [each for each in group if isinstance(each, OSError)] or [exc]
    return [exc]


def _is_eof(exc: ssl.SSLError) -> bool:
    # OpenSSL 3.0 (Debian 12's Python 3.11.2) reports a peer that hangs up during the
    # handshake as a zero return, later versions as an unexpected EOF.
    return isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)) or (
        "UNEXPECTED_EOF" in str(exc)
    )


def _closed_during_handshake() -> ssl.SSLEOFError:
    # What the ssl module (and so smtplib) raises when the peer closes mid-handshake.
    return ssl.SSLEOFError(
        ssl.SSL_ERROR_EOF, "the server closed the connection during the TLS handshake"
    )


class AnyioTransport:
    """A :class:`~asmtp._transport.Transport` over any anyio byte stream, TLS done here."""

    __slots__ = (
        "_incoming",
        "_local_address",
        "_outgoing",
        "_poll",
        "_scope",
        "_socket",
        "_stream",
        "_tls",
        "_wait_readable",
    )

    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream
        self._tls: ssl.SSLObject | None = None
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._socket = _readable_socket(stream)
        self._wait_readable: Callable[[socket.socket, float], Awaitable[None]] | None = None
        self._scope: Callable[..., _Scope] = anyio.CancelScope
        self._poll: select.poll | None = None
        """Asks the socket whether anything arrived, where the platform has poll(2)."""
        if self._socket is not None:
            self._wait_readable, self._scope = _on_trio()
            if hasattr(select, "poll"):
                self._poll = select.poll()
                self._poll.register(self._socket, select.POLLIN)
        address = stream.extra(SocketAttribute.local_address, None)  # noqa: S610
        self._local_address = address[0] if isinstance(address, tuple) else None

    @property
    def local_address(self) -> str | None:
        return self._local_address

    @property
    def is_tls(self) -> bool:
        return self._tls is not None

    @property
    def tls_version(self) -> str | None:
        return self._tls.version() if self._tls is not None else None

    async def send(self, data: bytes, deadline: float) -> None:
        if self._tls is None and self._socket is not None:
            data = self._send_nowait(data)  # what the socket takes now needs no wait
            if not data:
                return
        with _Bounded(deadline, "write", self._scope):
            if self._tls is None:
                await self._send_raw(data)
                return
            try:
                await self._drive(self._tls.write, data)
            except ssl.SSLError as exc:
                raise ConnectionResetError(f"the TLS session failed: {exc}") from exc

    async def receive(self, deadline: float) -> bytes:
        if self._tls is None and self._socket is not None:
            return await self._receive_socket(deadline)  # bounded without a cancel scope
        with _Bounded(deadline, "read", self._scope):
            if self._tls is None:
                return await self._receive_raw()
            try:
                return await self._drive(self._tls.read, _RECEIVE_SIZE)  # b"" after close_notify
            except ssl.SSLError as exc:
                if _is_eof(exc):
                    return b""
                raise
        raise AssertionError("unreachable: _Bounded raised")  # pragma: no cover

    def receive_nowait(self) -> bytes | None:
        """What arrived since the last read, without waiting: ``None`` if nothing did.

        Under TLS the records are decrypted: ones that carry no application data (TLS 1.3
        session tickets) give ``None``, not bytes.
        """
        poll = self._poll
        # Before each command nothing has usually arrived: a poll that says so costs a
        # system call, where a read that finds nothing adds an exception.
        raw = None if poll is not None and not poll.poll(0) else self._receive_raw_nowait()
        tls = self._tls
        if tls is None:
            return raw
        if raw:
            self._incoming.write(raw)
        elif raw is not None:
            self._incoming.write_eof()
        elif not self._incoming.pending and not tls.pending():
            return None
        try:
            return tls.read(_RECEIVE_SIZE)  # an answer it makes goes out with the next send
        except ssl.SSLWantReadError:
            return None
        except ssl.SSLError as exc:
            if _is_eof(exc):
                return b""
            raise

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, deadline: float
    ) -> None:
        """Run the TLS handshake on the live stream (STARTTLS, or implicit TLS)."""
        tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname=server_hostname)
        with _Bounded(deadline, "TLS handshake", self._scope):
            try:
                await self._drive(tls.do_handshake)
            except ConnectionError as exc:
                raise _closed_during_handshake() from exc
            except ssl.SSLError as exc:
                if _is_eof(exc):
                    raise _closed_during_handshake() from exc
                raise
        self._tls = tls

    async def aclose(self) -> None:
        # The stream may be the caller's own (``sock=``), whose close could wait on the
        # server: bounded, and shielded so that a cancelled caller still closes it.
        with anyio.move_on_after(CLOSE_GRACE, shield=True):
            try:
                await self._stream.aclose()
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass

    async def _drive(self, operation: Callable[..., _T], *args: object) -> _T:
        """Run a TLS operation, moving records between the BIOs and the stream as it needs."""
        while True:
            try:
                result = operation(*args)
            except ssl.SSLWantReadError:  # noqa: PERF203 - a turn per record the operation needs
                await self._flush()
                data = await self._receive_raw()
                if data:
                    self._incoming.write(data)
                else:
                    self._incoming.write_eof()
            else:
                await self._flush()
                return result

    async def _flush(self) -> None:
        if self._outgoing.pending:
            await self._send_raw(self._outgoing.read())

    async def _send_raw(self, data: bytes) -> None:
        try:
            await self._stream.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise ConnectionResetError("the connection was lost while sending") from exc

    async def _receive_raw(self) -> bytes:
        if self._socket is not None:
            return await self._receive_socket()
        try:
            return await self._stream.receive(_RECEIVE_SIZE)
        except anyio.EndOfStream:
            return b""
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise ConnectionResetError("the connection was lost while receiving") from exc

    async def _receive_socket(self, deadline: float = math.inf) -> bytes:
        """Read the socket itself (under trio), once it is readable or until ``deadline``.

        It waits before it reads: a read comes right after a command, whose reply has
        rarely arrived yet, and a read that finds nothing costs a system call and an
        exception. Bytes already there end the wait at once, and are still taken when
        the deadline has passed, as the asyncio transport returns what it holds. anyio's
        stream would add layers to every reply.
        """
        assert self._wait_readable is not None and self._socket is not None  # noqa: S101
        while True:
            try:
                await self._wait_readable(self._socket, deadline)
            except TimeoutError:
                if (data := self._receive_raw_nowait()) is None:
                    raise
                return data
            data = self._receive_raw_nowait()
            if data is not None:
                return data

    def _send_nowait(self, data: bytes) -> bytes:
        """Write what the socket takes without waiting; the rest is returned."""
        assert self._socket is not None  # noqa: S101 - the caller checks
        try:
            sent = self._socket.send(data, _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return data
        except OSError as exc:
            raise ConnectionResetError(f"the connection was lost while sending: {exc}") from exc
        return data[sent:]

    def _receive_raw_nowait(self) -> bytes | None:
        if self._socket is None:
            return None
        try:
            return self._socket.recv(_RECEIVE_SIZE, _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            raise ConnectionResetError(f"the connection was lost: {exc}") from exc


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
    with _Bounded(deadline, "connect"):
        try:
            if host.startswith("/"):
                stream: ByteStream = await anyio.connect_unix(host)
            else:
                local_host, local_port = source_address if source_address else (None, None)
                stream = await anyio.connect_tcp(
                    host, port, local_host=local_host, local_port=local_port or None
                )
        except socket.gaierror as exc:
            raise unresolvable(host, port, exc) from exc
        except OSError as exc:
            raise connect_failed(host, port, _attempts(exc)) from exc
    return await adopt_anyio(
        stream, tls_context=tls_context, server_hostname=server_hostname, deadline=deadline
    )


async def adopt_anyio(
    stream: ByteStream,
    *,
    tls_context: ssl.SSLContext | None,
    server_hostname: str | None,
    deadline: float,
) -> AnyioTransport:
    """A transport over an open byte stream (a proxy's tunnel, or the caller's own), TLS
    from the first byte with ``tls_context``. The stream is closed if the handshake fails."""
    transport = AnyioTransport(stream)
    if tls_context is not None:
        try:
            await transport.start_tls(tls_context, server_hostname, deadline)
        except BaseException:
            await anyio.aclose_forcefully(stream)
            raise
    return transport
