"""Commands the client sends and the replies it receives.

Events are frozen, slotted and complete when built; they hold ``bytes`` and tuples only.
Serialisation lives in ``_commands``; validation of arguments happens there too, before any
byte exists.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "NEED_DATA",
    "PEER_CLOSED",
    "Auth",
    "AuthResponse",
    "Bdat",
    "Command",
    "Data",
    "Ehlo",
    "EndOfData",
    "Expn",
    "Helo",
    "Help",
    "Lhlo",
    "Mail",
    "MessageData",
    "Noop",
    "Quit",
    "Raw",
    "Rcpt",
    "Reply",
    "Rset",
    "Sentinel",
    "StartTLS",
    "Vrfy",
    "answer",
]


@dataclass(frozen=True, slots=True)
class Ehlo:
    """``EHLO hostname`` (RFC 5321 §4.1.1.1)."""

    hostname: bytes


@dataclass(frozen=True, slots=True)
class Helo:
    """``HELO hostname``: the pre-ESMTP greeting."""

    hostname: bytes


@dataclass(frozen=True, slots=True)
class Lhlo:
    """``LHLO hostname``: LMTP's EHLO (RFC 2033 §4.1)."""

    hostname: bytes


@dataclass(frozen=True, slots=True)
class Mail:
    """``MAIL FROM:<sender> [params]``; an empty sender is the null reverse-path ``<>``."""

    sender: bytes
    params: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class Rcpt:
    """``RCPT TO:<address> [params]``."""

    address: bytes
    params: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class Data:
    """``DATA``: asks to send the message; a ``354`` reply opens the body."""


@dataclass(frozen=True, slots=True)
class MessageData:
    """A chunk of message body after ``354``; encoded (line endings, dot-stuffing) on send."""

    data: bytes

    def __repr__(self) -> str:
        return f"MessageData(<{len(self.data)} bytes>)"


@dataclass(frozen=True, slots=True)
class EndOfData:
    """The end of the message body (``CRLF . CRLF``); answered like a command."""


@dataclass(frozen=True, slots=True)
class Bdat:
    """``BDAT size [LAST]`` followed by exactly ``data`` (RFC 3030); no dot-stuffing."""

    data: bytes
    last: bool = False

    def __repr__(self) -> str:
        return f"Bdat(<{len(self.data)} bytes>, last={self.last})"


@dataclass(frozen=True, slots=True)
class Rset:
    """``RSET``: abort the current transaction."""


@dataclass(frozen=True, slots=True)
class Noop:
    """``NOOP [argument]``."""

    argument: bytes = b""


@dataclass(frozen=True, slots=True)
class Vrfy:
    """``VRFY argument``."""

    argument: bytes


@dataclass(frozen=True, slots=True)
class Expn:
    """``EXPN argument``."""

    argument: bytes


@dataclass(frozen=True, slots=True)
class Help:
    """``HELP [argument]``."""

    argument: bytes = b""


@dataclass(frozen=True, slots=True)
class Quit:
    """``QUIT``: the server answers ``221`` and closes."""


@dataclass(frozen=True, slots=True)
class StartTLS:
    """``STARTTLS`` (RFC 3207); after ``220`` nothing may be sent until the handshake is done."""


@dataclass(frozen=True, slots=True)
class Auth:
    """``AUTH mechanism [initial-response]`` (RFC 4954); the response is redacted in reprs."""

    mechanism: bytes
    initial_response: bytes | None = None

    def __repr__(self) -> str:
        shown = "None" if self.initial_response is None else "<redacted>"
        return f"Auth(mechanism={self.mechanism!r}, initial_response={shown})"


@dataclass(frozen=True, slots=True)
class AuthResponse:
    """One base64 line answering a ``334`` challenge (``*`` cancels); redacted in reprs."""

    data: bytes

    def __repr__(self) -> str:
        return "AuthResponse(<redacted>)"


@dataclass(frozen=True, slots=True)
class Raw:
    """Any command line, as smtplib's ``docmd``: framing is checked (no CR, LF, NUL), order is not.

    Set ``sensitive`` for lines carrying secrets so transcripts, reprs and errors redact
    them. An ``AUTH`` line is always sensitive (``docmd("AUTH", "XOAUTH2 " + token)``):
    only the verb and the mechanism name are shown.
    """

    line: bytes
    sensitive: bool = False

    def __post_init__(self) -> None:
        if not self.sensitive and is_auth_line(self.line):
            object.__setattr__(self, "sensitive", True)

    def __repr__(self) -> str:
        shown = redacted_raw_line(self.line) if self.sensitive else self.line
        return f"Raw({shown!r})"


# RFC 4422 §3.1: sasl-mech = 1*20mech-char; mech-char = UPPER-ALPHA / DIGIT / HYPHEN / "_"
_MECHANISM_NAME = re.compile(rb"[A-Z0-9_-]{1,20}")


def is_auth_line(line: bytes) -> bool:
    """Whether a raw line is an ``AUTH`` command (any case, any spacing), so carries secrets."""
    return isinstance(line, bytes) and line.lstrip()[:4].upper() == b"AUTH"


def redacted_raw_line(line: bytes) -> bytes:
    """A sensitive raw line as it may be shown: ``AUTH`` and a well-formed mechanism name
    stay visible, everything else is ``<redacted>``."""
    words = line.split(b" ", 2) if isinstance(line, bytes) else []
    if len(words) < 2 or words[0].upper() != b"AUTH":
        return b"<redacted>"
    if not _MECHANISM_NAME.fullmatch(words[1]):
        # Not a mechanism name as RFC 4422 writes one (upper case): it may be a secret.
        return words[0] + b" <redacted>"
    return words[0] + b" " + words[1] + (b" <redacted>" if len(words) > 2 else b"")


Command = (
    Ehlo
    | Helo
    | Lhlo
    | Mail
    | Rcpt
    | Data
    | MessageData
    | EndOfData
    | Bdat
    | Rset
    | Noop
    | Vrfy
    | Expn
    | Help
    | Quit
    | StartTLS
    | Auth
    | AuthResponse
    | Raw
)
"""Any command :meth:`ClientConnection.send` takes (a type union, for annotations)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete server reply.

    ``lines`` hold the text after each ``ddd-``/``ddd `` prefix. ``command`` is the command
    this reply answers (``None`` for the greeting and for an unsolicited ``421`` or ``221``:
    the server closing).
    ``recipient`` is set on LMTP's per-recipient replies to the end of data (RFC 2033 §4.2).
    """

    code: int
    lines: tuple[bytes, ...]
    command: Command | None = None
    recipient: bytes | None = None

    @property
    def message(self) -> bytes:
        """The text lines joined by ``\\n``, as smtplib's ``getreply()`` returns them.

        Like smtplib, each line is stripped of surrounding spaces, tabs, CRs and LFs.
        """
        lines = self.lines
        if len(lines) == 1:
            return lines[0].strip(b" \t\r\n")
        return b"\n".join([line.strip(b" \t\r\n") for line in lines])

    @property
    def is_positive(self) -> bool:
        """True for 2xx (completion) replies."""
        return 200 <= self.code < 300

    @property
    def is_intermediate(self) -> bool:
        """True for 3xx replies (``354`` go ahead, ``334`` challenge)."""
        return 300 <= self.code < 400

    @property
    def is_transient(self) -> bool:
        """True for 4xx replies: try again later."""
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        """True for 5xx replies."""
        return 500 <= self.code < 600

    @property
    def enhanced_status(self) -> tuple[int, int, int] | None:
        """The RFC 3463 enhanced status code opening the first line, if any."""
        if not self.lines:
            return None
        head = self.lines[0].split(b" ", 1)[0]
        parts = head.split(b".")
        if len(parts) != 3 or not all(p.isdigit() and 0 < len(p) <= 3 for p in parts):
            return None
        cls, subject, detail = (int(p) for p in parts)
        if cls not in (2, 4, 5):
            return None
        return (cls, subject, detail)

    def __repr__(self) -> str:
        extra = f", recipient={self.recipient!r}" if self.recipient is not None else ""
        return f"Reply({self.code}, {self.message!r}, command={self.command!r}{extra})"


def _slot_setter(name: str) -> Callable[[Reply, object], None]:
    """The ``__set__`` of Reply's slot ``name``, which a frozen instance's own setattr refuses."""
    slot: Any = Reply.__dict__[name]
    setter: Callable[[Reply, object], None] = slot.__set__
    return setter


_new = object.__new__
_set_code, _set_lines, _set_command, _set_recipient = map(
    _slot_setter, ("code", "lines", "command", "recipient")
)


def answer(
    code: int, lines: tuple[bytes, ...], command: Command | None, recipient: bytes | None = None
) -> Reply:
    """``Reply(code, lines, command, recipient)``, made as fast as a mutable object: the
    frozen dataclass's ``__init__`` pays an ``object.__setattr__`` per field, per reply."""
    reply = _new(Reply)
    _set_code(reply, code)
    _set_lines(reply, lines)
    _set_command(reply, command)
    _set_recipient(reply, recipient)
    return reply


class Sentinel(enum.Enum):
    """What :meth:`ClientConnection.next_event` returns when it has no reply."""

    NEED_DATA = "need data"
    """Feed more bytes with :meth:`ClientConnection.receive_data`."""
    PEER_CLOSED = "peer closed"
    """The server closed the connection; see :attr:`ClientConnection.pending` for what it left unanswered."""


NEED_DATA = Sentinel.NEED_DATA
PEER_CLOSED = Sentinel.PEER_CLOSED
