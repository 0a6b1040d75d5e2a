"""Several messages on one connection, each transaction overlapping the previous one's end.

RFC 2920 §3.1 lets a client with PIPELINING write the next ``MAIL`` right after a message's
end of data, before that end is answered (its example 3.2 does exactly this). The end of
data closes the transaction whatever its reply says (RFC 5321 §4.1.1.4), so the next one
starts clean, and the core's queue pairs every reply with its own command. A message then
costs one write and one round trip with DATA: its end and the next envelope go out
together, and their replies come back together.

The next transaction waits for the previous reply instead when CHUNKING carries the body:
RFC 3030 leaves a refused ``BDAT`` transaction open until RSET, which would make an
already written ``MAIL`` a nested one; a BDAT message is one round trip anyway.

Every message taken from the iterator is reported exactly once: its refused dict, or the
exception :meth:`SMTP.sendmail` would have raised for it. When the connection fails, each
message on the wire is reported with what became of it (:class:`SendOutcome`), and the
rest stay untaken.
"""

from __future__ import annotations

import email.message
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Generic, TypeVar

import anyio

from . import _source
from ._message import prepare_message
from ._outcome import Progress
from ._session import exclusive
from .errors import (
    SMTPNotSupportedError,
    SMTPProtocolError,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTransactionInterrupted,
    SMTPTransactionTimeout,
)
from .protocol import Data, Param, State, body_type

if TYPE_CHECKING:
    from ._client import SMTP, SendmailResult

__all__ = ["Outgoing", "Report", "send_batch"]

_K = TypeVar("_K")
Report = Callable[[_K, "SendmailResult | Exception"], None]

# What a single message can be refused with while the connection stays usable.
_VERDICTS: Final = (SMTPResponseException, SMTPRecipientsRefused, SMTPNotSupportedError, ValueError)
# Larger envelopes go out in bounded groups (SMTP._send_group) and are not overlapped.
_MAX_OVERLAPPED_ENVELOPE: Final = 500


@dataclass(frozen=True)
class Outgoing:
    """One message for :meth:`SMTP.sendmail_many` or a pool batch.

    Built directly, it carries :meth:`SMTP.sendmail`'s arguments; built with
    :meth:`message`, :meth:`SMTP.send_message`'s (envelope from the headers, Bcc removed).
    """

    from_addr: str | None
    to_addrs: str | Sequence[str] | None
    msg: object
    mail_options: Sequence[Param] = ()
    rcpt_options: Sequence[Param] = ()
    from_headers: bool = False

    def __post_init__(self) -> None:
        if not self.from_headers and (self.from_addr is None or self.to_addrs is None):
            raise TypeError("from_addr and to_addrs are required (or use Outgoing.message())")
        if self.from_headers and not isinstance(self.msg, email.message.Message):
            raise TypeError("Outgoing.message() takes an email.message.Message")

    @classmethod
    def message(
        cls,
        msg: email.message.Message,
        from_addr: str | None = None,
        to_addrs: str | Sequence[str] | None = None,
        mail_options: Sequence[Param] = (),
        rcpt_options: Sequence[Param] = (),
    ) -> Outgoing:
        """A message sent by :meth:`SMTP.send_message`'s rules."""
        return cls(from_addr, to_addrs, msg, mail_options, rcpt_options, from_headers=True)


@dataclass
class _Envelope:
    """An :class:`Outgoing` resolved against the connection: what actually goes out."""

    from_addr: str
    recipients: list[str]
    source: _source.MessageSource
    mail_options: list[Param]
    """As sent: SIZE=, SMTPUTF8 and BODY= added where they apply."""
    rcpt_options: Sequence[Param]
    verbatim: bool
    """The caller asked for BODY=BINARYMIME: BDAT only, bytes as given."""


@dataclass
class _Owed(Generic[_K]):
    """A message whose end of data is written (or about to be) and not yet answered."""

    key: _K
    progress: Progress
    recipients: list[str]
    refused: SendmailResult


async def send_batch(smtp: SMTP, items: Iterator[tuple[_K, Outgoing]], report: Report[_K]) -> None:
    """Send ``items`` in order on ``smtp``, calling ``report(key, result)`` for each.

    ``items`` is read lazily, one message at a time when the connection is ready for it,
    so a pool can hand over whatever is queued at that moment. A failure of the connection
    itself (or a cancellation) is raised after every message in flight was reported.
    """
    in_flight: dict[_K, Progress] = {}
    try:
        await _run(smtp, items, report, in_flight)
    except BaseException as exc:
        for key, progress in in_flight.items():
            report(key, _interrupted(exc, progress))
        raise


@exclusive
async def _run(
    smtp: SMTP,
    items: Iterator[tuple[_K, Outgoing]],
    report: Report[_K],
    in_flight: dict[_K, Progress],
) -> None:
    await smtp.ehlo_or_helo_if_needed()
    conn = smtp._require()[0]
    owed: _Owed[_K] | None = None
    unwritten = b""  # the owed message's last piece and end of data
    for key, item in items:
        progress = in_flight[key] = smtp._start_send()
        try:
            envelope = _resolve(smtp, item)
        except (TypeError, *_VERDICTS) as exc:  # bad input, found before any byte of it
            del in_flight[key]
            report(key, exc)
            continue
        try:
            if not _can_overlap(smtp, envelope):
                if owed is not None:
                    await smtp._write(unwritten)
                    unwritten = b""
                    await _settle(smtp, owed, 0, report, in_flight)
                    owed = None
                smtp._progress = progress
                report(
                    key,
                    await smtp._send_transaction(
                        envelope.from_addr,
                        envelope.recipients,
                        envelope.source,
                        envelope.mail_options,
                        envelope.rcpt_options,
                        verbatim=envelope.verbatim,
                    ),
                )
                del in_flight[key]
                continue
            commands = smtp._envelope(
                envelope.from_addr,
                envelope.recipients,
                envelope.mail_options,
                envelope.rcpt_options,
                Data(),
            )
            group = smtp._send_all(commands)
            await smtp._write(unwritten + group)
            unwritten = b""
            if owed is not None:
                await _settle(smtp, owed, len(commands), report, in_flight)
                owed = None
                if not smtp.is_connected:  # 421 at the end of the previous message
                    raise SMTPServerDisconnected("the server closed the connection (421)")
            smtp._progress = progress
            replies = await smtp._read_pending(conn)
            refused = await smtp._judge_pipelined(envelope.from_addr, envelope.recipients, replies)
            unwritten = await smtp._write_body(envelope.source)
            owed = _Owed(key, progress, envelope.recipients, refused)
        except _VERDICTS as exc:
            del in_flight[key]
            report(key, exc)
        if not smtp.is_connected:
            break
        if conn.state in (State.MAIL, State.RCPT):
            await smtp._rset()  # a refused DATA leaves the envelope open (as smtplib does)
        elif conn.state is not State.READY:
            await smtp._abort()  # out of step (a body cut short): never reuse it
            break
    if owed is not None:
        await smtp._write(unwritten)
        await _settle(smtp, owed, 0, report, in_flight)


async def _settle(
    smtp: SMTP, owed: _Owed[_K], leave: int, report: Report[_K], in_flight: dict[_K, Progress]
) -> None:
    """Read the owed message's replies (``leave`` later ones stay queued) and report it."""
    smtp._progress = owed.progress
    replies = await smtp._read_pending(smtp._require()[0], leave)
    try:
        result: SendmailResult | Exception = await smtp._finish(
            replies, owed.recipients, owed.refused, reset=False
        )
    except _VERDICTS as exc:
        result = exc
    del in_flight[owed.key]
    report(owed.key, result)


def _resolve(smtp: SMTP, item: Outgoing) -> _Envelope:
    """The envelope and body as sendmail (or send_message) would send them here."""
    from_addr, to_addrs, msg = item.from_addr, item.to_addrs, item.msg
    mail_options = list(item.mail_options)
    source: _source.MessageSource
    if item.from_headers:
        assert isinstance(msg, email.message.Message)  # noqa: S101 - checked on construction
        prepared = prepare_message(
            msg, from_addr, to_addrs, smtputf8_supported=smtp.has_extn("smtputf8")
        )
        from_addr, to_addrs, source = prepared.from_addr, prepared.to_addrs, prepared.data
        mail_options.extend(prepared.mail_options)
        eight_bit = prepared.eight_bit
    else:
        source = _source.to_source(msg)
        eight_bit = _source.eight_bit(msg, source)
    assert from_addr is not None and to_addrs is not None  # noqa: S101 - checked on construction
    recipients = [to_addrs] if isinstance(to_addrs, str) else list(to_addrs)
    options = smtp._sendmail_options(source, from_addr, recipients, mail_options, eight_bit)
    verbatim = body_type(mail_options) == "BINARYMIME"
    return _Envelope(from_addr, recipients, source, options, item.rcpt_options, verbatim)


def _can_overlap(smtp: SMTP, envelope: _Envelope) -> bool:
    extensions = smtp._require()[0].extensions
    return bool(
        extensions
        and extensions.pipelining
        and not (extensions.chunking and smtp.use_chunking)
        and not envelope.verbatim  # BDAT only (RFC 3030 §3)
        and 0 < len(envelope.recipients) < _MAX_OVERLAPPED_ENVELOPE
    )


def _interrupted(exc: BaseException, progress: Progress) -> Exception:
    """The exception for one message in flight when the connection failed with ``exc``."""
    outcome = progress.outcome()
    new: Exception
    if isinstance(exc, (SMTPTransactionTimeout, TimeoutError)):
        new = SMTPTransactionTimeout(f"timed out during a send: {exc}", outcome)
    elif isinstance(exc, SMTPProtocolError):
        new = SMTPProtocolError(str(exc), outcome)
    elif isinstance(exc, anyio.get_cancelled_exc_class()):
        new = SMTPTransactionInterrupted("the connection's task was cancelled", outcome)
    else:
        new = SMTPTransactionInterrupted(str(exc) or type(exc).__name__, outcome)
    new.__cause__ = exc
    return new
