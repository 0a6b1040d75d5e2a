"""The base of the SMTP facade: connection, I/O, timeouts and error translation.

Errors from the core and the transport are translated to smtplib's vocabulary in one place,
:func:`exclusive` (through ``SMTPSession._translate``), with the original kept as
``__cause__``. Session commands, TLS and AUTH are in ``_session_commands``; the mail
transaction is in ``_client`` on top (each module keeps to one job).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
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

from ._outcome import Progress, SendOutcome
from ._transport import Transport, connect_tcp
from .errors import (
    SMTPConnectError,
    SMTPException,
    SMTPProtocolError,
    SMTPResponseException,
    SMTPServerDisconnected,
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
    EndOfData,
    LocalProtocolError,
    MessageData,
    Raw,
    Rcpt,
    RemoteProtocolError,
    Reply,
    State,
    command_line,
)
from .protocol._connection import DEFAULT_MAX_PENDING
from .protocol._replies import (
    DEFAULT_MAX_LINE_LENGTH,
    DEFAULT_MAX_REPLY_BYTES,
    DEFAULT_MAX_REPLY_LINES,
)

__all__ = ["DEFAULT_TIMEOUT", "SMTPSession", "exclusive", "logger"]

logger = logging.getLogger("asmtp")

DEFAULT_TIMEOUT: Final = 60.0
"""Seconds a connect, a write or a whole reply may take (smtplib's default waits forever)."""

_CLOSE_TIMEOUT: Final = 2.0
# RFC 2920 §3.1 allows any group size, but a bounded group keeps the server's replies within
# its socket buffer so neither side blocks writing while the other is not reading.
_PIPELINE_GROUP: Final = 500
# States in which no reply is owed and no body is half sent: the connection is in step.
_IN_STEP: Final = frozenset({State.GREETED, State.READY, State.MAIL, State.RCPT, State.CLOSED})

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
        task = _current_task()
        if self._owner == task:
            return await method(self, *args, **kwargs)
        if self._owner is not None:
            raise RuntimeError(
                "this SMTP connection is in use by another task; use one connection per task "
                "(or asmtp's one-shot functions)"
            )
        self._owner = task
        self._log_on = self._logging()  # once per call: the check costs ~0.5 µs per command
        try:
            transport = self._transport
            if transport is not None and transport.enforces_deadlines:
                return await method(self, *args, **kwargs)  # the transport bounds each step
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


def _current_task() -> object:
    """The running task: asyncio's own cheap lookup under asyncio, anyio's elsewhere."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no asyncio loop running: trio
        return anyio.get_current_task().id
    return task if task is not None else anyio.get_current_task().id


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
    """Connection, I/O, step timeouts and error translation under :class:`asmtp.SMTP`.

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
        self._log_on = False
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
        """Print this connection's transcript to stderr when ``debuglevel`` > 0, as smtplib.

        Level 2 prefixes each line with the time; 0 stops it. Only this connection is
        affected: the ``asmtp`` logger is left as the application configured it (at DEBUG
        it gets every connection's transcript). AUTH data is always redacted.
        """
        self.debuglevel = debuglevel

    def _logging(self) -> bool:
        return self.debuglevel > 0 or logger.isEnabledFor(logging.DEBUG)

    def _log_wanted(self) -> bool:
        """:meth:`_logging` as found when the current public call began (cheap per command)."""
        return self._log_on if self._owner is not None else self._logging()

    def _debug(self, template: str, *args: object) -> None:
        """One transcript line: to the ``asmtp`` logger, and to stderr for set_debuglevel."""
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(template, *args)
        if self.debuglevel > 0:
            line = template % args
            if self.debuglevel > 1:
                line = f"{datetime.datetime.now().time()} {line}"  # smtplib's level 2
            sys.stderr.write(line + "\n")

    def _log(self, direction: str, text: bytes) -> None:
        if self._logging():
            self._debug("%s %r", direction, text)

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
        logging_on = self._log_wanted()
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
            self._debug("send: %r", line)
        return data

    def _deadline_at(self) -> float:
        """The absolute deadline of a step starting now, for transports that enforce it."""
        return math.inf if self.timeout is None else _now() + self.timeout

    def _send_all(self, commands: Sequence[Command]) -> bytes:
        """The bytes for a pipelined group; a refused argument leaves nothing recorded."""
        conn = self._require()[0]
        lines = [conn.loggable(command) for command in commands] if self._log_wanted() else []
        data = conn.send_all(commands)
        for line in lines:
            self._debug("send: %r", line)
        return data

    async def _write(self, data: bytes) -> None:
        # The state may already be CLOSED: QUIT's own bytes still have to go out.
        transport = self._transport
        if transport is None:
            raise SMTPServerDisconnected("please run connect() first")
        if transport.enforces_deadlines:
            try:
                await transport.send(data, self._deadline_at())
            except TimeoutError:
                raise TimeoutError(f"a write took longer than {self.timeout} seconds") from None
            return
        with self._deadline():
            await transport.send(data)

    async def getreply(self) -> Reply:
        """Read the next reply: a :class:`~asmtp.protocol.Reply` (smtplib returns a tuple).

        Raises :class:`SMTPServerDisconnected` when the server closes the connection.
        """
        conn, transport = self._conn, self._transport
        if conn is None or transport is None:
            raise SMTPServerDisconnected("please run connect() first")
        event = conn.next_event()
        if event is NEED_DATA:
            # One deadline for the whole reply, so a server dribbling bytes (slowloris)
            # cannot stretch it: the reply must be complete within `timeout`.
            if transport.enforces_deadlines:
                deadline = self._deadline_at()
                try:
                    while event is NEED_DATA:
                        conn.receive_data(await transport.receive(deadline))
                        event = conn.next_event()
                except TimeoutError:
                    raise TimeoutError(f"a reply took longer than {self.timeout} seconds") from None
            else:
                with self._deadline():
                    while event is NEED_DATA:
                        conn.receive_data(await transport.receive())
                        event = conn.next_event()
        if event is PEER_CLOSED:
            await self.close()
            raise SMTPServerDisconnected("Connection unexpectedly closed")
        assert isinstance(event, Reply)  # noqa: S101 - the sentinels are handled above
        self._note_reply(event)
        if event.code == 421:
            # RFC 5321 §3.8: the server is closing the channel; so do we.
            await self.close()
        return event

    def _note_reply(self, reply: Reply) -> None:
        """Log ``reply`` and record a RCPT verdict in the send's progress."""
        if self._log_wanted():
            self._debug("reply: %d %r", reply.code, reply.message)
        if self._progress is not None and isinstance(reply.command, Rcpt):
            self._progress.rcpt_reply(reply.command.address, reply.code, reply.message)

    async def _exchange(self, command: Command) -> Reply:
        await self._write(self._send(command))
        return await self.getreply()

    @exclusive
    async def docmd(self, cmd: str, args: str = "") -> tuple[int, bytes]:
        """Send one command line and return ``(code, message)``; order is not checked."""
        line = f"{cmd} {args}".strip().encode(self.command_encoding)
        reply = await self._exchange(Raw(line))
        return reply.code, reply.message
