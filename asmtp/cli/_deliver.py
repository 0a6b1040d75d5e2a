"""Hand a message to a server over SMTP or LMTP, and say in one line why it failed.

Uses asmtp's public API only: :func:`asmtp.connect` (its TLS policy and login) for SMTP,
:class:`asmtp.LMTP` for LMTP, where the same policy is applied here (``asmtp.connect``
opens SMTP sessions only). Every exception the library raises becomes a click exception
carrying the command's exit code, worded for someone at a shell.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

import click

import asmtp
from asmtp.errors import (
    BadArgument,
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
    """Where and how to send: an SMTP server, or an LMTP socket path or host and port."""

    host: str = "localhost"
    port: int = 0
    lmtp: bool = False
    tls: asmtp.TLSMode = "auto"
    username: str | None = None
    password: str | None = None
    context: ssl.SSLContext | None = None
    timeout: float = asmtp.DEFAULT_TIMEOUT
    helo: str | None = None

    @property
    def unix(self) -> bool:
        return self.lmtp and self.host.startswith("/")

    def __str__(self) -> str:
        protocol = "LMTP " if self.lmtp else ""
        if self.unix:
            return f"{protocol}{self.host}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{protocol}{host}:{self.port or (asmtp.SMTP_SSL_PORT if self.tls == 'implicit' else 25)}"


async def send(server: Server, sender: str, recipients: list[str], message: object) -> Refusals:
    """Send ``message``; the refused recipients (all of them when every one was refused).

    Raises :class:`ConnectionFailure` (exit 3), :class:`Refused` (exit 1) or
    :class:`UsageFailure` (exit 2), each with a one-line message.
    """
    phase: Literal["connect", "send"] = "connect"
    try:
        async with _session(server) as client:
            phase = "send"
            return await client.sendmail(sender, recipients, message)
    except SMTPRecipientsRefused as exc:
        return dict(exc.recipients)
    except (SMTPException, OSError, BadArgument) as exc:
        raise failure(exc, phase, server) from exc


@contextlib.asynccontextmanager
async def _session(server: Server) -> AsyncIterator[asmtp.SMTP]:
    if not server.lmtp:
        async with asmtp.connect(
            server.host,
            server.port,
            tls=server.tls,
            username=server.username,
            password=server.password,
            context=server.context,
            local_hostname=server.helo,
            timeout=server.timeout,
        ) as smtp:
            yield smtp
        return
    async with asmtp.LMTP(server.host, server.port, server.helo, timeout=server.timeout) as lmtp:
        if server.tls != "none" and not server.unix:
            await lmtp.ehlo_or_helo_if_needed()
            if lmtp.has_extn("starttls"):
                await lmtp.starttls(context=server.context)
            elif server.tls == "starttls":
                raise TLSRequiredError("the LMTP server does not offer STARTTLS")
        if server.username is not None:
            if not lmtp.is_encrypted and server.tls != "none":
                raise TLSRequiredError("refusing to send the password unencrypted")
            await lmtp.ehlo_or_helo_if_needed()
            await lmtp.login(server.username, server.password or "")
        yield lmtp


def failure(
    exc: BaseException, phase: Literal["connect", "send"], server: Server
) -> click.ClickException:
    """The one-line message and exit code for an exception from connecting or sending."""
    if isinstance(exc, TLSRequiredError):
        # Worded for the command line: the library's own text names its tls= argument.
        if server.tls == "auto":
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
        return ConnectionFailure(f"{server}: timed out" + (f": {exc}" if str(exc) else ""))
    if isinstance(exc, SMTPResponseException) and exc.smtp_code > 0:
        if phase == "send":
            return Refused(f"{server} refused the message: {_reply(exc)}")
        return ConnectionFailure(f"{server} answered: {_reply(exc)}")
    if isinstance(exc, SMTPNotSupportedError) and phase == "send":
        return Refused(f"{server} cannot take this message: {exc}")
    if isinstance(exc, BadArgument):
        return UsageFailure(str(exc))
    if isinstance(exc, OSError):
        return ConnectionFailure(f"cannot connect to {server}: {_reason(exc)}")
    return ConnectionFailure(f"{server}: {exc}")


def _reason(exc: OSError) -> str:
    """The system's words for ``exc`` (asyncio's own say "Connect call failed (...)")."""
    if isinstance(exc, socket.gaierror) or not exc.errno or exc.errno < 0:
        return exc.strerror or str(exc)
    return os.strerror(exc.errno)


def _reply(exc: SMTPResponseException) -> str:
    text = exc.smtp_error
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return " ".join(f"{exc.smtp_code} {text}".split())
