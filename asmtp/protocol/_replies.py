"""Incremental reply reader with hard limits.

Owns turning received bytes into ``(code, lines)`` pairs, in any chunking. It never holds more
than one line's limit of unterminated bytes, nor more than one reply's limits of finished
lines. It never decides what a reply means: the connection does.

RFC 5321 §4.2::

    Reply-line     = *( Reply-code "-" [ textstring ] CRLF )
                     Reply-code [ SP textstring ] CRLF
    Reply-code     = %x32-35 %x30-35 %x30-39

Permissive where smtplib is: a bare LF ends a line too, and a code-only line (``250``) is
accepted. Strict where safety is: the code must be three digits from 200 to 599, every line
of a multiline reply must repeat it, and the fourth byte must be ``-``, a space or the end.
"""

from __future__ import annotations

from collections import deque
from itertools import takewhile
from operator import methodcaller

from ._errors import RemoteProtocolError, quote

__all__ = ["ReplyReader"]

DEFAULT_MAX_LINE_LENGTH = 8192
DEFAULT_MAX_REPLY_LINES = 1000
DEFAULT_MAX_REPLY_BYTES = 1024 * 1024

_SEPARATORS = (b"", b" ", b"-")
# Lines split off at a time: a usual read's replies in one pass, a flood in bounded steps.
_SPLIT_AT_ONCE = 64
# The reply codes RFC 5321 allows, as they open a line: three digits from 200 to 599.
_CODES = {b"%d" % code: code for code in range(200, 600)}


class ReplyReader:
    """Splits a byte stream into replies.

    ``max_line_length`` bounds one line without its line ending; ``max_reply_lines`` and
    ``max_reply_bytes`` bound one (multiline) reply. Past any limit the reader raises
    :class:`RemoteProtocolError` and its buffer stops growing.
    """

    __slots__ = (
        "_code",
        "_lines",
        "_ready",
        "_reply_bytes",
        "_terminated",
        "_unterminated",
        "max_line_length",
        "max_reply_bytes",
        "max_reply_lines",
    )

    def __init__(
        self,
        *,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        max_reply_lines: int = DEFAULT_MAX_REPLY_LINES,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    ) -> None:
        self._ready: deque[bytes] = deque()
        """Whole lines split off ``_terminated``, each as received but for its LF."""
        self._terminated = b""
        """Whole lines received and not yet split, as received."""
        self._unterminated = bytearray()
        """What arrived after the last line ending."""
        self._code: int | None = None
        self._lines: list[bytes] = []
        self._reply_bytes = 0
        self.max_line_length = max_line_length
        self.max_reply_lines = max_reply_lines
        self.max_reply_bytes = max_reply_bytes

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a finished reply."""
        received = len(self._terminated) + len(self._unterminated) + self._reply_bytes
        if self._ready:
            received += sum(len(line) + 1 for line in self._ready)  # + 1: the LF
        return received

    @property
    def unconsumed(self) -> bytes:
        """What was received but not returned in a reply, as received (for error messages)."""
        code = self._code or 0  # no lines without a code
        head = b"".join(b"%d-%s\r\n" % (code, line) for line in self._lines)
        ready = b"".join(line + b"\n" for line in self._ready)
        return head + ready + self._terminated + bytes(self._unterminated)

    @property
    def in_reply(self) -> bool:
        """True while any part of a reply has arrived but not its last line."""
        return bool(self._ready or self._terminated or self._unterminated) or self._code is not None

    def feed(self, data: bytes) -> None:
        """Add received bytes; raises as soon as an unterminated line is over the limit.

        The lines it completes are kept whole, to be checked as they are taken.
        """
        last_end = data.rfind(b"\n")
        unterminated = self._unterminated
        if last_end != -1:
            whole = data if last_end == len(data) - 1 else data[: last_end + 1]
            if unterminated:
                whole = bytes(unterminated) + whole
                unterminated.clear()
            self._terminated += whole
            data = data[last_end + 1 :]
        if not data:
            return
        unterminated += data
        # +2 leaves room for the CRLF itself: the limit counts the text only.
        if len(unterminated) > self.max_line_length + 2:
            del unterminated[self.max_line_length + 2 :]
            raise RemoteProtocolError(
                f"reply line longer than {self.max_line_length} bytes: {quote(unterminated)}"
            )

    def next_reply(self) -> tuple[int, tuple[bytes, ...]] | None:
        """Return the next complete ``(code, lines)``, or ``None`` if more bytes are needed."""
        ready = self._ready
        while ready or self._terminated:
            if not ready:
                # One pass splits lines off, a bounded number at a time: a read of many
                # short lines never becomes as many objects at once.
                lines = self._terminated.split(b"\n", _SPLIT_AT_ONCE)
                self._terminated = lines.pop()  # the lines beyond, or b"" after the last LF
                ready.extend(lines)
            line = ready.popleft().removesuffix(b"\r")
            code = _CODES.get(line[:3])
            if (
                code is not None
                and line[3:4] == b" "
                and self._code is None
                and len(line) <= self.max_line_length
                and len(line) + 2 <= self.max_reply_bytes
            ):
                return code, (line[4:],)  # a single-line reply within the limits
            done = self._take_line(line)
            if done is not None:
                return done
            if ready and self._code is not None:  # a multiline reply goes on
                self._take_continuations(self._code)
        return None

    def _take_line(self, line: bytes) -> tuple[int, tuple[bytes, ...]] | None:
        length = len(line)
        if length > self.max_line_length:
            raise RemoteProtocolError(
                f"reply line longer than {self.max_line_length} bytes: {quote(line)}"
            )
        code = _CODES.get(line[:3])
        if code is None:
            raise RemoteProtocolError(f"malformed reply code in line {quote(line)}")
        separator = line[3:4]
        if separator not in _SEPARATORS:
            raise RemoteProtocolError(f"missing separator after reply code in line {quote(line)}")
        if self._code is None and separator != b"-":
            # A single-line reply, the usual case: nothing to collect.
            if length + 2 > self.max_reply_bytes:
                raise RemoteProtocolError(f"reply is longer than {self.max_reply_bytes} bytes")
            return code, (line[4:],)
        if self._code is not None and code != self._code:
            raise RemoteProtocolError(
                f"multiline reply changed its code from {self._code} to {code} in line {quote(line)}"
            )
        self._code = code
        self._lines.append(line[4:])
        self._reply_bytes += length + 2
        if len(self._lines) > self.max_reply_lines:
            raise RemoteProtocolError(f"reply has more than {self.max_reply_lines} lines")
        if self._reply_bytes > self.max_reply_bytes:
            raise RemoteProtocolError(f"reply is longer than {self.max_reply_bytes} bytes")
        if separator == b"-":
            return None
        lines = tuple(self._lines)
        self._code = None
        self._lines = []
        self._reply_bytes = 0
        return code, lines

    def _take_continuations(self, code: int) -> None:
        """Take the split lines that continue the open reply of ``code`` (an EHLO reply's,
        say), all at once when no limit is near."""
        ready, lines = self._ready, self._lines
        prefix = b"%d-" % code
        run = list(takewhile(methodcaller("startswith", prefix), ready))
        if not run:
            return
        texts = [line[4:].removesuffix(b"\r") for line in run]
        # Each line as _take_line counts it: code, separator, text and CRLF.
        reply_bytes = self._reply_bytes + sum(map(len, texts)) + 6 * len(texts)
        if (
            max(map(len, texts)) + 4 > self.max_line_length
            or len(lines) + len(texts) > self.max_reply_lines
            or reply_bytes > self.max_reply_bytes
        ):
            # A limit is broken somewhere in the run: line by line, for its exact error.
            while ready and ready[0].startswith(prefix):
                self._take_line(ready.popleft().removesuffix(b"\r"))
            return
        if len(run) == len(ready):
            ready.clear()
        else:
            for _ in run:
                ready.popleft()
        lines += texts
        self._reply_bytes = reply_bytes
