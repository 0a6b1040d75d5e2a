"""AUTH (RFC 4954) and smtplib's ``login()`` on top of it.

Mechanisms are pure objects from :mod:`asmtp.auth` (or smtplib-style callables, adapted in
``_sasl``); this module runs their exchange over a session and decides what each reply
means, never offering a password to a server that failed to prove itself.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Final

from ..auth import Mechanism, SASLError, SASLServerNotGenuine, Secret
from ..errors import (
    SMTPAuthenticationError,
    SMTPException,
    SMTPNotSupportedError,
    SMTPServerNotGenuine,
)
from ..protocol import Auth, AuthResponse, BadArgument
from ._commands import ehlo_or_helo_if_needed
from ._sasl import LOGIN_ORDER, as_mechanism, builtin_mechanism
from ._session import Session

__all__ = ["auth", "login"]

# smtplib's limit on challenges before it calls an AUTH exchange an infinite loop.
_MAX_CHALLENGES: Final = 5


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
    cancelled with ``*`` first).
    """
    name = mechanism.upper()
    mech = as_mechanism(name, authobject)
    first = mech.initial_response() if initial_response_ok else None
    encoded = None if first is None else base64.b64encode(first)
    reply = await session.exchange(Auth(name.encode("ascii"), encoded))
    challenges = 0
    while reply.code == 334:
        challenges += 1
        if challenges > _MAX_CHALLENGES:
            await _cancel(session)
            raise SMTPException(
                "Server AUTH mechanism infinite loop. Last response: "
                + repr((reply.code, reply.message))
            )
        try:
            challenge = base64.b64decode(reply.message, validate=True)
            if first is None and challenges == 1 and not challenge:
                # RFC 4954 §4: an empty challenge asks for the initial response we held.
                first = mech.initial_response()
                response = first if first is not None else mech.respond(challenge)
            else:
                response = mech.respond(challenge)
        except SASLServerNotGenuine as exc:
            await session.abort()
            raise SMTPServerNotGenuine(reply.code, f"AUTH {name}: {exc}".encode()) from exc
        except (binascii.Error, SASLError) as exc:
            await _cancel(session)
            raise SMTPAuthenticationError(reply.code, f"AUTH {name}: {exc}".encode()) from exc
        reply = await session.exchange(AuthResponse(base64.b64encode(response)))
    if reply.code == 235:
        try:
            mech.success(None)
        except SASLError as exc:
            await session.abort()
            raise SMTPServerNotGenuine(reply.code, f"AUTH {name}: {exc}".encode()) from exc
    if reply.code in (235, 503):
        return reply.code, reply.message
    raise SMTPAuthenticationError(reply.code, reply.message)


async def _cancel(session: Session) -> None:
    # RFC 4954 §4: "*" cancels; the server answers 501.
    await session.exchange(AuthResponse(b"*"))


async def login(
    session: Session,
    user: str,
    password: str | Secret,
    *,
    initial_response_ok: bool = True,
    mechanisms: Sequence[str] | None = None,
) -> tuple[int, bytes]:
    """Log in with the first advertised mechanism that works, as smtplib's ``login``.

    Tries SCRAM-SHA-256 (which also proves the server), then smtplib's order: CRAM-MD5,
    PLAIN, LOGIN; ``mechanisms`` chooses the names and order instead. Raises
    :class:`SMTPNotSupportedError` without AUTH, :class:`SMTPException` when no mechanism
    fits, and the last :class:`SMTPAuthenticationError` when all fail.
    """
    secret = password if isinstance(password, Secret) else Secret(password)
    del password
    await ehlo_or_helo_if_needed(session)
    for value, what in ((user, "user name"), (secret.reveal(), "password")):
        if "\r" in value or "\n" in value or "\0" in value:
            raise BadArgument(f"the {what} contains CR, LF or NUL")  # never quoted: secret
    if not session.has_extn("auth"):
        raise SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
    advertised = {name.upper() for name in session.esmtp_features["auth"].split()}
    authlist = [name.upper() for name in (mechanisms or LOGIN_ORDER) if name.upper() in advertised]
    if not authlist:
        raise SMTPException("No suitable authentication method found.")
    last_exception: SMTPAuthenticationError | None = None
    for name in authlist:
        try:
            code, resp = await auth(
                session,
                name,
                builtin_mechanism(name, user, secret),
                initial_response_ok=initial_response_ok,
            )
        except SMTPServerNotGenuine:
            raise  # never offer the password to an impostor by another mechanism
        except SMTPAuthenticationError as exc:
            last_exception = exc
            continue
        if code in (235, 503):
            return code, resp
    assert last_exception is not None  # noqa: S101 - every path above sets it or returns
    raise last_exception
