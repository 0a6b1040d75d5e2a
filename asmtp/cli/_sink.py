"""``asmtp sink``: a local SMTP or LMTP server that accepts mail and keeps it for a developer.

The server is :class:`asmtp.testing.CaptureServer` (the pytest plugin's), run until Ctrl-C
or SIGTERM; each message goes into a Maildir (:mod:`._maildir`) before the server
acknowledges it, so what the client was told is stored is stored.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType

import click

from asmtp.testing import CaptureServer, MissingExtra, ReceivedMessage

from ._common import ConnectionFailure, ExitCode, UsageFailure, parse_host_port
from ._maildir import Maildir

__all__ = ["sink_command"]


@click.command("sink")
@click.option(
    "--listen",
    default="127.0.0.1:8025",
    show_default=True,
    metavar="HOST:PORT|PATH",
    help="Where to listen: HOST:PORT (port 0: any free port) or a Unix socket PATH.",
)
@click.option(
    "--maildir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Store messages in this Maildir (created if missing).  [default: a new temporary directory]",
)
@click.option("--no-maildir", is_flag=True, help="Store nothing; only print the summaries.")
@click.option("-q", "--quiet", is_flag=True, help="Print no summary per message.")
@click.option(
    "--lmtp", is_flag=True, help="Serve LMTP: one reply per recipient after the data (RFC 2033)."
)
@click.option(
    "--tls",
    is_flag=True,
    help="Offer STARTTLS, with a certificate from a throwaway CA whose file is printed.",
)
@click.option("--chunking", is_flag=True, help="Offer CHUNKING (BDAT, RFC 3030).")
@click.option(
    "--refuse",
    multiple=True,
    metavar="PATTERN",
    help="Refuse recipients matching PATTERN (a glob such as '*@blocked.example') with 550 at RCPT; repeatable.",
)
@click.option(
    "--refuse-after-data",
    multiple=True,
    metavar="PATTERN",
    help="With --lmtp: accept matching recipients at RCPT, refuse them after the data (552); repeatable.",
)
@click.option(
    "--hostname",
    default="localhost",
    show_default=True,
    help="The name in the greeting and the certificate.",
)
def sink_command(
    listen: str,
    maildir: Path | None,
    no_maildir: bool,
    quiet: bool,
    lmtp: bool,
    tls: bool,
    chunking: bool,
    refuse: tuple[str, ...],
    refuse_after_data: tuple[str, ...],
    hostname: str,
) -> int:
    """Accept every message and keep it in a Maildir, printing a line for each.

    Runs until Ctrl-C or SIGTERM, then stops cleanly: a message is stored (written to
    tmp/, then renamed into new/) before the client is told it was accepted, and nothing
    half-written is left in new/.

    \b
    Exit status: 0 stopped by a signal; 2 bad command line; 3 cannot listen.
    """
    if maildir is not None and no_maildir:
        raise UsageFailure("--maildir and --no-maildir contradict each other")
    if refuse_after_data and not lmtp:
        raise UsageFailure("--refuse-after-data needs --lmtp (SMTP answers the data once)")
    store: Maildir | None = None
    fresh: Path | None = None  # a temporary Maildir made here: removed if the sink never listens
    if not no_maildir:
        if maildir is None:
            maildir = fresh = Path(tempfile.mkdtemp(prefix="asmtp-sink-"))
        store = Maildir(maildir)
    try:
        server = _server(
            listen,
            lmtp=lmtp,
            tls=tls,
            chunking=chunking,
            hostname=hostname,
            store=store,
            quiet=quiet,
        )
    except UsageFailure:
        _discard(fresh)
        raise
    for pattern in refuse:
        server.refuse_recipient(pattern)
    for pattern in refuse_after_data:
        server.refuse_after_data(pattern)
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            _start(server, listen)
        except (UsageFailure, ConnectionFailure):
            _discard(fresh)
            raise
        features = ", ".join(
            [
                "LMTP" if lmtp else "SMTP",
                *(["STARTTLS"] if tls else []),
                *(["CHUNKING"] if chunking else []),
            ]
        )
        click.echo(f"asmtp sink: listening on {server.address} ({features})")
        if store is not None:
            click.echo(f"asmtp sink: storing messages in the Maildir {store.path}")
        if tls:
            click.echo(f"asmtp sink: clients must trust the CA certificate {server.ca_file}")
        while not stopping.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()
    click.echo(f"asmtp sink: stopped; {len(server.messages)} message(s) received")
    return ExitCode.OK


def _discard(fresh: Path | None) -> None:
    """Remove the temporary Maildir of a sink that never listened: nothing is in it."""
    if fresh is not None:
        shutil.rmtree(fresh, ignore_errors=True)


def _server(
    listen: str,
    *,
    lmtp: bool,
    tls: bool,
    chunking: bool,
    hostname: str,
    store: Maildir | None,
    quiet: bool,
) -> CaptureServer:
    def on_message(message: ReceivedMessage) -> None:
        where = ""
        if store is not None:
            try:
                path = store.deliver(message.mail_from, message.rcpt_tos, message.raw)
            except OSError as exc:
                click.echo(f"asmtp sink: cannot store a message (451 sent): {exc}", err=True)
                raise
            where = f" -> {path.parent.name}/{path.name}"
        if not quiet:
            stamp = time.strftime("%H:%M:%S", time.localtime(message.received_at))
            click.echo(f"{stamp} {message.summary()}{where}")

    unix_path = listen if listen.startswith("/") else None
    host, port = ("127.0.0.1", 0) if unix_path else parse_host_port("--listen", listen)
    try:
        return CaptureServer(
            host=host,
            port=port,
            unix_path=unix_path,
            lmtp=lmtp,
            hostname=hostname,
            on_message=on_message,
            starttls=tls,
            chunking=chunking,
        )
    except MissingExtra as exc:
        raise UsageFailure(str(exc)) from exc


def _start(server: CaptureServer, listen: str) -> None:
    try:
        server.start()
    except MissingExtra as exc:
        raise UsageFailure(str(exc)) from exc
    except OSError as exc:
        raise ConnectionFailure(f"cannot listen on {listen}: {exc.strerror or exc}") from exc
