"""Session commands with smtplib's semantics: HELO/EHLO, NOOP, RSET, VRFY, EXPN, HELP, QUIT.

Each is a function of a :class:`~asmtp._client._session.Session` returning smtplib's
``(code, message)``; :class:`asmtp.SMTP` exposes them as methods and the transaction layer
uses EHLO and RSET from here.
"""

from __future__ import annotations

from ..errors import (
    SMTPHeloError,
    SMTPProtocolError,
    SMTPResponseException,
    SMTPServerDisconnected,
)
from ..protocol import (
    BadArgument,
    Ehlo,
    Expn,
    Helo,
    Help,
    Lhlo,
    Noop,
    Quit,
    Raw,
    RemoteProtocolError,
    Rset,
    State,
    Vrfy,
)
from ..protocol._events import is_auth_line
from . import _addresses
from ._session import Session

__all__ = [
    "docmd",
    "ehlo",
    "ehlo_or_helo_if_needed",
    "expn",
    "helo",
    "help_text",
    "hostname_of",
    "noop",
    "quit",
    "quit_politely",
    "rset",
    "rset_quietly",
    "vrfy",
]

Answer = tuple[int, bytes]


def hostname_of(session: Session, name: str = "") -> bytes:
    """The name EHLO/HELO gives: ``name``, else the local host name."""
    name = name or session.local_hostname or "localhost"
    return name.encode("ascii" if name.isascii() else "idna")


async def helo(session: Session, name: str = "") -> Answer:
    """HELO; sets ``helo_resp``."""
    reply = await session.exchange(Helo(hostname_of(session, name)))
    session.helo_resp = message = reply.message
    session.watch.hello("HELO", reply.code)
    return reply.code, message


async def ehlo(session: Session, name: str = "") -> Answer:
    """EHLO (LHLO for LMTP); on 250 sets ``does_esmtp`` and ``esmtp_features``.

    Right after :func:`~asmtp._client._tls.starttls`, which says EHLO itself, an ``ehlo()``
    with the same name answers with that reply instead of a second EHLO: code ported from
    smtplib calls ``ehlo()`` there, and some servers (OpenSMTPD) refuse a second one.
    """
    hostname = hostname_of(session, name)
    after_tls, session.ehlo_after_tls = session.ehlo_after_tls, None
    if after_tls is not None and after_tls[0] == hostname:
        return after_tls[1]
    session.esmtp_features = {}
    reply = await session.exchange(Lhlo(hostname) if session.lmtp else Ehlo(hostname))
    session.ehlo_resp = message = reply.message  # joined anew on each read: once here
    session.watch.hello("LHLO" if session.lmtp else "EHLO", reply.code)
    if reply.code == 250:
        session.does_esmtp = True
        extensions = session.extensions
        session.esmtp_features = dict(extensions) if extensions is not None else {}
    return reply.code, message


async def ehlo_or_helo_if_needed(session: Session) -> None:
    """EHLO, falling back to HELO, unless one was done; :class:`SMTPHeloError` if both fail."""
    if session.helo_resp is None and session.ehlo_resp is None:
        if not 200 <= (await ehlo(session))[0] <= 299:
            code, resp = await helo(session)
            if not 200 <= code <= 299:
                raise SMTPHeloError(code, resp)


async def help_text(session: Session, args: str = "") -> bytes:
    """HELP; the message only, as smtplib."""
    return (await session.exchange(Help(args.encode(session.command_encoding)))).message


async def rset(session: Session) -> Answer:
    """RSET: abort the current transaction."""
    session.command_encoding = "ascii"
    reply = await session.exchange(Rset())
    return reply.code, reply.message


async def rset_quietly(session: Session) -> None:
    """RSET after a failed transaction, as smtplib: a lost connection is not an error there.

    The refusal that called for the RSET is what the caller must see; a connection lost,
    timed out or answering out of turn meanwhile is closed for good.
    """
    try:
        await rset(session)
    except (SMTPServerDisconnected, OSError, RemoteProtocolError, SMTPProtocolError):
        await session.abort()


async def noop(session: Session) -> Answer:
    """NOOP."""
    reply = await session.exchange(Noop())
    return reply.code, reply.message


def _argument(session: Session, address: str) -> bytes:
    return _addresses.bare_address(address).encode(session.command_encoding)


async def vrfy(session: Session, address: str) -> Answer:
    """VRFY address."""
    reply = await session.exchange(Vrfy(_argument(session, address)))
    return reply.code, reply.message


async def expn(session: Session, address: str) -> Answer:
    """EXPN address."""
    reply = await session.exchange(Expn(_argument(session, address)))
    return reply.code, reply.message


async def quit(session: Session) -> Answer:
    """QUIT, then close; forgets the session (a new EHLO is needed after reconnecting)."""
    reply = await session.exchange(Quit())
    session.reset_session()
    await session.close()
    return reply.code, reply.message


async def quit_politely(session: Session) -> None:
    """QUIT if the conversation is in step, then close; a refusal of QUIT is raised.

    Used when a session ends normally or after a refusal: a server that closed first is not
    an error. After a failure that left the conversation out of step, it only closes.
    """
    try:
        if session.is_connected and session.between_commands():
            reply = await session.exchange(Raw(b"QUIT"))
            if reply.code != 221:
                raise SMTPResponseException(reply.code, reply.message)
    except (SMTPServerDisconnected, ConnectionError):
        pass
    finally:
        await session.close()


async def docmd(session: Session, cmd: str, args: str = "") -> Answer:
    """Send one command line and return ``(code, message)``; order is not checked.

    A line that cannot be encoded raises :class:`UnicodeEncodeError` as in smtplib, but
    one that carries credentials (AUTH, or an answer to a challenge) a
    :class:`~asmtp.protocol.BadArgument` that does not quote it.
    """
    text = f"{cmd} {args}".strip()
    try:
        line: bytes | None = text.encode(session.command_encoding)
    except UnicodeEncodeError:
        if session.state is not State.AUTH_CHALLENGE and not is_auth_line(
            text.encode("ascii", "replace")
        ):
            raise
        line = None
    if line is None:  # raised outside the handler, so that no context quotes the line
        raise BadArgument(f"the AUTH line is not valid {session.command_encoding} text (not shown)")
    reply = await session.exchange(Raw(line))
    return reply.code, reply.message
