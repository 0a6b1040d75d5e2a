"""Helpers shared by the pool tests: message bodies, a handler whose first MAILs misbehave."""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterable
from typing import Any, Final

from aiosmtpd.smtp import SMTP, Envelope, Session

from support.aiosmtpd_server import Delivery, RecordingHandler

DISCONNECT: Final = "disconnect"
"""A queued MAIL 'reply' meaning: close the connection without answering."""

STEP_TIMEOUT: Final = 5.0
"""The pool's per-operation timeout in these tests: a hang fails fast."""

_MESSAGE_ID = re.compile(rb"^Message-ID: <([^>]+)>", re.MULTILINE | re.IGNORECASE)


def body(n: int) -> str:
    """A small message whose Message-ID names ``n``."""
    return f"Message-ID: <{n}@pool.test>\r\nSubject: message {n}\r\n\r\nbody of message {n}\r\n"


def message_ids(deliveries: Iterable[Delivery]) -> Counter[str]:
    """How many times each Message-ID was delivered."""
    found: Counter[str] = Counter()
    for delivery in deliveries:
        match = _MESSAGE_ID.search(delivery.content)
        assert match is not None, delivery.content
        found[match.group(1).decode()] += 1
    return found


def verbs(commands: Iterable[str]) -> list[str]:
    """The verbs of recorded commands: ``["EHLO", "MAIL", "RCPT", "DATA", ...]``."""
    return [command.split()[0] for command in commands]


def without_quit(commands: Iterable[str]) -> list[str]:
    """:func:`verbs` less QUIT, for tests about something other than closing politely."""
    return [verb for verb in verbs(commands) if verb != "QUIT"]


def attempts_of(exc: BaseException) -> object:
    """The ``attempts`` the pool put on a final exception (``None`` when missing)."""
    return vars(exc).get("attempts")


class FirstMailHandler(RecordingHandler):
    """A RecordingHandler whose first MAIL commands get queued replies instead of 250.

    Each MAIL takes the next queued reply (a reply line such as ``"451 4.3.0 later"``, or
    :data:`DISCONNECT` to close the connection unanswered); once the queue is empty MAIL
    is handled as usual.
    """

    def __init__(self, *first_replies: str, **options: Any) -> None:
        super().__init__(**options)
        self._queued = list(first_replies)
        self._queue_lock = threading.Lock()

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        with self._queue_lock:
            reply = self._queued.pop(0) if self._queued else None
        # disconnect_after is set here and read by _enter() before its first await, so
        # sessions cannot interleave between the two.
        self.disconnect_after = "MAIL" if reply == DISCONNECT else None
        if reply is None:
            return await super().handle_MAIL(server, session, envelope, address, mail_options)
        await self._enter(server, "MAIL", address, *mail_options)  # never returns on DISCONNECT
        return reply
