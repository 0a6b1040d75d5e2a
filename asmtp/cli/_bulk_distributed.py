"""``asmtp bulk enqueue``, ``asmtp bulk worker`` and the distributed ``bulk report``.

A distributed campaign's rows go to a Redis stream as jobs (``enqueue``), taskiq worker
processes send them (``worker`` runs ``taskiq worker`` on
:mod:`asmtp.campaign.distributed.app`), and its journal is in Redis (``report --redis``).
These need the ``taskiq`` extra; without it they say so (exit 2).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
import click

from asmtp.campaign import CampaignError

from ._bulk_display import counts_table, print_table, write_csv
from ._bulk_options import campaign_input, campaign_options, parse_rate
from ._common import ConnectionFailure, ExitCode, UsageFailure

__all__ = ["distributed_report", "enqueue_command", "worker_command"]

_REDIS = click.option(
    "--redis",
    "redis_url",
    required=True,
    metavar="URL",
    help="The Redis holding the queue and the journal (redis://host:port/db).",
)


def _distributed() -> Any:
    """:mod:`asmtp.campaign.distributed`, imported when a command needs it."""
    try:
        from asmtp.campaign import distributed
    except ImportError as exc:
        raise UsageFailure(
            f"distributed campaigns need taskiq and taskiq-redis: pip install 'asmtp[taskiq]' ({exc})"
        ) from exc
    return distributed


def _redis_failure(exc: Exception, url: str) -> ConnectionFailure:
    return ConnectionFailure(f"cannot reach Redis at {url}: {exc}")


@click.command("enqueue")
@campaign_options
@_REDIS
@click.option("--campaign", required=True, metavar="NAME", help="The campaign's name in Redis.")
@click.option(
    "--rate",
    callback=parse_rate,
    metavar="R[/s]",
    help="At most R messages per second, all workers together.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Rows per job.",
)
@click.option(
    "--stream", metavar="KEY", help="The Redis stream of jobs.  [default: asmtp:campaigns]"
)
def enqueue_command(**options: Any) -> int:
    """Put every row of --rows on the queue for 'asmtp bulk worker' processes.

    \b
    Run it again to enqueue only what is missing: rows already enqueued are
    left alone, failed ones (and unknown ones with --resend-unknown) go again.
    \b
    Exit status: 0 done; 2 bad input, template, or another campaign of that
    name; 3 Redis cannot be reached.
    """
    distributed = _distributed()
    rows, template, sender = campaign_input(options)
    url = options["redis_url"]

    async def run() -> Any:
        client = distributed.redis_client(url, patience=2)
        try:
            return await distributed.enqueue(
                distributed.RedisJournal(client, options["campaign"]),
                rows,
                template,
                sender=sender,
                message_id_domain=options["message_id_domain"],
                rate=options["rate"],
                resend_unknown=options["resend_unknown"],
                batch_size=options["batch_size"],
                stream=options["stream"] or distributed.STREAM,
                force=options["force"],
            )
        finally:
            await client.aclose()

    try:
        done = anyio.run(run)
    except CampaignError as exc:
        raise UsageFailure(str(exc)) from exc
    except distributed.RedisError as exc:
        raise _redis_failure(exc, url) from exc
    click.echo(
        f"enqueued {done.enqueued} row(s) in {done.jobs} job(s); "
        f"{done.skipped} left as they were (already enqueued or done)"
    )
    return ExitCode.OK


@click.command("worker", context_settings={"ignore_unknown_options": True})
@_REDIS
@click.option(
    "--smtp",
    "smtp_url",
    required=True,
    metavar="URL",
    help="The SMTP server: smtp://, smtp+starttls:// or smtps://[user:password@]host[:port].",
)
@click.option(
    "--connections",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Connections per worker process.",
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes.",
)
@click.argument("taskiq_args", nargs=-1, type=click.UNPROCESSED)
def worker_command(
    redis_url: str, smtp_url: str, connections: int, processes: int, taskiq_args: tuple[str, ...]
) -> None:
    """Send the jobs of every campaign on the queue, until stopped (Ctrl-C, SIGTERM).

    Runs 'taskiq worker asmtp.campaign.distributed.app:broker' with the
    settings in its environment; arguments after -- go to taskiq.
    """
    _distributed()
    os.environ.update(
        {
            "ASMTP_REDIS_URL": redis_url,
            "ASMTP_SMTP_URL": smtp_url,
            "ASMTP_CONNECTIONS": str(connections),
        }
    )
    argv = [
        sys.executable,
        "-m",
        "taskiq",
        "worker",
        "asmtp.campaign.distributed.app:broker",
        *("--workers", str(processes), "--max-async-tasks", "2"),
        *taskiq_args,
    ]
    os.execv(sys.executable, argv)  # noqa: S606 - our interpreter, taskiq's own command line


def distributed_report(url: str, campaign: str, csv_file: Path | None) -> dict[str, int]:
    """Print the counts of campaign ``campaign`` in Redis (or its rows as CSV); the counts."""
    distributed = _distributed()

    async def run() -> tuple[dict[str, Any], dict[str, int], list[dict[str, Any]] | None]:
        client = distributed.redis_client(url, patience=2)
        try:
            journal = distributed.RedisJournal(client, campaign)
            definition = await journal.definition()
            counts = await journal.counts()
            records = await journal.rows() if csv_file is not None and definition else None
            return definition, counts, records
        finally:
            await client.aclose()

    try:
        definition, counts, records = anyio.run(run)
    except CampaignError as exc:
        raise UsageFailure(str(exc)) from exc
    except distributed.RedisError as exc:
        raise _redis_failure(exc, url) from exc
    if not definition:
        raise UsageFailure(f"no campaign {campaign!r} in Redis at {url}")
    if records is not None and csv_file is not None:
        write_csv(records, csv_file)
    else:
        print_table(counts_table(counts, f"campaign {campaign} ({url})"))
    return counts
