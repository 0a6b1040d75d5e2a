"""Errors raised by the sans-IO core.

Owns the three-class hierarchy that every layer above translates from. Messages may quote
offending bytes (truncated) but never credentials: the core redacts AUTH data before it can
reach an error message.
"""

from __future__ import annotations

__all__ = ["BadArgument", "LocalProtocolError", "ProtocolError", "RemoteProtocolError"]

_QUOTE_LIMIT = 80


def quote(data: bytes | bytearray | memoryview, limit: int = _QUOTE_LIMIT) -> str:
    """Render bytes for an error message, truncated to ``limit`` bytes."""
    raw = bytes(data[: limit + 1])
    if len(raw) > limit:
        return repr(raw[:limit]) + "..."
    return repr(raw)


class ProtocolError(Exception):
    """Base class: the SMTP conversation broke a rule."""


class LocalProtocolError(ProtocolError):
    """Our caller broke a rule; nothing was produced for the wire and the state is unchanged."""


class RemoteProtocolError(ProtocolError):
    """The server broke a rule; the connection is now in the ``ERROR`` state for good."""


class BadArgument(LocalProtocolError, ValueError):
    """An argument cannot be put on the wire (CR, LF or NUL in it, or out of range).

    Also a :class:`ValueError`, as smtplib raises for the same mistakes.
    """
