"""Closing a connection: bounded by the transport, released even when the caller is cancelled.

Each transport bounds its own close (``CLOSE_GRACE``): a server that never answers TLS's
close_notify, or never reads what is left to write, is cut off after the grace. The client's
socket is found through ``/proc/self/fd`` by its peer's port, so these tests see whether the
file descriptor itself was released, not only whether ``close()`` returned.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Final

import anyio
import pytest

import asmtp
from support.scripted import Expect, ExpectClosed, ExpectLine, Hold, Send, StartTLS, Step

from ._kit import HOST, ME

if TYPE_CHECKING:
    from support.fixtures import ScriptedServerFactory, TLSContexts

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/fd"),
]

GRACE: Final = 0.2
"""The close grace these tests set, so that a cut-off shows within a second."""
RELEASED_WITHIN: Final = 1.0
_POLL: Final = 0.01


def _sockets_to(port: int) -> list[socket.socket]:
    """This process's TCP sockets connected to ``port`` on 127.0.0.1 (duplicates: close them)."""
    by_inode: dict[str, int] = {}
    for name in os.listdir("/proc/self/fd"):  # every link read before any descriptor is made
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the listing's own descriptor, closed since
            continue
        if target.startswith("socket:"):
            by_inode.setdefault(target, int(name))
    found = []
    for descriptor in by_inode.values():
        try:
            sock = socket.socket(fileno=os.dup(descriptor))
        except OSError:  # closed meanwhile
            continue
        try:
            if sock.family == socket.AF_INET and sock.getpeername() == (HOST, port):
                found.append(sock)
                continue
        except OSError:  # not connected (a listening socket)
            pass
        sock.close()
    return found


def _open_to(port: int) -> int:
    sockets = _sockets_to(port)
    for sock in sockets:
        sock.close()
    return len(sockets)


async def _released(port: int) -> bool:
    """Whether the client's socket to ``port`` is gone within RELEASED_WITHIN seconds."""
    for _ in range(int(RELEASED_WITHIN / _POLL)):
        if not _open_to(port):
            return True
        await anyio.sleep(_POLL)
    return False


@contextmanager
def _held(factory: ScriptedServerFactory, *steps: Step) -> Iterator[int]:
    """A server playing ``steps`` and then holding the connection open until the test ends;
    yields its port."""
    release = threading.Event()
    server = factory([*steps, Hold(release, timeout=30)])
    try:
        yield server.port
    finally:
        release.set()


@asynccontextmanager
async def _silent_at_close(
    factory: ScriptedServerFactory, contexts: TLSContexts
) -> AsyncIterator[tuple[asmtp.SMTP_SSL, int]]:
    """A client connected over TLS to a server that never answers its close_notify (nor
    closes), and the server's port."""
    steps = (StartTLS(contexts.server), Send(b"220 hi\r\n"), ExpectClosed())
    with _held(factory, *steps) as port:
        client = asmtp.SMTP_SSL(HOST, port, ME, context=contexts.client, timeout=5)
        await client.connect()
        yield client, port


@pytest.fixture
def short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("asmtp._transport._asyncio.CLOSE_GRACE", GRACE)
    monkeypatch.setattr("asmtp._transport._anyio.CLOSE_GRACE", GRACE)


async def test_every_connection_has_nagle_off(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    """One-line commands go out at once: the event loops set TCP_NODELAY themselves."""
    with _held(scripted_server_factory, Send(b"220 hi\r\n")) as port:
        client = asmtp.SMTP(HOST, port, ME, timeout=5)
        await client.connect()
        try:
            (sock,) = _sockets_to(port)
            with sock:
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        finally:
            await client.close()
        assert await _released(port)


@pytest.mark.usefixtures("short_grace")
async def test_close_cuts_off_a_tls_server_that_never_answers_close_notify(
    scripted_server_factory: ScriptedServerFactory, tls_contexts: TLSContexts
) -> None:
    async with _silent_at_close(scripted_server_factory, tls_contexts) as (client, port):
        assert _open_to(port) == 1
        started = time.monotonic()
        await client.close()
        assert time.monotonic() - started < RELEASED_WITHIN
        assert await _released(port), "the socket outlived close()"


async def test_a_close_cancelled_while_it_waits_still_releases_the_socket(
    scripted_server_factory: ScriptedServerFactory, tls_contexts: TLSContexts
) -> None:
    """The default grace (2 s) is still running when the caller is cancelled at 0.1 s."""
    async with _silent_at_close(scripted_server_factory, tls_contexts) as (client, port):
        started = time.monotonic()
        with anyio.move_on_after(0.1):
            await client.close()
        assert time.monotonic() - started < RELEASED_WITHIN
        assert not client.is_connected
        assert await _released(port), "a cancelled close left the socket open"


@pytest.mark.usefixtures("short_grace")
async def test_a_server_that_stops_reading_is_cut_off_after_the_grace(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    """The body does not fit the socket buffers: the write times out and the unsent bytes
    cannot be flushed, so the close cuts the connection instead of waiting on them."""
    steps = (
        Send(b"220 hi\r\n"),
        ExpectLine(b"EHLO"),
        Send(b"250-hi\r\n250 PIPELINING\r\n"),
        Expect(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n"),
        Send(b"250 ok\r\n250 ok\r\n354 go\r\n"),
    )
    body = b"Subject: big\r\n\r\n" + b"x" * 998 + b"\r\n"
    with _held(scripted_server_factory, *steps) as port:
        client = asmtp.SMTP(HOST, port, ME, timeout=0.5)
        await client.connect()
        with pytest.raises(TimeoutError):
            await client.sendmail("a@example.test", ["b@example.test"], body * 40_000)
        assert not client.is_connected
        assert await _released(port), "the socket outlived the failed send"


async def test_closing_a_plain_connection_after_quit_leaves_nothing_open(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    steps = (Send(b"220 hi\r\n"), Expect(b"QUIT\r\n"), Send(b"221 bye\r\n"), ExpectClosed())
    with _held(scripted_server_factory, *steps) as port:
        client = asmtp.SMTP(HOST, port, ME, timeout=5)
        await client.connect()
        assert await client.quit() == (221, b"bye")
        assert _open_to(port) == 0  # released before quit() returned
