"""Helpers shared by the pool tests: message bodies, handlers whose MAILs misbehave."""

from __future__ import annotations

import re
import threading
import weakref
from collections import Counter
from collections.abc import Iterable
from typing import Any, Final

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

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


class SessionHandler(RecordingHandler):
    """A RecordingHandler that counts MAIL commands per connection and acts on the count.

    ``max_mails``: a connection's MAILs past that many get ``452 4.5.3 Too many messages``,
    as OpenSMTPD answers after its ``max-mails``. After :meth:`drop_used`, a connection that
    already carried a message closes at its next ``drop_at`` command (``"MAIL"``, ``"RCPT"``
    or ``"DATA"``, once the body is in) without answering it: at MAIL, the server's idle close
    crossing the client's first write; later, a close after the server answered part of it.
    """

    def __init__(self, *, max_mails: int | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.max_mails = max_mails
        self.drop_at: str | None = None
        self.dropped = 0
        """Connections closed by :meth:`drop_used` so far."""
        self.worn_out = 0
        """MAILs answered ``452 4.5.3`` so far."""
        self._mails: weakref.WeakKeyDictionary[Session, int] = weakref.WeakKeyDictionary()
        self._doomed: weakref.WeakSet[Session] = weakref.WeakSet()

    def drop_used(self, at: str = "MAIL") -> None:
        """From now on, close each connection that carried a message at its next ``at``."""
        self.drop_at = at

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        count = self._mails.get(session, 0)
        self._mails[session] = count + 1
        if self.drop_at is not None and count:
            self._doomed.add(session)
        if self._arm(session, "MAIL"):
            await self._enter(server, "MAIL", address, *mail_options)  # closes, never returns
        if self.max_mails is not None and count >= self.max_mails:
            self.worn_out += 1
            await self._enter(server, "MAIL", address, *mail_options)
            return "452 4.5.3 Too many messages"
        return await super().handle_MAIL(server, session, envelope, address, mail_options)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self._arm(session, "RCPT"):
            await self._enter(server, "RCPT", address, *rcpt_options)  # closes, never returns
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self._arm(session, "DATA"):
            await self._enter(server, "DATA")  # after the whole body: closes, never returns
        return await super().handle_DATA(server, session, envelope)

    def _arm(self, session: Session, verb: str) -> bool:
        """Whether this command closes the connection; tells _enter() so.

        disconnect_after is set here and read by _enter() before its first await, so
        sessions cannot interleave between the two.
        """
        doomed = verb == self.drop_at and session in self._doomed
        self.disconnect_after = verb if doomed else None
        self.dropped += doomed
        return doomed


USER, PASSWORD = "pool-user", "s3cret pass"
"""The one login :class:`Authenticator` accepts."""


class Authenticator:
    """aiosmtpd authenticator accepting one user; records every attempt (server thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.attempts: list[tuple[str, str, bool]] = []

    def __call__(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == USER.encode()
            and auth_data.password == PASSWORD.encode()
        )
        login = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else "?"
        with self._lock:
            self.attempts.append((mechanism, login, ok))
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd replies 535

    @property
    def successes(self) -> int:
        with self._lock:
            return sum(ok for _, _, ok in self.attempts)
