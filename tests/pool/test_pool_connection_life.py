"""Pooled connections that died or wore out: never sent on twice, replaced without waiting.

A connection the server closed while it idled is never used; one whose close crossed the
send's first write is replaced without counting an attempt; a 4xx to MAIL moves the retry
to a new connection at once; idle connections are closed in the background while the pool
is open. aiosmtpd on loopback, on asyncio, trio and uvloop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import asmtp
from asmtp import RetryPolicy, SMTPPool
from pool._kit import STEP_TIMEOUT, SessionHandler, body, message_ids, verbs, without_quit
from support.aiosmtpd_server import RecordingHandler

if TYPE_CHECKING:
    from support.fixtures import SMTPDServerFactory

pytestmark = pytest.mark.anyio

SENDER = "sender@pool.test"
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
PATIENT = RetryPolicy(attempts=3, base_delay=20.0, max_delay=20.0, jitter=False)
"""Retry delays no test waits out: a send that finished quickly never waited for one."""


def make_pool(port: int, **options: Any) -> SMTPPool:
    options.setdefault("retry", FAST)
    return SMTPPool("127.0.0.1", port, tls="none", timeout=STEP_TIMEOUT, **options)


async def open_connections(pool: SMTPPool, count: int) -> None:
    """Send ``count`` messages at once, so the pool opens ``count`` connections."""
    async with anyio.create_task_group() as tg:
        for n in range(count):
            tg.start_soon(pool.sendmail, SENDER, f"warm{n}@pool.test", body(1000 + n))


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` for up to five seconds."""
    for _ in range(250):
        if condition():
            return
        await anyio.sleep(0.02)
    raise AssertionError(f"{what} not within 5 s")


# -- dead connections -----------------------------------------------------------------


@pytest.mark.parametrize("entered", [True, False], ids=["async-with", "no-async-with"])
async def test_sends_after_the_server_dropped_every_idle_connection_cost_no_attempt(
    smtpd_server_factory: SMTPDServerFactory, entered: bool
) -> None:
    """aiosmtpd's idle timeout closes all four pooled connections (421, then EOF), as
    Postfix does after its own; each later send is made on a new one, first try."""
    handler = RecordingHandler()
    server = smtpd_server_factory(handler, timeout=0.3)
    pool = make_pool(server.port, max_connections=4, max_batch=1)
    if entered:
        await pool.__aenter__()
    try:
        await open_connections(pool, 4)
        assert server.connection_count == 4
        await anyio.sleep(0.8)  # the server drops every idle connection
        results = [await pool.sendmail(SENDER, "r@pool.test", body(n)) for n in range(4)]
    finally:
        await pool.aclose()
    assert [(result, result.attempts) for result in results] == [({}, 1)] * 4
    assert server.connection_count == 5  # one new connection, reused by the later sends
    assert message_ids(handler.deliveries)["0@pool.test"] == 1
    assert verbs(handler.commands).count("MAIL") == 8  # no MAIL went to a dead connection


async def test_a_connection_whose_close_crosses_the_first_write_is_replaced_uncounted(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """Three idle connections each die as the send's MAIL reaches them, unanswered: none
    of it counts, so a policy of three attempts still sends, on a fourth connection."""
    handler = SessionHandler()
    server = smtpd_server_factory(handler)
    async with make_pool(server.port, max_connections=3, max_batch=1) as pool:
        await open_connections(pool, 3)
        handler.drop_used("MAIL")
        result = await pool.sendmail(SENDER, "r@pool.test", body(1))
    assert result == {} and result.attempts == 1
    assert handler.dropped == 3
    assert server.connection_count == 4
    assert message_ids(handler.deliveries)["1@pool.test"] == 1


async def test_a_connection_closed_after_answering_part_of_the_send_counts_an_attempt(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """MAIL answered, then the close at RCPT: the server took part in this send, so the
    retry is an ordinary one."""
    handler = SessionHandler()
    server = smtpd_server_factory(handler)
    async with make_pool(server.port, max_connections=1) as pool:
        await pool.sendmail(SENDER, "r@pool.test", body(1))
        handler.drop_used("RCPT")
        result = await pool.sendmail(SENDER, "r@pool.test", body(2))
    assert result == {} and result.attempts == 2
    assert handler.dropped == 1
    assert message_ids(handler.deliveries) == {"1@pool.test": 1, "2@pool.test": 1}


async def test_a_reused_connection_lost_after_the_end_of_data_is_never_retried(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    handler = SessionHandler()
    server = smtpd_server_factory(handler)
    async with make_pool(server.port, max_connections=1) as pool:
        await pool.sendmail(SENDER, "r@pool.test", body(1))
        handler.drop_used("DATA")
        with pytest.raises(asmtp.SMTPTransactionInterrupted) as caught:
            await pool.sendmail(SENDER, "r@pool.test", body(2))
    assert caught.value.outcome.accepted is None
    assert vars(caught.value)["attempts"] == 1
    assert verbs(handler.commands).count("DATA") == 2
    assert server.connection_count == 1


# -- worn-out connections -------------------------------------------------------------


async def test_a_transient_refusal_of_mail_moves_the_retry_to_a_new_connection_at_once(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """OpenSMTPD's ``452 4.5.3 Too many messages`` after its max-mails: the message goes
    out on a new connection straight away, and the refusing one gets no more MAIL."""
    handler = SessionHandler(max_mails=3)
    server = smtpd_server_factory(handler)
    started = time.monotonic()
    async with make_pool(server.port, max_connections=1, retry=PATIENT) as pool:
        results = [await pool.sendmail(SENDER, "r@pool.test", body(n)) for n in range(7)]
    assert time.monotonic() - started < PATIENT.base_delay / 2  # no retry delay was waited
    assert [result.attempts for result in results] == [1, 1, 1, 2, 1, 1, 2]
    assert server.connection_count == 3
    connection = ["EHLO", *["MAIL", "RCPT", "DATA"] * 3, "MAIL", "RSET", "QUIT"]
    last = ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    assert verbs(handler.commands) == [*connection, *connection, *last]
    assert message_ids(handler.deliveries) == {f"{n}@pool.test": 1 for n in range(7)}


async def test_batches_stop_at_a_transient_refusal_of_mail(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """Queued sends riding on a connection that starts refusing MAIL: the batch ends there,
    the connection closes, and each refused message is sent once on a new one."""
    handler = SessionHandler(max_mails=3, advertise_pipelining=True)
    server = smtpd_server_factory(handler)
    async with make_pool(server.port, max_connections=2, retry=PATIENT) as pool:
        results = {}

        async def send(n: int) -> None:
            results[n] = await pool.sendmail(SENDER, f"r{n}@pool.test", body(n))

        async with anyio.create_task_group() as tg:
            for n in range(20):
                tg.start_soon(send, n)
    assert all(result == {} and result.attempts <= 2 for result in results.values())
    assert message_ids(handler.deliveries) == {f"{n}@pool.test": 1 for n in range(20)}
    assert 1 <= handler.worn_out <= server.connection_count  # one refusal per connection
    assert handler.errors == []


@pytest.mark.parametrize("max_connections", [1, 2])
async def test_retries_on_new_connections_keep_the_server_within_max_connections(
    smtpd_server_factory: SMTPDServerFactory, max_connections: int
) -> None:
    """Sends queued while connections wear out: each refused message goes out again at once
    on a new connection, without waiting the retry delay, and an idle connection closes
    first when a new one would pass ``max_connections``: the server never holds more."""
    handler = SessionHandler(max_mails=4, advertise_pipelining=True)
    server = smtpd_server_factory(handler)
    count = 30
    rows = [(n, asmtp.Outgoing(SENDER, [f"r{n}@pool.test"], body(n))) for n in range(count)]
    async with make_pool(server.port, max_connections=max_connections, retry=PATIENT) as pool:
        with anyio.fail_after(PATIENT.base_delay / 2):  # no retry delay was waited
            async with pool.send_each(rows) as results:
                outcomes = {n: outcome async for n, outcome in results}
    assert results.accepted == count
    assert server.most_connections_at_once <= max_connections
    assert message_ids(handler.deliveries) == {f"{n}@pool.test": 1 for n in range(count)}
    attempts = [outcomes[n].attempts for n in range(count)]
    assert set(attempts) == {1, 2}  # a retry is never refused: its connection is new
    assert attempts.count(2) == handler.worn_out


async def test_a_transient_refusal_of_a_connections_first_mail_waits_the_retry_delay(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """On a new connection a 4xx to MAIL is about the server, not the connection: the
    retry, on another new connection, waits the policy's delay."""
    handler = SessionHandler(max_mails=0)
    server = smtpd_server_factory(handler)
    policy = RetryPolicy(attempts=2, base_delay=0.3, jitter=False)
    async with make_pool(server.port, retry=policy) as pool:
        started = time.monotonic()
        with pytest.raises(asmtp.SMTPSenderRefused) as caught:
            await pool.sendmail(SENDER, "r@pool.test", body(1))
    assert time.monotonic() - started >= 0.3
    assert caught.value.smtp_code == 452
    assert server.connection_count == 2
    assert without_quit(handler.commands) == ["EHLO", "MAIL", "RSET"] * 2


# -- closing idle connections ---------------------------------------------------------


async def test_an_open_pool_closes_idle_connections_in_the_background(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    handler = RecordingHandler()
    server = smtpd_server_factory(handler)
    async with make_pool(server.port, idle_timeout=0.2, max_connections=2, max_batch=1) as pool:
        await open_connections(pool, 2)
        await wait_for(lambda: verbs(handler.commands).count("QUIT") == 2, "two QUITs")
        assert repr(pool).endswith("idle=0>")
        assert (await pool.sendmail(SENDER, "r@pool.test", body(1))).attempts == 1
        assert server.connection_count == 3
        await wait_for(lambda: verbs(handler.commands).count("QUIT") == 3, "a third QUIT")
    assert verbs(handler.commands).count("QUIT") == 3


class SlowQuitHandler(RecordingHandler):
    """Records QUIT, then answers it after a pause, holding the connection open meanwhile."""

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_QUIT(server, session, envelope)
        await asyncio.sleep(0.3)  # the server's own loop: asyncio whatever the client's
        return reply


async def test_a_send_waits_for_the_quit_of_a_connection_closing_in_the_background(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """The connection the pool is closing counts at the server until its QUIT is answered:
    a send that comes meanwhile opens its own after that, not beside it."""
    handler = SlowQuitHandler()
    server = smtpd_server_factory(handler)
    async with make_pool(server.port, idle_timeout=0.1, max_connections=1) as pool:
        await pool.sendmail(SENDER, "r@pool.test", body(1))
        await wait_for(lambda: "QUIT" in verbs(handler.commands), "the QUIT")
        result = await pool.sendmail(SENDER, "r@pool.test", body(2))
    assert result == {} and result.attempts == 1
    assert server.connection_count == 2
    assert server.most_connections_at_once == 1


async def test_a_pool_used_without_async_with_closes_expired_connections_at_checkout(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    handler = RecordingHandler()
    server = smtpd_server_factory(handler)
    pool = make_pool(server.port, idle_timeout=0.2)
    try:
        await pool.sendmail(SENDER, "r@pool.test", body(1))
        await anyio.sleep(0.4)
        assert "QUIT" not in verbs(handler.commands)  # nothing runs in the background
        await pool.sendmail(SENDER, "r@pool.test", body(2))
    finally:
        await pool.aclose()
    assert verbs(handler.commands) == [
        *["EHLO", "MAIL", "RCPT", "DATA", "QUIT"],
        *["EHLO", "MAIL", "RCPT", "DATA", "QUIT"],
    ]
