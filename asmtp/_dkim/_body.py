"""The body hash of a DKIM signature, computed chunk by chunk (RFC 6376 §3.4.3, §3.4.4, §3.7).

Owns the two steps between the bytes a caller gives and the ``bh=`` tag: the line endings the
wire will carry (every bare CR or LF becomes CRLF, RFC 5321 §2.3.8, as the body writers do)
and the body canonicalization. Both hold only a partial line between chunks, so a body read
from a file is hashed in O(chunk) memory. Performs no I/O.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

__all__ = ["BodyHash", "LineEndings"]

_LINE_END: Final = re.compile(rb"\r\n|\r|\n")
_TRAILING_WSP: Final = re.compile(rb"[ \t]+\r\n")
_WSP_RUN: Final = re.compile(rb"[ \t]+")
_CRLF: Final = b"\r\n"


class LineEndings:
    """Turns chunks into the same bytes with CRLF line endings, as the wire carries them.

    A CR at the end of a chunk is held back: the next chunk says whether it is half of a CRLF.
    """

    __slots__ = ("_cr",)

    def __init__(self) -> None:
        self._cr = False

    def feed(self, chunk: bytes) -> bytes:
        """``chunk`` with each line ending as CRLF (a trailing CR kept for the next call)."""
        if self._cr:
            chunk = b"\r" + chunk
        self._cr = chunk.endswith(b"\r")
        if self._cr:
            chunk = chunk[:-1]
        return _LINE_END.sub(_CRLF, chunk)

    def finish(self) -> bytes:
        """A CR held back at the very end ends a line."""
        held, self._cr = self._cr, False
        return _CRLF if held else b""


class BodyHash:
    """SHA-256 of a body's canonical form, fed with CRLF-normalised chunks.

    ``relaxed`` selects RFC 6376 §3.4.4 (whitespace runs become one space, none at a line's
    end), otherwise §3.4.3 ("simple"). Both ignore empty lines at the end of the body, so
    they are held back until a non-empty line follows. A last line without CRLF is hashed as
    if it had one: the message goes out with one (DATA adds it, and the signer appends it so
    that BDAT sends the same bytes).
    """

    __slots__ = ("_empty_lines", "_hash", "_partial", "_relaxed", "_started")

    def __init__(self, *, relaxed: bool) -> None:
        self._relaxed = relaxed
        self._hash = hashlib.sha256()
        self._partial = b""
        self._empty_lines = 0
        self._started = False

    def update(self, chunk: bytes) -> None:
        """Hash the complete lines of ``chunk`` (CRLF line endings only); keep the rest."""
        data = self._partial + chunk
        end = data.rfind(_CRLF)
        if end < 0:
            self._partial = data
            return
        self._partial = data[end + 2 :]
        self._lines(data[: end + 2])

    def digest(self) -> bytes:
        """The hash, once the whole body was fed."""
        if self._partial:
            self._lines(self._partial + _CRLF)
            self._partial = b""
        if not self._started and not self._relaxed:
            # §3.4.3: an empty body is one CRLF; §3.4.4 leaves it empty.
            self._hash.update(_CRLF)
            self._started = True
        return self._hash.digest()

    def _lines(self, block: bytes) -> None:
        """Hash whole lines (``block`` ends with CRLF), holding back empty ones at its end."""
        if self._relaxed:
            block = _WSP_RUN.sub(b" ", _TRAILING_WSP.sub(_CRLF, block))
        content = block.rstrip(_CRLF)  # only whole CRLF pairs: the block is normalised
        if not content:
            self._empty_lines += len(block) // 2
            return
        self._hash.update(_CRLF * self._empty_lines)
        self._hash.update(content)
        self._hash.update(_CRLF)
        self._empty_lines = (len(block) - len(content)) // 2 - 1
        self._started = True
