"""Opening a transport: asyncio's own under asyncio, anyio's elsewhere; the default TLS context."""

from __future__ import annotations

import asyncio
import functools
import ssl

from ._anyio import open_anyio
from ._asyncio import open_asyncio
from ._interface import Transport

__all__ = ["connect", "default_ssl_context", "new_ssl_context", "on_asyncio_fast_path"]

ASYNCIO_FAST_PATH = True
"""Under asyncio, use asyncio's own transports (see ``_asyncio``); trio uses anyio."""


def new_ssl_context() -> ssl.SSLContext:
    """A fresh default context: verifies the chain and the host name, TLS 1.2 at least.

    The standard library's default context; making one loads the CA store (milliseconds).
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@functools.cache
def default_ssl_context() -> ssl.SSLContext:
    """The context used when the caller gives none, made once per process.

    Shared by every connection, so it must never be handed to a caller, who could change
    it for all of them: a client that exposes a context makes its own
    (:func:`new_ssl_context`). A context the caller passes is never modified.
    """
    return new_ssl_context()


def on_asyncio_fast_path() -> bool:
    """Whether this task runs on asyncio with its own transports in use (see ``_asyncio``)."""
    if not ASYNCIO_FAST_PATH:
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def connect(
    host: str,
    port: int,
    *,
    tls_context: ssl.SSLContext | None,
    server_hostname: str | None,
    source_address: tuple[str, int] | None,
    deadline: float,
) -> Transport:
    """Open TCP (TLS from the first byte with ``tls_context``), or a Unix socket when
    ``host`` is an absolute path; the :class:`~asmtp._transport.Connector` by default."""
    opener = open_asyncio if on_asyncio_fast_path() else open_anyio
    return await opener(
        host,
        port,
        tls_context=tls_context,
        server_hostname=server_hostname,
        source_address=source_address,
        deadline=deadline,
    )
