"""``asmtp bulk send`` and ``asmtp bulk report``: a campaign from the shell, and its outcome.

``send`` runs :class:`asmtp.campaign.Campaign` through an :class:`asmtp.SMTPPool` built
from the same server options as ``asmtp send``; running it again resumes. Ctrl-C or
SIGTERM stops taking rows and lets the messages in flight finish (``--grace``); a second
one stops at once. Either way the journal says what became of every row.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import click

import asmtp
from asmtp.campaign import Campaign, CampaignError, Journal, Progress

from ._bulk_display import Display, counts_table, listed, print_table, summary_line, when, write_csv
from ._bulk_distributed import distributed_report, enqueue_command, worker_command
from ._bulk_options import campaign_input, campaign_options, parse_rate
from ._common import ConnectionFailure, ExitCode, SubGroup, UsageFailure
from ._deliver import Server, failure
from ._server_options import server_from, server_options

__all__ = ["bulk_group"]

_FILE = click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)


@click.group("bulk", cls=SubGroup)
def bulk_group() -> None:
    """Send a message to every row of a list, journaled, and report on it."""


@bulk_group.command("send")
@campaign_options
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    metavar="FILE",
    help="The SQLite journal; run the same command again to resume.",
)
@click.option(
    "--connections",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Connections open at once.",
)
@click.option("--rate", callback=parse_rate, metavar="R[/s]", help="At most R messages per second.")
@click.option(
    "--max-per-connection",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Messages per connection before it is renewed.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Tries per message while the server answers 4xx or the connection fails.",
)
@click.option("--dry-run", is_flag=True, help="Render every row and report problems; send nothing.")
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds the messages in flight get to finish after Ctrl-C or SIGTERM.",
)
@click.option(
    "--durability",
    type=click.Choice(["process", "power"]),
    default="process",
    show_default=True,
    help="process: the journal survives the process being killed; power: also a power cut (one fsync per message).",
)
@click.option(
    "-q", "--quiet", is_flag=True, help="No progress and no summary; the exit status tells."
)
@server_options
def send_command(**options: Any) -> int:
    """Send the template to every row of --rows, recording each outcome in --journal.

    \b
    Run it again to resume: accepted and refused rows are skipped, failed
    ones tried again, unknown ones (which may have arrived) listed and left
    alone unless --resend-unknown.
    \b
    Exit status: 0 every row accepted; 1 some rows refused, failed or
    unknown (see 'asmtp bulk report'); 2 bad input, template or journal
    (nothing sent); 3 the server cannot be reached; 130 interrupted.
    """
    campaign = _campaign(options)
    if options["dry_run"]:
        return _dry_run(campaign, options["quiet"])
    server = server_from(options)
    pool = _pool(server, options)
    display = Display(quiet=options["quiet"])
    try:
        with display:
            progress = anyio.run(_send, campaign, pool, display, options)
    except CampaignError as exc:
        raise UsageFailure(str(exc)) from exc
    except (asmtp.SMTPException, OSError, ValueError) as exc:
        raise failure(exc, "connect", server) from exc
    return _conclude(campaign, progress, server, options["quiet"])


def _campaign(options: dict[str, Any]) -> Campaign:
    rows, template, sender = campaign_input(options)
    return Campaign(
        rows,
        template,
        options["journal"],
        sender=sender,
        message_id_domain=options["message_id_domain"],
        durability=options["durability"],
    )


def _pool(server: Server, options: dict[str, Any]) -> asmtp.SMTPPool:
    try:
        return asmtp.SMTPPool(
            server.host,
            server.port,
            url=server.url,
            tls=server.tls,
            username=server.username,
            password=server.password,
            context=server.context,
            local_hostname=server.helo,
            timeout=server.timeout,
            max_connections=options["connections"],
            max_messages_per_connection=options["max_per_connection"],
            rate_limit=options["rate"],
            retry=asmtp.RetryPolicy(attempts=options["retries"]),
        )
    except ValueError as exc:
        raise UsageFailure(str(exc)) from exc


async def _send(
    campaign: Campaign, pool: asmtp.SMTPPool, display: Display, options: dict[str, Any]
) -> Progress:
    error: Exception | None = None
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_stop_on_signals, campaign)
        try:
            async with pool:
                progress = await campaign.run(
                    pool,
                    resume=True,
                    force=options["force"],
                    resend_unknown=options["resend_unknown"],
                    grace=options["grace"],
                    on_progress=display,
                )
        except Exception as exc:  # raised as it is below, not in an exception group
            error = exc
        finally:
            tasks.cancel_scope.cancel()
    if error is not None:
        raise error
    return progress


async def _stop_on_signals(campaign: Campaign) -> None:
    """The first Ctrl-C or SIGTERM stops gracefully; the next one stops at once."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if campaign.stopping:
                campaign.abort()
                return
            name = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
            print(
                f"asmtp bulk send: {name}: stopping; the messages in flight get "
                "the grace period (again to stop at once)",
                file=sys.stderr,
            )
            campaign.stop("interrupted")


def _conclude(campaign: Campaign, progress: Progress, server: Server, quiet: bool) -> int:
    if not quiet:
        click.echo(summary_line(progress))
        if progress.recovered:
            click.echo(
                f"{progress.recovered} row(s) were in flight when the previous run was killed: "
                "unknown"
            )
        if progress.unknown_rows:
            click.echo(
                "unknown (may have arrived; not sent again without --resend-unknown; "
                f"'asmtp bulk report --csv' lists them all): "
                f"{listed(list(progress.unknown_rows), progress.unknown)}"
            )
    if progress.stopped == "server unavailable":
        error = campaign.server_error
        reason = failure(error, "connect", server).format_message() if error else str(server)
        raise ConnectionFailure(f"stopped: {reason}; run the same command to resume")
    if progress.stopped is not None:
        if not quiet:
            click.echo("stopped: run the same command to resume", err=True)
        return ExitCode.INTERRUPTED
    return ExitCode.OK if progress.complete else ExitCode.REFUSED


def _dry_run(campaign: Campaign, quiet: bool) -> int:
    problems = 0
    try:
        for problem in campaign.check():
            problems += 1
            if not quiet:
                click.echo(f"line {problem.row.line} (id {problem.row.id}): {problem.reason}")
    except CampaignError as exc:
        raise UsageFailure(str(exc)) from exc
    if not quiet:
        click.echo(
            f"dry run: {problems} row(s) cannot be sent"
            if problems
            else "dry run: every row renders"
        )
    return ExitCode.USAGE if problems else ExitCode.OK


@bulk_group.command("report")
@click.argument(
    "journal", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--csv",
    "csv_file",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    metavar="FILE",
    help="Write every row's outcome as CSV to FILE ('-': standard output).",
)
@click.option("--redis", metavar="URL", help="A distributed campaign's Redis (with --campaign).")
@click.option("--campaign", metavar="NAME", help="The distributed campaign's name.")
def report_command(
    journal: Path | None, csv_file: Path | None, redis: str | None, campaign: str | None
) -> int:
    """Summarise a campaign's journal: the rows in each state, and its runs.

    \b
    JOURNAL is the SQLite file of 'asmtp bulk send'; a distributed campaign's
    journal is in Redis: --redis URL --campaign NAME instead.
    \b
    Exit status: 0 every row accepted; 1 not (yet); 2 not a journal, or in
    use by a running campaign; 3 Redis cannot be reached.
    """
    if (journal is None) == (redis is None) or (redis is None) != (campaign is None):
        raise UsageFailure("give a JOURNAL file, or --redis URL and --campaign NAME")
    if redis is not None and campaign is not None:
        counts = distributed_report(redis, campaign, csv_file)
        return ExitCode.OK if counts["accepted"] == sum(counts.values()) else ExitCode.REFUSED
    assert journal is not None  # noqa: S101 - checked above
    try:
        opened = Journal(journal, readonly=True)
    except CampaignError as exc:
        raise UsageFailure(str(exc)) from exc
    try:
        counts = opened.counts()
        if csv_file is not None:
            write_csv(opened.rows(), csv_file)
        else:
            print_table(counts_table(counts, f"campaign {journal}"))
            for run, started, ended, how in opened.runs():
                end = f"to {when(ended)}: {how}" if ended else "(did not end: killed?)"
                click.echo(f"run {run}: {when(started)} {end}")
    except CampaignError as exc:
        raise UsageFailure(str(exc)) from exc
    finally:
        opened.close()
    return ExitCode.OK if counts["accepted"] == sum(counts.values()) else ExitCode.REFUSED


bulk_group.add_command(enqueue_command)
bulk_group.add_command(worker_command)
