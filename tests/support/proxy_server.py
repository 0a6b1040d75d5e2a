"""A small SOCKS4/4a, SOCKS5 and HTTP CONNECT proxy in a thread, for the proxy tests.

One listener speaks all three: the first byte tells SOCKS4 (``0x04``), SOCKS5 (``0x05``)
and HTTP apart. It records every request as the client sent it (the destination as a name
or an address, the credentials), checks credentials when given some, and can misbehave on
purpose: refuse the tunnel, close in the middle of the negotiation, glue the server's first
bytes to its ``200`` answer, or drop the tunnel after relaying the server's first reads. Blocking sockets
on daemon threads, so any event loop (or none) can use it; every wait is bounded and
``stop()`` ends everything. It binds 127.0.0.1 and only connects to loopback.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import select
import socket
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Literal, NoReturn

__all__ = ["ProxyRequest", "TestProxy"]

HOST: Final = "127.0.0.1"
WAIT: Final = 5.0
"""Upper bound, in seconds, of every blocking read and connect here."""
_POLL: Final = 0.05

Misbehaviour = Literal["refuse", "close-mid-negotiation", "glue-greeting"]


@dataclass(frozen=True)
class ProxyRequest:
    """One tunnel asked for: ``kind`` (``socks4``, ``socks4a``, ``socks5``, ``http``),
    the destination exactly as sent (a name stays a name), and the credentials seen."""

    kind: str
    host: str
    port: int
    username: str | None
    password: str | None
    raw: bytes
    """The request's bytes as received (for HTTP: the request head)."""


class _Refused(Exception):
    """The client broke the protocol or failed the login: close the connection."""


class TestProxy:
    """A proxy on 127.0.0.1; use as a context manager, or ``start()`` and ``stop()``.

    ``credentials`` (user, password) are required when given. ``names`` maps host names
    to loopback addresses, so a name only the proxy knows proves it resolved it; other
    names are resolved with ``getaddrinfo``, and only loopback destinations are dialled.
    ``drop_after`` closes the tunnel once that many reads from the server were relayed.
    """

    __test__ = False  # not a test class, despite the name

    def __init__(
        self,
        *,
        credentials: tuple[str, str] | None = None,
        names: Mapping[str, str] | None = None,
        misbehave: Misbehaviour | None = None,
        drop_after: int | None = None,
    ) -> None:
        self.credentials = credentials
        self.names = dict(names or {})
        self.misbehave = misbehave
        self.drop_after = drop_after
        self._requests: list[ProxyRequest] = []
        self._refused_logins = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None

    @property
    def port(self) -> int:
        assert self._listener is not None, "start() first"
        return int(self._listener.getsockname()[1])

    def url(self, scheme: str, user: str | None = None, password: str | None = None) -> str:
        """``scheme://[user[:password]@]127.0.0.1:port``."""
        login = ""
        if user is not None:
            login = user + (f":{password}" if password is not None else "") + "@"
        return f"{scheme}://{login}{HOST}:{self.port}"

    @property
    def requests(self) -> list[ProxyRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def refused_logins(self) -> int:
        """Logins refused for wrong or missing credentials."""
        with self._lock:
            return self._refused_logins

    def start(self) -> TestProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((HOST, 0))
        listener.listen(16)
        listener.settimeout(_POLL)
        self._listener = listener
        self._spawn(self._accept_all)
        return self

    def stop(self) -> None:
        self._stopping.set()
        for thread in list(self._threads):
            thread.join(WAIT)
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> TestProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- server threads ---------------------------------------------------------------------

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_all(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._spawn(self._serve, client)

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(WAIT)
        with contextlib.ExitStack() as stack:
            stack.enter_context(client)
            try:
                first = _exactly(client, 1)
                if first == b"\x04":
                    upstream = self._socks4(client)
                elif first == b"\x05":
                    upstream = self._socks5(client)
                else:
                    upstream = self._http(client, first)
            except (_Refused, OSError):
                return
            stack.enter_context(upstream)
            self._relay(client, upstream)

    def _record(self, request: ProxyRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _dial(self, host: str, port: int) -> socket.socket:
        address = self.names.get(host)
        if address is None:
            found = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
            address = str(found[0][4][0])
        if not ipaddress.ip_address(address).is_loopback:
            raise _Refused(f"only loopback is dialled, not {address}")
        return socket.create_connection((address, port), timeout=WAIT)

    def _refuse_login(self, client: socket.socket, answer: bytes) -> NoReturn:
        with self._lock:  # counted before the answer, which the client may act on at once
            self._refused_logins += 1
        client.sendall(answer)
        raise _Refused("login refused")

    def _maybe_close_early(self) -> None:
        if self.misbehave == "close-mid-negotiation":
            raise _Refused("closing in the middle of the negotiation, as asked")

    # RFC 1928 (SOCKS5) and RFC 1929 (its username/password method).
    def _socks5(self, client: socket.socket) -> socket.socket:
        methods = _exactly(client, _exactly(client, 1)[0])
        username = password = None
        if self.credentials is not None:
            if b"\x02" not in methods:
                self._refuse_login(client, b"\x05\xff")  # no acceptable method
            client.sendall(b"\x05\x02")
            version, length = _exactly(client, 2)
            username = _exactly(client, length).decode()
            password = _exactly(client, _exactly(client, 1)[0]).decode()
            if version != 1 or (username, password) != self.credentials:
                self._refuse_login(client, b"\x01\x01")
            client.sendall(b"\x01\x00")
        else:
            client.sendall(b"\x05\x00")
        head = _exactly(client, 4)
        if head[3] == 1:
            host = socket.inet_ntop(socket.AF_INET, _exactly(client, 4))
        elif head[3] == 3:
            host = _exactly(client, _exactly(client, 1)[0]).decode()
        elif head[3] == 4:
            host = socket.inet_ntop(socket.AF_INET6, _exactly(client, 16))
        else:
            raise _Refused("unknown address type")
        (port,) = struct.unpack("!H", _exactly(client, 2))
        self._record(ProxyRequest("socks5", host, port, username, password, head))
        self._maybe_close_early()
        reply = b"\x05%c\x00\x01\x7f\x00\x00\x01\x00\x00"
        if self.misbehave == "refuse":
            client.sendall(reply % 2)  # connection not allowed by ruleset
            raise _Refused("refusing, as asked")
        try:
            upstream = self._dial(host, port)
        except OSError:
            client.sendall(reply % 5)  # connection refused
            raise
        client.sendall(reply % 0)
        return upstream

    # SOCKS4, and SOCKS4a's name after the user id (address 0.0.0.x).
    def _socks4(self, client: socket.socket) -> socket.socket:
        command, port_address = _exactly(client, 1)[0], _exactly(client, 6)
        port, address = struct.unpack("!H", port_address[:2])[0], port_address[2:]
        user_id = _until_nul(client)
        kind, host = "socks4", socket.inet_ntoa(address)
        if address[:3] == b"\0\0\0" and address[3]:
            kind, host = "socks4a", _until_nul(client)
        self._record(ProxyRequest(kind, host, port, user_id or None, None, port_address))
        self._maybe_close_early()
        wanted = self.credentials[0] if self.credentials else None
        if command != 1 or self.misbehave == "refuse" or (wanted and user_id != wanted):
            client.sendall(b"\x00\x5b" + b"\0" * 6)
            raise _Refused("refusing")
        try:
            upstream = self._dial(host, port)
        except OSError:
            client.sendall(b"\x00\x5b" + b"\0" * 6)
            raise
        client.sendall(b"\x00\x5a" + b"\0" * 6)
        return upstream

    # RFC 9110 §9.3.6: CONNECT host:port, then any 2xx opens the tunnel.
    def _http(self, client: socket.socket, first: bytes) -> socket.socket:
        head = first
        while not head.endswith(b"\r\n\r\n"):
            head += _exactly(client, 1)
            if len(head) > 8192:
                raise _Refused("request head too long")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ")
        host, _, port_text = target.rpartition(":")
        host = host.strip("[]")
        username = password = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "proxy-authorization" and value.strip().startswith("Basic "):
                decoded = base64.b64decode(value.strip()[6:]).decode()
                username, _, password = decoded.partition(":")
        self._record(ProxyRequest("http", host, int(port_text), username, password, head))
        self._maybe_close_early()
        if method != "CONNECT" or self.misbehave == "refuse":
            client.sendall(b"HTTP/1.1 403 Forbidden by rule\r\nContent-Length: 0\r\n\r\n")
            raise _Refused("refusing")
        if self.credentials is not None and (username, password) != self.credentials:
            self._refuse_login(
                client,
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n',
            )
        try:
            upstream = self._dial(host, int(port_text))
        except OSError:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            raise
        answer = b"HTTP/1.1 200 Connection established\r\nProxy-Agent: test\r\n\r\n"
        if self.misbehave == "glue-greeting":
            upstream.settimeout(WAIT)
            answer += upstream.recv(65536)  # the server's greeting, in the same segment
        client.sendall(answer)
        return upstream

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        """Copy bytes both ways until either side closes (or the drop point, or stop())."""
        reads = 0
        peers = {client: upstream, upstream: client}
        while not self._stopping.is_set():
            readable, _, _ = select.select(list(peers), [], [], _POLL)
            for sock in readable:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                try:
                    peers[sock].sendall(data)
                except OSError:
                    return
                reads += sock is upstream
                if self.drop_after is not None and reads >= self.drop_after:
                    return


def _exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        more = sock.recv(count - len(data))
        if not more:
            raise _Refused("the client closed the connection")
        data += more
    return data


def _until_nul(sock: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\0"):
        data += _exactly(sock, 1)
        if len(data) > 255:
            raise _Refused("SOCKS4 field too long")
    return data[:-1].decode()
