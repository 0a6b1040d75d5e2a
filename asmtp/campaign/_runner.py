"""The campaign: rows and a template in, a message per row out through a pool, all journaled.

Built on :meth:`asmtp.SMTPPool.send_each`, whose ``on_start`` hook marks each row in flight
(committed) before the first byte of its message is written. Stopping is the runner's: a
stop takes no further row and starts no further message, and lets those in flight finish
within ``grace`` seconds; an abort (or the end of the grace) cancels them at once. Either
way every message's outcome is in the journal when :meth:`Campaign.run` returns. The rows
already handed to the pool (at most its window) count as in flight: they are sent during
the grace period too.
"""

from __future__ import annotations

import itertools
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Final

import anyio

import asmtp

from . import _outcomes
from ._columns import check_columns
from ._errors import InputError, JournalError, RenderError
from ._identity import date_header, default_domain, message_id
from ._journal import Durability, Journal
from ._progress import Progress
from ._rows import Row, Rows
from ._template import Template

__all__ = ["Campaign", "Problem"]

_UNREACHABLE_IN_A_ROW: Final = 10
_UNKNOWN_LISTED: Final = 100


@dataclass(eq=False, slots=True)
class _Sending:
    """A row on its way: its id, its state before this run, whether a byte of it went out."""

    id: str
    before: str
    started: bool = False


@dataclass(frozen=True)
class Problem:
    """A row that cannot become a message (from :meth:`Campaign.check`)."""

    row: Row
    reason: str


class Campaign:
    """A message for every row, sent once: through stops, crashes and resumes.

    ``rows`` (:class:`Rows`) are rendered with ``template`` (:class:`Template`); ``journal``
    is the SQLite file recording every row's fate (created when missing). ``sender`` is
    the envelope sender (and ``From`` when the template has none); ``message_id_domain``
    the right-hand side of every Message-ID (default: the sender's domain), each of which
    is derived from the campaign and the row's id, so a row keeps its Message-ID across
    resumes and a receiver can tell a repeat. ``durability`` is the journal's
    (:class:`Journal`).
    """

    def __init__(
        self,
        rows: Rows,
        template: Template,
        journal: str | os.PathLike[str],
        *,
        sender: str | None = None,
        message_id_domain: str | None = None,
        durability: Durability = "process",
    ) -> None:
        self.rows = rows
        self.template = template
        self.journal_path = journal
        self.sender = sender
        self.message_id_domain = message_id_domain
        self.durability: Durability = durability
        self._stopping = False
        self._stop_reason: str | None = None
        self._grace = 30.0
        self._consuming: anyio.CancelScope | None = None
        self.server_error: BaseException | None = None
        """After a run stopped because the server could not be reached: the last error."""

    # -- stopping -----------------------------------------------------------------------

    def stop(self, reason: str = "stopped") -> None:
        """Take no further row; the rows in flight (handed to the pool) finish within the
        run's ``grace``. Safe to call from a signal handler's task, more than once."""
        if not self._stopping:
            self._stopping, self._stop_reason = True, reason
            if self._consuming is not None:
                self._give_grace(self._consuming)

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` (or :meth:`abort`) was called."""
        return self._stopping

    def abort(self, reason: str = "aborted") -> None:
        """Stop now: the messages in flight are cancelled (their outcome is recorded as far
        as it is known: ``unknown`` when the end of the data went out)."""
        self.stop(reason)
        if self._consuming is not None:
            self._consuming.cancel()

    def _give_grace(self, scope: anyio.CancelScope) -> None:
        scope.deadline = min(scope.deadline, anyio.current_time() + self._grace)

    # -- checking without sending -------------------------------------------------------

    def check(self) -> Iterator[Problem]:
        """Render every row without sending or writing the journal; yield the rows that
        cannot become a message. Raises :class:`InputError` or :class:`TemplateError`
        when the rows or the template cannot be used at all."""
        self._check_columns()
        domain = self.message_id_domain or self._default_domain()
        for row in self.rows:
            reason = self._problem(row, domain)
            if reason is not None:
                yield Problem(row, reason)

    def _problem(self, row: Row, domain: str) -> str | None:
        try:
            self._render(row, "check", domain)
        except RenderError as exc:
            return str(exc)
        return None

    # -- running ------------------------------------------------------------------------

    async def run(
        self,
        pool: asmtp.SMTPPool,
        *,
        resume: bool = False,
        force: bool = False,
        resend_unknown: bool = False,
        grace: float = 30.0,
        on_progress: Callable[[Progress], object] | None = None,
        progress_interval: float = 0.5,
    ) -> Progress:
        """Send every row not yet done through ``pool``; return where the campaign stands.

        A journal holding this campaign already is resumed only with ``resume=True``:
        accepted and refused rows are skipped, failed ones tried again, ``unknown`` ones
        (which may have arrived) left alone unless ``resend_unknown``. A journal of
        another input, template or sender raises :class:`JournalMismatch` unless
        ``force``. ``on_progress`` is called every ``progress_interval`` seconds and at
        the end. :meth:`stop` ends the run early, leaving ``grace`` seconds to the
        messages in flight. Raises :class:`CampaignError` subclasses before anything is
        sent, and what :meth:`asmtp.SMTPPool.connect` raises when the server cannot be reached.
        """
        self._grace = grace
        journal = Journal(self.journal_path, durability=self.durability)
        try:
            return await self._run(
                journal, pool, resume, force, resend_unknown, grace, on_progress, progress_interval
            )
        finally:
            journal.close()

    async def _run(
        self,
        journal: Journal,
        pool: asmtp.SMTPPool,
        resume: bool,
        force: bool,
        resend_unknown: bool,
        grace: float,
        on_progress: Callable[[Progress], object] | None,
        progress_interval: float,
    ) -> Progress:
        settings = self._open(journal, resume, force)
        recovered = journal.recover()
        todo = ("pending", "failed", "unknown") if resend_unknown else ("pending", "failed")
        tally = _Tally(journal.counts(), todo, recovered, on_progress, progress_interval)
        run = journal.start_run()
        how = "completed"
        try:
            if tally.to_send and not self._stopping:
                try:
                    await pool.connect()  # a wrong host, port, certificate or password: now
                except BaseException:
                    how = "server unavailable"
                    raise
                how = await self._send(journal, pool, settings, todo, tally)
            elif self._stopping:
                how = self._stop_reason or "stopped"
        except BaseException:
            how = "aborted" if how == "completed" else how
            raise
        finally:
            journal.commit()
            journal.end_run(run, how)
        unknown = tuple(
            r["id"] for r in itertools.islice(journal.rows(["unknown"]), _UNKNOWN_LISTED)
        )
        final = tally.snapshot(None if how == "completed" else how, unknown)
        if on_progress is not None:
            on_progress(final)
        return final

    def _open(self, journal: Journal, resume: bool, force: bool) -> dict[str, object]:
        """Check the journal against this campaign (or set it up); its settings."""
        definition: dict[str, object] = {
            "input": self.rows.digest(),
            "rows": self.rows.settings(),
            "template": self.template.digest,
            "sender": self.sender,
        }
        kept = journal.settings()
        if kept:
            if not resume:
                raise JournalError(
                    f"{journal.path} holds a campaign already: resume it (resume=True; on the "
                    "command line, run the same command again) or use a new journal"
                )
            changed = journal.check_definition(definition, force=force)
            if {"input", "rows"} & set(changed):
                self._check_columns()
                journal.add_rows(self._row_keys())
            journal.save_settings(definition)
            return {**kept, **definition}
        self._check_columns()
        journal.add_rows(self._row_keys())
        settings = {
            **definition,
            "campaign": secrets.token_hex(8),
            "message_id_domain": self.message_id_domain or self._default_domain(),
            "created": time.time(),
        }
        journal.save_settings(settings)
        return settings

    def _row_keys(self) -> Iterator[tuple[str, int, str | None]]:
        column = self.rows.recipient_column
        for row in self.rows:
            recipient = row.fields.get(column)
            yield row.id, row.line, None if recipient is None else str(recipient)

    def _check_columns(self) -> None:
        check_columns(self.rows, self.template)

    def _default_domain(self) -> str:
        return default_domain(self.sender, self.template)

    def _render(self, row: Row, campaign: str, domain: str) -> asmtp.Outgoing:
        recipient = row.fields.get(self.rows.recipient_column)
        return self.template.render(
            row.fields,
            message_id=message_id(campaign, row.id, domain),
            sender=self.sender,
            recipient=None if recipient is None else str(recipient),
            date=date_header(),
        )

    async def _send(
        self,
        journal: Journal,
        pool: asmtp.SMTPPool,
        settings: dict[str, object],
        todo: tuple[str, ...],
        tally: _Tally,
    ) -> str:
        campaign, domain = str(settings["campaign"]), str(settings["message_id_domain"])
        unreachable = 0
        fresh = tally.counts["pending"] == tally.total

        async def messages() -> AsyncIterator[tuple[_Sending, asmtp.Outgoing]]:
            for number, row in enumerate(self.rows):
                if self._stopping:
                    return
                if number % 512 == 511:
                    await anyio.lowlevel.checkpoint()  # a long run of rows already done
                # A first run needs no look-up: every row is pending.
                before = "pending" if fresh else journal.state(row.id)
                if before is None:
                    raise InputError(f"{self.rows.path} changed while the campaign ran")
                if before not in todo:
                    continue
                try:
                    outgoing = self._render(row, campaign, domain)
                except RenderError as exc:
                    journal.record(row.id, "failed", error=f"cannot render: {exc}")
                    tally.moved(before, "failed")
                    continue
                yield _Sending(row.id, before), outgoing

        def on_start(sending: _Sending) -> None:
            # Never raises, not even once stopping: a hook failure inside a pool's batch
            # abandons the message before it, whose end of data is then unknown.
            journal.mark_in_flight(sending.id)
            if not sending.started:
                sending.started = True
                tally.in_flight += 1

        def record(sending: _Sending, outcome: asmtp.SendOutcome) -> None:
            nonlocal unreachable
            if sending.started:
                tally.in_flight -= 1
            if not sending.started and outcome.accepted is False and self._stopping:
                return  # cancelled before its first byte: the row is as it was
            found = _outcomes.verdict(outcome)
            journal.record(
                sending.id,
                found.state,
                code=found.code,
                reply=found.reply,
                recipients=found.recipients,
                error=found.error,
            )
            tally.moved(sending.before, found.state)
            unreachable = unreachable + 1 if _outcomes.unreachable(outcome) else 0
            if unreachable >= _UNREACHABLE_IN_A_ROW and not self._stopping:
                self.server_error = outcome.error
                self.stop("server unavailable")

        stream = pool.send_each(messages(), on_start=on_start, grace=0)
        try:
            async with stream as results:
                with anyio.CancelScope() as self._consuming:
                    if self._stopping:
                        self._give_grace(self._consuming)
                    async for sending, outcome in results:
                        record(sending, outcome)
        finally:
            self._consuming = None
            for sending, outcome in stream.unreported:  # cut short: what is known of them
                record(sending, outcome)
        return self._stop_reason if self._stopping and self._stop_reason else "completed"


class _Tally:
    """The counts shown while a run goes on: from the journal at the start, then moved
    with each outcome (no query per row)."""

    def __init__(
        self,
        counts: dict[str, int],
        todo: tuple[str, ...],
        recovered: int,
        on_progress: Callable[[Progress], object] | None,
        interval: float,
    ) -> None:
        self.counts = counts
        self.total = sum(counts.values())
        self.to_send = sum(counts[state] for state in todo)
        self.recovered = recovered
        self.in_flight = 0
        self.sent = 0
        self.began = time.monotonic()
        self._on_progress = on_progress
        self._interval = interval
        self._next = self.began + interval

    def moved(self, before: str, after: str) -> None:
        self.counts[before] -= 1
        self.counts[after] += 1
        self.sent += 1
        if self._on_progress is not None and time.monotonic() >= self._next:
            self._next = time.monotonic() + self._interval
            self._on_progress(self.snapshot())

    def snapshot(self, stopped: str | None = None, unknown: tuple[str, ...] = ()) -> Progress:
        counts = self.counts
        progress = Progress(
            total=self.total,
            pending=counts["pending"],
            in_flight=self.in_flight,
            accepted=counts["accepted"],
            refused=counts["refused"],
            failed=counts["failed"],
            unknown=counts["unknown"],
            to_send=self.to_send,
            sent=self.sent,
            elapsed=time.monotonic() - self.began,
            stopped=stopped,
            recovered=self.recovered,
            unknown_rows=unknown,
        )
        return progress
