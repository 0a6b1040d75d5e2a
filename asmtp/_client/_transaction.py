"""The mail transaction: MAIL, RCPT and the body, by the fastest way the server allows.

Owns every strategy for one message and smtplib's verdict on its replies:

- lock-step, smtplib's own sequence, when the server has no PIPELINING;
- pipelined (RFC 2920): MAIL, every RCPT and DATA in one write, the body in a second;
- chunked (RFC 3030): with PIPELINING the envelope and the first BDAT chunk share one
  write, so a message that fits one chunk costs one round trip.

Which exception is raised when, and when RSET follows, is smtplib's. Several messages
overlapped on one connection are in ``_overlap``, built from the pieces here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Final

from .._frozen import maker
from .._results import SendResult
from ..errors import (
    SMTPDataError,
    SMTPRecipientsRefused,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from ..protocol import Bdat, Command, Data, EndOfData, MessageData, Quit, Reply, State
from . import _source
from ._commands import ehlo_or_helo_if_needed, rset_quietly
from ._envelope import BY_BDAT, Envelope, Outgoing, check_arguments, resolve
from ._progress import Progress
from ._session import Session
from ._upload import OnProgress, Upload

__all__ = [
    "PIPELINE_GROUP",
    "Refused",
    "after_failure",
    "conclude",
    "in_transaction",
    "pipelined_refusals",
    "send",
    "transact",
    "write_body",
]

Refused = dict[str, tuple[int, bytes]]

# Enum members read for every message, as module names: on Python 3.11 each `State.READY`
# is a call to EnumType.__getattr__.
_CLOSED: Final = State.CLOSED
_OPEN_ENVELOPE: Final = (State.MAIL, State.RCPT)

# Commands without arguments are values: one of each serves every message, made once.
_END_OF_DATA: Final = EndOfData()
_QUIT: Final = Quit()
# The body's one piece, made as the envelope's commands are (MessageData is frozen).
_message_data: Final[Callable[[bytes], MessageData]] = maker(MessageData)

# RFC 2920 §3.1 allows any group size, but a bounded group keeps the server's replies within
# its socket buffer so neither side blocks writing while the other is not reading.
PIPELINE_GROUP: Final = 500
# BDAT chunks written before their replies are read: bounds the replies queued unread.
_CHUNKS_IN_FLIGHT: Final = 32
# A body's last piece up to this size goes out in one write with the end of the data.
_JOIN_LIMIT: Final = 16 * 1024


async def send(
    session: Session,
    item: Outgoing,
    *,
    deadline: float | None = None,
    on_start: Callable[[], object] | None = None,
    quit_after: bool = False,
    on_progress: OnProgress | None = None,
) -> SendResult:
    """Send one message on ``session``: EHLO if needed, then one whole transaction.

    ``deadline`` bounds the whole send in seconds; ``on_start`` is called just before the
    first byte of the message is written (after EHLO, and only if its envelope resolved).
    ``quit_after`` ends the session: with PIPELINING, QUIT goes out with the end of the
    data (RFC 2920 §3.1 lets it end a group), a round trip saved for one-shot sends.
    ``on_progress(sent, total)`` is told how much of the body went out (``_upload``).
    """
    with session.deadlines.send(deadline):
        progress = session.start_send(on_start)
        if on_progress is not None:
            progress.upload = Upload(on_progress)
        await ehlo_or_helo_if_needed(session)
        return await transact(
            session, await resolve(session, item), progress, quit_after=quit_after
        )


async def transact(
    session: Session, envelope: Envelope, progress: Progress, *, quit_after: bool = False
) -> SendResult:
    """One whole transaction for a resolved envelope, its replies all read before it returns."""
    progress.addresses = envelope.addresses()
    progress.starting()
    if progress.upload is not None:
        progress.upload.begin(envelope.source)
    extensions = session.extensions
    pipelining = bool(extensions is not None and extensions.pipelining and envelope.rcpts)
    if envelope.framing is BY_BDAT:
        return await _chunked(session, envelope, progress, pipelining=pipelining)
    if pipelining:
        # RFC 2920 §3.1: MAIL, the RCPTs and DATA form one group, DATA last.
        replies = await _send_group(session, envelope.data_group())
        refused = await pipelined_refusals(session, envelope, replies)
    else:
        refused = await _lockstep_envelope(session, envelope)
        reply = await session.exchange(Data())
        if reply.code != 354:
            raise SMTPDataError(reply.code, reply.message)
    end = await write_body(session, envelope.source, progress)
    if not (quit_after and pipelining):
        await session.write(end)
        _uploaded(progress)
        return await conclude(session, envelope, progress, await session.read_pending(), refused)
    await session.write(end + session.send(_QUIT))
    _uploaded(progress)
    # The verdict first: a server that closes without its 221 has still answered the data.
    replies = await session.read_pending(leave=1)
    result = await conclude(session, envelope, progress, replies, refused, reset=False)
    await _goodbye(session)
    return result


def _uploaded(progress: Progress) -> None:
    if progress.upload is not None:
        progress.upload.done()


async def _goodbye(session: Session) -> None:
    """Read the reply to a pipelined QUIT, if it comes, and close."""
    try:
        await session.read_pending()
    except (SMTPServerDisconnected, OSError):
        pass
    finally:
        await session.close()


# -- the envelope ---------------------------------------------------------------------


async def _send_group(session: Session, commands: list[Command]) -> list[Reply]:
    """Write pipelined commands in bounded groups and read every reply."""
    replies: list[Reply] = []
    if len(commands) > PIPELINE_GROUP:
        check_arguments(commands)  # later groups must not fail after earlier ones went out
    for start in range(0, len(commands), PIPELINE_GROUP):
        await session.write(session.send_all(commands[start : start + PIPELINE_GROUP]))
        replies += await session.read_pending()
        if session.state is _CLOSED or replies[0].code != 250:
            break
    return replies


async def _lockstep_envelope(session: Session, envelope: Envelope) -> Refused:
    """smtplib's own sequence: MAIL, then each RCPT, stopping at a 421."""
    check_arguments(envelope.commands())  # a bad last recipient fails before MAIL goes out
    reply = await session.exchange(envelope.mail)
    replies = [reply]
    if reply.code == 250:
        for rcpt in envelope.rcpts:
            reply = await session.exchange(rcpt)
            replies.append(reply)
            if reply.code == 421:
                break
    return await _envelope_refusals(session, envelope, replies, data_reply=None)


async def pipelined_refusals(session: Session, envelope: Envelope, replies: list[Reply]) -> Refused:
    """Verdict on a pipelined MAIL, RCPTs and DATA: the refused dict once DATA got 354."""
    count = len(envelope.rcpts) + 1
    data_reply = replies[count] if len(replies) > count else None
    refused = await _envelope_refusals(session, envelope, replies[:count], data_reply=data_reply)
    if data_reply is None:
        raise SMTPServerDisconnected("the server closed the connection before DATA")
    if data_reply.code != 354:
        raise SMTPDataError(data_reply.code, data_reply.message)
    return refused


async def _envelope_refusals(
    session: Session, envelope: Envelope, replies: list[Reply], *, data_reply: Reply | None
) -> Refused:
    """smtplib's verdict on the MAIL and RCPT replies; raises as smtplib does.

    ``data_reply`` answers a pipelined DATA: if the server opened a body the envelope
    cannot use, it is ended before RSET (RFC 2920 §3.1).
    """
    mail_reply, rcpt_replies = replies[0], replies[1:]
    if mail_reply.code != 250:
        await _abandon_body(session, data_reply)
        await after_failure(session, mail_reply.code)
        raise SMTPSenderRefused(mail_reply.code, mail_reply.message, envelope.sender)
    refused: Refused = {}
    for each, reply in zip(envelope.recipients, rcpt_replies, strict=False):
        if reply.code not in (250, 251):
            refused[each] = (reply.code, reply.message)
        if reply.code == 421:
            await session.close()
            raise SMTPRecipientsRefused(refused)
    if session.progress is not None:
        session.progress.envelope_judged(envelope.recipients, refused)
    if len(refused) == len(envelope.recipients):
        await _abandon_body(session, data_reply)
        await rset_quietly(session)
        raise SMTPRecipientsRefused(refused)
    return refused


async def _abandon_body(session: Session, data_reply: Reply | None) -> None:
    """End a body the server opened although the envelope failed (RFC 2920 §3.1)."""
    if data_reply is not None and data_reply.code == 354:
        await session.write(session.send(_END_OF_DATA))
        await session.read_pending()


async def after_failure(session: Session, code: int) -> None:
    """smtplib's clean-up after a refusal: close on 421, otherwise RSET."""
    if code == 421:
        await session.close()
    else:
        await rset_quietly(session)


# -- the body -------------------------------------------------------------------------


async def write_body(session: Session, source: _source.MessageSource, progress: Progress) -> bytes:
    """Stream the body after 354 but for its last piece and the end, which are returned.

    The caller writes them, alone or followed by the next transaction (RFC 2920 §3.1).
    From the moment they exist the server may accept the message even if we never see its
    reply, so the send counts as having sent its end.
    """
    progress.body_started = True
    upload = progress.upload
    if source.__class__ is bytes and len(source) <= _source.CHUNK_SIZE:
        last = session.send(_message_data(source))  # one piece: no chunk iterator
        if upload is not None:
            upload.last(len(source))
    else:
        last = b""
        with session.deadlines.bounded("sending the message", per_step=False):
            async with contextlib.aclosing(_source.pieces(source)) as pieces:
                async for piece, is_last in pieces:
                    encoded = session.send(MessageData(piece))
                    if is_last:
                        last = encoded
                        if upload is not None:
                            upload.last(len(piece))
                        continue
                    if encoded:
                        await session.write(encoded)
                    if upload is not None:
                        upload.wrote(len(piece))
    if len(last) > _JOIN_LIMIT:
        # Not copied onto the end: a copy this size per message makes the C heap grow and
        # shrink (page faults) under many connections; one more write costs less.
        await session.write(last)
        last = b""
    end = session.send(_END_OF_DATA)
    progress.end_sent = True
    return last + end


async def _chunked(
    session: Session, envelope: Envelope, progress: Progress, *, pipelining: bool
) -> SendResult:
    """The body as BDAT chunks, the last marked LAST (RFC 3030).

    With PIPELINING the envelope and the first chunk share one write and replies are read
    as they are owed; without it, lock-step. After a refused chunk no further chunk is
    sent (RFC 3030 §4.2).
    """
    refused: Refused = {}
    envelope_count = 0
    unsent = b""
    if pipelining:
        commands = envelope.commands()
        envelope_count = len(commands)
        unsent = session.send_all(commands)
    else:
        refused = await _lockstep_envelope(session, envelope)
    replies: list[Reply] = []
    progress.body_started = True
    ended = await _write_chunks(session, envelope.source, progress, unsent, replies, envelope_count)
    replies += await session.read_pending()
    if envelope_count:
        envelope_replies = replies[:envelope_count]
        refused = await _envelope_refusals(session, envelope, envelope_replies, data_reply=None)
    body_replies = replies[envelope_count:]
    refusal = next((r for r in body_replies if not r.is_positive and not _is_last(r)), None)
    if refusal is not None or not ended:
        reply = refusal or body_replies[-1]
        await after_failure(session, reply.code)
        raise SMTPDataError(reply.code, reply.message)
    last_replies = [r for r in body_replies if _is_last(r)]
    return await conclude(session, envelope, progress, last_replies, refused)


async def _write_chunks(
    session: Session,
    source: _source.MessageSource,
    progress: Progress,
    unsent: bytes,
    replies: list[Reply],
    envelope_count: int,
) -> bool:
    """Write the body as BDAT chunks after ``unsent`` (the pipelined envelope of
    ``envelope_count`` commands, if any), collecting replies as they are owed; False if a
    refusal stopped it before the last chunk.

    The core holds each chunk until more content follows, so a body that fits one chunk
    goes out as ``BDAT n LAST`` in the same write as the envelope.
    """
    in_flight = _CHUNKS_IN_FLIGHT if envelope_count else 0
    upload = progress.upload
    held = 0  # the core holds the latest chunk until it knows whether it is the last
    if isinstance(source, bytes) and len(source) <= _source.CHUNK_SIZE:
        session.send(Bdat(source))  # held by the core until the last chunk below
        held = len(source)
    else:
        with session.deadlines.bounded("sending the message", per_step=False):
            async with contextlib.aclosing(_source.chunks(source)) as stream:
                async for piece in stream:
                    chunk = session.send(Bdat(piece))
                    written, held = held, held + len(piece)
                    if not chunk:
                        continue
                    await session.write(unsent + chunk)
                    unsent = b""
                    held -= written
                    if upload is not None:
                        upload.wrote(written)
                    # A refusal already in stops the body at once (RFC 3030 §4.2); beyond
                    # the window, wait for the replies owed.
                    replies += await session.replies_arrived()
                    while session.pending_count > in_flight:
                        replies.append(await session.reply())
                    if _chunking_refused(replies, envelope_count):
                        return False
    last = session.send(Bdat(b"", last=True))
    progress.end_sent = True
    await session.write(unsent + last)
    if upload is not None:
        upload.last(held)
        upload.done()
    return True


def _chunking_refused(replies: list[Reply], envelope_count: int) -> bool:
    """MAIL refused, or any chunk refused: no further chunk may be sent (RFC 3030 §4.2)."""
    if envelope_count and replies and replies[0].code != 250:
        return True
    return any(not reply.is_positive for reply in replies[envelope_count:])


def _is_last(reply: Reply) -> bool:
    return isinstance(reply.command, Bdat) and reply.command.last


# -- the end of the data --------------------------------------------------------------


async def conclude(
    session: Session,
    envelope: Envelope,
    progress: Progress,
    replies: list[Reply],
    refused: Refused,
    *,
    reset: bool = True,
) -> SendResult:
    """Judge the replies to the end of the data: SMTP has one, LMTP one per recipient.

    ``reset=False`` skips smtplib's RSET after a refusal: the end of the data closes the
    transaction either way (RFC 5321 §4.1.1.4), and with the next transaction already on
    the wire an RSET would land in the middle of it.
    """
    if session.lmtp:
        return await _conclude_lmtp(session, envelope, progress, replies, refused)
    reply = replies[-1]
    progress.finish(reply.code == 250, (reply.code, reply.message))
    if reply.code != 250:
        if reset or reply.code == 421:
            await after_failure(session, reply.code)
        raise SMTPDataError(reply.code, reply.message)
    return SendResult(progress.outcome())


async def _conclude_lmtp(
    session: Session,
    envelope: Envelope,
    progress: Progress,
    replies: list[Reply],
    refused: Refused,
) -> SendResult:
    """RFC 2033 §4.2: one reply per accepted recipient, in RCPT order (never RSET)."""
    accepted = [each for each in envelope.recipients if each not in refused]
    answers = {
        each: (reply.code, reply.message) for each, reply in zip(accepted, replies, strict=False)
    }
    if len(replies) < len(accepted):
        # The server closed (421) before answering for everyone: not delivered as far as
        # we can tell, so those recipients are refused with the last reply.
        last = replies[-1]
        answers.update({each: (last.code, last.message) for each in accepted[len(replies) :]})
    for each, (code, message) in answers.items():
        if code not in (250, 251):
            refused[each] = (code, message)
    progress.envelope_judged(envelope.recipients, refused)
    final = replies[-1]
    progress.finish(
        any(200 <= code < 300 for code, _ in answers.values()),
        (final.code, final.message),
        answers,
    )
    if any(reply.code == 421 for reply in replies):
        await session.close()
    if len(refused) == len(envelope.recipients):
        raise SMTPRecipientsRefused(refused)
    return SendResult(progress.outcome())


def in_transaction(session: Session) -> bool:
    """True when an envelope is open on the server (a refused DATA leaves it open)."""
    return session.state in _OPEN_ENVELOPE
