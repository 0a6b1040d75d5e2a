"""The options a campaign is defined by, shared by ``asmtp bulk send`` and ``bulk enqueue``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from asmtp.campaign import CampaignError, Rows, Template

from ._common import UsageFailure, parse_address

__all__ = ["campaign_input", "campaign_options", "parse_rate"]

_FILE = click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)
F = TypeVar("F", bound=Callable[..., Any])


def parse_rate(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
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


def campaign_options(command: F) -> F:
    """The rows, the template, the sender, and how a campaign run again treats its rows."""
    options = [
        click.option(
            "--rows",
            "rows_file",
            type=_FILE,
            required=True,
            metavar="FILE",
            help="The rows: CSV with a header line, or JSON Lines (.jsonl, .ndjson).",
        ),
        click.option(
            "--format",
            "rows_format",
            type=click.Choice(["csv", "jsonl"]),
            help="The rows' format.  [default: from the file's suffix]",
        ),
        click.option(
            "--id-column",
            metavar="NAME",
            help="The field holding each row's stable id.  [default: the row's line number]",
        ),
        click.option(
            "--to-column",
            default="email",
            show_default=True,
            metavar="NAME",
            help="The field holding the recipient's address (To when the template has none).",
        ),
        click.option(
            "--template",
            "template_file",
            type=_FILE,
            required=True,
            metavar="FILE",
            help="The message: an RFC 5322 file whose headers and text parts hold {{ field }}.",
        ),
        click.option(
            "-a",
            "--attach",
            "attachments",
            type=_FILE,
            multiple=True,
            metavar="FILE",
            help="Attach FILE to every message; repeatable.",
        ),
        click.option(
            "-s",
            "--sender",
            metavar="ADDRESS",
            help="The envelope sender (and From when the template has none).",
        ),
        click.option(
            "--message-id-domain",
            metavar="DOMAIN",
            help="The domain of every Message-ID.  [default: the sender's]",
        ),
        click.option(
            "--resend-unknown",
            is_flag=True,
            help="Send again the rows whose fate is unknown (they may arrive twice).",
        ),
        click.option(
            "--force",
            is_flag=True,
            help="Resume although the rows, template or sender changed (rows matched by id).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def campaign_input(options: dict[str, Any]) -> tuple[Rows, Template, str | None]:
    """The rows, the template and the sender :func:`campaign_options` name; a bad one is
    a :class:`UsageFailure` (exit 2)."""
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
    return rows, template, sender
