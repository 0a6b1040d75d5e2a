"""Reaching the mail server through a SOCKS or HTTP CONNECT proxy: a Connector.

It connects to the proxy, has it open a tunnel to the server, then hands the tunnel to the
same transports as a direct connection (``_adopt``); implicit TLS starts there with the
mail server's name, never the proxy's. Names are resolved where the scheme says: here for
``socks4`` and ``socks5``, at the proxy for ``socks4a``, ``socks5h`` and HTTP.

SOCKS runs on python-socks (the ``asmtp[proxy]`` extra, imported only when a SOCKS proxy is
configured): its asyncio API under asyncio, whose tunnel is a socket the loop adopts, and
its anyio API elsewhere (trio). HTTP CONNECT is ours (``_http_connect``).

Every failure before the tunnel is open becomes a :class:`ProxyError` (or a
:class:`TimeoutError`) made afresh, outside the handler of the original: python-socks keeps
the password as a plain attribute, and the original's traceback would lead an error
reporter to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import math
import os
import socket
import ssl
import sys
from types import ModuleType
from typing import Any, Final

import anyio
from anyio.abc import SocketStream

from ._adopt import PreConnected, adopt
from ._connect import on_asyncio_fast_path
from ._http_connect import open_tunnel
from ._interface import Transport
from ._proxy_url import Proxy, ProxyError, authority

__all__ = ["EXTRA_MISSING", "ProxyConnector", "require_python_socks"]

logger = logging.getLogger("asmtp")

EXTRA_MISSING: Final = (
    "a SOCKS proxy needs the python-socks package: install it with pip install 'asmtp[proxy]'"
)
_FOREVER: Final = 365 * 86400.0
"""What python-socks is given as its own timeout when there is no deadline (it has no "none")."""


def require_python_socks() -> ModuleType:
    """The ``python_socks`` module; :class:`ImportError` naming the extra when it is missing."""
    try:
        return importlib.import_module("python_socks")
    except ImportError:
        raise ImportError(EXTRA_MISSING, name="python_socks") from None


class ProxyConnector:
    """The :class:`~asmtp._transport.Connector` that reaches each server through ``proxy``.

    Made once per client or pool and shared by its connections; it holds nothing but the
    :class:`Proxy`. A SOCKS proxy without python-socks installed fails here, when the
    client is made.
    """

    __slots__ = ("proxy",)

    def __init__(self, proxy: Proxy) -> None:
        if proxy.scheme != "http":
            require_python_socks()
        self.proxy = proxy

    def __repr__(self) -> str:
        return f"<ProxyConnector {self.proxy}>"

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
        if host.startswith("/"):
            raise ValueError(f"a proxy reaches TCP servers, not the Unix socket {host}")
        logger.debug("opening a tunnel to %s through %s", authority(host, port), self.proxy)
        with anyio.CancelScope(deadline=deadline) as scope:
            tunnel = await self._tunnel(host, port, source_address, deadline)
        if scope.cancelled_caught:
            raise TimeoutError(f"the proxy {self.proxy} did not open the tunnel in time")
        return await adopt(
            tunnel, tls_context=tls_context, server_hostname=server_hostname, deadline=deadline
        )

    async def _tunnel(
        self, host: str, port: int, source: tuple[str, int] | None, deadline: float
    ) -> PreConnected:
        """The open tunnel; any failure as a fresh :class:`ProxyError` or :class:`TimeoutError`."""
        proxy = self.proxy
        fast_path = on_asyncio_fast_path()
        try:
            if proxy.scheme == "http":
                return await _http_tunnel(proxy, host, port, source, fast_path)
            return await _socks_tunnel(proxy, host, port, source, deadline, fast_path)
        except Exception as exc:
            failure = _fresh_failure(exc, proxy, authority(host, port))
            if failure is None:
                raise
        raise failure  # outside the handler: no link to the original and its frames


def _fresh_failure(exc: Exception, proxy: Proxy, target: str) -> Exception | None:
    """What to raise instead of ``exc``, made afresh; ``None`` to let ``exc`` through."""
    where = f"the {_KINDS[proxy.scheme]} proxy {proxy}"
    if isinstance(exc, ProxyError):
        return ProxyError(str(exc), exc.error_code)
    if isinstance(exc, TimeoutError):
        return TimeoutError(f"{where} did not open the tunnel to {target} in time")
    socks = sys.modules.get("python_socks")
    if socks is not None and isinstance(exc, socks.ProxyConnectionError):
        return ProxyError(f"cannot reach {where}: {_reason(exc)}")
    if isinstance(exc, OSError):
        return ProxyError(f"{where} failed while opening the tunnel to {target}: {_reason(exc)}")
    if type(exc).__module__.partition(".")[0] == "python_socks":
        # Its ProxyError (the proxy's refusal, with the SOCKS reply code), or an answer cut
        # short (its IncompleteReadError, which the anyio API lets through).
        return ProxyError(
            f"{where} did not open the tunnel to {target}: {exc}", getattr(exc, "error_code", None)
        )
    return None


_KINDS: Final = {
    "socks4": "SOCKS4",
    "socks4a": "SOCKS4a",
    "socks5": "SOCKS5",
    "socks5h": "SOCKS5",
    "http": "HTTP",
}


def _reason(exc: OSError) -> str:
    """The cause alone: "Connection refused", "Name or service not known".

    Wrappers without an errno (python-socks', anyio's "All connection attempts failed")
    give the first error they wrap.
    """
    for _ in range(4):  # bounded: each wrapper adds one level
        if exc.errno or not isinstance(cause := _first_os_error(exc.__cause__), OSError):
            break
        exc = cause
    if exc.errno and exc.errno > 0 and not isinstance(exc, socket.gaierror):
        return os.strerror(exc.errno)
    return exc.strerror or str(exc) or type(exc).__name__


def _first_os_error(cause: BaseException | None) -> OSError | None:
    if isinstance(cause, OSError):
        return cause
    grouped = getattr(cause, "exceptions", ())  # an exception group
    return next((each for each in grouped if isinstance(each, OSError)), None)


async def _socks_tunnel(
    proxy: Proxy,
    host: str,
    port: int,
    source: tuple[str, int] | None,
    deadline: float,
    fast_path: bool,
) -> PreConnected:
    """A tunnel opened by python-socks: a socket under asyncio, an anyio stream elsewhere."""
    socks = require_python_socks()
    kind = socks.ProxyType.SOCKS5 if proxy.scheme.startswith("socks5") else socks.ProxyType.SOCKS4
    remaining = deadline - anyio.current_time()
    settings: dict[str, Any] = {
        "username": proxy.username,
        "password": proxy.password.reveal() if proxy.password is not None else None,
        "rdns": proxy.remote_dns,
    }
    timeout = remaining if math.isfinite(remaining) else _FOREVER
    if fast_path:
        from python_socks.async_.asyncio import Proxy as AsyncioClient

        client = AsyncioClient(kind, proxy.host, proxy.port, **settings)
        return await client.connect(host, port, timeout=timeout, local_addr=source)
    from python_socks.async_.anyio import Proxy as AnyioClient

    local = {"local_host": source[0]} if source else {}
    return await AnyioClient(kind, proxy.host, proxy.port, **settings).connect(
        host, port, timeout=timeout, **local
    )


async def _http_tunnel(
    proxy: Proxy, host: str, port: int, source: tuple[str, int] | None, fast_path: bool
) -> PreConnected:
    """A tunnel through an HTTP proxy's CONNECT: a socket under asyncio, an anyio stream else."""
    wire = await (_SocketWire.open if fast_path else _StreamWire.open)(proxy, source)
    try:
        await open_tunnel(
            wire, host, port, username=proxy.username, password=proxy.password, where=str(proxy)
        )
    except BaseException:
        await wire.aclose()
        raise
    return wire.connection


class _SocketWire:
    """The connection to an HTTP proxy as a socket on the running asyncio loop."""

    def __init__(self, sock: socket.socket) -> None:
        self.connection = sock
        self._loop = asyncio.get_running_loop()

    @classmethod
    async def open(cls, proxy: Proxy, source: tuple[str, int] | None) -> _SocketWire:
        loop = asyncio.get_running_loop()
        try:
            addresses = await loop.getaddrinfo(proxy.host, proxy.port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ProxyError(f"cannot reach the HTTP proxy {proxy}: {_reason(exc)}") from None
        failure: OSError = OSError(f"no address for {proxy.host}")
        for family, kind, number, _, address in addresses:
            sock = socket.socket(family, kind, number)
            try:
                sock.setblocking(False)
                if source:
                    sock.bind(source)
                await loop.sock_connect(sock, address)
            except OSError as exc:
                sock.close()
                failure = exc
                continue
            except BaseException:
                sock.close()
                raise
            return cls(sock)
        raise ProxyError(f"cannot reach the HTTP proxy {proxy}: {_reason(failure)}")

    async def send(self, data: bytes) -> None:
        await self._loop.sock_sendall(self.connection, data)

    async def receive_byte(self) -> bytes:
        return await self._loop.sock_recv(self.connection, 1)

    async def aclose(self) -> None:
        self.connection.close()


class _StreamWire:
    """The connection to an HTTP proxy as an anyio socket stream (trio, or anyio on asyncio)."""

    def __init__(self, stream: SocketStream) -> None:
        self.connection = stream

    @classmethod
    async def open(cls, proxy: Proxy, source: tuple[str, int] | None) -> _StreamWire:
        try:
            stream = await anyio.connect_tcp(
                proxy.host, proxy.port, local_host=source[0] if source else None
            )
        except OSError as exc:
            raise ProxyError(f"cannot reach the HTTP proxy {proxy}: {_reason(exc)}") from None
        return cls(stream)

    async def send(self, data: bytes) -> None:
        try:
            await self.connection.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise ConnectionResetError("the proxy closed the connection") from exc

    async def receive_byte(self) -> bytes:
        try:
            return await self.connection.receive(1)
        except anyio.EndOfStream:
            return b""
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise ConnectionResetError("the proxy closed the connection") from exc

    async def aclose(self) -> None:
        with contextlib.suppress(OSError):
            await anyio.aclose_forcefully(self.connection)
