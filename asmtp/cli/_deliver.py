"""Hand a message to a server over SMTP or LMTP, and say in one line why it failed.

Uses asmtp's public API only: :func:`asmtp.connect` applies the TLS policy and logs in, for
SMTP and (given an ``lmtp://`` URL) LMTP alike. Every exception the library raises becomes
a click exception carrying the command's exit code, worded for someone at a shell.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Literal

import click

import asmtp
from asmtp.errors import (
    SMTPAuthenticationError,
    SMTPDataError,
    SMTPException,
    SMTPNotSupportedError,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTransactionInterrupted,
    SMTPTransactionTimeout,
    TLSRequiredError,
)

from ._common import ConnectionFailure, Refused, UsageFailure

__all__ = ["Refusals", "Server", "send"]

Refusals = dict[str, tuple[int, bytes]]
"""Refused recipients, as smtplib reports them: address -> (code, reply text)."""


@dataclass(frozen=True)
class Server:
    """Where and how to send: ``host`` and ``port``, or a ``url`` (``lmtp://`` for LMTP).

    ``name`` is how messages show the server (never with the URL's password).
    """

    name: str
    host: str = "localhost"
    port: int = 0
    url: str | None = None
    tls: asmtp.TLSMode = "auto"
    username: str | None = None
    password: str | None = None
    context: ssl.SSLContext | None = None
    timeout: float = asmtp.DEFAULT_TIMEOUT
    helo: str | None = None

    def __str__(self) -> str:
        return self.name


async def send(server: Server, sender: str, recipients: list[str], message: object) -> Refusals:
    """Send ``message``; the refused recipients (all of them when every one was refused).

    Raises :class:`ConnectionFailure` (exit 3), :class:`Refused` (exit 1) or
    :class:`UsageFailure` (exit 2), each with a one-line message.
    """
    phase: Literal["connect", "send"] = "connect"
    try:
        async with asmtp.connect(
            server.host,
            server.port,
            url=server.url,
            tls=server.tls,
            username=server.username,
            password=server.password,
            context=server.context,
            local_hostname=server.helo,
            timeout=server.timeout,
        ) as client:
            phase = "send"
            return await client.sendmail(sender, recipients, message)
    except SMTPRecipientsRefused as exc:
        return dict(exc.recipients)
    except (SMTPException, OSError, ValueError) as exc:
        raise failure(exc, phase, server) from exc


def failure(
    exc: BaseException, phase: Literal["connect", "send"], server: Server
) -> click.ClickException:
    """The one-line message and exit code for an exception from connecting or sending."""
    if isinstance(exc, TLSRequiredError):
        # Worded for the command line: the library's own text names its tls= argument.
        if exc.reason == "credentials-in-clear":
            return ConnectionFailure(
                f"{server} offers no STARTTLS: refusing to send the password unencrypted "
                "(--tls none allows it)"
            )
        return ConnectionFailure(f"{server} does not offer STARTTLS (--tls {server.tls})")
    if isinstance(exc, SMTPAuthenticationError):
        return ConnectionFailure(f"{server}: authentication failed: {_reply(exc)}")
    if isinstance(exc, SMTPSenderRefused):
        return Refused(f"{server} refused the sender <{exc.sender}>: {_reply(exc)}")
    if isinstance(exc, SMTPDataError):
        return Refused(f"{server} refused the message: {_reply(exc)}")
    if isinstance(exc, (SMTPTransactionInterrupted, SMTPTransactionTimeout)):
        if exc.outcome.accepted is None:
            fate = "the message may have been delivered (the end of the data was sent)"
        else:
            fate = "the message was not delivered"
        return ConnectionFailure(f"{server}: {exc}; {fate}")
    if isinstance(exc, SMTPServerDisconnected):
        return ConnectionFailure(f"{server}: connection lost: {exc}")
    if isinstance(exc, ssl.SSLError):
        return ConnectionFailure(f"{server}: TLS failed: {exc.reason or exc}")
    if isinstance(exc, TimeoutError):
        return ConnectionFailure(f"{server}: timed out: {exc}")
    if isinstance(exc, SMTPResponseException) and exc.smtp_code > 0:
        if phase == "send":
            return Refused(f"{server} refused the message: {_reply(exc)}")
        return ConnectionFailure(f"{server} answered: {_reply(exc)}")
    if isinstance(exc, SMTPNotSupportedError) and phase == "send":
        return Refused(f"{server} cannot take this message: {exc}")
    if isinstance(exc, ValueError):  # BadArgument too; a malformed --url
        return UsageFailure(str(exc))
    if isinstance(exc, OSError):
        # The library names the server and gives the system's words ("cannot connect to
        # mx.example:25: Connection refused"); strerror leaves out "[Errno 111]".
        return ConnectionFailure(exc.strerror or str(exc))
    return ConnectionFailure(f"{server}: {exc}")


def _reply(exc: SMTPResponseException) -> str:
    text = exc.smtp_error
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return " ".join(f"{exc.smtp_code} {text}".split())
