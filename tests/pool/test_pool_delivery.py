"""SMTPPool against aiosmtpd: concurrency, refusals, connection reuse, limits and closing.

Each test starts its own server and pool and runs on asyncio, trio and uvloop.
"""

from __future__ import annotations

import email.message
import time
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import asmtp
from asmtp import SendResult, SMTPPool
from pool._kit import STEP_TIMEOUT, attempts_of, body, message_ids, verbs, without_quit
from support.aiosmtpd_server import RecordingHandler

if TYPE_CHECKING:
    from support.fixtures import SMTPDServerFactory

pytestmark = pytest.mark.anyio

SENDER = "sender@pool.test"


def make_pool(port: int, **options: Any) -> SMTPPool:
    return SMTPPool("127.0.0.1", port, tls="none", timeout=STEP_TIMEOUT, **options)


async def test_smtp_quit_puts_quit_on_the_wire(smtpd_server_factory: SMTPDServerFactory) -> None:
    """The pool closes a connection with SMTP.quit(): QUIT must reach the server, 221 back."""
    handler = RecordingHandler()
    server = smtpd_server_factory(handler)
    smtp = asmtp.SMTP(timeout=STEP_TIMEOUT)
    try:
        await smtp.connect("127.0.0.1", server.port)
        await smtp.ehlo("client.test")
        code, _ = await smtp.quit()
    finally:
        await smtp.close()
    assert code == 221
    assert handler.commands == ["EHLO client.test", "QUIT"]
    assert not smtp.is_connected


async def test_500_concurrent_sends_over_five_connections(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    handler = RecordingHandler()
    server = smtpd_server_factory(handler)
    results: dict[int, SendResult] = {}

    async with make_pool(server.port, max_connections=5) as pool:

        async def send_one(n: int) -> None:
            results[n] = await pool.sendmail(SENDER, [f"r{n}@pool.test"], body(n))

        async with anyio.create_task_group() as tg:
            for n in range(500):
                tg.start_soon(send_one, n)

    assert sorted(results) == list(range(500))
    for result in results.values():
        assert isinstance(result, SendResult)
        assert result == {}
        assert result.attempts == 1
    deliveries = handler.deliveries
    assert len(deliveries) == 500
    assert message_ids(deliveries) == {f"{n}@pool.test": 1 for n in range(500)}
    assert {d.rcpt_tos for d in deliveries} == {(f"r{n}@pool.test",) for n in range(500)}
    assert 1 <= server.connection_count <= 5
    assert verbs(handler.commands).count("EHLO") == server.connection_count
    assert handler.errors == []


async def test_partial_refusal_returns_the_refused_dict(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    handler = RecordingHandler(refuse_recipients={"bad@pool.test": "550 5.1.1 no such user"})
    server = smtpd_server_factory(handler)
    async with make_pool(server.port) as pool:
        result = await pool.sendmail(SENDER, ["good@pool.test", "bad@pool.test"], body(1))
    assert result == {"bad@pool.test": (550, b"5.1.1 no such user")}
    assert result.attempts == 1
    [delivery] = handler.deliveries
    assert delivery.rcpt_tos == ("good@pool.test",)


async def test_all_recipients_refused_permanently_raises_without_retry(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    handler = RecordingHandler(
        refuse_recipients={
            "bad@pool.test": "550 5.1.1 no such user",
            "worse@pool.test": "553 5.1.3 bad address",
        }
    )
    server = smtpd_server_factory(handler)
    async with make_pool(server.port) as pool:
        with pytest.raises(asmtp.SMTPRecipientsRefused) as caught:
            await pool.sendmail(SENDER, ["bad@pool.test", "worse@pool.test"], body(1))
        assert caught.value.recipients == {
            "bad@pool.test": (550, b"5.1.1 no such user"),
            "worse@pool.test": (553, b"5.1.3 bad address"),
        }
        assert attempts_of(caught.value) == 1
        # The connection was RSET and stays in use.
        assert await pool.sendmail(SENDER, "ok@pool.test", body(2)) == {}
    assert verbs(handler.commands).count("MAIL") == 2
    assert server.connection_count == 1
    assert message_ids(handler.deliveries) == {"2@pool.test": 1}


async def test_permanent_sender_refusal_is_not_retried(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    handler = RecordingHandler(refuse_senders={SENDER: "550 5.7.1 not you"})
    server = smtpd_server_factory(handler)
    async with make_pool(server.port) as pool:
        with pytest.raises(asmtp.SMTPSenderRefused) as caught:
            await pool.sendmail(SENDER, "r@pool.test", body(1))
    assert caught.value.smtp_code == 550
    assert attempts_of(caught.value) == 1
    assert verbs(handler.commands).count("MAIL") == 1


async def test_permanent_data_refusal_is_not_retried(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    handler = RecordingHandler(data_reply="554 5.6.0 rejected")
    server = smtpd_server_factory(handler)
    async with make_pool(server.port) as pool:
        with pytest.raises(asmtp.SMTPDataError) as caught:
            await pool.sendmail(SENDER, "r@pool.test", body(1))
    assert caught.value.smtp_code == 554
    assert attempts_of(caught.value) == 1
    assert verbs(handler.commands).count("DATA") == 1


async def test_connections_are_replaced_after_max_messages(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    handler = RecordingHandler()
    server = smtpd_server_factory(handler)
    async with make_pool(server.port, max_connections=1, max_messages_per_connection=3) as pool:
        for n in range(7):
            result = await pool.sendmail(SENDER, "r@pool.test", body(n))
            assert result == {} and result.attempts == 1
        # 3 + 3 + 1: the first two were closed with QUIT on reaching the limit.
        assert server.connection_count == 3
        assert handler.commands.count("QUIT") == 2
    assert handler.commands.count("QUIT") == 3
    # Per connection: EHLO, three transactions, QUIT, in that order.
    transaction = ["MAIL", "RCPT", "DATA"]
    full = ["EHLO", *transaction * 3, "QUIT"]
    assert verbs(handler.commands) == [*full, *full, "EHLO", *transaction, "QUIT"]
    assert message_ids(handler.deliveries) == {f"{n}@pool.test": 1 for n in range(7)}


async def test_concurrent_sends_respect_max_messages(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    handler = RecordingHandler()
    server = smtpd_server_factory(handler)
    async with make_pool(server.port, max_connections=2, max_messages_per_connection=2) as pool:
        async with anyio.create_task_group() as tg:
            for n in range(20):
                tg.start_soon(pool.sendmail, SENDER, "r@pool.test", body(n))
    # At most 2 messages per connection, so at least 10 connections.
    assert server.connection_count >= 10
    assert verbs(handler.commands).count("EHLO") == server.connection_count
    assert verbs(handler.commands).count("MAIL") == 20
    assert message_ids(handler.deliveries) == {f"{n}@pool.test": 1 for n in range(20)}


async def test_aclose_quits_every_idle_connection(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    handler = RecordingHandler(data_delay=0.2)  # keeps five sends in flight at once
    server = smtpd_server_factory(handler)
    pool = make_pool(server.port, max_connections=5)
    async with anyio.create_task_group() as tg:
        for n in range(5):
            tg.start_soon(pool.sendmail, SENDER, "r@pool.test", body(n))
    assert server.connection_count == 5
    assert "QUIT" not in handler.commands
    await pool.aclose()
    assert handler.commands.count("QUIT") == 5
    with pytest.raises(RuntimeError, match="closed"):
        await pool.sendmail(SENDER, "r@pool.test", body(99))
    await pool.aclose()  # idempotent
    assert handler.commands.count("QUIT") == 5
    assert server.connection_count == 5


async def test_async_with_exit_quits_idle_connections(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    handler = RecordingHandler()
    server = smtpd_server_factory(handler)
    async with make_pool(server.port) as pool:
        await pool.sendmail(SENDER, "r@pool.test", body(1))
        await pool.sendmail(SENDER, "r@pool.test", body(2))
        assert "QUIT" not in handler.commands
    assert verbs(handler.commands) == ["EHLO", *["MAIL", "RCPT", "DATA"] * 2, "QUIT"]
    assert server.connection_count == 1


async def test_idle_connection_past_idle_timeout_is_replaced(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    handler = RecordingHandler()
    server = smtpd_server_factory(handler)
    async with make_pool(server.port, idle_timeout=0.2) as pool:
        await pool.sendmail(SENDER, "r@pool.test", body(1))
        await pool.sendmail(SENDER, "r@pool.test", body(2))  # reused at once
        assert server.connection_count == 1
        await anyio.sleep(0.4)
        result = await pool.sendmail(SENDER, "r@pool.test", body(3))
        assert result == {} and result.attempts == 1
        assert server.connection_count == 2
    assert without_quit(handler.commands) == [
        "EHLO",
        *["MAIL", "RCPT", "DATA"] * 2,
        "EHLO",
        "MAIL",
        "RCPT",
        "DATA",
    ]
    # The expired connection was closed politely before the new one was used.
    assert verbs(handler.commands) == [
        "EHLO",
        *["MAIL", "RCPT", "DATA"] * 2,
        "QUIT",
        "EHLO",
        "MAIL",
        "RCPT",
        "DATA",
        "QUIT",
    ]


async def test_connection_closed_by_the_server_while_idle_still_delivers_once(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """aiosmtpd's own idle timeout closes the pooled connection (421); the next send copes."""
    handler = RecordingHandler()
    server = smtpd_server_factory(handler, timeout=0.2)
    async with make_pool(server.port, retry=asmtp.RetryPolicy(base_delay=0.01)) as pool:
        await pool.sendmail(SENDER, "r@pool.test", body(1))
        await anyio.sleep(0.5)
        result = await pool.sendmail(SENDER, "r@pool.test", body(2))
    assert result == {}
    assert result.attempts == 1  # a connection dead before the send costs it no attempt
    assert server.connection_count == 2
    assert message_ids(handler.deliveries) == {"1@pool.test": 1, "2@pool.test": 1}


async def test_rate_limit_spaces_sends(smtpd_server_factory: SMTPDServerFactory) -> None:
    handler = RecordingHandler()
    server = smtpd_server_factory(handler)
    async with make_pool(server.port, max_connections=5, rate_limit=20) as pool:
        await pool.sendmail(SENDER, "r@pool.test", body(-1))  # warm up: connection open
        await anyio.sleep(0.1)  # the schedule is past, so no debt is carried over
        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            for n in range(10):
                tg.start_soon(pool.sendmail, SENDER, "r@pool.test", body(n))
        elapsed = time.monotonic() - started
    # The 10th send may start 9 intervals (0.45 s) after the first, not sooner.
    assert elapsed >= 0.45 - 0.01
    assert elapsed < 3.0
    assert len(handler.deliveries) == 11


async def test_send_message_through_the_pool(smtpd_server_factory: SMTPDServerFactory) -> None:
    handler = RecordingHandler()
    server = smtpd_server_factory(handler)
    msg = email.message.EmailMessage()
    msg["From"] = "Sender <sender@pool.test>"
    msg["To"] = "To <to@pool.test>"
    msg["Cc"] = "cc@pool.test"
    msg["Bcc"] = "hidden@pool.test"
    msg["Subject"] = "through the pool"
    msg["Message-ID"] = "<msg@pool.test>"
    msg.set_content("hello\n")
    async with make_pool(server.port) as pool:
        result = await pool.send_message(msg)
        assert result == {} and result.attempts == 1
        again = await pool.send_message(msg, to_addrs=["only@pool.test"])
        assert again == {} and again.attempts == 1
    first, second = handler.deliveries
    assert first.mail_from == "sender@pool.test"
    assert set(first.rcpt_tos) == {"to@pool.test", "cc@pool.test", "hidden@pool.test"}
    assert b"hidden@pool.test" not in first.content
    assert b"Subject: through the pool" in first.content
    assert second.rcpt_tos == ("only@pool.test",)
    assert server.connection_count == 1


# -- PIPELINING ---------------------------------------------------------------------------------


async def test_pipelined_sends_are_correct(smtpd_server_factory: SMTPDServerFactory) -> None:
    handler = RecordingHandler(
        advertise_pipelining=True,
        refuse_recipients={"bad@pool.test": "550 5.1.1 no such user"},
    )
    server = smtpd_server_factory(handler)
    results: dict[int, SendResult | BaseException] = {}

    async with make_pool(server.port, max_connections=4) as pool:

        async def send_one(n: int) -> None:
            kind = n % 3
            to = {0: [f"r{n}@pool.test"], 1: [f"r{n}@pool.test", "bad@pool.test"]}.get(
                kind, ["bad@pool.test"]
            )
            try:
                results[n] = await pool.sendmail(SENDER, to, body(n))
            except asmtp.SMTPRecipientsRefused as exc:
                results[n] = exc

        async with anyio.create_task_group() as tg:
            for n in range(150):
                tg.start_soon(send_one, n)

    for n in range(150):
        result = results[n]
        if n % 3 == 0:
            assert isinstance(result, SendResult) and result == {} and result.attempts == 1
        elif n % 3 == 1:
            assert isinstance(result, SendResult)
            assert result == {"bad@pool.test": (550, b"5.1.1 no such user")}
            assert result.attempts == 1
        else:
            assert isinstance(result, asmtp.SMTPRecipientsRefused)
            assert result.recipients == {"bad@pool.test": (550, b"5.1.1 no such user")}
            assert attempts_of(result) == 1
    assert message_ids(handler.deliveries) == {
        f"{n}@pool.test": 1 for n in range(150) if n % 3 != 2
    }
    for delivery in handler.deliveries:
        [message_id] = message_ids([delivery])
        assert delivery.rcpt_tos == (f"r{message_id.split('@')[0]}@pool.test",)
    assert server.connection_count <= 4
    assert handler.errors == []
