"""The server options every sending command takes, and the :class:`Server` they describe.

``asmtp send`` and ``asmtp bulk send`` share them: ``--host``, ``--port``, ``--tls``,
``--user`` (the password from the environment, a file or a prompt, never the command
line), ``--lmtp``, ``--url``, ``--cafile``, ``--helo`` and ``--timeout``.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

import asmtp

from ._common import UsageFailure, parse_host_port
from ._deliver import Server

__all__ = ["server_from", "server_options"]

_FILE = click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)
F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = (
    click.option("--host", default=None, help="SMTP server.  [default: localhost]"),
    click.option(
        "--port",
        type=click.IntRange(0, 65535),
        default=0,
        help="Port; 0 picks 25, or 465 with --tls implicit.  [default: 0]",
    ),
    click.option(
        "--tls",
        type=click.Choice(["auto", "implicit", "starttls", "none"]),
        default="auto",
        show_default=True,
        help="auto: STARTTLS when offered (implicit on port 465); no password goes out in clear unless 'none'.",
    ),
    click.option(
        "--user",
        metavar="NAME",
        help="Log in as NAME; the password comes from $ASMTP_PASSWORD, --password-file or a prompt.",
    ),
    click.option(
        "--password-file",
        type=_FILE,
        metavar="FILE",
        help="Read the password from the first line of FILE.",
    ),
    click.option(
        "--lmtp",
        metavar="PATH|HOST:PORT",
        help="Deliver over LMTP to a Unix socket PATH or HOST:PORT instead of SMTP.",
    ),
    click.option(
        "--url",
        metavar="URL",
        help="The server as one URL instead of --host/--port/--lmtp: smtp://[USER[:PASSWORD]@]HOST[:PORT], smtps://, smtp+starttls://, lmtp://HOST:PORT or lmtp:///PATH.",
    ),
    click.option(
        "--cafile",
        type=_FILE,
        metavar="FILE",
        help="Trust the CA certificates in FILE (PEM) instead of the system's.",
    ),
    click.option(
        "--helo", metavar="NAME", help="The name to give in EHLO/LHLO.  [default: this host's name]"
    ),
    click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=asmtp.DEFAULT_TIMEOUT,
        show_default=True,
        help="Seconds allowed for connecting and for each reply.",
    ),
)


def server_options(command: F) -> F:
    """Add the server options to a click command (in the order ``--help`` shows them)."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def server_from(options: dict[str, Any]) -> Server:
    """The server the options name; :class:`UsageFailure` when they contradict each other."""
    tls = options["tls"]
    lmtp: str | None = options["lmtp"]
    url: str | None = options["url"]
    host, port = options["host"] or "localhost", options["port"]
    if url is not None:
        if options["host"] is not None or port or lmtp is not None:
            raise UsageFailure("--url names the server: leave out --host, --port and --lmtp")
        name = _shown(url)
        host, port = "localhost", 0
    elif lmtp is not None:
        if options["host"] is not None or port:
            raise UsageFailure("--lmtp names the server: leave out --host and --port")
        if tls == "implicit":
            raise UsageFailure(
                "--tls implicit does not apply to LMTP (STARTTLS is used when offered)"
            )
        if lmtp.startswith("/"):
            url, name = "lmtp://" + urllib.parse.quote(lmtp), f"LMTP {lmtp}"
        else:
            where = _bracketed(*parse_host_port("--lmtp", lmtp))
            url, name = f"lmtp://{where}", f"LMTP {where}"
    else:
        name = _bracketed(host, port or (asmtp.SMTP_SSL_PORT if tls == "implicit" else 25))
    user: str | None = options["user"]
    if user is None and options["password_file"] is not None:
        raise UsageFailure("--password-file needs --user")
    # A URL with a user and no password: the password comes as it does for --user.
    asks = user or (_url_user_without_password(url) if url is not None else None)
    return Server(
        name,
        host=host,
        port=port,
        url=url,
        tls=tls,
        username=user,
        password=_password(options, asks) if asks else None,
        context=_context(options["cafile"]),
        timeout=options["timeout"],
        helo=options["helo"],
    )


def _bracketed(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _shown(url: str) -> str:
    """``url`` for messages: without its password, if it has one."""
    try:
        parts = urllib.parse.urlsplit(url)
        if parts.password is None:
            return url
        return urllib.parse.urlunsplit(
            parts._replace(netloc=f"{parts.username}@{parts.netloc.rpartition('@')[2]}")
        )
    except ValueError:
        return "the --url server"  # malformed: the library says how, without quoting it


def _url_user_without_password(url: str) -> str | None:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return None
    if parts.username and parts.password is None:
        return urllib.parse.unquote(parts.username)
    return None


def _password(options: dict[str, Any], user: str) -> str:
    path: Path | None = options["password_file"]
    if path is not None:
        try:
            first = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageFailure(f"--password-file: cannot read {path}: {exc}") from exc
        if not first:
            raise UsageFailure(f"--password-file: {path} is empty")
        return first[0]
    from_environment = os.environ.get("ASMTP_PASSWORD")
    if from_environment is not None:
        return from_environment
    if sys.stdin is None or not sys.stdin.isatty():
        raise UsageFailure(
            "no password: set ASMTP_PASSWORD, give --password-file, or run on a terminal to be asked"
        )
    answer: str = click.prompt(f"Password for {user}", hide_input=True, err=True)
    return answer


def _context(cafile: Path | None) -> ssl.SSLContext | None:
    if cafile is None:
        return None
    try:
        return ssl.create_default_context(cafile=str(cafile))
    except (OSError, ssl.SSLError) as exc:
        raise UsageFailure(f"--cafile: cannot load {cafile}: {exc}") from exc
