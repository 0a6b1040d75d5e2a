"""The session half of the SMTP facade: connection, I/O, session commands, TLS and AUTH.

Methods keep smtplib's names, signatures, return values and exceptions; they are coroutines.
Errors from the core and the transport are translated to smtplib's vocabulary in one place,
:func:`exclusive`, with the original kept as ``__cause__``. The mail transaction lives in
``_client`` on top of this class (split only to keep each module readable).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import logging
import math
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, Final, TypeVar

import anyio

from . import _addresses
from ._outcome import Progress, SendOutcome
from ._sasl import LOGIN_ORDER, as_mechanism, builtin_mechanism
from ._transport import Transport, connect_tcp, default_ssl_context
from .auth import Mechanism, SASLError, SASLServerNotGenuine, Secret
from .errors import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPException,
    SMTPHeloError,
    SMTPNotSupportedError,
    SMTPProtocolError,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPServerNotGenuine,
    SMTPTransactionInterrupted,
    SMTPTransactionTimeout,
)
from .protocol import (
    NEED_DATA,
    PEER_CLOSED,
    Auth,
    AuthResponse,
    BadArgument,
    ClientConnection,
    Command,
    Ehlo,
    EndOfData,
    Expn,
    Helo,
    Help,
    Lhlo,
    LocalProtocolError,
    MessageData,
    Noop,
    Quit,
    Raw,
    Rcpt,
    RemoteProtocolError,
    Reply,
    Rset,
    StartTLS,
    State,
    Vrfy,
    command_line,
)
from .protocol._connection import DEFAULT_MAX_PENDING
from .protocol._replies import (
    DEFAULT_MAX_LINE_LENGTH,
    DEFAULT_MAX_REPLY_BYTES,
    DEFAULT_MAX_REPLY_LINES,
)

__all__ = ["DEFAULT_TIMEOUT", "SMTPSession", "exclusive"]

logger = logging.getLogger("asmtp")

DEFAULT_TIMEOUT: Final = 60.0
"""Seconds a connect, a write or a whole reply may take (smtplib's default waits forever)."""

_CLOSE_TIMEOUT: Final = 2.0
# RFC 2920 §3.1 allows any group size, but a bounded group keeps the server's replies within
# its socket buffer so neither side blocks writing while the other is not reading.
_PIPELINE_GROUP: Final = 500
# States in which no reply is owed and no body is half sent: the connection is in step.
_IN_STEP: Final = frozenset({State.GREETED, State.READY, State.MAIL, State.RCPT, State.CLOSED})

# smtplib's limit on challenges before it calls an AUTH exchange an infinite loop.
_MAX_CHALLENGES: Final = 5
_T = TypeVar("_T")
_Self = TypeVar("_Self", bound="SMTPSession")


@functools.cache
def _fqdn() -> str:
    return socket.getfqdn()


def exclusive(
    method: Callable[..., Awaitable[_T]],
) -> Callable[..., Coroutine[Any, Any, _T]]:
    """Run ``method`` as the connection's only user and translate failures, once.

    A connection holds one conversation: a second task using it concurrently gets
    :class:`RuntimeError`. Any failure that leaves the conversation out of step (a reply
    owed, a body half sent) closes the connection, so no later command can read an earlier
    command's reply. Core and transport errors become smtplib's exceptions.
    """

    @functools.wraps(method)
    async def wrapper(self: SMTPSession, *args: Any, **kwargs: Any) -> _T:
        task = anyio.get_current_task().id
        if self._owner == task:
            return await method(self, *args, **kwargs)
        if self._owner is not None:
            raise RuntimeError(
                "this SMTP connection is in use by another task; use one connection per task "
                "(or asmtp's one-shot functions)"
            )
        self._owner = task
        try:
            with anyio.CancelScope() as scope:
                self._step_scope = scope
                return await method(self, *args, **kwargs)
            # Only our own deadline cancels this scope: a step took longer than `timeout`.
            raise TimeoutError(f"a connect, write or reply took longer than {self.timeout} seconds")
        except BaseException as exc:
            translated = await self._translate(exc)
            if translated is exc:
                raise
            raise translated from exc
        finally:
            self._owner = None
            self._progress = None
            self._step_scope = None

    return wrapper


def _now() -> float:
    """The event loop's clock, which cancel-scope deadlines use; cheap on asyncio."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return anyio.current_time()


class _StepDeadline:
    """Arms ``scope``'s deadline ``timeout`` seconds ahead for one I/O step, then disarms it."""

    __slots__ = ("_scope", "_timeout")

    def __init__(self, scope: anyio.CancelScope, timeout: float) -> None:
        self._scope, self._timeout = scope, timeout

    def __enter__(self) -> None:
        self._scope.deadline = _now() + self._timeout

    def __exit__(self, *exc_info: object) -> None:
        self._scope.deadline = math.inf


class SMTPSession:
    """Connection and session management shared by :class:`asmtp.SMTP` and its variants.

    Unlike smtplib, the constructor does not connect (it cannot await): use
    ``async with SMTP(host, port) as smtp`` or ``await smtp.connect(...)``. ``timeout``
    bounds each connect, each write and each complete reply (default
    :data:`DEFAULT_TIMEOUT`; ``None`` waits forever) and raises :class:`TimeoutError`. The keyword-only limits are the core's
    (:class:`asmtp.protocol.ClientConnection`).
    """

    default_port: int = 25
    ehlo_msg: str = "ehlo"
    _lmtp: bool = False

    def __init__(
        self,
        host: str = "",
        port: int = 0,
        local_hostname: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        source_address: tuple[str, int] | None = None,
        *,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        max_reply_lines: int = DEFAULT_MAX_REPLY_LINES,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self._host = host
        self.port = port
        self.local_hostname = local_hostname
        self.timeout = timeout
        self.source_address = source_address
        self.debuglevel = 0
        self.does_esmtp = False
        self.esmtp_features: dict[str, str] = {}
        self.ehlo_resp: bytes | None = None
        self.helo_resp: bytes | None = None
        self.command_encoding = "ascii"
        self.use_chunking = True
        """Send bodies with BDAT when the server advertises CHUNKING (RFC 3030)."""
        self._limits = {
            "max_line_length": max_line_length,
            "max_reply_lines": max_reply_lines,
            "max_reply_bytes": max_reply_bytes,
            "max_pending": max_pending,
        }
        self._transport: Transport | None = None
        self._conn: ClientConnection | None = None
        self._owner: object | None = None
        self._progress: Progress | None = None
        self._step_scope: anyio.CancelScope | None = None
        self._last_progress: Progress | None = None

    def __repr__(self) -> str:
        where = f"{self._host}:{self.port}" if self._host else "not connected"
        return f"<{type(self).__name__} {where} state={self.state.name if self.state else None}>"

    async def __aenter__(self: _Self) -> _Self:
        if self._host and self._transport is None:
            await self._connect_checked(self._host, self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and not isinstance(exc, Exception):
            await self.close()  # cancelled: do not start a QUIT exchange
            return
        try:
            if self._conn is not None and self._conn.state in _IN_STEP:
                code, message = await self.docmd("QUIT")
                if code != 221:
                    raise SMTPResponseException(code, message)
        except SMTPServerDisconnected:
            pass
        finally:
            await self.close()

    # -- state -------------------------------------------------------------------------

    @property
    def state(self) -> State | None:
        """The core's :class:`~asmtp.protocol.State`, or ``None`` when not connected."""
        return self._conn.state if self._conn is not None else None

    @property
    def is_connected(self) -> bool:
        """True while a transport is open."""
        return self._transport is not None

    def set_debuglevel(self, debuglevel: int) -> None:
        """Log the SMTP transcript (``asmtp`` logger, DEBUG level) when ``debuglevel`` > 0.

        AUTH data is always redacted. When logging is not configured at all, a stderr
        handler is added to the ``asmtp`` logger so the transcript shows, as smtplib's does.
        """
        self.debuglevel = debuglevel
        if debuglevel > 0:
            if logger.level == logging.NOTSET or logger.level > logging.DEBUG:
                logger.setLevel(logging.DEBUG)
            if not logger.hasHandlers():
                handler = logging.StreamHandler(sys.stderr)
                handler.setFormatter(logging.Formatter("%(asctime)s asmtp: %(message)s"))
                logger.addHandler(handler)

    def _logging(self) -> bool:
        return self.debuglevel > 0 or logger.isEnabledFor(logging.DEBUG)

    def _log(self, direction: str, text: bytes) -> None:
        if self._logging():
            logger.debug("%s %r", direction, text)

    # -- connection ----------------------------------------------------------------------

    async def _open_transport(self, host: str, port: int) -> Transport:
        """Open the byte stream; SMTP_SSL and LMTP override this."""
        return await connect_tcp(host, port, source_address=self.source_address)

    def _split_host(self, host: str | None, port: int) -> tuple[str, int]:
        host = host if host is not None else (self._host or "localhost")
        if not port and host.find(":") == host.rfind(":"):
            index = host.rfind(":")
            if index >= 0:
                host, port_text = host[:index], host[index + 1 :]
                try:
                    port = int(port_text)
                except ValueError:
                    raise OSError("nonnumeric port") from None
        return host, port or self.port or self.default_port

    async def connect(
        self, host: str | None = None, port: int = 0, source_address: tuple[str, int] | None = None
    ) -> tuple[int, bytes]:
        """Connect and read the greeting; returns ``(code, message)`` as smtplib.

        ``host`` may be ``"host:port"``; it defaults to the constructor's host, then
        ``localhost``. Connection errors are the builtin :class:`OSError` family;
        :class:`TimeoutError` after ``timeout`` seconds.
        """
        if source_address is not None:
            self.source_address = source_address
        host, port = self._split_host(host, port)
        await self.close()
        self._host, self.port = host, port
        self._log("connect:", f"{host}:{port}".encode())
        with self._deadline():
            self._transport = await self._open_transport(host, port)
        self._conn = ClientConnection(lmtp=self._lmtp, **self._limits)
        self._reset_session()
        try:
            if self.local_hostname is None:
                self.local_hostname = await self._default_local_hostname()
            reply = await self.getreply()
        except RemoteProtocolError as exc:
            await self._abort()
            raise SMTPProtocolError(str(exc)) from exc
        except BaseException:
            await self._abort()
            raise
        return reply.code, reply.message

    async def _connect_checked(self, host: str, port: int) -> None:
        code, message = await self.connect(host, port)
        if code != 220:
            await self.close()
            raise SMTPConnectError(code, message)

    async def _default_local_hostname(self) -> str:
        fqdn = await anyio.to_thread.run_sync(_fqdn)
        if "." in fqdn:
            return fqdn
        address = self._transport.local_address if self._transport else None
        if address and ":" in address:
            return f"[IPv6:{address}]"
        return f"[{address or '127.0.0.1'}]"

    async def close(self) -> None:
        """Close the connection without QUIT (smtplib's ``close``)."""
        transport, self._transport = self._transport, None
        if transport is not None:
            with anyio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                await transport.aclose()

    @property
    def last_outcome(self) -> SendOutcome | None:
        """What became of the last ``sendmail``/``send_message`` on this connection.

        Useful after a cancellation, which cannot carry it: ``accepted`` is ``False`` when
        the server cannot have taken the message, ``None`` when unknown.
        """
        return self._last_progress.outcome() if self._last_progress is not None else None

    def _start_send(self) -> Progress:
        self._progress = self._last_progress = Progress()
        return self._progress

    def _mark_body_started(self) -> None:
        if self._progress is not None:
            self._progress.body_started = True

    def _mark_end_sent(self) -> None:
        if self._progress is not None:
            self._progress.end_sent = True

    def _mark_finished(self, succeeded: bool) -> None:
        if self._progress is not None:
            self._progress.finished, self._progress.succeeded = True, succeeded

    async def _translate(self, exc: BaseException) -> BaseException:
        """The exception the caller sees for ``exc``; closes the connection if out of step.

        The one place where core and transport errors become smtplib's vocabulary. Inside
        a send, disconnects and timeouts say what became of the message.
        """
        new: BaseException
        if isinstance(exc, RemoteProtocolError):
            await self._abort()
            new = SMTPProtocolError(str(exc))
        elif isinstance(exc, SMTPServerDisconnected):
            new = exc
        elif isinstance(exc, (SMTPException, ssl.SSLError)):
            # smtplib's own verdicts; a failed TLS handshake stays an ssl error, as in smtplib.
            if isinstance(exc, ssl.SSLError):
                await self._abort()
            return exc
        elif isinstance(exc, TimeoutError):
            await self._abort_unless_in_step()
            new = exc
        elif isinstance(exc, OSError):
            await self._abort()
            new = SMTPServerDisconnected(f"connection lost: {exc}")
        else:
            # Cancellation, or a caller's bad input discovered mid-body.
            await self._abort_unless_in_step()
            return exc
        progress = self._progress
        if progress is None or progress.finished:
            return new
        outcome = progress.outcome()
        if isinstance(new, SMTPProtocolError):
            new.outcome = outcome
            return new
        if isinstance(new, TimeoutError):
            return SMTPTransactionTimeout(f"timed out during a send: {exc}", outcome)
        return SMTPTransactionInterrupted(str(new), outcome)

    async def _abort(self) -> None:
        if self._conn is not None:
            self._conn.fail()
        await self.close()

    async def _abort_unless_in_step(self) -> None:
        conn = self._conn
        if conn is None or conn.pending_count or conn.state not in _IN_STEP:
            await self._abort()

    def _reset_session(self) -> None:
        self.ehlo_resp = self.helo_resp = None
        self.esmtp_features = {}
        self.does_esmtp = False
        self.command_encoding = "ascii"

    # -- low level -------------------------------------------------------------------------

    def _deadline(self) -> contextlib.AbstractContextManager[object]:
        """Bound the next connect, write or whole reply by ``timeout``.

        Inside a public method this moves the deadline of the method's one cancel scope
        for the duration of the step (two deadline moves, about 5 µs) instead of entering a
        new scope per I/O step (about 11 µs).
        """
        if self.timeout is None:
            return contextlib.nullcontext()
        if self._step_scope is not None:
            return _StepDeadline(self._step_scope, self.timeout)
        return anyio.fail_after(self.timeout)

    def _require(self) -> tuple[ClientConnection, Transport]:
        if self._conn is None or self._transport is None:
            raise SMTPServerDisconnected("please run connect() first")
        if self._conn.state in (State.CLOSED, State.ERROR):
            raise SMTPServerDisconnected("Server not connected")
        return self._conn, self._transport

    def _send(self, command: Command) -> bytes:
        conn = self._require()[0]
        logging_on = self._logging()
        if logging_on:
            line = conn.loggable(command)
        try:
            data = conn.send(command)
        except BadArgument:
            raise
        except LocalProtocolError:
            if isinstance(command, (Raw, MessageData, EndOfData)):
                raise
            # smtplib sends whatever it is asked and lets the server judge (rcpt() before
            # mail() gets 503); do the same by sending the line raw, which keeps framing checks.
            sensitive = isinstance(command, (Auth, AuthResponse))
            command = Raw(command_line(command).rstrip(b"\r\n"), sensitive=sensitive)
            line = conn.loggable(command) if logging_on else b""
            data = conn.send(command)
        if logging_on:
            logger.debug("send: %r", line)
        return data

    async def _write(self, data: bytes) -> None:
        # The state may already be CLOSED: QUIT's own bytes still have to go out.
        transport = self._transport
        if transport is None:
            raise SMTPServerDisconnected("please run connect() first")
        with self._deadline():
            await transport.send(data)

    async def getreply(self) -> Reply:
        """Read the next reply: a :class:`~asmtp.protocol.Reply` (smtplib returns a tuple).

        Raises :class:`SMTPServerDisconnected` when the server closes the connection.
        """
        conn = self._conn
        if conn is None or self._transport is None:
            raise SMTPServerDisconnected("please run connect() first")
        event = conn.next_event()
        if event is NEED_DATA:
            # One deadline for the whole reply, so a server dribbling bytes (slowloris)
            # cannot stretch it: the reply must be complete within `timeout`.
            with self._deadline():
                while event is NEED_DATA:
                    conn.receive_data(await self._transport.receive())
                    event = conn.next_event()
        if event is PEER_CLOSED:
            await self.close()
            raise SMTPServerDisconnected("Connection unexpectedly closed")
        assert isinstance(event, Reply)  # noqa: S101 - the sentinels are handled above
        if self._logging():
            logger.debug("reply: %d %r", event.code, event.message)
        if self._progress is not None and isinstance(event.command, Rcpt):
            self._progress.rcpt_reply(event.command.address, event.code, event.message)
        if event.code == 421:
            # RFC 5321 §3.8: the server is closing the channel; so do we.
            await self.close()
        return event

    async def _exchange(self, command: Command) -> Reply:
        await self._write(self._send(command))
        return await self.getreply()

    @exclusive
    async def docmd(self, cmd: str, args: str = "") -> tuple[int, bytes]:
        """Send one command line and return ``(code, message)``; order is not checked."""
        line = f"{cmd} {args}".strip().encode(self.command_encoding)
        reply = await self._exchange(Raw(line))
        return reply.code, reply.message

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
        try:
            await self.rset()
        except SMTPServerDisconnected:
            pass

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
        conn, transport = self._require_tls_handshake()
        with self._deadline():
            await transport.start_tls(
                context or default_ssl_context(), server_hostname or self._tls_hostname()
            )
        conn.tls_established()
        self._reset_session()
        await self.ehlo()
        return reply.code, reply.message

    def _require_tls_handshake(self) -> tuple[ClientConnection, Transport]:
        if self._conn is None or self._transport is None:
            raise SMTPServerDisconnected("please run connect() first")
        return self._conn, self._transport

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
        than five challenges (the exchange is cancelled with ``*`` first).
        """
        name = mechanism.upper()
        mech = as_mechanism(name, authobject)
        first = mech.initial_response() if initial_response_ok else None
        encoded = None if first is None else base64.b64encode(first)
        reply = await self._exchange(Auth(name.encode("ascii"), encoded))
        challenges = 0
        while reply.code == 334:
            challenges += 1
            if challenges > _MAX_CHALLENGES:
                await self._cancel_auth()
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
                await self._abort()
                raise SMTPServerNotGenuine(reply.code, f"AUTH {name}: {exc}".encode()) from exc
            except (binascii.Error, SASLError) as exc:
                await self._cancel_auth()
                raise SMTPAuthenticationError(reply.code, f"AUTH {name}: {exc}".encode()) from exc
            reply = await self._exchange(AuthResponse(base64.b64encode(response)))
        if reply.code == 235:
            try:
                mech.success(None)
            except SASLError as exc:
                await self._abort()
                raise SMTPServerNotGenuine(reply.code, f"AUTH {name}: {exc}".encode()) from exc
        if reply.code in (235, 503):
            return reply.code, reply.message
        raise SMTPAuthenticationError(reply.code, reply.message)

    async def _cancel_auth(self) -> None:
        # RFC 4954 §4: "*" cancels; the server answers 501.
        await self._exchange(AuthResponse(b"*"))

    @exclusive
    async def login(
        self,
        user: str,
        password: str,
        *,
        initial_response_ok: bool = True,
        mechanisms: Sequence[str] | None = None,
    ) -> tuple[int, bytes]:
        """Log in with the first advertised mechanism that works, as smtplib's ``login``.

        Tries SCRAM-SHA-256 (which also proves the server), then smtplib's order: CRAM-MD5,
        PLAIN, LOGIN; ``mechanisms`` chooses the names and order instead. Raises
        :class:`SMTPNotSupportedError` without AUTH, :class:`SMTPException` when no
        mechanism fits, and the last :class:`SMTPAuthenticationError` when all fail.
        """
        secret = Secret(password)
        del password
        await self.ehlo_or_helo_if_needed()
        for value, what in ((user, "user name"), (secret.reveal(), "password")):
            if "\r" in value or "\n" in value or "\0" in value:
                raise BadArgument(f"the {what} contains CR, LF or NUL")  # never quoted: secret
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
            except SMTPServerNotGenuine:
                raise  # never offer the password to an impostor by another mechanism
            except SMTPAuthenticationError as exc:
                last_exception = exc
                continue
            if code in (235, 503):
                return code, resp
        assert last_exception is not None  # noqa: S101 - every path above sets it or returns
        raise last_exception
