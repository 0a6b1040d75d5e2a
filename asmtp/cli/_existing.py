"""An existing RFC 5322 message sent as it is: its envelope read from its headers.

As ``sendmail -t`` and :meth:`smtplib.SMTP.send_message` do: the sender from ``Sender`` or
``From``, the recipients from ``To``, ``Cc`` and ``Bcc`` (their ``Resent-`` forms when the
message carries one ``Resent-`` block), and the ``Bcc`` lines are removed, since they would
otherwise tell every recipient who else got the message. Everything after the header block
is streamed unchanged.
"""

from __future__ import annotations

import email.policy
from collections.abc import Iterator
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from typing import BinaryIO, Final

__all__ = ["HEADER_LIMIT", "ExistingMessage", "MessageError", "read_header"]

HEADER_LIMIT: Final = 1024 * 1024
"""Largest header block accepted, in bytes (a bound on what is held in memory)."""
_LINE_LIMIT: Final = 64 * 1024
_CHUNK: Final = 256 * 1024
_HIDDEN: Final = (b"bcc", b"resent-bcc")


class MessageError(ValueError):
    """The message's header block is unusable (too large, or a bad envelope header)."""


@dataclass
class ExistingMessage:
    """A message whose header block has been read; the body is still in ``source``."""

    header: bytes
    """The header block as it will be sent (Bcc removed), ending with the empty line."""
    source: BinaryIO
    sender: Address | None
    recipients: list[Address]

    def chunks(self) -> Iterator[bytes]:
        """The message to send: the header block, then the rest of ``source`` in chunks."""
        yield self.header
        while chunk := self.source.read(_CHUNK):
            yield chunk


def read_header(source: BinaryIO) -> ExistingMessage:
    """Read ``source`` up to the end of its header block, and the envelope found there.

    Raises :class:`MessageError` when the block exceeds :data:`HEADER_LIMIT` or the
    message has more than one ``Resent-`` block.
    """
    lines: list[bytes] = []
    size = 0
    while True:
        line = source.readline(_LINE_LIMIT)
        size += len(line)
        if size > HEADER_LIMIT:
            raise MessageError(f"the header block is larger than {HEADER_LIMIT} bytes")
        if line in (b"", b"\r\n", b"\n"):
            end = line
            break
        lines.append(line)
    parsed = BytesParser(EmailMessage, policy=email.policy.default).parsebytes(
        b"".join(lines) + b"\r\n", headersonly=True
    )
    sender, recipients = _envelope(parsed)
    kept = b"".join(_without_bcc(lines)) + end
    return ExistingMessage(kept, source, sender, recipients)


def _envelope(message: EmailMessage) -> tuple[Address | None, list[Address]]:
    resent = message.get_all("Resent-Date")
    if resent is not None and len(resent) > 1:
        raise MessageError("the message has more than one Resent- header block")
    prefix = "Resent-" if resent else ""
    senders = _addresses(message, f"{prefix}Sender") or _addresses(message, f"{prefix}From")
    recipients = [
        address
        for field in (f"{prefix}To", f"{prefix}Cc", f"{prefix}Bcc")
        for address in _addresses(message, field)
    ]
    return (senders[0] if senders else None), recipients


def _addresses(message: EmailMessage, field: str) -> list[Address]:
    found: list[Address] = []
    for header in message.get_all(field) or []:
        found.extend(a for a in getattr(header, "addresses", ()) if a.username and a.domain)
    return found


def _without_bcc(lines: list[bytes]) -> Iterator[bytes]:
    """The header lines less every Bcc and Resent-Bcc field (continuation lines too)."""
    hiding = False
    for line in lines:
        if line[:1] not in (b" ", b"\t"):  # a new field starts (RFC 5322 §2.2.3)
            name = line.split(b":", 1)[0].strip().lower()
            hiding = name in _HIDDEN
        if not hiding:
            yield line
