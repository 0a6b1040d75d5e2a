"""Steps of a ScriptedServer script, and a helper that builds SMTP dialogues from pairs.

Each step is a frozen dataclass; a step's ``timeout`` of None means the server's
per-step default.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeAlias


@dataclass(frozen=True)
class Send:
    """Write ``data``; with ``per_byte_delay``, one byte at a time."""

    data: bytes
    per_byte_delay: float = 0.0


@dataclass(frozen=True)
class Expect:
    """The next bytes from the client are exactly ``data``."""

    data: bytes
    timeout: float | None = None


@dataclass(frozen=True)
class ExpectLine:
    """The next CRLF-terminated line starts with ``prefix``."""

    prefix: bytes = b""
    timeout: float | None = None


@dataclass(frozen=True)
class ExpectBytes:
    """Any next ``n`` bytes."""

    n: int
    timeout: float | None = None


@dataclass(frozen=True)
class ExpectData:
    """A DATA body up to and including its ``CRLF.CRLF`` (or a leading ``.CRLF``)."""

    timeout: float | None = None


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Close:
    """Close the connection now; ``reset=True`` sends a TCP RST instead of a FIN."""

    reset: bool = False


@dataclass(frozen=True)
class ExpectClosed:
    """The client closes next: EOF (or a reset) with no further bytes."""

    timeout: float | None = None


@dataclass(frozen=True)
class StartTLS:
    """Run a server-side TLS handshake on the connection; nothing may be buffered."""

    context: ssl.SSLContext
    timeout: float | None = None


@dataclass(frozen=True)
class Hold:
    """Send and read nothing until the test sets ``until``: the client idles meanwhile.

    Followed by a :class:`Send` and a :class:`Signal`, bytes arrive while the client has no
    command pending, at a moment the test chooses.
    """

    until: threading.Event
    timeout: float | None = None


@dataclass(frozen=True)
class Signal:
    """Set ``event``, telling the test the script got here (e.g. that a Send went out)."""

    event: threading.Event


@dataclass(frozen=True)
class PostHandshakeRecord:
    """Over TLS 1.3, send a record that carries no application data: a post-handshake
    CertificateRequest (RFC 8446 §4.6.2).

    The server's context must ask for certificates (``CERT_OPTIONAL``) and the client's
    allow it (``post_handshake_auth``); the client's answer arrives with its next bytes.
    """


Step: TypeAlias = (
    Send
    | Expect
    | ExpectLine
    | ExpectBytes
    | ExpectData
    | Sleep
    | Close
    | ExpectClosed
    | StartTLS
    | Hold
    | Signal
    | PostHandshakeRecord
)


def smtp_script(
    pairs: Iterable[tuple[bytes | Step, bytes]],
    *,
    greeting: bytes | None = b"220 scripted.test ESMTP\r\n",
) -> list[Step]:
    """Steps for (what the client must send, what the server answers) pairs.

    The greeting goes first. An expectation may be a Step (``ExpectData()``,
    ``ExpectLine(b"EHLO")``); empty bytes on either side mean nothing is expected
    or sent.
    """
    steps: list[Step] = [Send(greeting)] if greeting else []
    for expected, reply in pairs:
        if isinstance(expected, bytes):
            if expected:
                steps.append(Expect(expected))
        else:
            steps.append(expected)
        if reply:
            steps.append(Send(reply))
    return steps
