"""The name the client gives in EHLO/HELO when the caller gives none.

smtplib uses the host's fully qualified name; a name without a dot is no FQDN (RFC 5321
§4.1.1.1), so the connection's own address is given instead, as an address literal.
"""

from __future__ import annotations

import functools
import socket

import anyio

__all__ = ["default_local_hostname"]


@functools.cache
def _fqdn() -> str:
    return socket.getfqdn()


async def default_local_hostname(local_address: str | None) -> str:
    """This host's FQDN (looked up once, in a worker thread), else ``[address]``."""
    fqdn = await anyio.to_thread.run_sync(_fqdn)
    if "." in fqdn:
        return fqdn
    if local_address and ":" in local_address:
        return f"[IPv6:{local_address}]"  # RFC 5321 §4.1.3
    return f"[{local_address or '127.0.0.1'}]"
