"""Opening a conversation's byte stream and core, with failures told in the client's words.

Applies the settings' implicit TLS and per-step timeout to the connect, names the bound a
timeout broke, and turns a TLS failure on a plain-text port into advice. Knows nothing of
the conversation that follows.
"""

from __future__ import annotations

import ssl

from .._transport import Transport, default_ssl_context
from ..protocol import ClientConnection
from ._advice import plain_text_advice
from ._deadlines import Deadlines
from ._settings import ClientSettings

__all__ = ["new_core", "open_transport"]


async def open_transport(
    settings: ClientSettings,
    host: str,
    port: int,
    source_address: tuple[str, int] | None,
    deadlines: Deadlines,
    where: str,
) -> Transport:
    """Connect to ``host``:``port`` (``where`` names it in errors) within one step's time."""
    context = None
    if settings.implicit_tls:
        context = settings.context or default_ssl_context()
    deadline = deadlines.step()
    try:
        return await settings.connector(
            host,
            port,
            tls_context=context,
            server_hostname=settings.server_hostname or host,
            source_address=source_address,
            deadline=deadline,
        )
    except TimeoutError as exc:
        if exc.errno is not None:  # the system's own (ETIMEDOUT), named by the transport
            raise
        raise TimeoutError(
            f"connecting to {where} took longer than {deadlines.named(deadline)}"
        ) from None
    except ssl.SSLError as exc:
        raise plain_text_advice(exc, where) from exc


def new_core(settings: ClientSettings) -> ClientConnection:
    """A fresh core with the settings' limits."""
    limits = settings.limits
    return ClientConnection(
        lmtp=settings.lmtp,
        max_line_length=limits.max_line_length,
        max_reply_lines=limits.max_reply_lines,
        max_reply_bytes=limits.max_reply_bytes,
        max_pending=limits.max_pending,
    )
