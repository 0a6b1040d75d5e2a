"""Message sources: turn what callers pass as a message into bounded chunks of bytes.

Accepts ``bytes``-like objects, ``str`` (UTF-8), binary files and (async) iterables of bytes,
so a large message is streamed with memory bounded by the chunk size. Anything else is a
:class:`TypeError` raised before a byte is sent.
"""

from __future__ import annotations

import contextlib
import email.generator
import email.message
import io
import os
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Iterator
from typing import BinaryIO

__all__ = [
    "CHUNK_SIZE",
    "MessageSource",
    "check_sendable",
    "chunks",
    "eight_bit",
    "known_size",
    "pieces",
    "to_source",
]

CHUNK_SIZE = 256 * 1024

MessageSource = (
    str | bytes | bytearray | memoryview | BinaryIO | AsyncIterable[bytes] | Iterable[bytes]
)


def check_sendable(msg: object) -> None:
    """Raise :class:`TypeError` unless ``msg`` is something that can be sent (cheaply: the
    conversion, :func:`to_source`, comes later)."""
    if isinstance(msg, (list, tuple)):
        for block in msg:
            _checked(block)
    elif not isinstance(msg, (str, email.message.Message, bytes, bytearray, memoryview)):
        _stream(msg)


def to_source(msg: object) -> MessageSource:
    """Check ``msg`` is something we can send, and turn ``str`` into UTF-8 bytes."""
    if isinstance(msg, str):
        return msg.encode("utf-8")
    if isinstance(msg, email.message.Message):
        with io.BytesIO() as buffer:
            email.generator.BytesGenerator(buffer).flatten(msg, linesep="\r\n")
            return buffer.getvalue()
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


def known_size(source: MessageSource) -> int | None:
    """The size in bytes when it can be known without reading (for ``SIZE=``)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        # RFC 1870 counts the message as sent: every bare CR or LF becomes CRLF.
        data = bytes(source) if isinstance(source, memoryview) else source
        pairs = data.count(b"\r\n")
        return len(data) + (data.count(b"\n") - pairs) + (data.count(b"\r") - pairs)
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


def eight_bit(source: MessageSource) -> bool:
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
