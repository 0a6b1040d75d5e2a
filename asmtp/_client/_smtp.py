"""SMTP: smtplib's public surface, awaited, on top of the session and the transaction layer.

Each method is a thin call into the layer that owns its job (``_commands``, ``_tls``,
``_login``, ``_transaction``, ``_overlap``) through :meth:`Session.run`, which admits one
task at a time and translates failures. The attributes smtplib users read (``esmtp_features``,
``does_esmtp``, ``ehlo_resp``...) are the session's.
"""

from __future__ import annotations

import email.message
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import TypeVar

from .._dkim import DKIMSigner
from .._results import SendResult
from .._transport import Connector, PreConnected, Proxy, connect, connector_for
from ..auth import Mechanism, Secret
from ..errors import SMTPConnectError, SMTPDataError
from ..protocol import Data, Param, Reply
from ..protocol._connection import DEFAULT_MAX_PENDING
from ..protocol._replies import (
    DEFAULT_MAX_LINE_LENGTH,
    DEFAULT_MAX_REPLY_BYTES,
    DEFAULT_MAX_REPLY_LINES,
)
from . import _commands, _login, _overlap, _source, _tls, _transaction
from ._attributes import SessionView
from ._checks import (
    check_context,
    check_options,
    check_port,
    check_sequence_of_text,
    check_source_address,
    check_text,
)
from ._envelope import Outgoing, mail_command, rcpt_command
from ._hooks import current as current_observer
from ._observed import observed_session
from ._progress import Progress
from ._sasl import is_mechanism
from ._session import Session
from ._settings import DEFAULT_TIMEOUT, ClientSettings, Limits
from ._upload import OnProgress

__all__ = ["SMTP", "showing"]

_Self = TypeVar("_Self", bound="SMTP")
Answer = tuple[int, bytes]


class SMTP(SessionView):
    """An SMTP client connection, as :class:`smtplib.SMTP` with coroutine methods.

    Unlike smtplib, the constructor does not connect (it cannot await): use
    ``async with SMTP(host, port) as smtp`` or ``await smtp.connect(...)``. ``timeout``
    bounds each connect, each write and each complete reply (default
    :data:`~asmtp.DEFAULT_TIMEOUT`; ``None`` waits forever) and raises
    :class:`TimeoutError`. The keyword-only limits bound what a server may send
    (:class:`asmtp.protocol.ClientConnection`); ``connector`` opens the byte stream
    (for tests and custom transports).

    ``proxy`` reaches the server through a SOCKS or HTTP CONNECT proxy, given as a URL
    (``"socks5h://user:pw@proxy:1080"``) or an :class:`asmtp.Proxy`; ``sock`` hands over
    a connection opened by the caller (a connected :class:`socket.socket` or an anyio
    ``ByteStream``), used for one connect, with ``host`` (default ``localhost``) as the
    name TLS checks. Failures of the proxy raise :class:`asmtp.ProxyError`. See
    ``docs/proxies.md``. ``dkim`` (an :class:`asmtp.DKIMSigner`) signs every message
    sent (``docs/dkim.md``).
    """

    default_port: int = 25
    ehlo_msg: str = "ehlo"

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
        connector: Connector = connect,
        proxy: str | Proxy | None = None,
        sock: PreConnected | None = None,
        dkim: DKIMSigner | None = None,
    ) -> None:
        connector = connector_for(connector, proxy=proxy, sock=sock)
        self._session = Session(
            ClientSettings(
                host=host or ("localhost" if sock is not None else ""),
                port=port,
                local_hostname=local_hostname,
                timeout=timeout,
                source_address=source_address,
                limits=Limits(max_line_length, max_reply_lines, max_reply_bytes, max_pending),
                connector=connector,
                dkim=dkim,
            )
        )

    def __repr__(self) -> str:
        session = self._session
        where = f"{session.host}:{session.port}" if session.host else "not connected"
        state = session.state.name if session.state is not None else None
        return f"<{type(self).__name__} {where} state={state}>"

    async def __aenter__(self: _Self) -> _Self:
        if self._session.host and not self._session.is_connected:
            code, message = await self.connect(self._session.host, self._session.port)
            if code != 220:
                await self.close()
                raise SMTPConnectError(code, message)
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
        await self._session.run(_commands.quit_politely, self._session)

    # -- connection ----------------------------------------------------------------------

    def _split_host(self, host: str | None, port: int) -> tuple[str, int]:
        host = host if host is not None else (self._session.host or "localhost")
        if not port and host.find(":") == host.rfind(":"):
            index = host.rfind(":")
            if index >= 0:
                host, port_text = host[:index], host[index + 1 :]
                try:
                    port = int(port_text)
                except ValueError:
                    raise OSError("nonnumeric port") from None
        return host, port or self._session.port or self.default_port

    async def connect(
        self, host: str | None = None, port: int = 0, source_address: tuple[str, int] | None = None
    ) -> Answer:
        """Connect and read the greeting; returns ``(code, message)`` as smtplib.

        ``host`` may be ``"host:port"``; it defaults to the constructor's host, then
        ``localhost``. Connection errors are the builtin :class:`OSError` family;
        :class:`TimeoutError` after ``timeout`` seconds.
        """
        check_text("host", host, optional=True)
        check_port(port)
        check_source_address(source_address)
        if source_address is not None:
            self._session.source_address = source_address
        host, port = self._split_host(host, port)
        reply = await self._session.open(host, port)
        return reply.code, reply.message

    async def close(self) -> None:
        """Close the connection without QUIT (smtplib's ``close``)."""
        await self._session.close()

    async def getreply(self) -> Reply:
        """Read the next reply: a :class:`~asmtp.protocol.Reply` (smtplib returns a tuple)."""
        return await self._run(self._session.reply)

    # -- session commands ----------------------------------------------------------------

    async def docmd(self, cmd: str, args: str = "") -> Answer:
        """Send one command line and return ``(code, message)``; order is not checked.

        An AUTH line, or a line answering an AUTH challenge, is redacted in transcripts,
        reprs and errors (the mechanism name stays visible).
        """
        check_text("cmd", cmd)
        check_text("args", args)
        return await self._run(_commands.docmd, self._session, cmd, args)

    async def helo(self, name: str = "") -> Answer:
        """Say HELO; sets ``helo_resp``."""
        check_text("name", name)
        return await self._run(_commands.helo, self._session, name)

    async def ehlo(self, name: str = "") -> Answer:
        """Say EHLO (LHLO for LMTP); on 250 sets ``does_esmtp`` and ``esmtp_features``."""
        check_text("name", name)
        return await self._run(_commands.ehlo, self._session, name)

    async def ehlo_or_helo_if_needed(self) -> None:
        """EHLO, falling back to HELO, unless one was done; raises :class:`SMTPHeloError`."""
        await self._run(_commands.ehlo_or_helo_if_needed, self._session)

    async def help(self, args: str = "") -> bytes:
        """HELP; returns the message only, as smtplib."""
        check_text("args", args)
        return await self._run(_commands.help_text, self._session, args)

    async def rset(self) -> Answer:
        """RSET: abort the current transaction."""
        return await self._run(_commands.rset, self._session)

    async def noop(self) -> Answer:
        """NOOP."""
        return await self._run(_commands.noop, self._session)

    async def verify(self, address: str) -> Answer:
        """VRFY address."""
        check_text("address", address)
        return await self._run(_commands.vrfy, self._session, address)

    vrfy = verify

    async def expn(self, address: str) -> Answer:
        """EXPN address."""
        check_text("address", address)
        return await self._run(_commands.expn, self._session, address)

    async def quit(self) -> Answer:
        """QUIT, then close; forgets the session (a new EHLO is needed after reconnecting)."""
        return await self._run(_commands.quit, self._session)

    # -- TLS and authentication ------------------------------------------------------------

    async def starttls(
        self, *, context: ssl.SSLContext | None = None, server_hostname: str | None = None
    ) -> Answer:
        """Upgrade to TLS (RFC 3207), verifying the certificate and host name by default.

        ``context`` defaults to the standard library's default context with TLS 1.2 at
        least (smtplib's default does not verify). Afterwards everything learned before TLS
        is forgotten and EHLO is sent again. Bytes the server sends between its ``220`` and
        the handshake abort with :class:`SMTPProtocolError` (response injection). Raises
        :class:`SMTPNotSupportedError` if STARTTLS is not advertised, and
        :class:`ssl.SSLError` when the handshake or the verification fails.
        """
        check_context(context)
        check_text("server_hostname", server_hostname, optional=True)
        return await self._run(_tls.starttls, self._session, context, server_hostname)

    async def auth(
        self,
        mechanism: str,
        authobject: Mechanism | Callable[..., str | None],
        *,
        initial_response_ok: bool = True,
    ) -> Answer:
        """Authenticate with one SASL mechanism (RFC 4954), as smtplib's ``auth``.

        ``authobject`` is an :class:`asmtp.auth.Mechanism`, or smtplib's callable taking
        the decoded challenge (``None`` for the initial response) and returning a ``str``.
        Returns ``(code, message)`` for ``235`` or ``503``; raises
        :class:`SMTPAuthenticationError` otherwise, and :class:`SMTPException` after more
        than five challenges (the exchange is cancelled with ``*`` first). A mechanism
        that verifies the server (SCRAM) raises :class:`SMTPServerNotGenuine` and closes
        the connection when the server did not prove itself, even on ``235`` or ``503``.
        """
        check_text("mechanism", mechanism)
        if not (is_mechanism(authobject) or callable(authobject)):
            raise TypeError(
                "authobject must be an asmtp.auth.Mechanism or smtplib's callable, not "
                f"{type(authobject).__name__}"
            )
        return await self._run(
            _login.auth,
            self._session,
            mechanism,
            authobject,
            initial_response_ok=initial_response_ok,
        )

    async def login(
        self,
        user: str,
        password: str | Secret,
        *,
        initial_response_ok: bool = True,
        mechanisms: Sequence[str] | None = None,
    ) -> Answer:
        """Log in with the first advertised mechanism that works, as smtplib's ``login``.

        Tries SCRAM-SHA-256 (which also proves the server), then smtplib's order: CRAM-MD5,
        PLAIN, LOGIN; ``mechanisms`` chooses the names and order instead. A SCRAM failure
        of any kind ends the login: no other mechanism is tried after it, so a server that
        tampers with SCRAM never gets the password in another form. Raises
        :class:`SMTPNotSupportedError` without AUTH, :class:`SMTPException` when no
        mechanism fits, :class:`ValueError` for credentials that cannot be sent (never
        quoting them), and the last :class:`SMTPAuthenticationError` when all fail.
        """
        check_text("user", user)
        if not isinstance(password, (str, Secret)):
            raise TypeError(f"password must be a str, not {type(password).__name__}")
        check_sequence_of_text("mechanisms", mechanisms)
        secret = Secret(password)
        del password  # tracebacks keep every frame's locals: only the Secret stays
        return await self._run(
            _login.login,
            self._session,
            user,
            secret,
            initial_response_ok=initial_response_ok,
            mechanisms=mechanisms,
        )

    # -- the mail transaction ----------------------------------------------------------------

    async def mail(self, sender: str, options: Sequence[Param] = ()) -> Answer:
        """MAIL FROM; options are sent only to an ESMTP server, as smtplib.

        Raises :class:`SMTPNotSupportedError` for SMTPUTF8 (or a non-ASCII address) without
        server support, and :class:`ValueError` for CR, LF or NUL in any argument.
        """
        check_text("sender", sender)
        check_options("options", options)
        session = self._session
        reply = await self._run(session.exchange, mail_command(session, sender, options))
        return reply.code, reply.message

    async def rcpt(self, recip: str, options: Sequence[Param] = ()) -> Answer:
        """RCPT TO; options are sent only to an ESMTP server, as smtplib."""
        check_text("recip", recip)
        check_options("options", options)
        session = self._session
        reply = await self._run(session.exchange, rcpt_command(session, recip, options))
        return reply.code, reply.message

    async def data(self, msg: object) -> Answer:
        """DATA, then the message with line endings normalised and dots stuffed.

        ``msg`` may be ``str`` (sent as UTF-8), bytes, an email message, a binary file or an
        (async) iterable of bytes. Raises :class:`SMTPDataError` unless the server says 354.
        """
        return await self._run(_data, self._session, _source.to_source(msg))

    async def sendmail(
        self,
        from_addr: str,
        to_addrs: str | Sequence[str],
        msg: object,
        mail_options: Sequence[Param] = (),
        rcpt_options: Sequence[Param] = (),
        *,
        deadline: float | None = None,
        on_progress: OnProgress | None = None,
    ) -> SendResult:
        """Send one message; returns the refused-recipients dict, as smtplib.

        With PIPELINING, MAIL, every RCPT and DATA go out in one write and the body in a
        second (two round trips); with CHUNKING too, the body follows the envelope in the
        same write as ``BDAT`` chunks (one round trip). Raises, as smtplib:
        :class:`SMTPHeloError`, :class:`SMTPSenderRefused`, :class:`SMTPRecipientsRefused`
        (all refused), :class:`SMTPDataError`, :class:`SMTPNotSupportedError`; RSET follows
        a failed transaction, and a ``421`` closes the connection.

        The result is a :class:`~asmtp.SendResult`: the refused dict, with the server's
        final reply in ``reply``. ``deadline`` bounds the whole send in seconds (``timeout``
        bounds each step). A lost connection or a timeout in the middle raises
        :class:`~asmtp.errors.SMTPTransactionInterrupted` or
        :class:`~asmtp.errors.SMTPTransactionTimeout`, whose ``outcome`` tells whether the
        server can have accepted the message; :attr:`last_outcome` tells it after a
        cancellation.

        ``on_progress(sent, total)`` is called as the body goes out: bytes of the message
        written so far and its size (``None`` while unknown, for a stream), at most once
        per 64 KiB and once more, with ``sent == total``, when the whole message is written.
        """
        item = Outgoing.checked(from_addr, to_addrs, msg, mail_options, rcpt_options)
        return await self._send(item, deadline, on_progress)

    def _send(
        self, item: Outgoing, deadline: float | None, on_progress: OnProgress | None
    ) -> Awaitable[SendResult]:
        # A plain function: an unobserved send costs no coroutine more than before.
        session = self._session
        send = self._run(
            _transaction.send, session, item, deadline=deadline, on_progress=on_progress
        )
        observer = current_observer()
        if observer is None:
            return send
        return observed_session(observer, session, item, send)

    async def send_message(
        self,
        msg: email.message.Message,
        from_addr: str | None = None,
        to_addrs: str | Sequence[str] | None = None,
        mail_options: Sequence[Param] = (),
        rcpt_options: Sequence[Param] = (),
        *,
        deadline: float | None = None,
        add_missing_headers: bool = True,
        on_progress: OnProgress | None = None,
    ) -> SendResult:
        """Send an :class:`email.message.Message`, taking the envelope from its headers.

        As smtplib: Sender or From (Resent-* when the message has one Resent block),
        To/Cc/Bcc as recipients, Bcc and Resent-Bcc removed from what is sent, SMTPUTF8 used
        when an address needs it (else :class:`SMTPNotSupportedError`). ``deadline``
        and ``on_progress`` as in :meth:`sendmail`.

        Unlike smtplib, a message without ``Date`` or ``Message-ID`` is sent with them
        (RFC 5322 §3.6; the Message-ID names the sender's domain); ``msg`` itself is left
        as it was. ``add_missing_headers=False`` sends the message as it is.
        """
        item = Outgoing.message(
            msg, from_addr, to_addrs, mail_options, rcpt_options, add_missing_headers
        )
        return await self._send(item, deadline, on_progress)

    async def sendmail_many(self, messages: Iterable[Outgoing]) -> list[SendResult | Exception]:
        """Send several messages back to back; one entry per message, in order.

        Each entry is what :meth:`sendmail` (or :meth:`send_message`, for
        :meth:`Outgoing.message`) would have returned, or the exception it would have
        raised: a refused message does not stop the others. With PIPELINING and DATA, each
        message's end of data goes out in one write with the next message's envelope
        (RFC 2920 §3.1), so a message costs one round trip; the replies are still matched
        to their own message.

        If the connection fails, the messages on the wire get
        :class:`~asmtp.errors.SMTPTransactionInterrupted` (or ``...Timeout``) with their
        ``outcome``, and those not yet begun get one with ``outcome.accepted`` ``False``;
        so does a body that cannot be read to its end (an iterator yielding ``str``), which
        also closes the connection. A cancellation propagates after the same bookkeeping.
        Without a connection it raises :class:`SMTPServerDisconnected`, as every method does.
        """
        if not self._session.is_connected:
            raise self._session.not_connected()  # before taking any message from `messages`
        items = list(messages)
        for index, item in enumerate(items):
            if not isinstance(item, Outgoing):
                raise TypeError(
                    f"messages[{index}] must be an asmtp.Outgoing, not {type(item).__name__}"
                )
        return await _overlap.send_many(self._session, items)


def showing(session: Session, cls: type[_Self]) -> _Self:
    """A ``cls`` instance over an already open ``session`` (what :func:`asmtp.connect` yields)."""
    smtp = cls.__new__(cls)
    smtp._session = session
    return smtp


async def _data(session: Session, source: _source.MessageSource) -> Answer:
    reply = await session.exchange(Data())
    if reply.code != 354:
        raise SMTPDataError(reply.code, reply.message)
    await session.write(await _transaction.write_body(session, source, Progress()))
    replies = await session.read_pending()
    return replies[-1].code, replies[-1].message
