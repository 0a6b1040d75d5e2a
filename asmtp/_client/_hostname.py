"""The name the client gives in EHLO/HELO when the caller gives none.

smtplib uses the host's fully qualified name; a name without a dot is no FQDN (RFC 5321
§4.1.1.1), so the connection's own address is given instead, as an address literal.
"""

from __future__ import annotations

import socket

import anyio

__all__ = ["default_local_hostname"]


_fqdn: str | None = None


def _lookup() -> str:
    return socket.getfqdn()


async def default_local_hostname(local_address: str | None) -> str:
    """This host's FQDN (looked up once, in a worker thread), else ``[address]``."""
    global _fqdn  # one lookup per process, as smtplib does one per connection
    fqdn = _fqdn
    if fqdn is None:  # the lookup may block on DNS: a worker thread, once
        fqdn = _fqdn = await anyio.to_thread.run_sync(_lookup)
    if "." in fqdn:
        return fqdn
    if local_address and ":" in local_address:
        return f"[IPv6:{local_address}]"  # RFC 5321 §4.1.3
    return f"[{local_address or '127.0.0.1'}]"
