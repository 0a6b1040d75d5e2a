"""SMTPPool against the real Postfix: concurrent sends over reused, pipelined connections,
BDAT where offered, and authenticated submission under STARTTLS."""

from __future__ import annotations

import ssl

import anyio
import pytest

import asmtp
from interop import _kit
from interop.realservers import Servers

pytestmark = [pytest.mark.anyio, pytest.mark.server("Postfix 3.7")]

MESSAGES = 40


@pytest.mark.feature("SMTPPool")
@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
async def test_pool_delivers_every_message_exactly_once_to_postfix(
    servers: Servers, chunking: bool
) -> None:
    """40 concurrent sends through 5 connections: each arrives once, nobody refused.

    With DATA, queued sends ride in batches on busy connections, each MAIL written with
    the previous end of data (RFC 2920 §3.1); with BDAT each waits for the previous reply.
    """
    markers = [_kit.token() for _ in range(MESSAGES)]
    results: list[asmtp.SendResult] = []

    async with asmtp.SMTPPool(
        servers.host,
        servers.smtp_port,
        chunking=chunking,
        tls="none",
        local_hostname=_kit.ME,
        timeout=_kit.TIMEOUT,
        max_connections=5,
    ) as pool:

        async def send(marker: str) -> None:
            body = f"pooled message {marker}\r\n.leading dot\r\n".encode()
            sent = _kit.message(marker, body)
            result = await pool.sendmail(servers.address("sender"), [servers.address("user")], sent)
            results.append(result)

        async with anyio.create_task_group() as tg:
            for marker in markers:
                tg.start_soon(send, marker)

    assert len(results) == MESSAGES
    assert all(result == {} and result.attempts == 1 for result in results)
    for marker in markers:
        stored = await _kit.delivered(servers.maildir("user"), marker)
        assert b"\n.leading dot\n" in stored.replace(b"\r\n", b"\n")


@pytest.mark.feature("SMTPPool")
async def test_pool_authenticates_over_starttls_on_submission(
    servers: Servers, ca_context: ssl.SSLContext
) -> None:
    """tls='starttls' with credentials: every pooled connection upgrades, then logs in."""
    markers = [_kit.token() for _ in range(6)]
    async with asmtp.SMTPPool(
        servers.host,
        servers.submission_port,
        tls="starttls",
        context=ca_context,
        username=servers.address("user"),
        password=servers.password("user"),
        local_hostname=_kit.ME,
        timeout=_kit.TIMEOUT,
        max_connections=3,
    ) as pool:
        async with anyio.create_task_group() as tg:
            for marker in markers:
                tg.start_soon(
                    pool.sendmail,
                    servers.address("user"),
                    [servers.address("user")],
                    _kit.message(marker, b"submitted through the pool\r\n"),
                )
    for marker in markers:
        await _kit.delivered(servers.maildir("user"), marker)
