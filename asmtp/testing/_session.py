"""aiosmtpd sessions of the capture server: recording, scripted failures, BDAT (RFC 3030).

Imported when a server starts (it needs aiosmtpd), never by ``import asmtp.testing``.
Everything goes through aiosmtpd's handler hooks, except BDAT, which aiosmtpd lacks: it is
an ``smtp_BDAT`` command method reading the session's stream, as aiosmtpd's own AUTH
methods do. LMTP answers the end of the data once per recipient (RFC 2033 §4.2), which
aiosmtpd's LMTP class does not: the DATA hook returns one line per recipient.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import weakref
from dataclasses import replace
from typing import Any, Final

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from ._received import ReceivedMessage
from ._state import CaptureState, StallPoint, first_match

__all__ = ["CaptureHandler", "Silent", "new_session"]

_DISCARD_BLOCK: Final = 64 * 1024
_DELIVERED: Final = "250 2.0.0 OK: message accepted"


class CaptureHandler:
    """aiosmtpd handler: obeys the state's offer and script, records accepted messages."""

    def __init__(self, state: CaptureState) -> None:
        self.state = state
        self.logins: weakref.WeakKeyDictionary[Session, str] = weakref.WeakKeyDictionary()
        """Who each session authenticated as."""

    async def stall(self, point: StallPoint) -> None:
        seconds = self.state.script.stall(point)
        if seconds > 0:
            await asyncio.sleep(seconds)

    async def handle_HELO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str
    ) -> str:
        await self.stall("ehlo")
        session.host_name = hostname  # aiosmtpd sets it only when no hook exists
        return f"250 {server.hostname}"

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        await self.stall("ehlo")
        session.host_name = hostname  # as for HELO
        offer = self.state.offer
        lines = [
            line
            for line in responses[:-1]
            if not (line == "250-8BITMIME" and not offer.eightbitmime)
            and not (line.startswith("250-AUTH") and offer.auth is None)
        ]
        if offer.pipelining:
            lines.append("250-PIPELINING")
        if offer.chunking:
            lines.append("250-CHUNKING")
        return [*lines, responses[-1]]

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        await self.stall("mail")
        closing = self.state.closing()
        if closing is not None:
            _close_after_reply(server)
            return closing
        if self.state.offer.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        refusal = first_match(self.state.script.senders, address)
        if refusal is not None:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        await self.stall("rcpt")
        refusal = first_match(self.state.script.recipients, address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return await self.end_of_data(server, session, envelope, envelope.original_content or b"")

    async def end_of_data(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        content: bytes,
        *,
        chunked: bool = False,
    ) -> str:
        """The reply to the end of the data (one line per recipient for LMTP)."""
        await self.stall("data")
        script = self.state.script
        recipients = list(envelope.rcpt_tos)
        if script.data_reply is not None:
            replies = [script.data_reply] * (len(recipients) if self.state.lmtp else 1)
        elif self.state.lmtp:
            # RFC 2033 §4.2: one reply per accepted recipient, in RCPT order.
            replies = [first_match(script.after_data, each) or _DELIVERED for each in recipients]
        else:
            replies = [_DELIVERED]
        if self.state.lmtp:
            accepted = [
                each for each, reply in zip(recipients, replies, strict=True) if reply[0] == "2"
            ]
        else:
            accepted = recipients if replies[0][0] == "2" else []
        if accepted:
            try:
                received = _received(server, session, envelope, accepted, content, chunked)
                self.state.record(replace(received, username=self.logins.get(session)))
            except Exception as exc:  # on_message failed: the message is not accepted
                failure = f"451 4.3.0 Message not stored ({type(exc).__name__})"
                replies = [failure if reply[0] == "2" else reply for reply in replies]
        return "\r\n".join(replies)  # aiosmtpd sends each line as a reply of its own

    async def handle_AUTH(
        self, server: SMTP, session: Session, envelope: Envelope, args: list[str]
    ) -> str | None:
        """AUTH PLAIN (RFC 4616) and LOGIN for the offer's one user.

        Done here rather than by aiosmtpd's built-in mechanisms, whose success path trips
        its own DeprecationWarning (an error under ``-W error``) and whose failure path
        sends no reply. ``None``: a reply was already sent.
        """
        expected = self.state.offer.auth
        if expected is None:
            return "502 5.5.1 Error: AUTH not offered"
        mechanism = args[0].upper()
        if mechanism == "PLAIN":
            blob = await _auth_answer(server, args[1] if len(args) > 1 else None, "")
            if blob is None:
                return None
            fields = blob.split(b"\0")
            if len(fields) != 3:
                return "501 5.5.2 Error: PLAIN wants authzid NUL authcid NUL passwd"
            login, password = fields[1], fields[2]
        else:  # LOGIN: aiosmtpd has already refused other mechanisms (504)
            answer = await _auth_answer(server, args[1] if len(args) > 1 else None, "Username:")
            if answer is None:
                return None
            login = answer
            answer = await _auth_answer(server, None, "Password:")
            if answer is None:
                return None
            password = answer
        user_ok = hmac.compare_digest(login, expected[0].encode())
        password_ok = hmac.compare_digest(password, expected[1].encode())
        if not (user_ok and password_ok):
            return "535 5.7.8 Error: authentication credentials invalid"
        session.authenticated = True
        self.logins[session] = login.decode("utf-8", "replace")
        return "235 2.7.0 Authentication successful"


async def _auth_answer(server: SMTP, initial: str | None, challenge: str) -> bytes | None:
    """The client's decoded answer (its initial response, else the reply to ``challenge``);
    ``None`` once an error reply has been sent."""
    if initial is None:
        answer = await server.challenge_auth(challenge)
        return answer if isinstance(answer, bytes) else None  # MISSING: 501 already sent
    if initial == "=":  # RFC 4954 §4: an empty initial response
        return b""
    try:
        return base64.b64decode(initial, validate=True)
    except binascii.Error:
        await server.push("501 5.5.2 Error: cannot decode base64")
        return None


def _close_after_reply(server: SMTP) -> None:
    transport = server.transport
    if transport is not None:
        # The reply is written before the loop runs this callback; close() flushes it.
        asyncio.get_running_loop().call_soon(transport.close)


def _received(
    server: SMTP,
    session: Session,
    envelope: Envelope,
    recipients: list[str],
    content: bytes,
    chunked: bool,
) -> ReceivedMessage:
    peer: Any = session.peer
    transport = server.transport
    return ReceivedMessage(
        mail_from=envelope.mail_from or "",
        rcpt_tos=tuple(recipients),
        raw=content,
        mail_options=tuple(envelope.mail_options),
        helo=session.host_name or "",
        peer=f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "",
        tls=transport is not None and transport.get_extra_info("ssl_object") is not None,
        chunked=chunked,
        lmtp=isinstance(server, LMTP),
    )


class CaptureSMTP(SMTP):
    """aiosmtpd's SMTP plus BDAT (RFC 3030), offered when the state says CHUNKING."""

    def __init__(self, handler: CaptureHandler, **options: Any) -> None:
        super().__init__(handler, **options)
        self.capture = handler
        self._chunks: weakref.WeakKeyDictionary[Envelope, bytearray] = weakref.WeakKeyDictionary()

    async def smtp_DATA(self, arg: str) -> None:
        if self.envelope is not None and self.envelope in self._chunks:
            # RFC 3030 §2: BDAT and DATA are not mixed in one transaction.
            await self.push("503 5.5.1 Error: DATA after BDAT")
            return
        await super().smtp_DATA(arg)

    async def smtp_BDAT(self, arg: str | None) -> None:
        # RFC 3030 §2: bdat-cmd   ::= "BDAT" SP chunk-size [ SP end-marker ] CR LF
        #              chunk-size ::= 1*DIGIT
        #              end-marker ::= "LAST"
        if not self.capture.state.offer.chunking:
            await self.push('500 Error: command "BDAT" not recognized')
            return
        words = (arg or "").split()
        if not (
            1 <= len(words) <= 2
            and words[0].isdigit()
            and (len(words) == 1 or words[1].upper() == "LAST")
        ):
            # Without a chunk size the data cannot be told from the next command.
            await self.push("501 5.5.4 Syntax: BDAT chunk-size [LAST]")
            if self.transport is not None:
                self.transport.close()
            return
        size, last = int(words[0]), len(words) == 2
        problem = self._bdat_refusal()
        envelope = self.envelope
        if envelope is None or self.session is None:  # pragma: no cover - set on connection
            return
        received = self._chunks.setdefault(envelope, bytearray())
        limit = self.data_size_limit
        fits = limit is None or len(received) + size <= limit
        # RFC 3030 §2: a refused chunk is still read (and thrown away) in full.
        chunk = await self._read_chunk(size, keep=problem is None and fits)
        if chunk is None:
            return
        if problem is not None:
            await self.push(problem)
            return
        if not fits:
            self.envelope = Envelope()  # the transaction is over (RFC 3030 §4.2)
            await self.push("552 5.3.4 Error: Too much mail data")
            return
        received += chunk
        if not last:
            await self.push(f"250 2.0.0 {size} octets received")
            return
        content = bytes(received)
        envelope.original_content = envelope.content = content
        status = await self.capture.end_of_data(self, self.session, envelope, content, chunked=True)
        self.envelope = Envelope()
        await self.push(status)

    def _bdat_refusal(self) -> str | None:
        session, envelope = self.session, self.envelope
        if session is None or not session.host_name:
            return "503 5.5.1 Error: send EHLO first"
        if self.capture.state.offer.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        if envelope is None or not envelope.mail_from:
            return "503 5.5.1 Error: need MAIL command"
        if not envelope.rcpt_tos:
            return "503 5.5.1 Error: need RCPT command"
        return None

    async def _read_chunk(self, size: int, *, keep: bool) -> bytes | None:
        """The chunk's bytes (or ``b""`` when not kept); ``None`` if the client went away."""
        try:
            if keep:
                return await self._reader.readexactly(size)
            left = size
            while left:
                left -= len(await self._reader.readexactly(min(left, _DISCARD_BLOCK)))
            return b""
        except asyncio.IncompleteReadError:
            if self.transport is not None:
                self.transport.close()
            return None


class CaptureLMTP(LMTP, CaptureSMTP):
    """aiosmtpd's LMTP (LHLO) with the capture server's hooks and BDAT."""


class Silent(asyncio.Protocol):
    """Accepts a connection and never greets; closes it after ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.transport: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self._timer = asyncio.get_running_loop().call_later(self.seconds, transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.transport = None


def new_session(
    state: CaptureState,
    handler: CaptureHandler,
    *,
    hostname: str,
    tls_context: Any,
    timeout: float,
    loop: asyncio.AbstractEventLoop,
) -> CaptureSMTP | Silent:
    """The protocol for one new connection, configured by the offer as it is now."""
    state.connected()
    stall = state.script.stall("connect")
    if stall > 0:
        return Silent(stall)
    offer = state.offer
    cls = CaptureLMTP if state.lmtp else CaptureSMTP
    return cls(
        handler,
        hostname=hostname,
        data_size_limit=offer.size,
        enable_SMTPUTF8=offer.smtputf8,
        decode_data=False,
        tls_context=tls_context if offer.starttls else None,
        require_starttls=offer.require_starttls,
        auth_require_tls=offer.auth_require_tls,
        timeout=timeout,
        loop=loop,
    )
