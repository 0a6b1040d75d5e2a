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

Every message taken from the iterator is reported exactly once: its :class:`SendResult`,
or the exception :func:`~asmtp._client._transaction.send` would have raised for it. When
the connection fails, each message on the wire is reported with what became of it, and the
rest stay untaken.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from .._results import SendOutcome, SendResult
from ..errors import (
    SMTPNotSupportedError,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTransactionInterrupted,
)
from ..protocol import State
from ._commands import ehlo_or_helo_if_needed, rset_quietly
from ._envelope import BY_DATA, Envelope, Outgoing, resolve
from ._failures import message_failure
from ._hooks import SendWatch
from ._hooks import current as current_observer
from ._observed import watch_send
from ._progress import Progress
from ._session import Session
from ._transaction import (
    PIPELINE_GROUP,
    Refused,
    conclude,
    in_transaction,
    pipelined_refusals,
    transact,
    write_body,
)

__all__ = ["Report", "send_batch", "send_many"]

_K = TypeVar("_K")
Report = Callable[[_K, "SendResult | Exception"], None]

# What a single message can be refused with while the connection stays usable.
_VERDICTS: Final = (SMTPResponseException, SMTPRecipientsRefused, SMTPNotSupportedError, ValueError)
# Read for every message, as a module name: on Python 3.11 `State.READY` is a call to
# EnumType.__getattr__.
_READY: Final = State.READY


@dataclass
class _Unanswered(Generic[_K]):
    """A message whose end of data is written (or about to be) and not yet answered."""

    key: _K
    progress: Progress
    envelope: Envelope
    refused: Refused


async def send_many(session: Session, messages: Iterable[Outgoing]) -> list[SendResult | Exception]:
    """Send ``messages`` back to back; one result or exception per message, in order.

    A connection failure reports the messages on the wire with their outcome and those
    not begun as :class:`SMTPTransactionInterrupted` with ``accepted=False``.
    """
    items = list(messages)
    results: list[SendResult | Exception | None] = [None] * len(items)
    observer = current_observer()
    watches: dict[int, SendWatch] = {}

    def taken() -> Iterator[tuple[int, Outgoing]]:
        for index, item in enumerate(items):
            if observer is not None:
                watches[index] = watch_send(observer, session, item)
            yield index, item

    def report(index: int, result: SendResult | Exception) -> None:
        results[index] = result
        watch = watches.pop(index, None)
        if watch is not None:
            watch.finished(result, session.watch)

    reason = "the connection was closed first"
    try:
        await send_batch(session, taken(), report)
    except BaseException as exc:  # every message in flight is reported; say why the rest wait
        for watch in watches.values():  # taken, but cancelled before its first byte
            watch.finished(exc, session.watch)
        if not isinstance(exc, Exception):
            raise
        reason = str(exc) or type(exc).__name__
    not_begun = SendOutcome(accepted=False)
    final: list[SendResult | Exception] = []
    for index, result in enumerate(results):
        if result is None:
            result = SMTPTransactionInterrupted(f"not sent: {reason}", not_begun)
            if observer is not None:  # asked for and never sent: a failed send too
                watch_send(observer, session, items[index]).finished(result, None)
        final.append(result)
    return final


async def send_batch(
    session: Session,
    items: Iterator[tuple[_K, Outgoing]],
    report: Report[_K],
    on_start: Callable[[_K], object] | None = None,
) -> None:
    """Send ``items`` in order on ``session``, calling ``report(key, result)`` for each.

    ``items`` is read lazily, one message at a time when the connection is ready for it,
    so a pool can hand over whatever is queued at that moment. ``on_start(key)`` is called
    just before the first byte of each message is written. A failure of the connection
    itself (or a cancellation) is raised after every message in flight was reported.
    """
    in_flight: dict[_K, Progress] = {}
    try:
        await session.run(_run, session, items, report, in_flight, on_start)
    except BaseException as exc:
        for key, progress in in_flight.items():
            report(key, message_failure(exc, progress))
        raise


async def _run(
    session: Session,
    items: Iterator[tuple[_K, Outgoing]],
    report: Report[_K],
    in_flight: dict[_K, Progress],
    on_start: Callable[[_K], object] | None,
) -> None:
    await ehlo_or_helo_if_needed(session)
    unanswered: _Unanswered[_K] | None = None
    unwritten = b""  # the unanswered message's last piece and end of data
    for key, item in items:
        progress = in_flight[key] = session.start_send(
            None if on_start is None else functools.partial(on_start, key)
        )
        try:
            envelope = await resolve(session, item)
        except (TypeError, *_VERDICTS) as exc:  # bad input, found before any byte of it
            del in_flight[key]
            report(key, exc)
            continue
        try:
            if not _can_overlap(session, envelope):
                if unanswered is not None:
                    await session.write(unwritten)
                    unwritten = b""
                    await _conclude_unanswered(session, unanswered, 0, report, in_flight)
                    unanswered = None
                session.progress = progress
                report(key, await transact(session, envelope, progress))
                del in_flight[key]
                continue
            progress.addresses = envelope.addresses()
            try:
                progress.starting()
            except Exception:
                # The hook refused this message: the one before it still ends and is
                # answered, so its outcome is known rather than reported as unknown.
                if unanswered is not None:
                    await session.write(unwritten)
                    unwritten = b""
                    await _conclude_unanswered(session, unanswered, 0, report, in_flight)
                    unanswered = None
                raise
            commands = envelope.data_group()
            await session.write(unwritten + session.send_all(commands))
            unwritten = b""
            if unanswered is not None:
                await _conclude_unanswered(session, unanswered, len(commands), report, in_flight)
                unanswered = None
                if not session.is_connected:  # 421 at the end of the previous message
                    raise SMTPServerDisconnected("the server closed the connection (421)")
            session.progress = progress
            refused = await pipelined_refusals(session, envelope, await session.read_pending())
            unwritten = await write_body(session, envelope.source, progress)
            unanswered = _Unanswered(key, progress, envelope, refused)
        except _VERDICTS as exc:
            del in_flight[key]
            report(key, exc)
        if not session.is_connected:
            break
        if in_transaction(session):
            await rset_quietly(session)  # a refused DATA leaves the envelope open, as smtplib
        elif session.state is not _READY:
            await session.abort()  # out of step (a body cut short): never reuse it
            break
    if unanswered is not None:
        await session.write(unwritten)
        await _conclude_unanswered(session, unanswered, 0, report, in_flight)


async def _conclude_unanswered(
    session: Session,
    message: _Unanswered[_K],
    leave: int,
    report: Report[_K],
    in_flight: dict[_K, Progress],
) -> None:
    """Read the message's replies (``leave`` later ones stay queued) and report it."""
    session.progress = message.progress
    replies = await session.read_pending(leave)
    try:
        result: SendResult | Exception = await conclude(
            session, message.envelope, message.progress, replies, message.refused, reset=False
        )
    except _VERDICTS as exc:
        result = exc
    del in_flight[message.key]
    report(message.key, result)


def _can_overlap(session: Session, envelope: Envelope) -> bool:
    extensions = session.extensions
    return bool(
        extensions
        and extensions.pipelining
        and envelope.framing is BY_DATA
        and 0 < len(envelope.rcpts) < PIPELINE_GROUP  # larger groups go out alone
    )
