"""Byte streams for the client: asyncio's own transports under asyncio, anyio's elsewhere.

Knows nothing of SMTP. Every transport enforces the deadline it is given and reports
failures in one vocabulary (see ``_interface``).
"""

from __future__ import annotations

from ._connect import connect, default_ssl_context, new_ssl_context
from ._errors import address_text
from ._interface import Connector, Transport
from ._memory import MemoryPeer, MemoryTransport, memory_connector

__all__ = [
    "Connector",
    "MemoryPeer",
    "MemoryTransport",
    "Transport",
    "address_text",
    "connect",
    "default_ssl_context",
    "memory_connector",
    "new_ssl_context",
]
