"""Byte streams for the client: asyncio's own transports under asyncio, anyio's elsewhere.

Knows nothing of SMTP. Every transport enforces the deadline it is given and reports
failures in one vocabulary (see ``_interface``). A connection may also run through a SOCKS
or HTTP proxy (``_proxy``) or over a stream the caller opened (``_adopt``); ``_route``
picks the way.
"""

from __future__ import annotations

from ._adopt import PreConnected
from ._connect import connect, default_ssl_context, new_ssl_context
from ._errors import address_text
from ._interface import Connector, Transport
from ._memory import MemoryPeer, MemoryTransport, memory_connector
from ._proxy_url import Proxy, ProxyError, ProxyScheme
from ._route import connector_for

__all__ = [
    "Connector",
    "MemoryPeer",
    "MemoryTransport",
    "PreConnected",
    "Proxy",
    "ProxyError",
    "ProxyScheme",
    "Transport",
    "address_text",
    "connect",
    "connector_for",
    "default_ssl_context",
    "memory_connector",
    "new_ssl_context",
]
