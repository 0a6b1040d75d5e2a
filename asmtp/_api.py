"""One-shot sending: connect, EHLO, send, QUIT in one call."""

from __future__ import annotations

import email.message
from collections.abc import Sequence

from ._client import DEFAULT_TIMEOUT, SMTP, SendmailResult
from .protocol import Param

__all__ = ["send_message", "sendmail"]


async def sendmail(
    from_addr: str,
    to_addrs: str | Sequence[str],
    msg: object,
    *,
    host: str = "localhost",
    port: int = 0,
    local_hostname: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    source_address: tuple[str, int] | None = None,
    mail_options: Sequence[Param] = (),
    rcpt_options: Sequence[Param] = (),
) -> SendmailResult:
    """Connect to ``host``, send one message and QUIT; returns the refused-recipients dict.

    Raises what :meth:`SMTP.sendmail` raises, and :class:`smtplib.SMTPConnectError` when
    the server's greeting is not ``220``.
    """
    async with SMTP(host, port, local_hostname, timeout, source_address) as smtp:
        return await smtp.sendmail(from_addr, to_addrs, msg, mail_options, rcpt_options)


async def send_message(
    msg: email.message.Message,
    *,
    from_addr: str | None = None,
    to_addrs: str | Sequence[str] | None = None,
    host: str = "localhost",
    port: int = 0,
    local_hostname: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    source_address: tuple[str, int] | None = None,
    mail_options: Sequence[Param] = (),
    rcpt_options: Sequence[Param] = (),
) -> SendmailResult:
    """Connect, send an :class:`email.message.Message` as :meth:`SMTP.send_message`, QUIT."""
    async with SMTP(host, port, local_hostname, timeout, source_address) as smtp:
        return await smtp.send_message(msg, from_addr, to_addrs, mail_options, rcpt_options)
