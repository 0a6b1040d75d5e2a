"""SMTP and SMTP_SSL: the smtplib-shaped async facade (LMTP is in ``_lmtp``).

Adds the mail transaction (MAIL, RCPT, DATA, sendmail, send_message) to the session in
``_session``; the smtplib semantics of each step are kept, including which exception is
raised when and when RSET follows.
"""

from __future__ import annotations

import contextlib
import email.message
import ssl
from collections.abc import Iterable, Sequence
from typing import Final

import anyio

from . import _addresses, _source
from ._batch import Outgoing, send_batch
from ._chunked import send_chunked
from ._message import prepare_message
from ._outcome import SendOutcome
from ._session import DEFAULT_TIMEOUT, exclusive
from ._session_commands import SessionCommands
from ._transport import Transport, connect_tcp, default_ssl_context, new_ssl_context
from .errors import (
    EightBitNotSupportedError,
    SMTPDataError,
    SMTPNotSupportedError,
    SMTPRecipientsRefused,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTransactionInterrupted,
)
from .protocol import (
    ClientConnection,
    Command,
    Data,
    EndOfData,
    Mail,
    MessageData,
    Param,
    Rcpt,
    Reply,
    SmtpUtf8,
    State,
    body_type,
    command_line,
    param_bytes,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "SMTP",
    "SMTP_SSL",
    "SMTP_SSL_PORT",
    "SendmailResult",
]

SMTP_SSL_PORT: Final = 465
# RFC 2920 §3.1 allows any group size, but a bounded group keeps the server's replies within
# its socket buffer so neither side blocks writing while the other is not reading.
_PIPELINE_GROUP: Final = 500

SendmailResult = dict[str, tuple[int, bytes]]


class SMTP(SessionCommands):
    """An SMTP client connection, as :class:`smtplib.SMTP` with coroutine methods.

    Unlike smtplib, the constructor does not connect (it cannot await): use
    ``async with SMTP(host, port) as smtp`` or ``await smtp.connect(...)``. ``timeout``
    bounds each connect, each write and each complete reply (default
    :data:`DEFAULT_TIMEOUT`; ``None`` waits forever) and raises :class:`TimeoutError`. The keyword-only limits are the core's
    (:class:`asmtp.protocol.ClientConnection`).
    """

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
        if self._progress is not None:
            self._progress.addresses[address] = recip
        return Rcpt(address, params)

    @exclusive
    async def mail(self, sender: str, options: Sequence[Param] = ()) -> tuple[int, bytes]:
        """MAIL FROM; options are sent only to an ESMTP server, as smtplib.

        Raises :class:`SMTPNotSupportedError` for SMTPUTF8 (or a non-ASCII address) without
        server support, and :class:`ValueError` for CR, LF or NUL in any argument.
        """
        command = self._mail_command(sender, options)
        reply = await self._exchange(command)
        return reply.code, reply.message

    @exclusive
    async def rcpt(self, recip: str, options: Sequence[Param] = ()) -> tuple[int, bytes]:
        """RCPT TO; options are sent only to an ESMTP server, as smtplib."""
        reply = await self._exchange(self._rcpt_command(recip, options))
        return reply.code, reply.message

    @exclusive
    async def data(self, msg: object) -> tuple[int, bytes]:
        """DATA, then the message with line endings normalised and dots stuffed.

        ``msg`` may be ``str`` (sent as UTF-8), bytes, an email message (without its Bcc, as
        in :meth:`sendmail`), a binary file or an (async) iterable of bytes. Raises
        :class:`SMTPDataError` unless the server says 354.
        """
        source = _source.to_source(msg)
        reply = await self._exchange(Data())
        if reply.code != 354:
            raise SMTPDataError(reply.code, reply.message)
        replies = await self._send_body(source)
        return replies[-1].code, replies[-1].message

    async def _send_body(self, source: _source.MessageSource) -> list[Reply]:
        """Stream the body after 354 and return the replies to its end (LMTP: several)."""
        await self._write(await self._write_body(source))
        return await self._read_pending(self._require()[0])

    async def _write_body(self, source: _source.MessageSource) -> bytes:
        """Stream the body after 354 but for its last piece and the end, which are returned.

        The caller writes them, alone or followed by the next transaction (RFC 2920 §3.1).
        From the moment they exist the server may accept the message even if we never see
        its reply, so the send counts as having sent its end.
        """
        held = b""
        self._mark_body_started()
        if isinstance(source, bytes) and len(source) <= _source.CHUNK_SIZE:
            held = self._send(MessageData(source))  # one piece: no chunk iterator needed
        else:
            async with contextlib.aclosing(_source.chunks(source)) as chunks:
                async for chunk in chunks:
                    encoded = self._send(MessageData(chunk))
                    if held:
                        await self._write(held)
                    held = encoded
        end = self._send(EndOfData())
        self._mark_end_sent()
        return held + end

    async def _read_pending(self, conn: ClientConnection, leave: int = 0) -> list[Reply]:
        """Read the replies owed until ``leave`` commands still wait, or the server closes.

        Replies already received are taken straight from the core; only a missing one
        goes through :meth:`getreply`, which waits for it.
        """
        replies: list[Reply] = []
        while conn.pending_count > leave:
            event = conn.next_event()
            if not isinstance(event, Reply):
                replies.append(await self.getreply())  # NEED_DATA or PEER_CLOSED: it decides
                continue
            self._note_reply(event)
            replies.append(event)
            if event.code == 421:
                await self.close()  # RFC 5321 §3.8, as getreply() does
        return replies

    @exclusive
    async def sendmail(
        self,
        from_addr: str,
        to_addrs: str | Sequence[str],
        msg: object,
        mail_options: Sequence[Param] = (),
        rcpt_options: Sequence[Param] = (),
        *,
        deadline: float | None = None,
    ) -> SendmailResult:
        """Send one message; returns the refused-recipients dict, as smtplib.

        ``msg`` may also be an :class:`email.message.Message` (smtplib refuses one): it goes
        out without its Bcc and Resent-Bcc headers, and a header that would not come out as
        one field raises :class:`~asmtp.errors.MalformedHeaderError` before anything is sent.
        What asmtp encodes (a ``str`` as UTF-8, a message it flattens) is declared when it
        is 8-bit: ``BODY=8BITMIME``, plus ``SMTPUTF8`` for UTF-8 in the header block; a
        server offering neither gets :class:`~asmtp.errors.EightBitNotSupportedError`
        before MAIL (smtplib raises ``UnicodeEncodeError``). Bytes are sent as given.

        With PIPELINING, MAIL, every RCPT and DATA go out in one write and the body in a
        second (two round trips); with CHUNKING too, the body follows the envelope in the
        same write as ``BDAT`` chunks (one round trip). Raises, as smtplib:
        :class:`SMTPHeloError`, :class:`SMTPSenderRefused`, :class:`SMTPRecipientsRefused`
        (all refused), :class:`SMTPDataError`, :class:`SMTPNotSupportedError`; RSET follows
        a failed transaction, and a ``421`` closes the connection.

        ``deadline`` bounds the whole send in seconds (``timeout`` bounds each step). A
        lost connection or a timeout in the middle raises
        :class:`~asmtp.errors.SMTPTransactionInterrupted` or
        :class:`~asmtp.errors.SMTPTransactionTimeout`, whose ``outcome`` tells whether the
        server can have accepted the message; :attr:`last_outcome` tells it after a
        cancellation.
        """
        source = _source.to_source(msg)
        eight_bit = _source.eight_bit(msg, source)
        return await self._transact(
            from_addr, to_addrs, source, mail_options, rcpt_options, eight_bit, deadline
        )

    async def _transact(
        self,
        from_addr: str,
        to_addrs: str | Sequence[str],
        source: _source.MessageSource,
        mail_options: Sequence[Param],
        rcpt_options: Sequence[Param],
        eight_bit: _source.EightBit,
        deadline: float | None,
    ) -> SendmailResult:
        """One whole send within ``deadline``, its replies all read before it returns."""
        with anyio.fail_after(deadline) if deadline is not None else contextlib.nullcontext():
            self._start_send()
            await self.ehlo_or_helo_if_needed()
            recipients = [to_addrs] if isinstance(to_addrs, str) else list(to_addrs)
            options = self._sendmail_options(source, from_addr, recipients, mail_options, eight_bit)
            # The caller's BODY=BINARYMIME: their bytes are the message, and only BDAT
            # carries them (RFC 3030 §3); _sendmail_options() checked the server offers both.
            verbatim = _wants_binarymime(mail_options)
            return await self._send_transaction(
                from_addr, recipients, source, options, rcpt_options, verbatim=verbatim
            )

    async def _send_transaction(
        self,
        from_addr: str,
        recipients: list[str],
        source: _source.MessageSource,
        options: Sequence[Param],
        rcpt_options: Sequence[Param],
        *,
        verbatim: bool,
    ) -> SendmailResult:
        """:meth:`_transact` with the MAIL options already completed by _sendmail_options()."""
        conn = self._require()[0]
        extensions = conn.extensions
        pipelining = bool(extensions and extensions.pipelining and recipients)
        if extensions and extensions.chunking and (self.use_chunking or verbatim) and recipients:
            return await send_chunked(
                self,
                from_addr,
                recipients,
                source,
                options,
                rcpt_options,
                pipelining=pipelining,
                verbatim=verbatim,
            )
        if pipelining:
            commands = self._envelope(from_addr, recipients, options, rcpt_options, Data())
            # RFC 2920 §3.1: MAIL, the RCPTs and DATA form one group, DATA last.
            replies = await self._send_group(commands)
            refused = await self._judge_pipelined(from_addr, recipients, replies)
        else:
            _check_arguments(self._envelope(from_addr, recipients, options, rcpt_options))
            refused = await self._envelope_lockstep(from_addr, recipients, options, rcpt_options)
            reply = await self._exchange(Data())
            if reply.code != 354:
                raise SMTPDataError(reply.code, reply.message)
        replies = await self._send_body(source)
        return await self._finish(replies, recipients, refused)

    async def _judge_pipelined(
        self, from_addr: str, recipients: list[str], replies: list[Reply]
    ) -> SendmailResult:
        """Verdict on a pipelined MAIL, RCPTs and DATA: the refused dict once DATA got 354."""
        envelope_replies, data_reply = (
            replies[: len(recipients) + 1],
            replies[len(recipients) + 1 :],
        )
        refused = await self._judge_envelope(
            from_addr, recipients, envelope_replies, abandon=data_reply
        )
        if not data_reply:
            raise SMTPServerDisconnected("the server closed the connection before DATA")
        if data_reply[0].code != 354:
            raise SMTPDataError(data_reply[0].code, data_reply[0].message)
        return refused

    def _sendmail_options(
        self,
        source: _source.MessageSource,
        from_addr: str,
        recipients: list[str],
        mail_options: Sequence[Param],
        eight_bit: _source.EightBit = _source.EightBit.NONE,
    ) -> list[Param]:
        """SIZE= when advertised, the caller's options, SMTPUTF8 when an address needs it,
        what ``eight_bit`` content asmtp encoded needs (:meth:`_declare_eight_bit`), and
        BODY=BINARYMIME for an 8-bit body going out as BDAT where the server offers it.

        Raises :class:`SMTPNotSupportedError` for the caller's BODY=BINARYMIME unless the
        server offers CHUNKING and BINARYMIME.
        """
        options: list[Param] = []
        if _wants_binarymime(mail_options) and not (
            self.has_extn("chunking") and self.has_extn("binarymime")
        ):
            raise SMTPNotSupportedError(
                "BODY=BINARYMIME needs CHUNKING and BINARYMIME, which the server does not advertise"
            )
        if not self.does_esmtp:
            if eight_bit is not _source.EightBit.NONE:
                raise EightBitNotSupportedError(
                    f"the message has {eight_bit.value} and the server does not speak ESMTP, "
                    "so it cannot be declared (RFC 6152)"
                )
            return options
        # Counting the line endings of a large body costs a pass over it: only when asked.
        size = _source.known_size(source) if self.has_extn("size") else None
        if size is not None:
            options.append(f"SIZE={size}")
        options.extend(mail_options)
        addresses = (from_addr, *recipients)
        # All-ASCII input cannot need SMTPUTF8; only otherwise parse out the bare addresses
        # (a non-ASCII display name alone does not need it). _envelope() parses them anyway.
        needs_utf8 = not all(a.isascii() for a in addresses) and _addresses.needs_smtputf8(
            *(_addresses.bare_address(a) for a in addresses)
        )
        if needs_utf8 and not any(_is_smtputf8(o) for o in options):
            if not self.has_extn("smtputf8"):
                raise SMTPNotSupportedError(
                    "an envelope address is not ASCII and the server does not advertise SMTPUTF8"
                )
            options.append("SMTPUTF8")
        if eight_bit is not _source.EightBit.NONE:
            self._declare_eight_bit(eight_bit, options)
        if self._auto_binarymime(options) and _eight_bit(source):  # the scan comes last
            options.append("BODY=BINARYMIME")  # RFC 3030 §3: 8-bit content, no encoding
        return options

    def _declare_eight_bit(self, eight_bit: _source.EightBit, options: list[Param]) -> None:
        """Declare the 8-bit content asmtp encoded, or refuse it before MAIL.

        RFC 6152 §3: 8-bit octets need BODY=8BITMIME (BINARYMIME does when BDAT carries the
        body); RFC 6531 §3.4 and RFC 6532 §3: UTF-8 in the header block needs SMTPUTF8 too.
        A BODY= the caller gave is kept.
        """
        if eight_bit is _source.EightBit.HEADERS and not any(_is_smtputf8(o) for o in options):
            if not self.has_extn("smtputf8"):
                raise EightBitNotSupportedError(
                    f"the message has {eight_bit.value} and the server does not advertise "
                    "SMTPUTF8 (RFC 6531)"
                )
            options.append("SMTPUTF8")
        if body_type(options) is None and not self._auto_binarymime(options):
            if not self.has_extn("8bitmime"):
                raise EightBitNotSupportedError(
                    f"the message has {eight_bit.value} and the server does not advertise "
                    "8BITMIME (RFC 6152)"
                )
            options.append("BODY=8BITMIME")

    def _auto_binarymime(self, options: Sequence[Param]) -> bool:
        """Whether BDAT will carry the body to a server offering BINARYMIME, undeclared."""
        return (
            self.use_chunking
            and self.has_extn("chunking")
            and self.has_extn("binarymime")
            and body_type(options) is None
        )

    def _envelope(
        self,
        from_addr: str,
        recipients: list[str],
        options: Sequence[Param],
        rcpt_options: Sequence[Param],
        *tail: Command,
    ) -> list[Command]:
        """MAIL, the RCPTs and ``tail``.

        Their arguments are checked when they are serialised: all at once by
        :meth:`_send_all`, or up front by :func:`_check_arguments` before lock-step.
        """
        return [
            self._mail_command(from_addr, options),
            *(self._rcpt_command(each, rcpt_options) for each in recipients),
            *tail,
        ]

    async def _send_group(self, commands: list[Command]) -> list[Reply]:
        """Write pipelined commands in bounded groups and read every reply."""
        conn = self._require()[0]
        replies: list[Reply] = []
        if len(commands) > _PIPELINE_GROUP:
            _check_arguments(commands)  # later groups must not fail after earlier ones went out
        for start in range(0, len(commands), _PIPELINE_GROUP):
            group = commands[start : start + _PIPELINE_GROUP]
            await self._write(self._send_all(group))
            replies += await self._read_pending(conn)
            if conn.state is State.CLOSED or replies[0].code != 250:
                break
        return replies

    async def _envelope_lockstep(
        self,
        from_addr: str,
        recipients: list[str],
        options: Sequence[Param],
        rcpt_options: Sequence[Param],
    ) -> SendmailResult:
        """smtplib's own sequence: MAIL, then each RCPT, stopping at the first refusal that ends it."""
        code, resp = await self.mail(from_addr, options)
        replies = [Reply(code, (resp,))]
        if code == 250:
            for each in recipients:
                code, resp = await self.rcpt(each, rcpt_options)
                replies.append(Reply(code, (resp,)))
                if code == 421:
                    break
        return await self._judge_envelope(from_addr, recipients, replies, abandon=[])

    async def _judge_envelope(
        self,
        from_addr: str,
        recipients: list[str],
        replies: list[Reply],
        *,
        abandon: list[Reply],
    ) -> SendmailResult:
        """smtplib's verdict on the MAIL and RCPT replies; raises as smtplib does.

        ``abandon`` holds the reply to a pipelined DATA: if the server opened a body the
        envelope cannot use, it is ended before RSET (RFC 2920 §3.1).
        """
        mail_reply, rcpt_replies = replies[0], replies[1:]
        if mail_reply.code != 250:
            await self._abandon_body(abandon)
            await self._after_failure(mail_reply.code)
            raise SMTPSenderRefused(mail_reply.code, mail_reply.message, from_addr)
        refused: SendmailResult = {}
        for each, reply in zip(recipients, rcpt_replies, strict=False):
            if reply.code not in (250, 251):
                refused[each] = (reply.code, reply.message)
            if reply.code == 421:
                await self.close()
                raise SMTPRecipientsRefused(refused)
        if self._progress is not None:
            self._progress.envelope_judged(recipients, refused)
        if len(refused) == len(recipients):
            await self._abandon_body(abandon)
            await self._rset()
            raise SMTPRecipientsRefused(refused)
        return refused

    async def _abandon_body(self, data_reply: list[Reply]) -> None:
        """End a body the server opened although the envelope failed (RFC 2920 §3.1)."""
        if data_reply and data_reply[0].code == 354:
            await self._write(self._send(EndOfData()))
            await self._read_pending(self._require()[0])

    async def _after_failure(self, code: int) -> None:
        if code == 421:
            await self.close()
        else:
            await self._rset()

    async def _finish(
        self,
        replies: list[Reply],
        recipients: list[str],
        refused: SendmailResult,
        *,
        reset: bool = True,
    ) -> SendmailResult:
        """Judge the replies to the end of data; SMTP has exactly one.

        ``reset=False`` skips smtplib's RSET after a refusal: the end of data closes the
        transaction either way (RFC 5321 §4.1.1.4), and with the next transaction already
        on the wire an RSET would land in the middle of it.
        """
        reply = replies[-1]
        self._mark_finished(reply.code == 250)
        if reply.code != 250:
            if reset or reply.code == 421:
                await self._after_failure(reply.code)
            raise SMTPDataError(reply.code, reply.message)
        return refused

    async def sendmail_many(self, messages: Iterable[Outgoing]) -> list[SendmailResult | Exception]:
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
        """
        items = list(messages)
        results: list[SendmailResult | Exception | None] = [None] * len(items)

        def report(index: int, result: SendmailResult | Exception) -> None:
            results[index] = result

        reason = "the connection was closed first"
        try:
            await send_batch(self, iter(enumerate(items)), report)
        except Exception as exc:  # every message in flight is reported; say why the rest wait
            reason = str(exc) or type(exc).__name__
        not_begun = SendOutcome(accepted=False)
        return [
            result
            if result is not None
            else SMTPTransactionInterrupted(f"not sent: {reason}", not_begun)
            for result in results
        ]

    @exclusive
    async def send_message(
        self,
        msg: email.message.Message,
        from_addr: str | None = None,
        to_addrs: str | Sequence[str] | None = None,
        mail_options: Sequence[Param] = (),
        rcpt_options: Sequence[Param] = (),
        *,
        deadline: float | None = None,
    ) -> SendmailResult:
        """Send an :class:`email.message.Message`, taking the envelope from its headers.

        As smtplib: Sender or From (Resent-* when the message has one Resent block),
        To/Cc/Bcc as recipients, Bcc and Resent-Bcc removed from what is sent, SMTPUTF8 used
        when an address needs it (else :class:`SMTPNotSupportedError`). 8-bit content is
        declared, or refused, as in :meth:`sendmail`; ``deadline`` as there.
        """
        await self.ehlo_or_helo_if_needed()
        prepared = prepare_message(
            msg, from_addr, to_addrs, smtputf8_supported=self.has_extn("smtputf8")
        )
        return await self._transact(
            prepared.from_addr,
            prepared.to_addrs,
            prepared.data,
            (*mail_options, *prepared.mail_options),
            rcpt_options,
            prepared.eight_bit,
            deadline,
        )


def _check_arguments(commands: list[Command]) -> None:
    """Serialise each command once, for its argument checks alone (before lock-step)."""
    for command in commands:
        command_line(command)


def _wants_binarymime(options: Sequence[Param]) -> bool:
    """Whether the caller asked for BODY=BINARYMIME."""
    return body_type(options) == "BINARYMIME"


def _eight_bit(source: _source.MessageSource) -> bool:
    """True for a body in memory with an octet above 127 (a stream is not read ahead)."""
    if isinstance(source, memoryview):
        return not bytes(source).isascii()
    return isinstance(source, (bytes, bytearray)) and not source.isascii()


def _is_smtputf8(option: Param) -> bool:
    if isinstance(option, str):
        return option.lower() == "smtputf8"
    if isinstance(option, bytes):
        return option.lower() == b"smtputf8"
    return isinstance(option, SmtpUtf8)


class SMTP_SSL(SMTP):
    """SMTP over TLS from the first byte (RFC 8314, port 465), as :class:`smtplib.SMTP_SSL`.

    Unlike smtplib, the default ``context`` verifies the certificate chain and the host
    name (TLS 1.2 at least). A handshake or verification failure raises
    :class:`ssl.SSLError` from ``connect()``.
    """

    default_port = SMTP_SSL_PORT

    def __init__(
        self,
        host: str = "",
        port: int = 0,
        local_hostname: str | None = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        source_address: tuple[str, int] | None = None,
        context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        **limits: int,
    ) -> None:
        super().__init__(host, port, local_hostname, timeout, source_address, **limits)
        self._context = context
        self.server_hostname = server_hostname

    @property
    def context(self) -> ssl.SSLContext:
        """The TLS context: the one given, else this client's own default context.

        The default is made when first read (it loads the CA store), so changing it affects
        this client alone; a client whose context is never read uses one shared default
        that no caller can reach.
        """
        if self._context is None:
            self._context = new_ssl_context()
        return self._context

    @context.setter
    def context(self, context: ssl.SSLContext) -> None:
        self._context = context

    async def _open_transport(self, host: str, port: int) -> Transport:
        return await connect_tcp(
            host,
            port,
            source_address=self.source_address,
            tls_context=self._context if self._context is not None else default_ssl_context(),
            server_hostname=self.server_hostname or host,
        )
