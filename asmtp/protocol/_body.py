"""Streaming body framing: every byte of message content passes through here.

Owns the transparency of message content, chosen by the command that opens the body.
``DataEncoder`` (after DATA, RFC 5321 §4.5.2) turns every bare CR and bare LF into CRLF and
doubles a dot at the start of a line, so no content can end the data early or smuggle a
second message (the CVE-2023-51764 class). ``BdatEncoder`` (RFC 3030) frames chunks by their
byte count and never stuffs: it writes line endings as CRLF, or passes the bytes as given
when the transaction declared BODY=BINARYMIME. Each takes chunks of any size and keeps only a
carried-over CR and a flag, so memory is O(chunk).
"""

from __future__ import annotations

import re

__all__ = [
    "BdatEncoder",
    "DataEncoder",
    "LineEndingNormaliser",
    "crlf_size",
    "normalise_line_endings",
]


_BARE_CR = re.compile(rb"\r(?!\n)")
_LINE_STARTING_WITH_DOT = re.compile(rb"\n\.")


def crlf_size(data: bytes | bytearray) -> int:
    """The length of ``data`` with every bare CR and bare LF written as CRLF: what
    :func:`normalise_line_endings` would return, counted without building it.

    Equal to ``len(data)`` exactly when every CR and LF is part of a CRLF pair. Three
    passes (four with a bare CR), no copies (RFC 1870's ``SIZE`` counts line endings as CRLF).
    """
    if _BARE_CR.search(data) is None:
        # Every CR starts a pair, so the LFs beyond the CRs are the bare ones. Searching for
        # a bare CR takes less than counting the pairs (a two-byte pattern) does.
        return len(data) + data.count(b"\n") - data.count(b"\r")
    pairs = data.count(b"\r\n")
    return len(data) + (data.count(b"\n") - pairs) + (data.count(b"\r") - pairs)


def _only_crlf(data: bytes) -> bool:
    """True when every CR and LF in ``data`` is part of a CRLF pair (the usual case)."""
    return crlf_size(data) == len(data)


def _carry_cr(chunk: bytes, held: bool) -> tuple[bytes, bool]:
    """``chunk`` after a CR held from the previous one, less a CR at its end (which may yet
    start a CRLF), and whether a CR is held now."""
    if held:
        chunk = b"\r" + chunk
    if chunk.endswith(b"\r"):
        return chunk[:-1], True
    return chunk, False


def _stuff_dots(data: bytes) -> bytes:
    """Double the dot that starts a line after an LF in ``data`` (RFC 5321 §4.5.2).

    Most bodies have none: a regular-expression search says so in half the time
    ``bytes.replace`` takes to find no match.
    """
    if _LINE_STARTING_WITH_DOT.search(data) is None:
        return data
    return data.replace(b"\n.", b"\n..")


def normalise_line_endings(data: bytes) -> bytes:
    """Return ``data`` with every CRLF, bare CR and bare LF written as CRLF."""
    if _only_crlf(data):
        return data
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


class DataEncoder:
    """Encodes a message body for ``DATA``, chunk by chunk.

    ``encode(chunk)`` returns wire bytes for as much as can be decided now; ``finish()``
    returns the rest and the terminator, so that the output always ends with
    ``CRLF . CRLF`` (just ``. CRLF`` for an empty body).
    """

    __slots__ = ("_at_line_start", "_finished", "_pending_cr")

    def __init__(self) -> None:
        self._at_line_start = True
        self._pending_cr = False
        self._finished = False

    def encode(self, chunk: bytes, *, crlf_only: bool = False) -> bytes:
        """Encode one chunk; a CR at its end is held back until the next byte is known.

        ``crlf_only``: the caller has already found every CR and LF of ``chunk`` in a CRLF
        pair (with :func:`crlf_size`), so it is not checked again.
        """
        if self._finished:
            raise RuntimeError("the body was already finished")
        held = self._pending_cr
        chunk, self._pending_cr = _carry_cr(chunk, held)
        if not chunk:
            return b""
        starts_line = self._at_line_start
        self._at_line_start = chunk.endswith(b"\n")  # the held CR is not an ending yet
        if (crlf_only and not held) or _only_crlf(chunk):
            data = _stuff_dots(chunk)
            return b"." + data if starts_line and data.startswith(b".") else data
        data = _stuff_dots(chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n"))
        if starts_line and data.startswith(b"."):
            data = b"." + data
        return data.replace(b"\n", b"\r\n")

    def finish(self) -> bytes:
        """The end of the body: a line ending if one is missing, then ``. CRLF``."""
        if self._finished:
            raise RuntimeError("the body was already finished")
        self._finished = True
        if self._pending_cr:
            return b"\r\n.\r\n"
        return b".\r\n" if self._at_line_start else b"\r\n.\r\n"


class LineEndingNormaliser:
    """Writes every CRLF, bare CR and bare LF as CRLF, chunk by chunk, without dot-stuffing.

    For BDAT (RFC 3030), whose framing is a byte count: the content must still be
    canonical text with CRLF line endings, but dots are never doubled.
    """

    __slots__ = ("_pending_cr",)

    def __init__(self) -> None:
        self._pending_cr = False

    def encode(self, chunk: bytes) -> bytes:
        """Normalise one chunk; a CR at its end is held back until the next byte is known."""
        chunk, self._pending_cr = _carry_cr(chunk, self._pending_cr)
        return normalise_line_endings(chunk)

    def finish(self) -> bytes:
        """A held-back CR becomes a line ending."""
        held, self._pending_cr = self._pending_cr, False
        return b"\r\n" if held else b""


class BdatEncoder:
    """Frames a message body as BDAT chunks (RFC 3030 §2): ``BDAT size [LAST]`` then the bytes.

    Line endings are written as CRLF (the content must still be canonical text), unless
    ``binary``: the transaction declared BODY=BINARYMIME and its bytes go out as given
    (RFC 3030 §3). Dots are never doubled: the byte count is the framing.

    A chunk of content is written only once more content is known to follow, so that the
    last content always goes out with ``LAST`` and no chunk is ever empty (servers refuse
    ``BDAT 0`` without ``LAST``); it holds one chunk, so memory stays O(chunk).
    """

    __slots__ = ("_held", "_normaliser")

    def __init__(self, *, binary: bool = False) -> None:
        self._normaliser = None if binary else LineEndingNormaliser()
        self._held = b""

    def chunk(self, data: bytes, *, last: bool) -> bytes | None:
        """The wire bytes of the BDAT command ``data`` completes, or ``None``: nothing to
        send yet (the content is held until more follows or the last chunk)."""
        normaliser = self._normaliser
        if normaliser is not None:
            data = normaliser.encode(data)
            if last:
                data += normaliser.finish()
        if last:
            data, self._held = self._held + data, b""
            return b"BDAT %d LAST\r\n" % len(data) + data
        if not data:
            return None
        held, self._held = self._held, data
        return b"BDAT %d\r\n" % len(held) + held if held else None
