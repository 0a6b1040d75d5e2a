"""Session commands, TLS and authentication: the smtplib-shaped methods on a session.

``SessionCommands`` adds HELO/EHLO, the small commands (NOOP, RSET, VRFY, EXPN, HELP, QUIT),
STARTTLS and AUTH to :class:`SMTPSession`, which owns the connection, the I/O and the one
place where failures are translated. The mail transaction lives in ``_client`` on top.
"""

from __future__ import annotations

import base64
import binascii
import ssl
from collections.abc import Callable, Sequence
from typing import Final

import anyio

from . import _addresses
from ._sasl import LOGIN_ORDER, as_mechanism, builtin_mechanism
from ._session import SMTPSession, exclusive
from ._transport import default_ssl_context
from .auth import Mechanism, SASLError, SASLServerNotGenuine, Secret
from .errors import (
    SMTPAuthenticationError,
    SMTPException,
    SMTPHeloError,
    SMTPNotSupportedError,
    SMTPProtocolError,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPServerNotGenuine,
)
from .protocol import (
    Auth,
    AuthResponse,
    BadArgument,
    Ehlo,
    Expn,
    Helo,
    Help,
    Lhlo,
    Noop,
    Quit,
    Reply,
    RemoteProtocolError,
    Rset,
    StartTLS,
    State,
    Vrfy,
)

__all__ = ["SessionCommands"]

# smtplib's limit on challenges before it calls an AUTH exchange an infinite loop.
_MAX_CHALLENGES: Final = 5
# Mechanisms that authenticate the server: after one fails, login() tries nothing else,
# since a server that tampers with them must not be offered the password another way.
_FINAL_MECHANISMS: Final = frozenset({"SCRAM-SHA-256"})
# Open, with no body half sent: a command may follow once nothing is pending.
_OPEN_IN_STEP: Final = frozenset({State.GREETED, State.READY, State.MAIL, State.RCPT})


class SessionCommands(SMTPSession):
    """smtplib's session-level methods, as coroutines (see :class:`asmtp.SMTP`)."""

    # -- session commands --------------------------------------------------------------------

    def _hostname(self, name: str) -> bytes:
        return (name or self.local_hostname or "localhost").encode(
            "idna" if not name.isascii() else "ascii"
        )

    @exclusive
    async def helo(self, name: str = "") -> tuple[int, bytes]:
        """Say HELO; sets ``helo_resp``."""
        reply = await self._exchange(Helo(self._hostname(name)))
        self.helo_resp = reply.message
        return reply.code, reply.message

    @exclusive
    async def ehlo(self, name: str = "") -> tuple[int, bytes]:
        """Say EHLO (LHLO for LMTP); on ``250`` sets ``does_esmtp`` and ``esmtp_features``."""
        self.esmtp_features = {}
        hostname = self._hostname(name)
        reply = await self._exchange(Lhlo(hostname) if self._lmtp else Ehlo(hostname))
        self.ehlo_resp = reply.message
        if reply.code != 250:
            return reply.code, reply.message
        self.does_esmtp = True
        extensions = self._conn.extensions if self._conn is not None else None
        self.esmtp_features = dict(extensions) if extensions is not None else {}
        return reply.code, reply.message

    @exclusive
    async def ehlo_or_helo_if_needed(self) -> None:
        """EHLO, falling back to HELO, unless one was done; raises :class:`SMTPHeloError`."""
        if self.helo_resp is None and self.ehlo_resp is None:
            if not 200 <= (await self.ehlo())[0] <= 299:
                code, resp = await self.helo()
                if not 200 <= code <= 299:
                    raise SMTPHeloError(code, resp)

    def has_extn(self, opt: str) -> bool:
        """Whether the server advertised the extension ``opt`` (case-insensitive)."""
        return opt.lower() in self.esmtp_features

    @exclusive
    async def help(self, args: str = "") -> bytes:
        """HELP; returns the message only, as smtplib."""
        return (await self._exchange(Help(args.encode(self.command_encoding)))).message

    @exclusive
    async def rset(self) -> tuple[int, bytes]:
        """RSET: abort the current transaction."""
        self.command_encoding = "ascii"
        reply = await self._exchange(Rset())
        return reply.code, reply.message

    async def _rset(self) -> None:
        """RSET after a failed transaction, as smtplib: best effort, so the failure is what
        the caller sees. A server that hung up, or sent bytes nobody asked for, is closed."""
        try:
            await self.rset()
        except SMTPServerDisconnected:
            await self.close()
        except (RemoteProtocolError, SMTPProtocolError):
            await self._abort()

    @exclusive
    async def noop(self) -> tuple[int, bytes]:
        """NOOP."""
        reply = await self._exchange(Noop())
        return reply.code, reply.message

    def _argument(self, address: str) -> bytes:
        return _addresses.bare_address(address).encode(self.command_encoding)

    @exclusive
    async def verify(self, address: str) -> tuple[int, bytes]:
        """VRFY address."""
        reply = await self._exchange(Vrfy(self._argument(address)))
        return reply.code, reply.message

    vrfy = verify

    @exclusive
    async def expn(self, address: str) -> tuple[int, bytes]:
        """EXPN address."""
        reply = await self._exchange(Expn(self._argument(address)))
        return reply.code, reply.message

    @exclusive
    async def quit(self) -> tuple[int, bytes]:
        """QUIT, then close; forgets the session (a new EHLO is needed after reconnecting)."""
        reply = await self._exchange(Quit())
        self._reset_session()
        await self.close()
        return reply.code, reply.message

    # -- TLS and authentication -------------------------------------------------------------

    def _tls_hostname(self) -> str | None:
        return self._host or None

    @exclusive
    async def starttls(
        self, *, context: ssl.SSLContext | None = None, server_hostname: str | None = None
    ) -> tuple[int, bytes]:
        """Upgrade to TLS (RFC 3207), verifying the certificate and host name by default.

        ``context`` defaults to the standard library's default context with TLS 1.2 at
        least (smtplib's default does not verify). Afterwards everything learned before TLS
        is forgotten and EHLO is sent again. Bytes the server sends between its ``220`` and
        the handshake abort with :class:`SMTPProtocolError` (response injection). Raises
        :class:`SMTPNotSupportedError` if STARTTLS is not advertised, and
        :class:`ssl.SSLError` when the handshake or the verification fails.
        """
        await self.ehlo_or_helo_if_needed()
        if not self.has_extn("starttls"):
            raise SMTPNotSupportedError("STARTTLS extension not supported by server.")
        reply = await self._exchange(StartTLS())
        if reply.code != 220:
            raise SMTPResponseException(reply.code, reply.message)
        conn, transport = self._require()
        # RFC 3207 §4.2: nothing received before the handshake may be read after it. Plain
        # text the transport holds goes to the core now, which refuses it as an injection.
        self._take_unsolicited(conn, transport)
        with self._deadline():
            await transport.start_tls(
                context or default_ssl_context(), server_hostname or self._tls_hostname()
            )
        conn.tls_established()
        self._reset_session()
        await self.ehlo()
        return reply.code, reply.message

    def in_step(self) -> bool:
        """Whether a command may be sent now: connected, no reply owed, nothing unread.

        Reads, without waiting, whatever the server sent since its last reply. A stray
        reply, a ``421`` or a close marks the connection unusable and returns ``False``;
        close it then. A pool asks this before reusing an idle connection.
        """
        conn, transport = self._conn, self._transport
        if conn is None or transport is None or conn.pending_count:
            return False
        if conn.state not in _OPEN_IN_STEP:
            return False
        try:
            self._take_unsolicited(conn, transport)
        except (RemoteProtocolError, SMTPServerDisconnected, OSError):
            conn.fail()
            return False
        if conn.buffered:  # the start of a reply nobody asked for
            conn.fail()
            return False
        return True

    @property
    def is_encrypted(self) -> bool:
        """True when the connection runs over TLS (SMTP_SSL, or after STARTTLS)."""
        return self._transport is not None and self._transport.is_tls

    @exclusive
    async def auth(
        self,
        mechanism: str,
        authobject: Mechanism | Callable[..., str | None],
        *,
        initial_response_ok: bool = True,
    ) -> tuple[int, bytes]:
        """Authenticate with one SASL mechanism (RFC 4954), as smtplib's ``auth``.

        ``authobject`` is an :class:`asmtp.auth.Mechanism`, or smtplib's callable taking
        the decoded challenge (``None`` for the initial response) and returning a ``str``.
        Returns ``(code, message)`` for ``235`` or ``503``; raises
        :class:`SMTPAuthenticationError` otherwise, and :class:`SMTPException` after more
        than five challenges (the exchange is cancelled with ``*`` first). A mechanism
        that verifies the server (SCRAM) raises :class:`SMTPServerNotGenuine` and closes
        the connection when the server did not prove itself, even on ``235`` or ``503``.
        """
        name = mechanism.upper()
        mech = as_mechanism(name, authobject)
        # Credentials go out as temporaries, never as locals of this frame: a traceback
        # keeps every frame's locals for error reporters and --showlocals to show.
        await self._write_secret(_auth_command(name.encode("ascii"), mech, initial_response_ok))
        reply = await self.getreply()
        challenges = 0
        while reply.code == 334:
            challenges += 1
            if challenges > _MAX_CHALLENGES:
                await self._cancel_auth()
                raise SMTPException(
                    "Server AUTH mechanism infinite loop. Last response: "
                    + repr((reply.code, reply.message))
                )
            await self._write_secret(await self._answer(name, mech, reply))
            reply = await self.getreply()
        if reply.code not in (235, 503):
            raise SMTPAuthenticationError(reply.code, reply.message)
        try:
            # smtplib counts 503 ("already authenticated") as success; a mechanism that
            # authenticates the server must still have seen its proof.
            mech.success(None)
        except SASLError as exc:
            await self._abort()
            raise SMTPServerNotGenuine(reply.code, f"AUTH {name}: {exc}".encode()) from exc
        return reply.code, reply.message

    async def _answer(self, name: str, mech: Mechanism, reply: Reply) -> AuthResponse:
        """The response to a ``334``; a bad challenge cancels with ``*``, an impostor aborts."""
        try:
            challenge = base64.b64decode(reply.message, validate=True)
            held = isinstance(reply.command, Auth) and reply.command.initial_response is None
            if not getattr(mech, "blocking", False):
                return _response(mech, challenge, held)
            # Key derivation (SCRAM's PBKDF2) would stall every task on the event loop;
            # a worker thread keeps it responsive, and `timeout` bounds the wait.
            with self._deadline():
                return await anyio.to_thread.run_sync(
                    _response, mech, challenge, held, abandon_on_cancel=True
                )
        except SASLServerNotGenuine as exc:
            await self._abort()
            raise SMTPServerNotGenuine(reply.code, f"AUTH {name}: {exc}".encode()) from exc
        except (binascii.Error, SASLError) as exc:
            await self._cancel_auth()
            raise SMTPAuthenticationError(reply.code, f"AUTH {name}: {exc}".encode()) from exc

    async def _write_secret(self, command: Auth | AuthResponse) -> None:
        """Send a command carrying credentials without leaving them in any traceback.

        The command is passed on as a temporary; if the write fails, the frames below
        (which hold the wire bytes) are cut from the exception and its chain.
        """
        held = [command]
        del command
        try:
            await self._write(self._send(held.pop()))
        except BaseException as exc:
            _forget_frames(exc)
            raise

    async def _cancel_auth(self) -> None:
        # RFC 4954 §4: "*" cancels; the server answers 501.
        await self._exchange(AuthResponse(b"*"))

    async def login(
        self,
        user: str,
        password: str | Secret,
        *,
        initial_response_ok: bool = True,
        mechanisms: Sequence[str] | None = None,
    ) -> tuple[int, bytes]:
        """Log in with the first advertised mechanism that works, as smtplib's ``login``.

        Tries SCRAM-SHA-256 (which also proves the server), then smtplib's order: CRAM-MD5,
        PLAIN, LOGIN; ``mechanisms`` chooses the names and order instead. A SCRAM failure
        of any kind ends the login: no other mechanism is tried after it, so a server that
        tampers with SCRAM never gets the password in another form. Raises
        :class:`SMTPNotSupportedError` without AUTH, :class:`SMTPException` when no
        mechanism fits, :class:`ValueError` for credentials that cannot be sent (never
        quoting them), and the last :class:`SMTPAuthenticationError` when all fail.
        """
        secret = Secret(password)
        del password  # tracebacks keep every frame's locals: only the Secret stays
        return await self._login(user, secret, initial_response_ok, mechanisms)

    @exclusive
    async def _login(
        self,
        user: str,
        secret: Secret,
        initial_response_ok: bool,
        mechanisms: Sequence[str] | None,
    ) -> tuple[int, bytes]:
        await self.ehlo_or_helo_if_needed()
        _check_credentials(user, secret)
        if not self.has_extn("auth"):
            raise SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
        advertised = {name.upper() for name in self.esmtp_features["auth"].split()}
        authlist = [
            name.upper() for name in (mechanisms or LOGIN_ORDER) if name.upper() in advertised
        ]
        if not authlist:
            raise SMTPException("No suitable authentication method found.")
        last_exception: SMTPAuthenticationError | None = None
        for name in authlist:
            try:
                code, resp = await self.auth(
                    name,
                    builtin_mechanism(name, user, secret),
                    initial_response_ok=initial_response_ok,
                )
            except SMTPAuthenticationError as exc:
                if name in _FINAL_MECHANISMS or isinstance(exc, SMTPServerNotGenuine):
                    raise _final(name, exc) from exc
                last_exception = exc
                continue
            return code, resp
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
