"""What a capture server offers, the failures scripted for it, and what it received.

Shared between the test's thread (which scripts and reads) and the server's thread (which
obeys and records). Offers and scripts are frozen and replaced whole under a lock, so a
session always sees a consistent one. Standard library only.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final, Literal

from ._received import ReceivedMessage

__all__ = [
    "STALL_POINTS",
    "CaptureState",
    "Offer",
    "Rule",
    "Script",
    "StallPoint",
    "checked_reply",
    "first_match",
]

StallPoint = Literal["connect", "ehlo", "mail", "rcpt", "data"]
STALL_POINTS: Final = ("connect", "ehlo", "mail", "rcpt", "data")

_REPLY: Final = re.compile(r"[2-5][0-9][0-9]( [\x20-\x7e\x80-\U0010ffff]*)?")


def checked_reply(reply: str, classes: str = "45") -> str:
    """``reply`` if it is one SMTP reply line whose code starts with one of ``classes``.

    ValueError otherwise: a scripted reply must not break the protocol it tests.
    """
    if not _REPLY.fullmatch(reply) or reply[0] not in classes:
        raise ValueError(
            f"not a {'/'.join(c + 'xx' for c in classes)} reply line: {reply!r} "
            "(want e.g. '550 5.1.1 No such user')"
        )
    return reply


@dataclass(frozen=True)
class Offer:
    """The extensions the server advertises (read by each new connection and each EHLO)."""

    pipelining: bool = True
    chunking: bool = False
    """CHUNKING (RFC 3030): BDAT is accepted; not offered, BDAT is an unknown command."""
    smtputf8: bool = True
    eightbitmime: bool = True
    size: int | None = 32 * 1024 * 1024
    """Largest message accepted, advertised as SIZE; ``None``: no limit, no SIZE."""
    starttls: bool = False
    """STARTTLS with a certificate for the server's name from a throwaway CA (trustme)."""
    require_starttls: bool = False
    auth: tuple[str, str] | None = None
    """``(username, password)``: AUTH PLAIN and LOGIN accept exactly these, and MAIL is
    refused (530) until the client has authenticated."""
    auth_require_tls: bool = False
    """Offer AUTH only after STARTTLS (as real submission servers do)."""

    def __post_init__(self) -> None:
        if self.size is not None and self.size <= 0:
            raise ValueError(f"size must be positive or None, not {self.size}")
        if self.require_starttls and not self.starttls:
            raise ValueError("require_starttls needs starttls=True")
        if self.auth_require_tls and not self.starttls:
            raise ValueError("auth_require_tls needs starttls=True")


@dataclass(frozen=True)
class Rule:
    """Answer ``reply`` for addresses matching ``pattern`` (a case-insensitive glob)."""

    pattern: str
    reply: str

    def matches(self, address: str) -> bool:
        return fnmatch.fnmatchcase(address.lower(), self.pattern.lower())


def first_match(rules: tuple[Rule, ...], address: str) -> str | None:
    """The reply of the first rule matching ``address``, or ``None``."""
    return next((rule.reply for rule in rules if rule.matches(address)), None)


@dataclass(frozen=True)
class Script:
    """Scripted failures; the default script accepts everything at once."""

    senders: tuple[Rule, ...] = ()
    recipients: tuple[Rule, ...] = ()
    after_data: tuple[Rule, ...] = ()
    """LMTP only: recipients refused in the per-recipient replies after the data."""
    data_reply: str | None = None
    """Reply to the end of the data instead of accepting the message."""
    close_at: int | None = None
    """Once this many messages have been accepted in all, MAIL gets ``close_reply``."""
    close_reply: str = "421 4.3.2 Service shutting down, closing transmission channel"
    stalls: tuple[tuple[StallPoint, float], ...] = ()

    def stall(self, point: StallPoint) -> float:
        """The seconds to wait before answering at ``point``, all its stalls added up."""
        return sum(seconds for where, seconds in self.stalls if where == point)


class CaptureState:
    """The live state of one capture server; every method is thread-safe."""

    def __init__(
        self,
        offer: Offer,
        *,
        lmtp: bool,
        on_message: Callable[[ReceivedMessage], None] | None,
    ) -> None:
        self.lmtp = lmtp
        self.on_message = on_message
        self._changed = threading.Condition()
        self._offer = offer
        self._script = Script()
        self._messages: list[ReceivedMessage] = []
        self._accepted_total = 0
        self._connections = 0

    @property
    def offer(self) -> Offer:
        with self._changed:
            return self._offer

    def set_offer(self, offer: Offer) -> None:
        with self._changed:
            self._offer = offer

    @property
    def script(self) -> Script:
        with self._changed:
            return self._script

    def change_script(self, change: Callable[[Script], Script]) -> None:
        with self._changed:
            self._script = change(self._script)

    def close_after(self, count: int, reply: str) -> None:
        with self._changed:
            self._script = replace(
                self._script, close_at=self._accepted_total + count, close_reply=reply
            )

    def closing(self) -> str | None:
        """The reply that ends the connection at MAIL, once ``close_after`` is reached."""
        with self._changed:
            script = self._script
            if script.close_at is not None and self._accepted_total >= script.close_at:
                return script.close_reply
            return None

    def connected(self) -> None:
        with self._changed:
            self._connections += 1

    @property
    def connections(self) -> int:
        with self._changed:
            return self._connections

    def record(self, message: ReceivedMessage) -> None:
        """Run ``on_message`` (whose exception refuses the message), then keep it."""
        if self.on_message is not None:
            self.on_message(message)
        with self._changed:
            self._messages.append(message)
            self._accepted_total += 1
            self._changed.notify_all()

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._changed:
            return list(self._messages)

    def wait_for(self, count: int, timeout: float) -> list[ReceivedMessage]:
        """At least ``count`` messages, waiting up to ``timeout`` s; AssertionError after."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._messages) >= count, timeout):
                raise AssertionError(
                    f"expected at least {count} message(s) within {timeout} s, "
                    f"received {len(self._messages)}"
                )
            return list(self._messages)

    def reset(self) -> None:
        """Forget received messages and scripted failures (the offer stays)."""
        with self._changed:
            self._messages.clear()
            self._script = Script()
            self._connections = 0
