"""asmtp's in-memory transport: one peer for every connection, or a fresh peer for each."""

from __future__ import annotations

import math

import anyio
import pytest

from asmtp._transport import Connector, Transport, memory_connector

pytestmark = pytest.mark.anyio


class Echo:
    """A peer that greets with its name and echoes each write back."""

    def __init__(self, name: bytes) -> None:
        self.name, self.received_data, self.closed, self.client_gone = name, b"", False, False

    def connected(self, host: str, port: int, tls: bool) -> bytes:
        return b"hello from " + self.name + b"\n"

    def received(self, data: bytes) -> bytes:
        self.received_data += data
        return data

    def silence(self) -> tuple[float, bytes]:
        return math.inf, b""

    def start_tls(self, server_hostname: str | None) -> None:
        raise AssertionError("no TLS here")

    def client_closed(self) -> None:
        self.client_gone = True


async def _open(connector: Connector) -> Transport:
    return await connector(
        "mx.test",
        25,
        tls_context=None,
        server_hostname=None,
        source_address=None,
        deadline=anyio.current_time() + 5,
    )


async def _greeting_and_echo(transport: Transport, data: bytes) -> bytes:
    greeting = await transport.receive(anyio.current_time() + 5)
    await transport.send(data, anyio.current_time() + 5)
    return greeting + await transport.receive(anyio.current_time() + 5)


async def test_a_callable_gives_each_connection_its_own_peer_side_by_side() -> None:
    peers: list[Echo] = []

    def accept() -> Echo:
        if len(peers) == 2:
            raise ConnectionRefusedError("full")
        peers.append(Echo(b"peer %d" % len(peers)))
        return peers[-1]

    connector = memory_connector(accept)
    first, second = await _open(connector), await _open(connector)
    assert await _greeting_and_echo(second, b"two") == b"hello from peer 1\ntwo"
    assert await _greeting_and_echo(first, b"one") == b"hello from peer 0\none"
    await first.aclose()
    assert [(p.received_data, p.client_gone) for p in peers] == [(b"one", True), (b"two", False)]
    with pytest.raises(ConnectionRefusedError):
        await _open(connector)
    await second.aclose()


async def test_a_peer_serves_every_connection_itself() -> None:
    peer = Echo(b"the one")
    connector = memory_connector(peer)
    for data in (b"a", b"b"):
        transport = await _open(connector)
        assert await _greeting_and_echo(transport, data) == b"hello from the one\n" + data
        await transport.aclose()
    assert peer.received_data == b"ab"
