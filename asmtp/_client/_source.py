"""Message sources: turn what callers pass as a message into bounded chunks of bytes.

Accepts ``bytes``-like objects, ``str`` (UTF-8), email messages (flattened without Bcc),
binary files and (async) iterables of bytes, so a large message is streamed with memory
bounded by the chunk size. Anything else is a :class:`TypeError` raised before a byte is sent.
"""

from __future__ import annotations

import contextlib
import email.message
import enum
import io
import os
import re
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Iterator
from typing import BinaryIO, Final

from ..protocol import crlf_size
from ._flatten import flatten

__all__ = [
    "CHUNK_SIZE",
    "NO_EIGHT_BIT",
    "EightBit",
    "MessageSource",
    "check_sendable",
    "chunks",
    "eight_bit",
    "eight_bit_content",
    "eight_bit_octets",
    "known_size",
    "pieces",
    "to_source",
]

CHUNK_SIZE = 256 * 1024

MessageSource = (
    str | bytes | bytearray | memoryview | BinaryIO | AsyncIterable[bytes] | Iterable[bytes]
)


# The end of the header block: the message starts with a line break, or two follow each
# other (a lone CR or LF ends a line on the wire too, RFC 5321 §2.3.8).
_HEADER_BLOCK_END: Final = re.compile(rb"^(?:\r\n|\r|\n)|(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)")


class EightBit(enum.Enum):
    """What the bytes asmtp encoded need declared in MAIL; each value says where they are."""

    NONE = "no 8-bit octets"
    BODY = "8-bit octets in its body"
    """RFC 6152: ``BODY=8BITMIME``."""
    HEADERS = "8-bit octets (UTF-8) in its header block"
    """RFC 6531 §3.4, RFC 6532 §3: ``SMTPUTF8`` and ``BODY=8BITMIME``."""


NO_EIGHT_BIT: Final = EightBit.NONE
"""EightBit.NONE as a module name, read for every message: on Python 3.11 each
``EightBit.NONE`` is a call to EnumType.__getattr__."""


def check_sendable(msg: object) -> None:
    """Raise :class:`TypeError` unless ``msg`` is something that can be sent (cheaply: the
    conversion, :func:`to_source`, comes later)."""
    if isinstance(msg, (list, tuple)):
        for block in msg:
            _checked(block)
    elif not isinstance(msg, (str, email.message.Message, bytes, bytearray, memoryview)):
        _stream(msg)


def to_source(msg: object) -> MessageSource:
    """Check ``msg`` is something we can send, and turn ``str`` into UTF-8 bytes.

    An email message is flattened without its Bcc headers, its header lines checked
    (:func:`asmtp._client._flatten.flatten`).
    """
    if isinstance(msg, str):
        return msg.encode("utf-8")
    if isinstance(msg, email.message.Message):
        return flatten(msg)
    if isinstance(msg, (list, tuple)):
        return [_checked(block) for block in msg]
    if isinstance(msg, (bytes, bytearray, memoryview)):
        return msg
    return _stream(msg)


def _stream(msg: object) -> MessageSource:
    """``msg`` itself if it is a binary file or an iterator of chunks; :class:`TypeError`."""
    if isinstance(msg, io.TextIOBase) or "b" not in getattr(msg, "mode", "b"):
        raise TypeError("a message file must be opened in binary mode ('rb')")
    if hasattr(msg, "read") or isinstance(msg, (AsyncIterable, Iterator)):
        return msg  # type: ignore[return-value]
    # Other iterables (dict, set, range...) are refused: their items are rarely message
    # chunks, and a list or tuple of bytes, or an iterator, says so explicitly.
    raise TypeError(
        "a message must be str, bytes, an email message, a binary file, a list or tuple of "
        "bytes, or an (async) iterator of bytes, "
        f"not {type(msg).__name__}"
    )


def eight_bit(msg: object, source: MessageSource) -> EightBit:
    """What ``source``, made from ``msg`` by :func:`to_source`, needs declared.

    Only the bytes asmtp produced count (a ``str`` it encoded, a message it flattened): bytes
    the caller gives are theirs to declare, as with smtplib. ASCII text costs one
    ``str.isascii()``.
    """
    if isinstance(msg, str) and msg.isascii():
        return NO_EIGHT_BIT
    if isinstance(msg, (str, email.message.Message)) and isinstance(source, bytes):
        return eight_bit_content(source)
    return NO_EIGHT_BIT


def eight_bit_content(data: bytes) -> EightBit:
    """Whether ``data`` has 8-bit octets, and whether any is in its header block."""
    if data.isascii():
        return NO_EIGHT_BIT
    end = _HEADER_BLOCK_END.search(data)
    header_block = data[: end.start()] if end is not None else data
    return EightBit.BODY if header_block.isascii() else EightBit.HEADERS


def known_size(source: MessageSource) -> int | None:
    """The size in bytes when it can be known without reading (for ``SIZE=``)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        # RFC 1870 counts the message as sent: every bare CR or LF becomes CRLF.
        return crlf_size(bytes(source) if isinstance(source, memoryview) else source)
    fileno = getattr(source, "fileno", None)
    tell = getattr(source, "tell", None)
    if fileno is not None and tell is not None:
        try:
            remaining: int = os.fstat(fileno()).st_size - tell()
            return remaining
        except (OSError, ValueError):
            return None
    return None


async def chunks(source: MessageSource, size: int = CHUNK_SIZE) -> AsyncGenerator[bytes, None]:
    """Yield the message as ``bytes`` chunks of at most ``size`` bytes (iterables: as given)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        view = memoryview(source).cast("B")
        for start in range(0, len(view), size):
            yield bytes(view[start : start + size])
        return
    if isinstance(source, str):  # pragma: no cover - to_source() encoded it already
        raise TypeError("encode str messages first")
    read = getattr(source, "read", None)
    if read is not None:
        while True:
            block = read(size)
            if not block:
                return
            if not isinstance(block, bytes):
                raise TypeError(
                    f"message file must be opened in binary mode, got {type(block).__name__}"
                )
            yield block
    elif isinstance(source, AsyncIterable):
        async for block in source:
            yield _checked(block)
    else:
        for block in source:
            yield _checked(block)


async def pieces(
    source: MessageSource, size: int = CHUNK_SIZE
) -> AsyncGenerator[tuple[bytes, bool], None]:
    """Each chunk of :func:`chunks` with whether it is the last one (an empty source: none).

    The body writers send the last piece together with the end of the data, so they need
    to know it is the last before sending it.
    """
    if isinstance(source, bytes) and len(source) <= size:
        if source:
            yield source, True  # one piece: no chunk iterator needed
        return
    previous: bytes | None = None
    async with contextlib.aclosing(chunks(source, size)) as stream:
        async for chunk in stream:
            if previous is not None:
                yield previous, False
            previous = chunk
    if previous is not None:
        yield previous, True


def eight_bit_octets(source: MessageSource) -> bool:
    """True for a body in memory with an octet above 127 (a stream is not read ahead)."""
    if isinstance(source, memoryview):
        return not bytes(source).isascii()
    return isinstance(source, (bytes, bytearray)) and not source.isascii()


def _checked(block: object) -> bytes:
    if isinstance(block, (bytearray, memoryview)):
        return bytes(block)
    if not isinstance(block, bytes):
        raise TypeError(f"message chunks must be bytes, got {type(block).__name__}")
    return block
