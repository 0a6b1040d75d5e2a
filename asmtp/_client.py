"""SMTP: the smtplib-shaped async facade over the sans-IO core and an anyio transport.

Methods keep smtplib's names, signatures, return values and exceptions; they are coroutines.
Errors from the core and the transport are translated to smtplib's vocabulary in one place,
:func:`_exclusive`, with the original kept as ``__cause__``.
"""

from __future__ import annotations

import contextlib
import email.message
import functools
import logging
import socket
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, Final, TypeVar

import anyio

from . import _addresses, _source
from ._message import prepare_message
from ._transport import Transport, connect_tcp
from .errors import (
    SMTPConnectError,
    SMTPDataError,
    SMTPException,
    SMTPHeloError,
    SMTPNotSupportedError,
    SMTPProtocolError,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from .protocol import (
    PEER_CLOSED,
    ClientConnection,
    Command,
    Data,
    Ehlo,
    EndOfData,
    Expn,
    Helo,
    Help,
    Lhlo,
    Mail,
    MessageData,
    Noop,
    Param,
    Quit,
    Raw,
    Rcpt,
    RemoteProtocolError,
    Reply,
    Rset,
    SmtpUtf8,
    State,
    Vrfy,
    command_line,
    param_bytes,
)
from .protocol._connection import DEFAULT_MAX_PENDING
from .protocol._replies import (
    DEFAULT_MAX_LINE_LENGTH,
    DEFAULT_MAX_REPLY_BYTES,
    DEFAULT_MAX_REPLY_LINES,
)

__all__ = ["DEFAULT_TIMEOUT", "SMTP", "SendmailResult"]

logger = logging.getLogger("asmtp")

DEFAULT_TIMEOUT: Final = 60.0
"""Seconds any one connect, write or read may take (smtplib's default is to wait forever)."""

_CLOSE_TIMEOUT: Final = 2.0
# RFC 2920 §3.1 allows any group size, but a bounded group keeps the server's replies within
# its socket buffer so neither side blocks writing while the other is not reading.
_PIPELINE_GROUP: Final = 500
# States in which no reply is owed and no body is half sent: the connection is in step.
_IN_STEP: Final = frozenset({State.GREETED, State.READY, State.MAIL, State.RCPT, State.CLOSED})

SendmailResult = dict[str, tuple[int, bytes]]
_T = TypeVar("_T")
_Self = TypeVar("_Self", bound="SMTP")


@functools.cache
def _fqdn() -> str:
    return socket.getfqdn()


def _exclusive(
    method: Callable[..., Awaitable[_T]],
) -> Callable[..., Coroutine[Any, Any, _T]]:
    """Run ``method`` as the connection's only user and translate failures, once.

    A connection holds one conversation: a second task using it concurrently gets
    :class:`RuntimeError`. Any failure that leaves the conversation out of step (a reply
    owed, a body half sent) closes the connection, so no later command can read an earlier
    command's reply. Core and transport errors become smtplib's exceptions.
    """

    @functools.wraps(method)
    async def wrapper(self: SMTP, *args: Any, **kwargs: Any) -> _T:
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
            return await method(self, *args, **kwargs)
        except RemoteProtocolError as exc:
            await self._abort()
            raise SMTPProtocolError(str(exc)) from exc
        except SMTPException:
            raise
        except OSError as exc:
            if isinstance(exc, TimeoutError):
                await self._abort_unless_in_step()
                raise
            await self._abort()
            raise SMTPServerDisconnected(f"connection lost: {exc}") from exc
        except BaseException:
            # Cancellation, or a caller's bad input discovered mid-body.
            await self._abort_unless_in_step()
            raise
        finally:
            self._owner = None

    return wrapper


class SMTP:
    """An SMTP client connection, as :class:`smtplib.SMTP` with coroutine methods.

    Unlike smtplib, the constructor does not connect (it cannot await): use
    ``async with SMTP(host, port) as smtp`` or ``await smtp.connect(...)``. ``timeout``
    bounds each connect, write and read (default :data:`DEFAULT_TIMEOUT`; ``None`` waits
    forever) and raises :class:`TimeoutError`. The keyword-only limits are the core's
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
        self._limits = {
            "max_line_length": max_line_length,
            "max_reply_lines": max_reply_lines,
            "max_reply_bytes": max_reply_bytes,
            "max_pending": max_pending,
        }
        self._transport: Transport | None = None
        self._conn: ClientConnection | None = None
        self._owner: object | None = None

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

    def _log(self, direction: str, text: bytes) -> None:
        if self.debuglevel > 0 or logger.isEnabledFor(logging.DEBUG):
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
        if self.local_hostname is None:
            self.local_hostname = await self._default_local_hostname()
        reply = await self.getreply()
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

    async def _abort(self) -> None:
        if self._conn is not None:
            self._conn.fail()
        await self.close()

    async def _abort_unless_in_step(self) -> None:
        conn = self._conn
        if conn is None or conn.pending or conn.state not in _IN_STEP:
            await self._abort()

    def _reset_session(self) -> None:
        self.ehlo_resp = self.helo_resp = None
        self.esmtp_features = {}
        self.does_esmtp = False
        self.command_encoding = "ascii"

    # -- low level -------------------------------------------------------------------------

    def _deadline(self) -> contextlib.AbstractContextManager[object]:
        if self.timeout is None:
            return contextlib.nullcontext()
        return anyio.fail_after(self.timeout)

    def _require(self) -> tuple[ClientConnection, Transport]:
        if self._conn is None or self._transport is None:
            raise SMTPServerDisconnected("please run connect() first")
        if self._conn.state in (State.CLOSED, State.ERROR):
            raise SMTPServerDisconnected("Server not connected")
        return self._conn, self._transport

    def _send(self, command: Command) -> bytes:
        conn = self._require()[0]
        if not conn.can_send(command) and not isinstance(command, (Raw, MessageData, EndOfData)):
            # smtplib sends whatever it is asked and lets the server judge (rcpt() before
            # mail() gets 503); do the same by sending the line raw, which keeps framing checks.
            command = Raw(command_line(command).rstrip(b"\r\n"))
        self._log("send:", conn.loggable(command))
        return conn.send(command)

    async def _write(self, data: bytes) -> None:
        transport = self._require()[1]
        with self._deadline():
            await transport.send(data)

    async def getreply(self) -> Reply:
        """Read the next reply: a :class:`~asmtp.protocol.Reply` (smtplib returns a tuple).

        Raises :class:`SMTPServerDisconnected` when the server closes the connection.
        """
        conn = self._conn
        if conn is None or self._transport is None:
            raise SMTPServerDisconnected("please run connect() first")
        while True:
            event = conn.next_event()
            if isinstance(event, Reply):
                self._log("reply:", b"%d %s" % (event.code, event.message))
                return event
            if event is PEER_CLOSED:
                await self.close()
                raise SMTPServerDisconnected("Connection unexpectedly closed")
            with self._deadline():
                data = await self._transport.receive()
            conn.receive_data(data)

    async def _exchange(self, command: Command) -> Reply:
        await self._write(self._send(command))
        return await self.getreply()

    @_exclusive
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

    @_exclusive
    async def helo(self, name: str = "") -> tuple[int, bytes]:
        """Say HELO; sets ``helo_resp``."""
        reply = await self._exchange(Helo(self._hostname(name)))
        self.helo_resp = reply.message
        return reply.code, reply.message

    @_exclusive
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

    @_exclusive
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

    @_exclusive
    async def help(self, args: str = "") -> bytes:
        """HELP; returns the message only, as smtplib."""
        return (await self._exchange(Help(args.encode(self.command_encoding)))).message

    @_exclusive
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

    @_exclusive
    async def noop(self) -> tuple[int, bytes]:
        """NOOP."""
        reply = await self._exchange(Noop())
        return reply.code, reply.message

    def _argument(self, address: str) -> bytes:
        return _addresses.bare_address(address).encode(self.command_encoding)

    @_exclusive
    async def verify(self, address: str) -> tuple[int, bytes]:
        """VRFY address."""
        reply = await self._exchange(Vrfy(self._argument(address)))
        return reply.code, reply.message

    vrfy = verify

    @_exclusive
    async def expn(self, address: str) -> tuple[int, bytes]:
        """EXPN address."""
        reply = await self._exchange(Expn(self._argument(address)))
        return reply.code, reply.message

    @_exclusive
    async def quit(self) -> tuple[int, bytes]:
        """QUIT, then close; forgets the session (a new EHLO is needed after reconnecting)."""
        reply = await self._exchange(Quit())
        self._reset_session()
        await self.close()
        return reply.code, reply.message

    # -- transaction ---------------------------------------------------------------------------

    def _mail_command(self, sender: str, options: Sequence[Param]) -> Mail:
        params: list[bytes] = []
        if options and self.does_esmtp:
            if any(_is_smtputf8(option) for option in options):
                if not self.has_extn("smtputf8"):
                    raise SMTPNotSupportedError("SMTPUTF8 not supported by server")
                self.command_encoding = "utf-8"
            params = [param_bytes(option, self.command_encoding) for option in options]
        address = _addresses.encode_address(
            _addresses.bare_address(sender), utf8=self.command_encoding == "utf-8"
        )
        return Mail(address, tuple(params))

    def _rcpt_command(self, recip: str, options: Sequence[Param]) -> Rcpt:
        params: tuple[bytes, ...] = ()
        if options and self.does_esmtp:
            params = tuple(param_bytes(option, self.command_encoding) for option in options)
        address = _addresses.encode_address(
            _addresses.bare_address(recip), utf8=self.command_encoding == "utf-8"
        )
        return Rcpt(address, params)

    @_exclusive
    async def mail(self, sender: str, options: Sequence[Param] = ()) -> tuple[int, bytes]:
        """MAIL FROM; options are sent only to an ESMTP server, as smtplib.

        Raises :class:`SMTPNotSupportedError` for SMTPUTF8 (or a non-ASCII address) without
        server support, and :class:`ValueError` for CR, LF or NUL in any argument.
        """
        command = self._mail_command(sender, options)
        reply = await self._exchange(command)
        return reply.code, reply.message

    @_exclusive
    async def rcpt(self, recip: str, options: Sequence[Param] = ()) -> tuple[int, bytes]:
        """RCPT TO; options are sent only to an ESMTP server, as smtplib."""
        reply = await self._exchange(self._rcpt_command(recip, options))
        return reply.code, reply.message

    @_exclusive
    async def data(self, msg: object) -> tuple[int, bytes]:
        """DATA, then the message with line endings normalised and dots stuffed.

        ``msg`` may be ``str`` (sent as UTF-8), bytes, an email message, a binary file or an
        (async) iterable of bytes. Raises :class:`SMTPDataError` unless the server says 354.
        """
        source = _source.to_source(msg)
        reply = await self._exchange(Data())
        if reply.code != 354:
            raise SMTPDataError(reply.code, reply.message)
        replies = await self._send_body(source)
        return replies[-1].code, replies[-1].message

    async def _send_body(self, source: _source.MessageSource) -> list[Reply]:
        """Stream the body after 354 and return the replies to its end (LMTP: several)."""
        conn = self._require()[0]
        held = b""
        async for chunk in _source.chunks(source):
            encoded = self._send(MessageData(chunk))
            if held:
                await self._write(held)
            held = encoded
        # The last piece and the terminator share one write.
        await self._write(held + self._send(EndOfData()))
        return await self._read_pending(conn)

    async def _read_pending(self, conn: ClientConnection) -> list[Reply]:
        """Read every reply still owed, stopping early if the server closes with 421."""
        replies: list[Reply] = []
        while conn.pending:
            replies.append(await self.getreply())
        return replies

    @_exclusive
    async def sendmail(
        self,
        from_addr: str,
        to_addrs: str | Sequence[str],
        msg: object,
        mail_options: Sequence[Param] = (),
        rcpt_options: Sequence[Param] = (),
    ) -> SendmailResult:
        """Send one message; returns the refused-recipients dict, as smtplib.

        With PIPELINING advertised, MAIL, every RCPT and DATA go out in one write and the
        body in a second: two round trips. Raises, as smtplib: :class:`SMTPHeloError`,
        :class:`SMTPSenderRefused`, :class:`SMTPRecipientsRefused` (all refused),
        :class:`SMTPDataError`, :class:`SMTPNotSupportedError`; RSET follows a failed
        transaction, and a ``421`` closes the connection.
        """
        source = _source.to_source(msg)
        await self.ehlo_or_helo_if_needed()
        recipients = [to_addrs] if isinstance(to_addrs, str) else list(to_addrs)
        options: list[Param] = []
        if self.does_esmtp:
            size = _source.known_size(source)
            if self.has_extn("size") and size is not None:
                options.append(f"SIZE={size}")
            options.extend(mail_options)
            bare = [_addresses.bare_address(a) for a in (from_addr, *recipients)]
            if _addresses.needs_smtputf8(*bare) and not any(_is_smtputf8(o) for o in options):
                if not self.has_extn("smtputf8"):
                    raise SMTPNotSupportedError(
                        "an envelope address is not ASCII and the server does not advertise SMTPUTF8"
                    )
                options.append("SMTPUTF8")
        conn = self._require()[0]
        pipelined = bool(conn.extensions and conn.extensions.pipelining and recipients)
        if pipelined:
            refused = await self._envelope_pipelined(from_addr, recipients, options, rcpt_options)
        else:
            refused = await self._envelope_lockstep(from_addr, recipients, options, rcpt_options)
        replies = await self._send_body(source)
        return await self._finish(replies, recipients, refused)

    async def _envelope_lockstep(
        self,
        from_addr: str,
        recipients: list[str],
        options: Sequence[Param],
        rcpt_options: Sequence[Param],
    ) -> SendmailResult:
        code, resp = await self.mail(from_addr, options)
        if code != 250:
            await self._after_failure(code)
            raise SMTPSenderRefused(code, resp, from_addr)
        refused: SendmailResult = {}
        for each in recipients:
            code, resp = await self.rcpt(each, rcpt_options)
            if code not in (250, 251):
                refused[each] = (code, resp)
            if code == 421:
                await self.close()
                raise SMTPRecipientsRefused(refused)
        if len(refused) == len(recipients):
            await self._rset()
            raise SMTPRecipientsRefused(refused)
        reply = await self._exchange(Data())
        if reply.code != 354:
            raise SMTPDataError(reply.code, reply.message)
        return refused

    async def _envelope_pipelined(
        self,
        from_addr: str,
        recipients: list[str],
        options: Sequence[Param],
        rcpt_options: Sequence[Param],
    ) -> SendmailResult:
        conn = self._require()[0]
        mail = self._mail_command(from_addr, options)
        rcpts = [self._rcpt_command(each, rcpt_options) for each in recipients]
        # RFC 2920 §3.1: MAIL, the RCPTs and DATA form one group, DATA last.
        commands: list[Command] = [mail, *rcpts, Data()]
        for checked in commands:
            command_line(checked)  # every argument is checked before the first byte goes out
        replies: list[Reply] = []
        for start in range(0, len(commands), _PIPELINE_GROUP):
            group = commands[start : start + _PIPELINE_GROUP]
            await self._write(b"".join(self._send(command) for command in group))
            replies += await self._read_pending(conn)
            if conn.state is State.CLOSED or replies[0].code != 250:
                break
        mail_reply, rcpt_replies = replies[0], replies[1 : 1 + len(rcpts)]
        data_reply = replies[1 + len(rcpts)] if len(replies) > len(rcpts) + 1 else None
        if mail_reply.code != 250:
            await self._abandon_body(data_reply)
            await self._after_failure(mail_reply.code)
            raise SMTPSenderRefused(mail_reply.code, mail_reply.message, from_addr)
        refused: SendmailResult = {}
        for each, reply in zip(recipients, rcpt_replies, strict=False):
            if reply.code not in (250, 251):
                refused[each] = (reply.code, reply.message)
            if reply.code == 421:
                await self.close()
                raise SMTPRecipientsRefused(refused)
        if len(refused) == len(recipients):
            await self._abandon_body(data_reply)
            await self._rset()
            raise SMTPRecipientsRefused(refused)
        if data_reply is None or data_reply.code != 354:
            if conn.state is State.CLOSED:
                await self.close()
            if data_reply is None:
                raise SMTPServerDisconnected("the server closed the connection before DATA")
            raise SMTPDataError(data_reply.code, data_reply.message)
        return refused

    async def _abandon_body(self, data_reply: Reply | None) -> None:
        """End a body the server opened although the envelope failed (RFC 2920 §3.1)."""
        if data_reply is not None and data_reply.code == 354:
            await self._write(self._send(EndOfData()))
            await self._read_pending(self._require()[0])

    async def _after_failure(self, code: int) -> None:
        if code == 421:
            await self.close()
        else:
            await self._rset()

    async def _finish(
        self, replies: list[Reply], recipients: list[str], refused: SendmailResult
    ) -> SendmailResult:
        """Judge the replies to the end of data; SMTP has exactly one."""
        reply = replies[-1]
        if reply.code != 250:
            await self._after_failure(reply.code)
            raise SMTPDataError(reply.code, reply.message)
        return refused

    @_exclusive
    async def send_message(
        self,
        msg: email.message.Message,
        from_addr: str | None = None,
        to_addrs: str | Sequence[str] | None = None,
        mail_options: Sequence[Param] = (),
        rcpt_options: Sequence[Param] = (),
    ) -> SendmailResult:
        """Send an :class:`email.message.Message`, taking the envelope from its headers.

        As smtplib: Sender or From (Resent-* when the message has one Resent block),
        To/Cc/Bcc as recipients, Bcc and Resent-Bcc removed from what is sent, SMTPUTF8 used
        when an address needs it (else :class:`SMTPNotSupportedError`).
        """
        await self.ehlo_or_helo_if_needed()
        prepared = prepare_message(
            msg, from_addr, to_addrs, smtputf8_supported=self.has_extn("smtputf8")
        )
        return await self.sendmail(
            prepared.from_addr,
            prepared.to_addrs,
            prepared.data,
            (*mail_options, *prepared.mail_options),
            rcpt_options,
        )


def _is_smtputf8(option: Param) -> bool:
    if isinstance(option, str):
        return option.lower() == "smtputf8"
    if isinstance(option, bytes):
        return option.lower() == b"smtputf8"
    return isinstance(option, SmtpUtf8)
