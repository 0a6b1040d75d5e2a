"""What SMTPPool retries, what it never retries, and which connections it puts back.

A send is retried only when the server cannot have accepted the message; a connection
goes back to the pool only when it is in step with the server.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import asmtp
from asmtp import RetryPolicy, SendOutcome, SMTPPool
from pool._kit import (
    DISCONNECT,
    STEP_TIMEOUT,
    FirstMailHandler,
    attempts_of,
    body,
    message_ids,
    verbs,
    without_quit,
)
from support.aiosmtpd_server import RecordingHandler
from support.scripted import ExpectClosed, ExpectData, ExpectLine, Step, smtp_script
from support.steps import Close

if TYPE_CHECKING:
    from support.fixtures import ScriptedServerFactory, SMTPDServerFactory

pytestmark = pytest.mark.anyio

SENDER = "sender@pool.test"
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
"""The default policy's shape with delays short enough for tests."""
TRANSACTION = ["MAIL", "RCPT", "DATA"]

# Scripted dialogue pieces: the pool sends exactly these bytes for a@x.test -> b@x.test.
EHLO: tuple[bytes | Step, bytes] = (ExpectLine(b"EHLO"), b"250 scripted.test\r\n")
MAIL: tuple[bytes | Step, bytes] = (b"MAIL FROM:<a@x.test>\r\n", b"250 ok\r\n")
RCPT: tuple[bytes | Step, bytes] = (b"RCPT TO:<b@x.test>\r\n", b"250 ok\r\n")
DATA: tuple[bytes | Step, bytes] = (b"DATA\r\n", b"354 go ahead\r\n")
QUEUED: tuple[bytes | Step, bytes] = (ExpectData(), b"250 queued\r\n")
MESSAGE = b"Subject: scripted\r\n\r\nhello\r\n"


def make_pool(port: int, **options: Any) -> SMTPPool:
    options.setdefault("retry", FAST)
    return SMTPPool("127.0.0.1", port, tls="none", timeout=STEP_TIMEOUT, **options)


def outcome_of(exc: BaseException) -> SendOutcome:
    assert isinstance(exc, (asmtp.SMTPTransactionInterrupted, asmtp.SMTPTransactionTimeout))
    return exc.outcome


# -- retried: the server cannot have accepted the message --------------------------------------


async def test_disconnect_at_mail_is_retried_on_a_new_connection(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    handler = FirstMailHandler(DISCONNECT)
    server = smtpd_server_factory(handler)
    async with make_pool(server.port) as pool:
        result = await pool.sendmail(SENDER, "r@pool.test", body(1))
    assert result == {}
    assert result.attempts == 2
    assert server.connection_count == 2
    assert message_ids(handler.deliveries) == {"1@pool.test": 1}
    assert verbs(handler.commands)[:5] == ["EHLO", "MAIL", "EHLO", "MAIL", "RCPT"]


async def test_transient_sender_refusal_is_retried_on_a_new_connection(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """A 4xx to MAIL says the session will not take more: the refusing connection is closed
    (QUIT after smtplib's RSET) and the retry opens another."""
    handler = FirstMailHandler("451 4.3.0 try again later")
    server = smtpd_server_factory(handler)
    async with make_pool(server.port) as pool:
        result = await pool.sendmail(SENDER, "r@pool.test", body(1))
    assert result == {}
    assert result.attempts == 2
    assert server.connection_count == 2
    assert verbs(handler.commands) == [
        *["EHLO", "MAIL", "RSET", "QUIT"],
        *["EHLO", *TRANSACTION, "QUIT"],
    ]
    assert message_ids(handler.deliveries) == {"1@pool.test": 1}


async def test_retry_waits_the_backoff_delay(smtpd_server_factory: SMTPDServerFactory) -> None:
    handler = FirstMailHandler("451 4.3.0 later", "451 4.3.0 later")
    server = smtpd_server_factory(handler)
    policy = RetryPolicy(attempts=3, base_delay=0.15, max_delay=1.0, jitter=False)
    async with make_pool(server.port, retry=policy) as pool:
        started = time.monotonic()
        result = await pool.sendmail(SENDER, "r@pool.test", body(1))
        elapsed = time.monotonic() - started
    assert result.attempts == 3
    assert elapsed >= 0.15 + 0.3 - 0.01  # base_delay, then twice that
    assert elapsed < 3.0


async def test_persistent_transient_refusal_gives_up_after_the_policy_attempts(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    handler = FirstMailHandler(*["451 4.3.0 later"] * 5)
    server = smtpd_server_factory(handler)
    async with make_pool(server.port) as pool:
        with pytest.raises(asmtp.SMTPSenderRefused) as caught:
            await pool.sendmail(SENDER, "r@pool.test", body(1))
        assert caught.value.smtp_code == 451
        assert attempts_of(caught.value) == 3
    async with make_pool(server.port, retry=RetryPolicy(attempts=1)) as single:
        with pytest.raises(asmtp.SMTPSenderRefused) as again:
            await single.sendmail(SENDER, "r@pool.test", body(2))
        assert attempts_of(again.value) == 1
    assert verbs(handler.commands).count("MAIL") == 4
    assert handler.deliveries == []


async def test_all_recipients_refused_transiently_is_retried(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    handler = RecordingHandler(refuse_recipients={"busy@pool.test": "450 4.2.1 mailbox busy"})
    server = smtpd_server_factory(handler)
    async with make_pool(server.port, retry=RetryPolicy(attempts=2, base_delay=0.01)) as pool:
        with pytest.raises(asmtp.SMTPRecipientsRefused) as caught:
            await pool.sendmail(SENDER, "busy@pool.test", body(1))
    assert caught.value.recipients == {"busy@pool.test": (450, b"4.2.1 mailbox busy")}
    assert attempts_of(caught.value) == 2
    assert verbs(handler.commands).count("MAIL") == 2
    assert server.connection_count == 1


async def test_transient_data_refusal_is_retried(smtpd_server_factory: SMTPDServerFactory) -> None:
    handler = RecordingHandler(data_reply="452 4.3.1 insufficient storage")
    server = smtpd_server_factory(handler)
    async with make_pool(server.port, retry=RetryPolicy(attempts=2, base_delay=0.01)) as pool:
        with pytest.raises(asmtp.SMTPDataError) as caught:
            await pool.sendmail(SENDER, "r@pool.test", body(1))
    assert caught.value.smtp_code == 452
    assert attempts_of(caught.value) == 2
    assert verbs(handler.commands).count("DATA") == 2
    assert handler.deliveries == []


async def test_421_closes_the_connection_and_the_retry_uses_a_new_one(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    handler = FirstMailHandler("421 4.3.2 shutting down")
    server = smtpd_server_factory(handler)
    async with make_pool(server.port) as pool:
        result = await pool.sendmail(SENDER, "r@pool.test", body(1))
        assert result == {}
        assert result.attempts == 2
        assert server.connection_count == 2
        # Nothing more was said on the connection that got 421: no RSET, no QUIT.
        assert verbs(handler.commands) == ["EHLO", "MAIL", "EHLO", *TRANSACTION]
        # The replacement is kept and reused.
        assert (await pool.sendmail(SENDER, "r@pool.test", body(2))).attempts == 1
        assert server.connection_count == 2
    assert message_ids(handler.deliveries) == {"1@pool.test": 1, "2@pool.test": 1}


async def test_timeout_before_the_end_of_data_is_retried(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    """No reply to RCPT within the deadline: cannot have been accepted, so sent again."""
    server = scripted_server_factory(
        scripts=[
            [*smtp_script([EHLO, MAIL, (b"RCPT TO:<b@x.test>\r\n", b"")]), ExpectClosed()],
            smtp_script([EHLO, MAIL, RCPT, DATA, QUEUED]),
        ]
    )
    async with make_pool(server.port) as pool:
        result = await pool.sendmail("a@x.test", "b@x.test", MESSAGE, deadline=0.5)
    assert result == {}
    assert result.attempts == 2
    server.check()


async def test_connection_refused_is_retried(anyio_backend: object) -> None:
    """A failure to connect means no transaction started: the policy's attempts are used.

    docs/bulk-sending.md and is_retryable() both say failures while connecting are retried.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    policy = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02)
    async with SMTPPool("127.0.0.1", port, tls="none", timeout=STEP_TIMEOUT, retry=policy) as pool:
        with pytest.raises(OSError) as caught:
            await pool.sendmail(SENDER, "r@pool.test", body(1))
    assert attempts_of(caught.value) == 3


# -- never retried: the server may have accepted it, or the body cannot be replayed ---------------


async def test_disconnect_after_the_final_dot_is_not_retried(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    """The end of data went out and no reply came: outcome unknown, so never sent twice."""
    server = scripted_server_factory(
        [*smtp_script([EHLO, MAIL, RCPT, DATA, (ExpectData(), b"")]), Close()]
    )
    async with make_pool(server.port) as pool:
        with pytest.raises(asmtp.SMTPTransactionInterrupted) as caught:
            await pool.sendmail("a@x.test", "b@x.test", MESSAGE)
    assert outcome_of(caught.value).accepted is None
    assert outcome_of(caught.value).recipients == ("b@x.test",)
    assert attempts_of(caught.value) == 1
    server.check()
    assert len(server.received_per_connection) == 1


async def test_timeout_after_the_final_dot_is_not_retried(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    server = scripted_server_factory(
        [*smtp_script([EHLO, MAIL, RCPT, DATA, (ExpectData(), b"")]), ExpectClosed()]
    )
    async with make_pool(server.port) as pool:
        with pytest.raises(asmtp.SMTPTransactionTimeout) as caught:
            await pool.sendmail("a@x.test", "b@x.test", MESSAGE, deadline=0.5)
    assert outcome_of(caught.value).accepted is None
    assert attempts_of(caught.value) == 1
    server.check()


async def _stalled_body() -> AsyncIterator[bytes]:
    yield b"Subject: streamed\r\n\r\nfirst part\r\n"
    await anyio.sleep(30)
    yield b"never sent\r\n"


async def test_streamed_body_is_not_retried_once_it_started(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    """Safe to retry by outcome, but an async iterator cannot be read a second time."""
    server = scripted_server_factory(
        [*smtp_script([EHLO, MAIL, RCPT, DATA]), ExpectClosed(timeout=STEP_TIMEOUT)]
    )
    async with make_pool(server.port) as pool:
        with pytest.raises(asmtp.SMTPTransactionTimeout) as caught:
            await pool.sendmail("a@x.test", "b@x.test", _stalled_body(), deadline=0.5)
    assert outcome_of(caught.value).accepted is False
    assert attempts_of(caught.value) == 1
    server.check()


async def _streamed(n: int) -> AsyncIterator[bytes]:
    for line in body(n).encode().splitlines(keepends=True):
        yield line


@pytest.mark.parametrize("kind", ["bytearray", "async-iterator"])
async def test_message_refused_before_its_body_started_is_retried(
    smtpd_server_factory: SMTPDServerFactory, kind: str
) -> None:
    """docs/bulk-sending.md: files and async iterators are not retried *once their body
    started*; SMTPPool.sendmail: bytes-like messages are retried. A 451 to MAIL comes
    before any of the body was read, so either kind can be sent again."""
    handler = FirstMailHandler("451 4.3.0 try again later")
    server = smtpd_server_factory(handler)
    msg: object = bytearray(body(1).encode()) if kind == "bytearray" else _streamed(1)
    async with make_pool(server.port) as pool:
        result = await pool.sendmail(SENDER, "r@pool.test", msg)
    assert result == {}
    assert result.attempts == 2
    assert message_ids(handler.deliveries) == {"1@pool.test": 1}


# -- cancellation ---------------------------------------------------------------------------------


async def test_cancelled_send_never_returns_its_connection(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    """Cancelled while MAIL's reply is owed: that connection is closed, never reused."""
    server = scripted_server_factory(
        scripts=[
            [*smtp_script([EHLO, (b"MAIL FROM:<a@x.test>\r\n", b"")]), ExpectClosed()],
            smtp_script([EHLO, MAIL, RCPT, DATA, QUEUED, MAIL, RCPT, DATA, QUEUED]),
        ]
    )
    async with make_pool(server.port, max_connections=1) as pool:
        with anyio.move_on_after(0.3) as scope:
            await pool.sendmail("a@x.test", "b@x.test", MESSAGE)
        assert scope.cancelled_caught
        # The reply the server might still send to MAIL must not be read as another's.
        assert await pool.sendmail("a@x.test", "b@x.test", MESSAGE) == {}
        assert await pool.sendmail("a@x.test", "b@x.test", MESSAGE) == {}
    server.check()


async def test_cancelled_send_waiting_for_the_data_reply(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """Cancelled while the reply to the end of data is owed; later sends stay in step."""
    handler = RecordingHandler(data_delay=1.0)
    server = smtpd_server_factory(handler)
    async with make_pool(server.port, max_connections=1) as pool:
        with anyio.move_on_after(0.3) as scope:
            await pool.sendmail(SENDER, "r@pool.test", body(0))
        assert scope.cancelled_caught
        handler.data_delay = 0.0
        for n in range(1, 4):
            result = await pool.sendmail(SENDER, "r@pool.test", body(n))
            assert result == {} and result.attempts == 1
    assert server.connection_count == 2
    assert without_quit(handler.commands) == [
        "EHLO",
        *TRANSACTION,  # cancelled: its connection is closed, not reused
        "EHLO",
        *TRANSACTION * 3,
    ]
    delivered = message_ids(handler.deliveries)
    assert {n: delivered[f"{n}@pool.test"] for n in range(1, 4)} == {1: 1, 2: 1, 3: 1}
    assert delivered["0@pool.test"] <= 1


async def test_cancelled_while_waiting_for_a_connection(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """A send cancelled before it got a connection leaves the pool's bookkeeping whole."""
    handler = RecordingHandler(data_delay=0.4)
    server = smtpd_server_factory(handler)
    async with make_pool(server.port, max_connections=1) as pool:
        async with anyio.create_task_group() as tg:
            tg.start_soon(pool.sendmail, SENDER, "r@pool.test", body(1))
            await anyio.sleep(0.1)
            with anyio.move_on_after(0.1) as scope:
                await pool.sendmail(SENDER, "r@pool.test", body(2))  # waits for the limiter
            assert scope.cancelled_caught
        handler.data_delay = 0.0
        result = await pool.sendmail(SENDER, "r@pool.test", body(3))
        assert result == {} and result.attempts == 1
    assert server.connection_count == 1
    assert without_quit(handler.commands) == ["EHLO", *TRANSACTION * 2]
    assert message_ids(handler.deliveries) == {"1@pool.test": 1, "3@pool.test": 1}


# -- PIPELINING through the pool ------------------------------------------------------------------


async def test_pooled_connection_pipelines_the_envelope(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    """The server answers nothing until MAIL, both RCPTs and DATA arrived: one group per send."""
    group = b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\nDATA\r\n"
    server = scripted_server_factory(
        smtp_script(
            [
                (ExpectLine(b"EHLO"), b"250-scripted.test\r\n250 PIPELINING\r\n"),
                (group, b"250 ok\r\n550 no such user\r\n250 ok\r\n354 go ahead\r\n"),
                QUEUED,
                (group, b"250 ok\r\n250 ok\r\n250 ok\r\n354 go ahead\r\n"),
                QUEUED,
                (b"QUIT\r\n", b"221 bye\r\n"),
            ]
        )
    )
    async with make_pool(server.port, max_connections=1) as pool:
        first = await pool.sendmail("a@x.test", ["b@x.test", "c@x.test"], MESSAGE)
        second = await pool.sendmail("a@x.test", ["b@x.test", "c@x.test"], MESSAGE)
    assert first == {"b@x.test": (550, b"no such user")} and first.attempts == 1
    assert second == {} and second.attempts == 1
    server.check()
