"""The producer: a campaign's rows and template become jobs on the stream, once each.

The campaign's definition (template source, sender, Message-ID domain, rate) goes to
Redis first, so every worker renders the same message; then the rows go in batches, each
batch's rows made pending together with the job that carries them (one Lua script). A row
Redis knows already is left out, unless its state is one to retry (``failed``, and
``unknown`` when the campaign resends them): running the producer again enqueues only
what is missing or to be tried again.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from .._columns import check_columns
from .._errors import JournalMismatch
from .._identity import default_domain
from .._rows import Row, Rows
from .._template import Template
from ._journal import RedisJournal
from ._queue import STREAM, job_payload

__all__ = ["Enqueued", "enqueue"]

_RACES: Final = 5  # looks again when another producer enqueued some rows meanwhile


@dataclass(frozen=True)
class Enqueued:
    """What :func:`enqueue` did: rows made pending now, rows left as they were, jobs added."""

    enqueued: int
    skipped: int
    jobs: int


async def enqueue(
    journal: RedisJournal,
    rows: Rows,
    template: Template,
    *,
    sender: str | None = None,
    message_id_domain: str | None = None,
    rate: float | None = None,
    resend_unknown: bool = False,
    batch_size: int = 100,
    stream: str = STREAM,
    force: bool = False,
) -> Enqueued:
    """Put campaign ``journal.name``'s rows on ``stream``: each row not yet enqueued (or
    ``failed``, or ``unknown`` with ``resend_unknown``) once, ``batch_size`` rows a job.

    ``rate`` caps the messages per second of all workers together. A campaign already
    defined with another template, rows or sender raises :class:`~asmtp.campaign.JournalMismatch` unless
    ``force``; the rows and template raise what :class:`~asmtp.campaign.Campaign` raises.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if rate is not None and not rate > 0:
        raise ValueError(f"rate must be more than 0 per second, not {rate!r}")
    check_columns(rows, template)
    wanted = {
        "campaign": secrets.token_hex(8),
        "template": template.source.decode("latin-1"),
        "template_name": template.name,
        "attachments": [str(path) for path in template.attachments],
        "digest": template.digest,
        "sender": sender,
        "message_id_domain": message_id_domain or default_domain(sender, template),
        "recipient_column": rows.recipient_column,
        "created": time.time(),
    }
    kept = await journal.define(wanted)
    changed = [key for key in ("digest", "sender", "recipient_column") if kept[key] != wanted[key]]
    if changed and not force:
        raise JournalMismatch(
            f"campaign {journal.name!r} was defined with another {', '.join(changed)}: "
            "enqueueing would send something else to some rows (force it, or name a new campaign)"
        )
    if changed:
        await journal.update(
            {key: wanted[key] for key in changed} | {"template": wanted["template"]}
        )
    await journal.update({"rate": rate, "resend_unknown": resend_unknown})
    retry = ("failed", "unknown") if resend_unknown else ("failed",)
    enqueued = skipped = jobs = 0
    for batch in _batches(rows, batch_size):
        for _ in range(_RACES):
            states = await journal.states([row.id for row in batch])
            todo = [
                row for row, state in zip(batch, states, strict=True) if state in (None, *retry)
            ]
            if not todo:
                break
            payload = job_payload(journal.name, secrets.token_hex(6), [_job_row(r) for r in todo])
            keys = [(row.id, row.line, _recipient(row, rows.recipient_column)) for row in todo]
            if await journal.enqueue(stream, payload, keys, retry=retry):
                enqueued, jobs = enqueued + len(todo), jobs + 1
                break
        else:
            todo = []
        skipped += len(batch) - len(todo)
    return Enqueued(enqueued, skipped, jobs)


def _batches(rows: Rows, size: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _job_row(row: Row) -> dict[str, Any]:
    return {"id": row.id, "line": row.line, "fields": dict(row.fields)}


def _recipient(row: Row, column: str) -> str | None:
    value = row.fields.get(column)
    return None if value is None else str(value)
