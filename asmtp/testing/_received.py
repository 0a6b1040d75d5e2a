"""What the capture server records for each message it accepts.

Standard library only: the pytest plugin and ``asmtp.testing`` import this without aiosmtpd.
"""

from __future__ import annotations

import email.policy
import time
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.parser import BytesParser
from functools import cached_property

__all__ = ["ReceivedMessage", "mime_tree"]


@dataclass(frozen=True)
class ReceivedMessage:
    """One message the capture server accepted: its envelope and the bytes as received.

    ``raw`` is the content after the end-of-data marker was removed and dot-stuffing undone
    (DATA), or the chunks joined (BDAT): CRLF line endings, exactly what the client meant to
    send. ``rcpt_tos`` are the recipients the message was accepted for, in RCPT order;
    recipients refused at RCPT (or, over LMTP, after the data) are not among them.
    """

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    mail_options: tuple[str, ...] = ()
    helo: str = ""
    """The name the client gave in EHLO, HELO or LHLO."""
    peer: str = ""
    """The client's address as ``host:port`` (empty for a Unix socket)."""
    tls: bool = False
    """Whether the message came over an encrypted connection (STARTTLS or implicit TLS)."""
    username: str | None = None
    """The login the client authenticated as, or ``None``."""
    chunked: bool = False
    """Whether the body came by BDAT (RFC 3030) rather than DATA."""
    lmtp: bool = False
    received_at: float = field(default_factory=time.time, compare=False)

    @cached_property
    def message(self) -> EmailMessage:
        """``raw`` parsed with :data:`email.policy.default` (parsed once, on first use)."""
        return BytesParser(EmailMessage, policy=email.policy.default).parsebytes(self.raw)

    @property
    def size(self) -> int:
        """The length of ``raw`` in bytes."""
        return len(self.raw)

    @property
    def subject(self) -> str | None:
        """The decoded Subject header, or ``None`` when there is none."""
        value = self.message["Subject"]
        return None if value is None else str(value)

    @property
    def text(self) -> str | None:
        """The decoded plain-text body (else the HTML one), with ``\n`` line endings."""
        body = self.message.get_body(preferencelist=("plain", "html"))
        if body is None:
            return None
        content = body.get_content()
        return content.replace("\r\n", "\n") if isinstance(content, str) else None

    @property
    def attachments(self) -> dict[str, bytes]:
        """Decoded content of every part that has a file name, by file name."""
        found: dict[str, bytes] = {}
        for part in self.message.walk():
            name = part.get_filename()
            if name is None or part.is_multipart():
                continue
            payload = part.get_payload(decode=True)
            found[name] = payload if isinstance(payload, bytes) else b""
        return found

    @property
    def attachment_names(self) -> list[str]:
        """The file names of the parts that have one, in message order (repeats kept)."""
        names = (part.get_filename() for part in self.message.walk() if not part.is_multipart())
        return [name for name in names if name is not None]

    def mime_tree(self) -> str:
        """The MIME structure, e.g. ``multipart/mixed(text/plain, application/pdf)``."""
        return mime_tree(self.message)

    def summary(self) -> str:
        """One line: envelope, subject, size and MIME structure."""
        subject = self.subject
        return (
            f"from=<{self.mail_from}> to=<{'>,<'.join(self.rcpt_tos)}> "
            f"subject={subject!r} size={self.size} mime={self.mime_tree()}"
        )


def mime_tree(message: Message) -> str:
    """``type/subtype`` of ``message``, with its parts in parentheses when it has any."""
    kind = message.get_content_type()
    if not message.is_multipart():
        return kind
    parts = message.get_payload()
    if not isinstance(parts, list):  # pragma: no cover - a multipart payload is a list
        return kind
    return f"{kind}({', '.join(mime_tree(p) for p in parts if isinstance(p, Message))})"
