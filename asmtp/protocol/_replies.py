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

from ._errors import RemoteProtocolError, quote

__all__ = ["ReplyReader"]

DEFAULT_MAX_LINE_LENGTH = 8192
DEFAULT_MAX_REPLY_LINES = 1000
DEFAULT_MAX_REPLY_BYTES = 1024 * 1024

_SEPARATORS = (b"", b" ", b"-")


class ReplyReader:
    """Splits a byte stream into replies.

    ``max_line_length`` bounds one line without its line ending; ``max_reply_lines`` and
    ``max_reply_bytes`` bound one (multiline) reply. Past any limit the reader raises
    :class:`RemoteProtocolError` and its buffer stops growing.
    """

    __slots__ = (
        "_buffer",
        "_code",
        "_lines",
        "_reply_bytes",
        "_scanned",
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
        self._buffer = bytearray()
        self._scanned = 0
        self._code: int | None = None
        self._lines: list[bytes] = []
        self._reply_bytes = 0
        self.max_line_length = max_line_length
        self.max_reply_lines = max_reply_lines
        self.max_reply_bytes = max_reply_bytes

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a finished reply."""
        return len(self._buffer) + self._reply_bytes

    @property
    def unconsumed(self) -> bytes:
        """What was received but not returned in a reply, as received (for error messages)."""
        code = self._code or 0  # no lines without a code
        head = b"".join(b"%d-%s\r\n" % (code, line) for line in self._lines)
        return head + bytes(self._buffer)

    @property
    def in_reply(self) -> bool:
        """True while any part of a reply has arrived but not its last line."""
        return bool(self._buffer) or self._code is not None

    def feed(self, data: bytes) -> None:
        """Add received bytes; raises as soon as an unterminated line is over the limit."""
        self._buffer += data
        self._check_unterminated()

    def _check_unterminated(self) -> None:
        # Only the bytes after the last line ending are unterminated: complete lines before
        # them wait for next_reply(). No line ending lies before _scanned, so with none after
        # it the whole buffer is one unfinished line.
        last_end = self._buffer.rfind(b"\n", self._scanned)
        start = last_end + 1
        # +2 leaves room for the CRLF itself: the limit counts the text only.
        if len(self._buffer) - start > self.max_line_length + 2:
            del self._buffer[start + self.max_line_length + 2 :]
            shown = quote(self._buffer[start:])
            raise RemoteProtocolError(
                f"reply line longer than {self.max_line_length} bytes: {shown}"
            )
        if last_end == -1:
            self._scanned = len(self._buffer)

    def next_reply(self) -> tuple[int, tuple[bytes, ...]] | None:
        """Return the next complete ``(code, lines)``, or ``None`` if more bytes are needed."""
        buffer = self._buffer
        while True:
            end = buffer.find(b"\n", self._scanned)
            if end == -1:
                self._scanned = len(buffer)
                return None
            line = bytes(buffer[: end - 1 if end and buffer[end - 1] == 13 else end])
            del buffer[: end + 1]
            self._scanned = 0
            done = self._take_line(line)
            if done is not None:
                # What is left was checked against the line limit when it was fed.
                return done

    def _take_line(self, line: bytes) -> tuple[int, tuple[bytes, ...]] | None:
        length = len(line)
        if length > self.max_line_length:
            raise RemoteProtocolError(
                f"reply line longer than {self.max_line_length} bytes: {quote(line)}"
            )
        code_bytes = line[:3]
        if length < 3 or not code_bytes.isdigit() or not 50 <= line[0] <= 53:  # 2 to 5
            raise RemoteProtocolError(f"malformed reply code in line {quote(line)}")
        code = int(code_bytes)
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
