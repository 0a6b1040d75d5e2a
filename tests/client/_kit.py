"""Helpers shared by the client tests: client construction, command verbs, constants."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Final, Protocol

import asmtp
from asmtp._transport import Connector

ME: Final = "client.test"
"""The local hostname every client says in EHLO/HELO."""

TIMEOUT: Final = 5.0
"""Per-step timeout of clients that are not testing timeouts: a hang fails fast."""

HOST: Final = "127.0.0.1"


class Listening(Protocol):
    """A started test server (aiosmtpd, scripted over sockets or in memory)."""

    host: str

    @property
    def port(self) -> int: ...

    @property
    def connector(self) -> Connector: ...


def smtp(server: Listening, *, timeout: float = TIMEOUT) -> asmtp.SMTP:
    """An unconnected client for ``server``; ``async with`` connects and QUITs."""
    return asmtp.SMTP(server.host, server.port, ME, timeout=timeout, connector=server.connector)


@contextlib.asynccontextmanager
async def closing(client: asmtp.SMTP) -> AsyncIterator[asmtp.SMTP]:
    """Yield ``client`` (connected or not) and close it without QUIT at the end.

    For tests that drive ``connect()``/``quit()`` themselves: a failed assertion then cannot
    leak a socket whose ResourceWarning would fail some later test instead.
    """
    try:
        yield client
    finally:
        await client.close()


def connected(client: asmtp.SMTP) -> bool:
    """``client.is_connected``, read through a call so mypy does not narrow it between awaits."""
    return client.is_connected


def verbs(commands: Iterable[str]) -> list[str]:
    """The verbs of RecordingHandler commands: ``["EHLO", "MAIL", "RCPT", ...]``."""
    return [command.split()[0] for command in commands]


async def agen(*parts: bytes) -> AsyncIterator[bytes]:
    """An async iterator of bytes, as a caller streaming a body would pass."""
    for part in parts:
        yield part
