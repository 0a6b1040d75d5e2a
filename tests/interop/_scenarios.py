"""Scenarios run the same way against every daemon with a STARTTLS port and an implicit-TLS
port (``_daemon.Listening``: Exim and OpenSMTPD), with its user ``user``.

Each sends one message, waits until it is stored and returns what was sent and what was
stored, leaving the server-specific assertions to the test.
"""

from __future__ import annotations

import smtplib

import pytest

import asmtp
from interop import _kit
from interop._daemon import Listening

__all__ = ["login_after_a_wrong_password", "one_shot_with_credentials"]

UNKNOWN: str = "nobody@example.test"
"""A recipient both daemons refuse at RCPT."""


async def login_after_a_wrong_password(server: Listening, mechanism: str) -> tuple[bytes, bytes]:
    """STARTTLS on ``smtp_port``, AUTH ``mechanism`` with a wrong password (535, the
    session goes on), then the right one (235), then a message from and to ``user``."""
    marker = _kit.token()
    user = server.address("user")
    sent = _kit.message(marker, f"authenticated with {mechanism}\r\n".encode())
    async with asmtp.SMTP(server.host, server.smtp_port, _kit.ME, timeout=_kit.TIMEOUT) as smtp:
        await smtp.starttls(context=server.client_context())
        with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
            await smtp.login(user, "not-the-password", mechanisms=[mechanism])
        assert caught.value.smtp_code == 535
        code, _ = await smtp.login(user, server.password("user"), mechanisms=[mechanism])
        assert code == 235
        assert await smtp.sendmail(user, [user], sent) == {}
    return sent, await _kit.delivered(server.maildir("user"), marker)


async def one_shot_with_credentials(
    server: Listening, tls: asmtp.TLSMode
) -> tuple[asmtp.SendResult, bytes, bytes]:
    """``asmtp.sendmail()`` with ``user``'s credentials under ``tls`` (on ``smtps_port``
    when implicit) to ``user`` and :data:`UNKNOWN`: the refused dict, sent and stored."""
    marker = _kit.token()
    user = server.address("user")
    sent = _kit.message(marker, f"asmtp.sendmail(tls={tls!r})\r\n".encode())
    refused = await asmtp.sendmail(
        user,
        [user, UNKNOWN],
        sent,
        host=server.host,
        port=server.smtps_port if tls == "implicit" else server.smtp_port,
        tls=tls,
        username=user,
        password=server.password("user"),
        context=server.client_context(),
        local_hostname=_kit.ME,
        timeout=_kit.TIMEOUT,
        deadline=30,
    )
    return refused, sent, await _kit.delivered(server.maildir("user"), marker)
