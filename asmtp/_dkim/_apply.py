"""Signing a message in the form it goes on the wire: bytes in memory or a file read twice.

The bytes signed are the bytes sent: line endings as CRLF (what DATA and BDAT write anyway)
and a CRLF at the very end (DATA adds one, so BDAT gets it too), with the ``DKIM-Signature``
field in front. A file is hashed in one pass and sent in a second, through
:class:`SignedFile`, which gives back exactly the bytes hashed. A body that can be read only
once (an iterator, an async iterator, a pipe) is refused with :class:`TypeError`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, Iterator
from typing import BinaryIO, Final, cast

import anyio.to_thread

from ._body import LineEndings
from ._signer import DKIMSigner

__all__ = ["IN_LOOP_LIMIT", "MAX_HEADER_BLOCK", "SignedFile", "sign_bytes", "signed"]

IN_LOOP_LIMIT: Final = 64 * 1024
"""Messages up to this size are signed on the event loop; larger ones, and files, in a worker
thread, a slice at a time, so that the loop gets the GIL back between slices.

Measured (``benchmarks/run.py dkim``): the body hash runs at about 50 MB/s; an RSA-2048
signature costs about 5 ms (dkimpy's RSA is pure Python, two ``pow()`` calls that hold the
GIL, so a thread would not shorten the stall, only add a hop), an Ed25519 one 0.3 ms."""
MAX_HEADER_BLOCK: Final = 1024 * 1024
"""The most of a file read before its header block ends: a file without one is refused."""
_READ_SIZE: Final = 64 * 1024
_SLICE: Final = 64 * 1024
_HEADER_END: Final = re.compile(rb"^\r\n|\r\n\r\n")
_CRLF: Final = b"\r\n"


async def signed(signer: DKIMSigner, source: object) -> bytes | BinaryIO:
    """``source`` (as ``_client._source.to_source`` made it) signed, ready to send.

    Raises :class:`TypeError` for a body that cannot be read twice, :class:`ValueError` for
    a message that cannot be signed (no ``From``, no header block).
    """
    if isinstance(source, (list, tuple)):
        source = b"".join(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) <= IN_LOOP_LIMIT:
            return sign_bytes(signer, data)
        return await anyio.to_thread.run_sync(sign_bytes, signer, data)
    read = getattr(source, "read", None)
    seekable = getattr(source, "seekable", None)
    if read is not None and seekable is not None and seekable():
        file = await anyio.to_thread.run_sync(_sign_file, signer, cast(BinaryIO, source))
        # The body writers only call read(): the rest of BinaryIO is not needed.
        return cast(BinaryIO, file)
    kind = "file that cannot seek" if read is not None else type(source).__name__
    if isinstance(source, (AsyncIterable, Iterator)) or read is not None:
        raise TypeError(
            f"a DKIM-signed message is read twice (hashed, then sent): a {kind} is read once; "
            "pass bytes, str, an email message or a seekable binary file"
        )
    raise TypeError(f"cannot DKIM-sign a message given as {type(source).__name__}")


def sign_bytes(signer: DKIMSigner, data: bytes) -> bytes:
    """``data`` as sent (CRLF line endings, CRLF-terminated), its signature in front."""
    endings = LineEndings()
    # A slice at a time: in a worker thread, the GIL can go back to the loop between slices.
    pieces = [endings.feed(data[at : at + _SLICE]) for at in range(0, len(data), _SLICE)]
    wire = b"".join(pieces) + endings.finish()
    if wire and not wire.endswith(_CRLF):
        wire += _CRLF
    body = signer.body_hash()
    end = _HEADER_END.search(wire)
    if end is None:  # no body: the whole message is its header block
        header_block = wire
    else:
        header_block = wire[: end.start() + 2] if end.start() else b""
        for at in range(end.end(), len(wire), _SLICE):
            body.update(wire[at : at + _SLICE])
    return signer.sign_header_block(header_block, body.digest()) + wire


class SignedFile:
    """A binary file's message as sent: the signature, then the file from where it stood, in
    CRLF line endings and CRLF-terminated (a ``read()`` may return a little more than asked
    when line endings grow)."""

    def __init__(self, signature: bytes, file: BinaryIO, start: int, terminate: bool) -> None:
        self._pending = signature
        self._file = file
        self._endings = LineEndings()
        self._tail = _CRLF if terminate else b""
        self._done = False
        file.seek(start)

    def read(self, size: int = -1) -> bytes:
        """The next bytes of the message; ``b""`` at its end."""
        if self._pending:
            out, self._pending = self._pending, b""
            return out
        while not self._done:
            block = self._file.read(size if size > 0 else _READ_SIZE)
            if not block:
                self._done = True
                return self._endings.finish() + self._tail
            out = self._endings.feed(block)
            if out:
                return out
        return b""


def _sign_file(signer: DKIMSigner, file: BinaryIO) -> SignedFile:
    """Hash ``file`` from its position to its end in one pass; rewind it for the sending."""
    start = file.tell()
    endings = LineEndings()
    body = signer.body_hash()
    head = b""
    header_block: bytes | None = None
    last = b""
    while block := file.read(_READ_SIZE):
        if not isinstance(block, bytes):
            raise TypeError("a message file must be opened in binary mode ('rb')")
        wire = endings.feed(block)
        last = (last + wire)[-2:]
        if header_block is None:
            head += wire
            end = _HEADER_END.search(head)
            if end is None:
                if len(head) > MAX_HEADER_BLOCK:
                    raise ValueError(
                        f"the message file has no end of its header block in its first "
                        f"{MAX_HEADER_BLOCK} bytes"
                    )
                continue
            header_block = head[: end.start() + 2 if end.start() else 0]
            wire, head = head[end.end() :], b""
        body.update(wire)
    tail = endings.finish()
    last = (last + tail)[-2:]
    terminate = bool(last) and last != _CRLF
    if header_block is None:  # no body: the whole file is the header block
        header_block = head + tail + (_CRLF if terminate else b"")
    else:
        body.update(tail)
    signature = signer.sign_header_block(header_block, body.digest())
    return SignedFile(signature, file, start, terminate)
