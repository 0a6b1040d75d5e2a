"""Compose a message from text, HTML and files, streamed into a binary file.

Flattening an :class:`email.message.EmailMessage` holds each attachment three times in
memory: its bytes, their base64 text in the message object, and the flattened message.
Here each file is read once, in blocks of :data:`BLOCK` bytes, and its base64 lines are
written as they are made: straight into the output for binary files; for text files into
a spool of their own first (memory up to :data:`TEXT_SPOOL_MEMORY`, then a temporary file),
since their charset, which goes in their headers, is known only once they have been read.
Headers and the text and HTML bodies are small and are made by the email package, which
folds and encodes them (RFC 2047 words, RFC 2231 file names).
"""

from __future__ import annotations

import base64
import codecs
import email.policy
import mimetypes
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.message import EmailMessage, MIMEPart
from email.policy import EmailPolicy
from pathlib import Path
from typing import Any, BinaryIO, Final

__all__ = ["BLOCK", "AttachmentError", "Draft", "compose", "content_type"]

BLOCK: Final = 57 * 4096
"""Bytes read per step: a multiple of 57, so each block makes whole base64 lines of 76
characters (RFC 2045 §6.8), about 228 KiB."""
TEXT_SPOOL_MEMORY: Final = 1024 * 1024
PREAMBLE: Final = b"This is a multi-part message in MIME format.\r\n"
_UNSAFE_IN_NAME: Final = re.compile(r"[\x00-\x1f\x7f]")


class AttachmentError(Exception):
    """A file to attach could not be read; the message names the file."""


@dataclass(frozen=True)
class Draft:
    """What a message is made of. ``headers`` are (name, value) pairs in order."""

    headers: Sequence[tuple[str, str]]
    text: str | None = None
    html: str | None = None
    attachments: Sequence[Path] = ()


def compose(draft: Draft, out: BinaryIO, *, utf8: bool = False) -> None:
    """Write ``draft`` to ``out`` as an RFC 5322 message with CRLF line endings.

    ``utf8`` writes headers as UTF-8 (RFC 6532, for addresses that are not ASCII) rather
    than ASCII with encoded words. Raises :class:`AttachmentError` when a file cannot be
    read (``out`` then holds a partial message).
    """
    policy: EmailPolicy[Any] = email.policy.SMTPUTF8 if utf8 else email.policy.SMTP
    if not draft.attachments:
        message = EmailMessage(policy=policy)
        for name, value in draft.headers:
            message[name] = value
        if not _set_body(message, draft.text, draft.html):
            message.set_content("")
        BytesGenerator(out, policy=policy).flatten(message)
        return
    boundary = f"===============asmtp{secrets.token_hex(16)}=="
    head = EmailMessage(policy=policy)
    for name, value in draft.headers:
        head[name] = value
    head["MIME-Version"] = "1.0"
    head["Content-Type"] = "multipart/mixed"
    head.set_param("boundary", boundary)
    _write_headers(head, out, policy)
    out.write(PREAMBLE)
    delimiter = b"\r\n--" + boundary.encode("ascii") + b"\r\n"
    body = MIMEPart(policy=policy)
    if _set_body(body, draft.text, draft.html):
        out.write(delimiter)
        BytesGenerator(out, policy=policy).flatten(body)
    for path in draft.attachments:
        out.write(delimiter)
        _write_attachment(path, out, policy)
    out.write(b"\r\n--" + boundary.encode("ascii") + b"--\r\n")


def content_type(name: str) -> str:
    """The MIME type for a file called ``name``: guessed from its extension, and
    ``application/octet-stream`` when unknown or compressed (``.gz``, ``.bz2``, ...)."""
    guessed, encoding = mimetypes.guess_type(name)
    if guessed is None or encoding is not None:
        return "application/octet-stream"
    return guessed


def _set_body(part: MIMEPart, text: str | None, html: str | None) -> bool:
    """Put the text (and HTML alternative) into ``part``; False when there is neither."""
    if text:
        part.set_content(text)
        if html:
            part.add_alternative(html, subtype="html")
    elif html:
        part.set_content(html, subtype="html")
    else:
        return False
    return True


def _write_headers(part: MIMEPart, out: BinaryIO, policy: EmailPolicy[Any]) -> None:
    for name, value in part.items():
        out.write(policy.fold_binary(name, value))
    out.write(b"\r\n")


def _write_attachment(path: Path, out: BinaryIO, policy: EmailPolicy[Any]) -> None:
    # A name the file system gave in undecodable bytes, or with control characters, must
    # not break the header it goes into.
    name = path.name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    name = _UNSAFE_IN_NAME.sub("_", name)
    kind = content_type(name)
    try:
        with path.open("rb") as source:
            if not kind.startswith("text/"):
                _write_headers(_part_headers(kind, None, name, policy), out, policy)
                _encode(source, out)
                return
            charset = _Charset()
            with tempfile.SpooledTemporaryFile(TEXT_SPOOL_MEMORY) as spool:
                _encode(source, spool, charset.feed)  # type: ignore[arg-type]  # a binary file
                found = charset.result()
                if found is None:  # neither ASCII nor UTF-8: an unknown charset
                    kind = "application/octet-stream"
                _write_headers(_part_headers(kind, found, name, policy), out, policy)
                spool.seek(0)
                shutil.copyfileobj(spool, out, BLOCK)
    except OSError as exc:
        raise AttachmentError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _part_headers(kind: str, charset: str | None, name: str, policy: EmailPolicy[Any]) -> MIMEPart:
    part = MIMEPart(policy=policy)
    part["Content-Type"] = kind
    if charset is not None:
        part.set_param("charset", charset)
    part["Content-Transfer-Encoding"] = "base64"
    # RFC 2183 file name; the email package encodes it per RFC 2231 when not ASCII.
    part.add_header("Content-Disposition", "attachment", filename=name)
    return part


def _encode(
    source: BinaryIO, out: BinaryIO, observe: Callable[[bytes], None] | None = None
) -> None:
    """Copy ``source`` to ``out`` as base64 lines of 76 characters ending in CRLF."""
    carry = b""
    while block := source.read(BLOCK):
        if observe is not None:
            observe(block)
        data = carry + block if carry else block
        whole = len(data) - len(data) % 57
        if whole:
            out.write(base64.encodebytes(memoryview(data)[:whole]).replace(b"\n", b"\r\n"))
        carry = data[whole:]
    if carry:
        out.write(base64.b64encode(carry) + b"\r\n")


class _Charset:
    """Learns, a block at a time, whether bytes are ASCII, else UTF-8, else neither."""

    def __init__(self) -> None:
        self._ascii = True
        self._utf8: codecs.IncrementalDecoder | None = codecs.getincrementaldecoder("utf-8")()

    def feed(self, block: bytes) -> None:
        if self._ascii and block.isascii():
            return
        self._ascii = False
        if self._utf8 is not None:
            try:
                self._utf8.decode(block)
            except UnicodeDecodeError:
                self._utf8 = None

    def result(self) -> str | None:
        if self._ascii:
            return "us-ascii"
        if self._utf8 is None:
            return None
        try:
            self._utf8.decode(b"", final=True)
        except UnicodeDecodeError:  # ends inside a multi-byte sequence
            return None
        return "utf-8"
