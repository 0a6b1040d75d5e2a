"""asmtp under pytest-asyncio in strict mode (``@pytest.mark.asyncio``), not the anyio plugin.

Users of plain asyncio test suites drive the client from pytest-asyncio's own event loop;
these prove it works there too, against aiosmtpd.
"""

from __future__ import annotations

import asyncio
import smtplib
from typing import TYPE_CHECKING

import pytest

import asmtp
from client._kit import HOST, TIMEOUT, agen, smtp, verbs
from support.aiosmtpd_server import RecordingHandler

if TYPE_CHECKING:
    from support.aiosmtpd_server import ThreadedSMTPServer
    from support.fixtures import SMTPDServerFactory


@pytest.mark.asyncio
async def test_sendmail_with_partial_refusal_under_pytest_asyncio(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """aiosmtpd: a streamed body and a refused recipient, on pytest-asyncio's loop."""
    handler = RecordingHandler(refuse_recipients={"nobody@x.test": "550 5.1.1 no such user"})
    server = smtpd_server_factory(handler)
    asyncio.get_running_loop()  # really on an asyncio loop
    async with smtp(server) as client:
        refused = await client.sendmail(
            "a@x.test", ["b@x.test", "nobody@x.test"], agen(b"Subject: hi\r\n\r\n", b".x\r\n")
        )
    assert refused == {"nobody@x.test": (550, b"5.1.1 no such user")}
    assert [d.content for d in handler.deliveries] == [b"Subject: hi\r\n\r\n.x\r\n"]
    assert verbs(handler.commands) == ["EHLO", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"]


@pytest.mark.asyncio
async def test_one_shot_send_and_concurrent_clients_under_pytest_asyncio(
    smtpd_server: ThreadedSMTPServer,
) -> None:
    """aiosmtpd: asyncio.gather over one-shot sends, one connection each, and an error
    raised as smtplib's class."""

    async def send(n: int) -> asmtp.SendResult:
        return await asmtp.sendmail(
            "a@x.test",
            [f"r{n}@x.test"],
            f"Subject: {n}\r\n\r\nbody {n}\r\n",
            host=HOST,
            port=smtpd_server.port,
            tls="none",
            timeout=TIMEOUT,
        )

    assert await asyncio.gather(*(send(n) for n in range(5))) == [{}] * 5
    deliveries = smtpd_server.handler.deliveries
    assert sorted(d.rcpt_tos[0] for d in deliveries) == [f"r{n}@x.test" for n in range(5)]
    assert smtpd_server.connection_count == 5
    with pytest.raises(smtplib.SMTPNotSupportedError):
        await asmtp.sendmail(
            "a@x.test", "jörg@x.test", b"hi", host=HOST, port=smtpd_server.port, tls="none"
        )
