"""``asmtp send``: compose a message (or take an existing one) and send it, or write it out."""

from __future__ import annotations

import contextlib
import email.utils
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.headerregistry import Address
from pathlib import Path
from typing import Any, BinaryIO

import anyio
import click

from ._common import ExitCode, UsageFailure, parse_address
from ._compose import AttachmentError, Draft, compose
from ._deliver import Refusals, Server, send
from ._existing import ExistingMessage, MessageError, read_header
from ._server_options import server_from, server_options

__all__ = ["send_command"]

_READ = click.Path(exists=True, dir_okay=False, readable=True, allow_dash=True, path_type=Path)
_FILE = click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)


@dataclass(frozen=True)
class Envelope:
    sender: str
    recipients: list[str]


@click.command("send")
@click.option(
    "-s",
    "--sender",
    metavar="ADDRESS",
    help="From: the sender (required unless --message has one).",
)
@click.option(
    "-r",
    "--recipient",
    "recipients",
    metavar="ADDRESS",
    multiple=True,
    help="To: a recipient; repeat for more.",
)
@click.option("--cc", metavar="ADDRESS", multiple=True, help="Cc: a copy recipient; repeatable.")
@click.option(
    "--bcc",
    metavar="ADDRESS",
    multiple=True,
    help="A hidden recipient: envelope only, no header; repeatable.",
)
@click.option(
    "--subject",
    metavar="TEXT",
    help="Subject (default with -d: 'Contents of directory <absolute path>').",
)
@click.option(
    "-d",
    "--directory",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Attach every regular file of DIRECTORY (not recursive, sorted by name).",
)
@click.option(
    "-a",
    "--attach",
    "attachments",
    type=_FILE,
    multiple=True,
    metavar="FILE",
    help="Attach FILE; repeatable.",
)
@click.option("--body", metavar="TEXT", help="The text body.")
@click.option(
    "--body-file",
    type=_READ,
    metavar="FILE",
    help="Read the text body (UTF-8) from FILE, or '-' for standard input.",
)
@click.option(
    "--html",
    type=_FILE,
    metavar="FILE",
    help="An HTML version of the body (multipart/alternative).",
)
@click.option(
    "--message",
    "message_file",
    type=_READ,
    metavar="FILE",
    help="Send FILE (or '-': standard input), an RFC 5322 message, as it is; the envelope comes from its headers unless -s/-r are given.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, allow_dash=True, path_type=Path),
    metavar="FILE",
    help="Write the composed message to FILE ('-': standard output) instead of sending it.",
)
@server_options
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Print the SMTP transcript on standard error (AUTH data redacted).",
)
def send_command(**options: Any) -> int:
    """Compose a message and send it, or write it out with -o.

    \b
    Exit status: 0 every recipient accepted; 1 the server refused some or
    all recipients, the sender or the message; 2 bad command line or input;
    3 connection, TLS or authentication failure.
    """
    if options["message_file"] is not None:
        return _send_existing(options)
    envelope, draft, utf8 = _draft(options)
    output: Path | None = options["output"]
    if output is not None:
        _write_out(draft, output, utf8)
        return ExitCode.OK
    server = server_from(options)
    with tempfile.TemporaryFile() as spool:
        _compose_into(draft, spool, utf8)
        spool.seek(0)
        return _deliver(server, envelope, spool, options["verbose"])


def _draft(options: dict[str, Any]) -> tuple[Envelope, Draft, bool]:
    if not options["sender"]:
        raise UsageFailure("missing the sender: give -s/--sender ADDRESS")
    if not options["recipients"]:
        raise UsageFailure("missing a recipient: give -r/--recipient ADDRESS (repeatable)")
    sender = parse_address("-s/--sender", options["sender"])
    to = [parse_address("-r/--recipient", value) for value in options["recipients"]]
    cc = [parse_address("--cc", value) for value in options["cc"]]
    bcc = [parse_address("--bcc", value) for value in options["bcc"]]
    attachments = list(options["attachments"])
    subject: str | None = options["subject"]
    directory: Path | None = options["directory"]
    if directory is not None:
        directory = directory.absolute()
        attachments = _regular_files(directory) + attachments
        if subject is None:
            subject = f"Contents of directory {directory}"
    headers = [("From", str(sender)), ("To", ", ".join(map(str, to)))]
    if cc:
        headers.append(("Cc", ", ".join(map(str, cc))))
    if subject is not None:
        if any(ch in subject for ch in "\r\n\0"):
            raise UsageFailure("--subject: line breaks and NUL are not allowed")
        headers.append(("Subject", subject))
    headers.append(("Date", email.utils.formatdate(localtime=True)))
    headers.append(("Message-ID", email.utils.make_msgid(domain=_msgid_domain(sender))))
    html = _read_text(options["html"], "--html") if options["html"] is not None else None
    draft = Draft(headers, _body(options), html, attachments)
    everyone = [*to, *cc, *bcc]
    envelope = Envelope(sender.addr_spec, list(dict.fromkeys(a.addr_spec for a in everyone)))
    utf8 = not all(a.addr_spec.isascii() for a in (sender, *everyone))
    return envelope, draft, utf8


def _regular_files(directory: Path) -> list[Path]:
    try:
        with os.scandir(directory) as entries:
            return [Path(e.path) for e in sorted(entries, key=lambda e: e.name) if e.is_file()]
    except OSError as exc:
        raise UsageFailure(f"cannot list {directory}: {exc.strerror or exc}") from exc


def _msgid_domain(sender: Address) -> str:
    return sender.domain if sender.domain.isascii() else "localhost"


def _body(options: dict[str, Any]) -> str | None:
    if options["body"] is not None and options["body_file"] is not None:
        raise UsageFailure("give the body with --body or --body-file, not both")
    if options["body"] is not None:
        return str(options["body"])
    if options["body_file"] is not None:
        return _read_text(options["body_file"], "--body-file")
    if sys.stdin is None or sys.stdin.isatty():
        return None  # nothing piped in: no text body (attachments only, or empty)
    return _decode(sys.stdin.buffer.read(), "standard input")


def _read_text(path: Path, option: str) -> str:
    try:
        data = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as exc:
        raise UsageFailure(f"{option}: cannot read {path}: {exc.strerror or exc}") from exc
    return _decode(data, f"{option} {path}")


def _decode(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageFailure(f"{what} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def _compose_into(draft: Draft, out: BinaryIO, utf8: bool) -> None:
    try:
        compose(draft, out, utf8=utf8)
    except AttachmentError as exc:
        raise UsageFailure(str(exc)) from exc


def _write_out(draft: Draft, output: Path, utf8: bool) -> None:
    """Write to ``output`` through a temporary file renamed over it: never half a file."""
    if str(output) == "-":
        _compose_into(draft, sys.stdout.buffer, utf8)
        sys.stdout.buffer.flush()
        return
    target = output.absolute()
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as exc:
        raise UsageFailure(f"cannot write {output}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as out:
            _compose_into(draft, out, utf8)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _send_existing(options: dict[str, Any]) -> int:
    composing = ("cc", "bcc", "attachments")
    if (
        options["output"] is not None
        or options["directory"] is not None
        or any(options[o] for o in composing)
    ):
        raise UsageFailure(
            "--message sends a message as it is: it takes no -o, -d, -a, --cc or --bcc"
        )
    for option in ("subject", "body", "body_file", "html"):
        if options[option] is not None:
            raise UsageFailure(
                f"--message sends a message as it is: it takes no --{option.replace('_', '-')}"
            )
    server = server_from(options)
    path: Path = options["message_file"]
    with _open_binary(path) as source:
        try:
            existing = read_header(source)
        except MessageError as exc:
            raise UsageFailure(f"--message {path}: {exc}") from exc
        envelope = _existing_envelope(existing, options, path)
        return _deliver(server, envelope, existing.chunks(), options["verbose"])


@contextlib.contextmanager
def _open_binary(path: Path) -> Iterator[BinaryIO]:
    if str(path) == "-":
        yield sys.stdin.buffer
        return
    try:
        source = path.open("rb")
    except OSError as exc:
        raise UsageFailure(f"--message: cannot read {path}: {exc.strerror or exc}") from exc
    with source:
        yield source


def _existing_envelope(existing: ExistingMessage, options: dict[str, Any], path: Path) -> Envelope:
    if options["sender"]:
        sender = parse_address("-s/--sender", options["sender"]).addr_spec
    elif existing.sender is not None:
        sender = existing.sender.addr_spec
    else:
        raise UsageFailure(f"--message {path}: no From or Sender header: give -s/--sender")
    if options["recipients"]:
        recipients = [parse_address("-r/--recipient", r).addr_spec for r in options["recipients"]]
    else:
        recipients = [address.addr_spec for address in existing.recipients]
    if not recipients:
        raise UsageFailure(f"--message {path}: no To, Cc or Bcc header: give -r/--recipient")
    return Envelope(sender, list(dict.fromkeys(recipients)))


def _deliver(server: Server, envelope: Envelope, message: object, verbose: bool) -> int:
    with _transcript_shown() if verbose else contextlib.nullcontext():
        refused: Refusals = anyio.run(send, server, envelope.sender, envelope.recipients, message)
    for recipient in envelope.recipients:
        if recipient in refused:
            code, text = refused[recipient]
            reply = " ".join(f"{code} {text.decode('utf-8', 'replace')}".split())
            click.echo(f"refused   {recipient}: {reply}")
        else:
            click.echo(f"accepted  {recipient}")
    return ExitCode.REFUSED if refused else ExitCode.OK


@contextlib.contextmanager
def _transcript_shown() -> Iterator[None]:
    """The library logs the transcript on the ``asmtp`` logger at DEBUG (AUTH redacted).

    The logger is left as it was afterwards: the command may run inside another program.
    """
    logger = logging.getLogger("asmtp")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
