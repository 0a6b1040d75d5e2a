"""``asmtp bulk send`` and ``asmtp bulk report``: a campaign from the shell, and its outcome.

``send`` runs :class:`asmtp.campaign.Campaign` through an :class:`asmtp.SMTPPool` built
from the same server options as ``asmtp send``; running it again resumes. Ctrl-C or
SIGTERM stops taking rows and lets the messages in flight finish (``--grace``); a second
one stops at once. Either way the journal says what became of every row.
"""

from __future__ import annotations

import csv
import datetime
import signal
import sys
from pathlib import Path
from typing import Any, Final

import anyio
import click

import asmtp
from asmtp.campaign import Campaign, CampaignError, Journal, Progress, Rows, Template

from ._bulk_display import Display, counts_table, listed, print_table, summary_line
from ._common import ConnectionFailure, ExitCode, SubGroup, UsageFailure, parse_address
from ._deliver import Server, failure
from ._server_options import server_from, server_options

__all__ = ["bulk_group"]

_FILE = click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)
_CSV_FIELDS: Final = (
    "id",
    "line",
    "recipient",
    "state",
    "attempts",
    "code",
    "reply",
    "error",
    "started",
    "finished",
    "recipients",
)


@click.group("bulk", cls=SubGroup)
def bulk_group() -> None:
    """Send a message to every row of a list, journaled, and report on it."""


def _rate(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    number = value.removesuffix("/s")
    try:
        rate = float(number)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a rate such as 50 or 50/s") from None
    if not rate > 0:
        raise click.BadParameter("must be more than 0 messages per second")
    return rate


@bulk_group.command("send")
@click.option(
    "--rows",
    "rows_file",
    type=_FILE,
    required=True,
    metavar="FILE",
    help="The rows: CSV with a header line, or JSON Lines (.jsonl, .ndjson).",
)
@click.option(
    "--format",
    "rows_format",
    type=click.Choice(["csv", "jsonl"]),
    help="The rows' format.  [default: from the file's suffix]",
)
@click.option(
    "--id-column",
    metavar="NAME",
    help="The field holding each row's stable id.  [default: the row's line number]",
)
@click.option(
    "--to-column",
    default="email",
    show_default=True,
    metavar="NAME",
    help="The field holding the recipient's address (To when the template has none).",
)
@click.option(
    "--template",
    "template_file",
    type=_FILE,
    required=True,
    metavar="FILE",
    help="The message: an RFC 5322 file whose headers and text parts hold {{ field }}.",
)
@click.option(
    "-a",
    "--attach",
    "attachments",
    type=_FILE,
    multiple=True,
    metavar="FILE",
    help="Attach FILE to every message; repeatable.",
)
@click.option(
    "-s",
    "--sender",
    metavar="ADDRESS",
    help="The envelope sender (and From when the template has none).",
)
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
@click.option("--rate", callback=_rate, metavar="R[/s]", help="At most R messages per second.")
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
@click.option(
    "--message-id-domain",
    metavar="DOMAIN",
    help="The domain of every Message-ID.  [default: the sender's]",
)
@click.option("--dry-run", is_flag=True, help="Render every row and report problems; send nothing.")
@click.option(
    "--resend-unknown",
    is_flag=True,
    help="Send again the rows whose fate is unknown (they may arrive twice).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Resume although the rows, template or sender changed (rows matched by id).",
)
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
    sender = options["sender"]
    if sender is not None:
        sender = parse_address("-s/--sender", sender).addr_spec
    try:
        rows = Rows(
            options["rows_file"],
            format=options["rows_format"],
            id_column=options["id_column"],
            recipient_column=options["to_column"],
        )
        template = Template.from_file(options["template_file"], attachments=options["attachments"])
    except CampaignError as exc:
        raise UsageFailure(str(exc)) from exc
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
@click.argument("journal", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--csv",
    "csv_file",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    metavar="FILE",
    help="Write every row's outcome as CSV to FILE ('-': standard output).",
)
def report_command(journal: Path, csv_file: Path | None) -> int:
    """Summarise a campaign's journal: the rows in each state, and its runs.

    \b
    Exit status: 0 every row accepted; 1 not (yet); 2 not a journal, or in
    use by a running campaign.
    """
    try:
        opened = Journal(journal, readonly=True)
    except CampaignError as exc:
        raise UsageFailure(str(exc)) from exc
    try:
        counts = opened.counts()
        if csv_file is not None:
            _write_csv(opened, csv_file)
        else:
            print_table(counts_table(counts, f"campaign {journal}"))
            for run, started, ended, how in opened.runs():
                end = f"to {_when(ended)}: {how}" if ended else "(did not end: killed?)"
                click.echo(f"run {run}: {_when(started)} {end}")
    except CampaignError as exc:
        raise UsageFailure(str(exc)) from exc
    finally:
        opened.close()
    return ExitCode.OK if counts["accepted"] == sum(counts.values()) else ExitCode.REFUSED


def _when(stamp: float) -> str:
    return datetime.datetime.fromtimestamp(stamp).isoformat(" ", "seconds")


def _write_csv(journal: Journal, path: Path) -> None:
    if str(path) == "-":
        _rows_csv(journal, sys.stdout)
        return
    try:
        with path.open("w", encoding="utf-8", newline="") as out:
            _rows_csv(journal, out)
    except OSError as exc:
        raise UsageFailure(f"--csv: cannot write {path}: {exc.strerror or exc}") from exc


def _rows_csv(journal: Journal, out: Any) -> None:
    writer = csv.writer(out)
    writer.writerow(_CSV_FIELDS)
    for record in journal.rows():
        for stamp in ("started", "finished"):
            if record[stamp] is not None:
                record[stamp] = _when(record[stamp])
        record["recipients"] = " ".join(
            f"{address}={code}" for address, (code, _) in record["recipients"].items()
        )
        writer.writerow([record[name] for name in _CSV_FIELDS])
