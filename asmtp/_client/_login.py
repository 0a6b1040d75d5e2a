"""AUTH (RFC 4954) and smtplib's ``login()`` on top of it.

Mechanisms are pure objects from :mod:`asmtp.auth` (or smtplib-style callables, adapted in
``_sasl``); this module runs their exchange over a session and decides what each reply
means. It never offers a password to a server that failed to prove itself, tries nothing
after SCRAM fails, and keeps credentials out of the locals a traceback would show.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Final

import anyio

from ..auth import Mechanism, SASLError, SASLServerNotGenuine, Secret
from ..errors import (
    SMTPAuthenticationError,
    SMTPException,
    SMTPNotSupportedError,
    SMTPServerNotGenuine,
)
from ..protocol import Auth, AuthResponse, BadArgument, Reply
from ._commands import ehlo_or_helo_if_needed
from ._sasl import LOGIN_ORDER, as_mechanism, builtin_mechanism
from ._session import Session

__all__ = ["auth", "login"]

# smtplib's limit on challenges before it calls an AUTH exchange an infinite loop.
_MAX_CHALLENGES: Final = 5
# Mechanisms that authenticate the server: after one fails, login() tries nothing else,
# since a server that tampers with them must not be offered the password another way.
_FINAL_MECHANISMS: Final = frozenset({"SCRAM-SHA-256"})


async def auth(
    session: Session,
    mechanism: str,
    authobject: Mechanism | Callable[..., str | None],
    *,
    initial_response_ok: bool = True,
) -> tuple[int, bytes]:
    """Authenticate with one SASL mechanism, as smtplib's ``auth``.

    Returns ``(code, message)`` for 235 or 503; raises :class:`SMTPAuthenticationError`
    otherwise, and :class:`SMTPException` after more than five challenges (the exchange is
    cancelled with ``*`` first). A mechanism that verifies the server (SCRAM) raises
    :class:`SMTPServerNotGenuine` and closes the connection when the server did not prove
    itself, even on 235 or 503.
    """
    name = mechanism.upper()
    mech = as_mechanism(name, authobject)
    # Credentials go out as temporaries, never as locals of this frame: a traceback keeps
    # every frame's locals for error reporters and --showlocals to show.
    await _write_secret(session, _auth_command(name.encode("ascii"), mech, initial_response_ok))
    reply = await session.reply()
    challenges = 0
    while reply.code == 334:
        challenges += 1
        if challenges > _MAX_CHALLENGES:
            await _cancel(session)
            raise SMTPException(
                "Server AUTH mechanism infinite loop. Last response: "
                + repr((reply.code, reply.message))
            )
        await _write_secret(session, await _answer(session, name, mech, reply))
        reply = await session.reply()
    session.watch.authenticated(name, reply.code)
    if reply.code not in (235, 503):
        raise SMTPAuthenticationError(reply.code, reply.message)
    try:
        # smtplib counts 503 ("already authenticated") as success; a mechanism that
        # authenticates the server must still have seen its proof.
        mech.success(None)
    except SASLError as exc:
        await session.abort()
        raise SMTPServerNotGenuine(reply.code, f"AUTH {name}: {exc}".encode()) from exc
    return reply.code, reply.message


async def _answer(session: Session, name: str, mech: Mechanism, reply: Reply) -> AuthResponse:
    """The response to a 334; a bad challenge cancels with ``*``, an impostor aborts."""
    try:
        challenge = base64.b64decode(reply.message, validate=True)
        held = isinstance(reply.command, Auth) and reply.command.initial_response is None
        if not getattr(mech, "blocking", False):
            return _response(mech, challenge, held)
        # Key derivation (SCRAM's PBKDF2) would stall every task on the event loop; a
        # worker thread keeps it responsive, and the step's timeout bounds the wait.
        with session.deadlines.bounded("the SASL mechanism's answer"):
            return await anyio.to_thread.run_sync(
                _response, mech, challenge, held, abandon_on_cancel=True
            )
    except SASLServerNotGenuine as exc:
        await session.abort()
        raise SMTPServerNotGenuine(reply.code, f"AUTH {name}: {exc}".encode()) from exc
    except (binascii.Error, SASLError) as exc:
        await _cancel(session)
        raise SMTPAuthenticationError(reply.code, f"AUTH {name}: {exc}".encode()) from exc


async def _write_secret(session: Session, command: Auth | AuthResponse) -> None:
    """Send a command carrying credentials without leaving them in any traceback.

    The command is passed on as a temporary; if the write fails, the frames below (which
    hold the wire bytes) are cut from the exception and its chain.
    """
    held = [command]
    del command
    try:
        await session.write(session.send(held.pop()))
    except BaseException as exc:
        _forget_frames(exc)
        raise


async def _cancel(session: Session) -> None:
    # RFC 4954 §4: "*" cancels; the server answers 501.
    await session.exchange(AuthResponse(b"*"))


async def login(
    session: Session,
    user: str,
    secret: Secret,
    *,
    initial_response_ok: bool = True,
    mechanisms: Sequence[str] | None = None,
) -> tuple[int, bytes]:
    """Log in with the first advertised mechanism that works, as smtplib's ``login``.

    Tries SCRAM-SHA-256 (which also proves the server), then smtplib's order: CRAM-MD5,
    PLAIN, LOGIN; ``mechanisms`` chooses the names and order instead. A SCRAM failure of
    any kind ends the login: no other mechanism is tried after it, so a server that tampers
    with SCRAM never gets the password in another form. Raises
    :class:`SMTPNotSupportedError` without AUTH, :class:`SMTPException` when no mechanism
    fits, :class:`ValueError` for credentials that cannot be sent (never quoting them), and
    the last :class:`SMTPAuthenticationError` when all fail.
    """
    await ehlo_or_helo_if_needed(session)
    _check_credentials(user, secret)
    if not session.has_extn("auth"):
        raise SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
    advertised = {name.upper() for name in session.esmtp_features["auth"].split()}
    authlist = [name.upper() for name in (mechanisms or LOGIN_ORDER) if name.upper() in advertised]
    if not authlist:
        raise SMTPException("No suitable authentication method found.")
    last_exception: SMTPAuthenticationError | None = None
    for name in authlist:
        try:
            return await auth(
                session,
                name,
                builtin_mechanism(name, user, secret),
                initial_response_ok=initial_response_ok,
            )
        except SMTPAuthenticationError as exc:  # noqa: PERF203 - a few mechanisms at most
            if name in _FINAL_MECHANISMS or isinstance(exc, SMTPServerNotGenuine):
                raise _final(name, exc) from exc
            last_exception = exc
    assert last_exception is not None  # noqa: S101 - every path above sets it or returns
    raise last_exception


def _auth_command(mechanism: bytes, mech: Mechanism, initial_response_ok: bool) -> Auth:
    first = mech.initial_response() if initial_response_ok else None
    return Auth(mechanism, None if first is None else base64.b64encode(first))


def _response(mech: Mechanism, challenge: bytes, held: bool) -> AuthResponse:
    # RFC 4954 §4: an empty first challenge asks for the initial response we held back.
    first = mech.initial_response() if held and not challenge else None
    return AuthResponse(base64.b64encode(first if first is not None else mech.respond(challenge)))


def _forget_frames(exc: BaseException) -> None:
    """Drop the tracebacks of ``exc`` and of every exception chained to it or grouped in it."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        each = todo.pop()
        if each is None or id(each) in seen:
            continue
        seen.add(id(each))
        each.__traceback__ = None
        todo += [each.__cause__, each.__context__]
        grouped = getattr(each, "exceptions", ())  # an exception group (a builtin from 3.11)
        if isinstance(grouped, tuple):
            todo += [inner for inner in grouped if isinstance(inner, BaseException)]


def _breaks_line(text: str) -> bool:
    return "\r" in text or "\n" in text or "\0" in text


def _check_credentials(user: str, secret: Secret) -> None:
    """:class:`BadArgument` for credentials that cannot be sent; never quotes them."""
    if _breaks_line(user):
        raise BadArgument("the user name contains CR, LF or NUL")
    if _breaks_line(secret.reveal()):
        raise BadArgument("the password contains CR, LF or NUL")
    try:
        Secret(user).utf8("user name")
        secret.utf8("password")
    except ValueError as exc:
        raise BadArgument(str(exc)) from None


def _final(name: str, exc: SMTPAuthenticationError) -> SMTPAuthenticationError:
    """``exc`` saying that login() stops here: SCRAM failed, so nothing else is tried."""
    cls = SMTPServerNotGenuine if isinstance(exc, SMTPServerNotGenuine) else SMTPAuthenticationError
    note = f" (login() tries no other mechanism after {name} fails)".encode()
    message = exc.smtp_error if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error).encode()
    return cls(exc.smtp_code, message + note)
