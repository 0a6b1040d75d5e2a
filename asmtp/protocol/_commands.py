"""Command serialisation.

Owns the bytes of every command line and the checks that keep a line a line: no CR, LF or
NUL in any argument (RFC 5321 §2.3.8), raised as :class:`BadArgument` before any byte is
produced. Knows nothing of order: that is ``_state``'s job.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from ._errors import BadArgument, quote
from ._events import (
    Auth,
    AuthResponse,
    Bdat,
    Command,
    Data,
    Ehlo,
    EndOfData,
    Expn,
    Helo,
    Help,
    Lhlo,
    Mail,
    MessageData,
    Noop,
    Quit,
    Raw,
    Rcpt,
    Rset,
    StartTLS,
    Vrfy,
    redacted_raw_line,
)

__all__ = ["check_argument", "command_line", "rcpt_line", "redacted_line"]

_FORBIDDEN = (b"\r", b"\n", b"\x00")
# The same bytes as ints: on Python 3.11, `b"\r" in value` raises and clears a TypeError
# inside bytes.__contains__ before it searches (about 1,900 instructions); `13 in value`
# goes straight to memchr.
_CR, _LF, _NUL, _SPACE, _LT, _GT = b"\r\n\x00 <>"


def check_argument(value: bytes, what: str) -> bytes:
    """Return ``value`` unchanged, or raise :class:`BadArgument` if it could break framing."""
    if not isinstance(value, bytes):
        raise BadArgument(f"{what} must be bytes, got {type(value).__name__}")
    if _CR in value or _LF in value or _NUL in value:
        bad = next(bad for bad in _FORBIDDEN if bad in value)
        raise BadArgument(f"{what} contains {bad!r}: {quote(value)}")
    return value


def _params(params: Iterable[bytes], what: str) -> bytes:
    out = b""
    for param in params:
        check_argument(param, what)
        if not param or _SPACE in param:
            raise BadArgument(f"{what} must be one non-empty word: {quote(param)}")
        out += b" " + param
    return out


def _hostname(cmd: Ehlo | Helo | Lhlo) -> bytes:
    check_argument(cmd.hostname, "hostname")
    if not cmd.hostname or _SPACE in cmd.hostname:
        raise BadArgument(f"hostname must be one non-empty word: {quote(cmd.hostname)}")
    return cmd.hostname


_NOT_IN_PATH = re.compile(rb"[\r\n\x00<>]")
"""The bytes a path may not hold: :func:`_path` takes an address without them, and
:func:`check_argument` and the angle-bracket check name the one found."""


def _path(address: bytes, what: str) -> bytes:
    if address.__class__ is bytes and _NOT_IN_PATH.search(address) is None:
        return b"<" + address + b">"  # the usual address: one search instead of five
    check_argument(address, what)
    if _LT in address or _GT in address:
        raise BadArgument(f"{what} must be a bare address without angle brackets: {quote(address)}")
    return b"<" + address + b">"


def _with_argument(verb: bytes, argument: bytes, what: str) -> bytes:
    check_argument(argument, what)
    return verb + (b" " + argument if argument else b"") + b"\r\n"


def _mail(cmd: Mail) -> bytes:
    return (
        b"MAIL FROM:"
        + _path(cmd.sender, "sender")
        + _params(cmd.params, "MAIL parameter")
        + b"\r\n"
    )


def rcpt_line(cmd: Rcpt) -> bytes:
    """``RCPT TO:<address>`` and its parameters (:func:`command_line` for a :class:`Rcpt`,
    which a pipelined group sends many of); :class:`BadArgument` as there."""
    if not cmd.address:
        raise BadArgument("recipient address must not be empty")
    return (
        b"RCPT TO:"
        + _path(cmd.address, "recipient")
        + _params(cmd.params, "RCPT parameter")
        + b"\r\n"
    )


def _auth(cmd: Auth) -> bytes:
    check_argument(cmd.mechanism, "AUTH mechanism")
    if not cmd.mechanism or _SPACE in cmd.mechanism:
        raise BadArgument(f"AUTH mechanism must be one word: {quote(cmd.mechanism)}")
    if cmd.initial_response is None:
        return b"AUTH " + cmd.mechanism + b"\r\n"
    # The secret must not reach an error message: check without quoting it.
    if any(bad in cmd.initial_response for bad in _FORBIDDEN) or b" " in cmd.initial_response:
        raise BadArgument("AUTH initial response contains CR, LF, NUL or a space")
    # RFC 4954 §4: an empty initial response is sent as "=".
    return b"AUTH " + cmd.mechanism + b" " + (cmd.initial_response or b"=") + b"\r\n"


def _auth_response(cmd: AuthResponse) -> bytes:
    if any(bad in cmd.data for bad in _FORBIDDEN):
        raise BadArgument("AUTH response contains CR, LF or NUL")
    return cmd.data + b"\r\n"


def _raw(cmd: Raw) -> bytes:
    if any(bad in cmd.line for bad in _FORBIDDEN):
        shown = repr(redacted_raw_line(cmd.line)) if cmd.sensitive else quote(cmd.line)
        raise BadArgument(f"command line contains CR, LF or NUL: {shown}")
    return cmd.line + b"\r\n"


def _bdat(cmd: Bdat) -> bytes:
    return b"BDAT %d%s\r\n" % (len(cmd.data), b" LAST" if cmd.last else b"")


_WRITERS: dict[type[Any], Callable[[Any], bytes]] = {
    Ehlo: lambda c: b"EHLO " + _hostname(c) + b"\r\n",
    Helo: lambda c: b"HELO " + _hostname(c) + b"\r\n",
    Lhlo: lambda c: b"LHLO " + _hostname(c) + b"\r\n",
    Mail: _mail,
    Rcpt: rcpt_line,
    Data: lambda c: b"DATA\r\n",
    Bdat: _bdat,
    Rset: lambda c: b"RSET\r\n",
    Noop: lambda c: _with_argument(b"NOOP", c.argument, "NOOP argument"),
    Vrfy: lambda c: _with_argument(b"VRFY", c.argument, "VRFY argument"),
    Expn: lambda c: _with_argument(b"EXPN", c.argument, "EXPN argument"),
    Help: lambda c: _with_argument(b"HELP", c.argument, "HELP argument"),
    Quit: lambda c: b"QUIT\r\n",
    StartTLS: lambda c: b"STARTTLS\r\n",
    Auth: _auth,
    AuthResponse: _auth_response,
    Raw: _raw,
}


def command_line(command: Command) -> bytes:
    """The command line for ``command`` (for BDAT: the line without its payload).

    Raises :class:`BadArgument` for an argument that would break framing, and for body
    events, which are not command lines.
    """
    if isinstance(command, (MessageData, EndOfData)):
        raise BadArgument(f"{type(command).__name__} is message content, not a command line")
    writer = _WRITERS.get(type(command))
    if writer is None:
        raise BadArgument(f"not an SMTP command: {command!r}")
    return writer(command)


def redacted_line(command: Command) -> bytes:
    """A transcript-safe rendering of ``command``: AUTH payloads are replaced by ``<redacted>``.

    The mechanism name of an AUTH line stays visible, however the line was sent.
    """
    if isinstance(command, Auth):
        tail = b"" if command.initial_response is None else b" <redacted>"
        return b"AUTH " + command.mechanism + tail
    if isinstance(command, AuthResponse):
        return b"<redacted>"
    if isinstance(command, Raw) and command.sensitive:
        return redacted_raw_line(command.line)
    if isinstance(command, MessageData):
        return b"<%d bytes of message data>" % len(command.data)
    if isinstance(command, EndOfData):
        return b"<end of data>"
    if isinstance(command, Bdat):
        return command_line(command).rstrip(b"\r\n") + b" <%d bytes>" % len(command.data)
    return command_line(command).rstrip(b"\r\n")
