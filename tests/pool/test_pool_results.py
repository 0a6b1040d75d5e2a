"""What a pooled send returns: the server's final reply (with its queue id) on every path,
alone or in a batch, SMTP or LMTP (one reply per recipient)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from asmtp import SendResult, SMTPPool
from pool._kit import STEP_TIMEOUT, body
from support.aiosmtpd_server import RecordingHandler

if TYPE_CHECKING:
    from support.fixtures import SMTPDServerFactory

pytestmark = pytest.mark.anyio

SENDER = "sender@pool.test"
QUEUED = "250 2.0.0 Ok: queued as 4XyZ1"
DELIVERED = (250, b"2.0.0 delivered")
FULL = (552, b"5.2.2 Mailbox full")


async def send_all(pool: SMTPPool, recipients: list[list[str]]) -> list[SendResult]:
    """One task per message, all at once; results in the order given."""
    results: dict[int, SendResult] = {}

    async def send(n: int, to: list[str]) -> None:
        results[n] = await pool.sendmail(SENDER, to, body(n))

    async with anyio.create_task_group() as tg:
        for n, to in enumerate(recipients):
            tg.start_soon(send, n, to)
    return [results[n] for n in range(len(recipients))]


@pytest.mark.parametrize("path", ["alone", "batched"])
async def test_every_pooled_send_carries_the_final_reply(
    smtpd_server_factory: SMTPDServerFactory, path: str
) -> None:
    """Alone (``max_batch=1``) or queued behind a busy connection and sent in its batch."""
    handler = RecordingHandler(data_reply=QUEUED, advertise_pipelining=True)
    server = smtpd_server_factory(handler)
    max_batch = 1 if path == "alone" else 16
    async with SMTPPool(
        "127.0.0.1", server.port, tls="none", timeout=STEP_TIMEOUT, max_connections=1,
        max_batch=max_batch,
    ) as pool:  # fmt: skip
        results = await send_all(pool, [[f"r{n}@pool.test"] for n in range(8)])
    for n, result in enumerate(results):
        assert result == {}
        assert result.reply == (250, b"2.0.0 Ok: queued as 4XyZ1")
        assert result.outcome.replies == {f"r{n}@pool.test": result.reply}
        assert result.outcome.recipients == (f"r{n}@pool.test",)
    assert len(handler.deliveries) == 8


@pytest.mark.parametrize("path", ["alone", "batched"])
async def test_an_lmtp_pool_reports_each_recipients_own_reply(
    smtpd_server_factory: SMTPDServerFactory, unix_socket_path: Path, path: str
) -> None:
    """RFC 2033 §4.2: one reply per accepted recipient after the data; a refusal there is
    in the refused dict, every reply in ``outcome.replies``."""
    handler = RecordingHandler(
        lmtp_data_replies={"full@pool.test": "552 5.2.2 Mailbox full"},
        advertise_pipelining=True,
    )
    smtpd_server_factory(handler, lmtp=True, unix_path=unix_socket_path)
    options: dict[str, Any] = {"max_batch": 1} if path == "alone" else {}
    async with SMTPPool(
        str(unix_socket_path), lmtp=True, tls="none", timeout=STEP_TIMEOUT, max_connections=1,
        **options,
    ) as pool:  # fmt: skip
        assert pool.lmtp
        results = await send_all(pool, [["ok@pool.test", "full@pool.test"]] * 4)
    for result in results:
        assert result == {"full@pool.test": FULL}
        assert result.outcome.accepted is True
        assert result.outcome.recipients == ("ok@pool.test",)
        assert result.outcome.replies == {"ok@pool.test": DELIVERED, "full@pool.test": FULL}
        assert result.reply == FULL  # the last reply after the data
    assert [d.rcpt_tos for d in handler.deliveries] == [("ok@pool.test",)] * 4
    assert [verb.split()[0] for verb in handler.commands].count("LHLO") == 1
