"""Upload progress: the caller's ``on_progress`` callback, told how much of a body went out.

Counts the message's own bytes (before dot-stuffing or BDAT framing, so they add up to the
size of what the caller passed) as each write is handed to the transport, and calls back
at most once per :data:`REPORT_EVERY` bytes, plus once when the end of the data is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from ._source import MessageSource, known_size

__all__ = ["REPORT_EVERY", "OnProgress", "Upload", "body_size"]

OnProgress = Callable[[int, "int | None"], object]
"""``on_progress(sent, total)``: body bytes written so far, and the body's size (``None``
while unknown: a stream; the last call gives ``sent == total``)."""

REPORT_EVERY: Final = 64 * 1024
"""Bytes between two calls at least: a progress bar needs no more, and a stream of tiny
pieces does not cost a call each."""


def body_size(source: MessageSource) -> int | None:
    """The body's size in bytes when known without reading it (in memory, or a file)."""
    if isinstance(source, (bytes, bytearray)):
        return len(source)
    if isinstance(source, memoryview):
        return source.nbytes
    return known_size(source)


class Upload:
    """One body's progress, reported to ``callback``."""

    __slots__ = ("_callback", "_reported", "sent", "total")

    def __init__(self, callback: OnProgress) -> None:
        self._callback = callback
        self._reported = 0
        self.sent = 0
        self.total: int | None = None

    def begin(self, source: MessageSource) -> None:
        """A body (again, after a retry) starts: count from zero, with its size if known."""
        self.sent = self._reported = 0
        self.total = body_size(source)

    def wrote(self, count: int) -> None:
        """``count`` more bytes of the body were handed to the transport."""
        self.sent += count
        if self.sent - self._reported >= REPORT_EVERY:
            self._reported = self.sent
            self._callback(self.sent, self.total)

    def last(self, count: int) -> None:
        """The body's last ``count`` bytes, written with the end of the data (:meth:`done`)."""
        self.sent += count

    def done(self) -> None:
        """The end of the data was written: the last call, ``sent == total``."""
        self.total = self.sent
        self._callback(self.sent, self.total)
