"""SMTPPool.send_each: a stream of (key, SendOutcome), one per message, as each completes.

The contract bulk campaigns build on: a uniform outcome for every failure, a bounded
window, the on_start hook before each attempt's first byte, and what happens when the
consumer stops or the input fails.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import asmtp
from asmtp import Outgoing, RetryPolicy, SendOutcome, SMTPPool
from pool._kit import STEP_TIMEOUT, FirstMailHandler, SessionHandler, body, message_ids, verbs
from support.aiosmtpd_server import RecordingHandler

if TYPE_CHECKING:
    from support.fixtures import SMTPDServerFactory

pytestmark = pytest.mark.anyio

SENDER = "sender@pool.test"
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)


def make_pool(port: int, **options: Any) -> SMTPPool:
    options.setdefault("retry", FAST)
    return SMTPPool("127.0.0.1", port, tls="none", timeout=STEP_TIMEOUT, **options)


def message(n: int, *to: str) -> tuple[int, Outgoing]:
    return n, Outgoing(SENDER, list(to or [f"r{n}@pool.test"]), body(n))


class Rows:
    """An input of ``count`` messages that counts how many were read."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.read = 0

    def __iter__(self) -> Iterator[tuple[int, Outgoing]]:
        for n in range(self.count):
            self.read += 1
            yield message(n)


async def collect(
    pool: SMTPPool, messages: Any, **options: Any
) -> tuple[dict[int, SendOutcome], asmtp.SendStream[int]]:
    outcomes: dict[int, SendOutcome] = {}
    async with pool.send_each(messages, **options) as results:
        async for key, outcome in results:
            assert key not in outcomes
            outcomes[key] = outcome
    return outcomes, results


# -- one uniform outcome per message --------------------------------------------------


async def test_every_message_gets_one_outcome_whatever_became_of_it(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    handler = RecordingHandler(
        refuse_senders={"spam@pool.test": "553 5.7.1 not from you"},
        refuse_recipients={
            "gone@pool.test": "550 5.1.1 no such user",
            "busy@pool.test": "450 4.2.1 mailbox busy",
        },
        advertise_pipelining=True,
    )
    server = smtpd_server_factory(handler)
    kinds = {
        0: ("ok", Outgoing(SENDER, ["ok@pool.test"], body(0))),
        1: ("gone", Outgoing(SENDER, ["gone@pool.test"], body(1))),
        2: ("busy", Outgoing(SENDER, ["busy@pool.test"], body(2))),
        3: ("spam", Outgoing("spam@pool.test", ["ok@pool.test"], body(3))),
        4: ("partly", Outgoing(SENDER, ["ok@pool.test", "gone@pool.test"], body(4))),
    }
    rows = [(100 * kind + n, item) for n in range(20) for kind, (_, item) in kinds.items()]
    async with make_pool(server.port, max_connections=3) as pool:
        outcomes, results = await collect(pool, rows)
    assert sorted(outcomes) == sorted(key for key, _ in rows)
    assert (results.taken, len(results), results.in_flight) == (100, 100, 0)
    assert (results.accepted, results.failed, results.unknown) == (40, 60, 0)
    gone, busy = (550, b"5.1.1 no such user"), (450, b"4.2.1 mailbox busy")
    for key, outcome in outcomes.items():
        kind = kinds[key // 100][0]
        assert isinstance(outcome, SendOutcome)
        assert (outcome.error is None) is bool(outcome.accepted), (kind, outcome)
        if kind == "ok":
            assert (outcome.recipients, outcome.attempts) == (("ok@pool.test",), 1)
            assert outcome.reply == (250, b"2.0.0 OK")
        elif kind == "gone":
            assert (outcome.accepted, outcome.refused) == (False, {"gone@pool.test": gone})
            assert isinstance(outcome.error, asmtp.SMTPRecipientsRefused)
            assert outcome.attempts == 1
        elif kind == "busy":  # transient: retried, then reported
            assert (outcome.accepted, outcome.refused) == (False, {"busy@pool.test": busy})
            assert outcome.attempts == 3
        elif kind == "spam":
            assert (outcome.accepted, outcome.reply) == (False, (553, b"5.7.1 not from you"))
            assert isinstance(outcome.error, asmtp.SMTPSenderRefused)
        else:
            assert (outcome.accepted, outcome.refused) == (True, {"gone@pool.test": gone})
            assert outcome.recipients == ("ok@pool.test",)
    assert len(handler.deliveries) == 40


async def test_a_message_lost_after_its_end_of_data_is_reported_unknown(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    handler = SessionHandler()
    server = smtpd_server_factory(handler)
    async with make_pool(server.port, max_connections=1) as pool:
        await pool.sendmail(SENDER, "r@pool.test", body(99))
        handler.drop_used("DATA")
        outcomes, results = await collect(pool, [message(1)])
    assert outcomes[1].accepted is None
    assert isinstance(outcomes[1].error, asmtp.SMTPTransactionInterrupted)
    assert (outcomes[1].attempts, results.unknown) == (1, 1)


async def test_async_input_is_read_as_room_frees(smtpd_server_factory: SMTPDServerFactory) -> None:
    server = smtpd_server_factory(RecordingHandler(data_delay=0.02))
    read = 0

    async def rows() -> AsyncIterator[tuple[int, Outgoing]]:
        nonlocal read
        for n in range(30):
            read += 1
            yield message(n)

    async with make_pool(server.port, max_connections=2) as pool:
        async with pool.send_each(rows(), window=3) as results:
            async for _ in results:
                assert read - len(results) <= 3  # held: in flight, or done and not yet taken
                assert results.in_flight <= 3
                await anyio.sleep(0.01)  # a slow consumer holds its outcomes' room
    assert (read, len(results), results.accepted) == (30, 30, 30)


async def test_the_window_bounds_what_is_read_ahead_of_the_consumer(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    server = smtpd_server_factory(RecordingHandler())
    rows = Rows(50)
    async with make_pool(server.port) as pool:
        async with pool.send_each(rows, window=5) as results:
            # The consumer has not asked for anything yet: the stream reads up to the
            # window (however long connecting takes on a loaded machine), then no further.
            with anyio.fail_after(10):
                while rows.read < 5:  # noqa: ASYNC110 - a counter the stream bumps, no event
                    await anyio.sleep(0.01)
            await anyio.sleep(0.3)
            assert rows.read == 5
            assert sum(1 for _ in [x async for x in results]) == 50
    assert rows.read == 50


# -- on_start --------------------------------------------------------------------------


@pytest.mark.parametrize("max_batch", [1, 16], ids=["alone", "batched"])
async def test_on_start_comes_before_each_attempts_first_byte(
    smtpd_server_factory: SMTPDServerFactory, max_batch: int
) -> None:
    """Message 0's first MAIL gets 451: its hook runs once per attempt, each time before the
    server saw that attempt's MAIL; on one connection the hooks come in wire order."""
    handler = FirstMailHandler("451 4.3.0 later", advertise_pipelining=True)
    server = smtpd_server_factory(handler)
    calls: list[tuple[int, int]] = []

    def on_start(key: int) -> None:
        calls.append((key, verbs(handler.commands).count("MAIL")))

    async with make_pool(server.port, max_connections=1, max_batch=max_batch) as pool:
        outcomes, _ = await collect(pool, [message(n) for n in range(6)], on_start=on_start)
    assert outcomes[0].attempts == 2
    assert [key for key, _ in calls].count(0) == 2
    assert sorted(key for key, _ in calls) == [0, 0, 1, 2, 3, 4, 5]
    for index, (_, mails_seen) in enumerate(calls):
        assert mails_seen <= index  # this attempt's MAIL had not reached the server
    # The first attempt's RCPT went unheard (its MAIL was refused); then one per hook.
    rcpts = [command.split()[1] for command in handler.commands if command.startswith("RCPT")]
    assert calls[0][0] == 0
    assert rcpts == [f"r{key}@pool.test" for key, _ in calls[1:]]


@pytest.mark.parametrize("max_batch", [1, 16], ids=["alone", "batched"])
async def test_a_hook_that_raises_fails_its_own_message_before_any_byte(
    smtpd_server_factory: SMTPDServerFactory, max_batch: int
) -> None:
    handler = RecordingHandler(advertise_pipelining=True)
    server = smtpd_server_factory(handler)

    def on_start(key: int) -> None:
        if key == 3:
            raise LookupError("row 3 is locked")

    async with make_pool(server.port, max_connections=1, max_batch=max_batch) as pool:
        outcomes, results = await collect(pool, [message(n) for n in range(6)], on_start=on_start)
    assert outcomes[3].accepted is False
    assert isinstance(outcomes[3].error, LookupError)
    assert outcomes[3].attempts == 1
    assert results.failed == 1
    delivered = message_ids(handler.deliveries)
    assert "3@pool.test" not in delivered
    assert "RCPT r3@pool.test" not in handler.commands
    assert all(outcomes[n].accepted is not False for n in (0, 1, 2, 4, 5))
    assert outcomes[2].accepted is True  # the message before it was ended and answered


# -- stopping early ------------------------------------------------------------------------


async def test_an_input_error_ends_the_stream_after_the_messages_in_flight(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    server = smtpd_server_factory(RecordingHandler())

    def rows() -> Iterator[tuple[int, Outgoing]]:
        yield from (message(n) for n in range(5))
        raise ConnectionAbortedError("the database went away")

    seen: list[int] = []
    async with make_pool(server.port) as pool:
        with pytest.raises(ConnectionAbortedError, match="database went away") as caught:
            async with pool.send_each(rows()) as results:
                async for key, outcome in results:
                    assert outcome.accepted
                    seen.append(key)
    assert type(caught.value) is ConnectionAbortedError  # not wrapped in a group
    assert sorted(seen) == [0, 1, 2, 3, 4]
    assert results.unreported == []


async def test_an_item_that_is_not_a_key_and_an_outgoing_ends_the_stream(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    server = smtpd_server_factory(RecordingHandler())
    rows: list[Any] = [message(0), ("row 1", "not a message")]
    async with make_pool(server.port) as pool:
        with pytest.raises(TypeError, match=r"\(key, asmtp.Outgoing\) pairs"):
            await collect(pool, rows)


async def test_a_cancelled_consumer_reads_no_more_and_lets_the_sends_in_flight_finish(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    handler = RecordingHandler(data_delay=0.3)
    server = smtpd_server_factory(handler)
    rows = Rows(100)
    async with make_pool(server.port, max_connections=4, max_batch=1) as pool:
        started = time.monotonic()
        with anyio.move_on_after(0.1) as scope:
            async with pool.send_each(rows, window=4, grace=30) as results:
                async for _ in results:
                    pytest.fail("no message completes within 0.1 s")
        assert scope.cancelled_caught
        assert time.monotonic() - started < 15  # as long as the sends took, not the grace
    assert rows.read == 4
    assert sorted(key for key, _ in results.unreported) == [0, 1, 2, 3]
    assert all(outcome.accepted for _, outcome in results.unreported)
    assert len(results) == 0 and results.in_flight == 0
    assert message_ids(handler.deliveries) == {f"{n}@pool.test": 1 for n in range(4)}


async def test_sends_still_in_flight_after_the_grace_report_what_is_known(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """One message's end of data is on the wire, unanswered: unknown. The two waiting for
    the connection were never begun: not accepted, safe to send again."""
    handler = RecordingHandler(data_delay=3.0)
    server = smtpd_server_factory(handler)
    async with make_pool(server.port, max_connections=1, max_batch=1) as pool:
        with anyio.move_on_after(0.3):
            async with pool.send_each(Rows(10), window=3, grace=0.1) as results:
                async for _ in results:
                    pytest.fail("nothing completes within 0.3 s")
    unreported = dict(results.unreported)
    assert sorted(unreported) == [0, 1, 2]
    assert unreported[0].accepted is None
    assert unreported[1].accepted is False and unreported[2].accepted is False
    for outcome in unreported.values():
        assert isinstance(outcome.error, asmtp.SMTPTransactionInterrupted)


async def test_a_send_cut_short_on_its_retry_reports_every_attempt_it_made(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """MAIL gets 451 on the first attempt; the consumer stops once the retry's data is in,
    and its reply is still due when the grace ends: unknown, after two attempts."""
    handler = FirstMailHandler("451 4.3.0 try later", data_delay=3.0)
    server = smtpd_server_factory(handler)

    async def stop_once_the_data_is_in(scope: anyio.CancelScope) -> None:
        with anyio.fail_after(STEP_TIMEOUT):
            while "DATA" not in verbs(handler.commands):  # noqa: ASYNC110 - the server thread records it
                await anyio.sleep(0.01)
        scope.cancel()

    async with make_pool(server.port, max_connections=1, max_batch=1) as pool:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as group:
                group.start_soon(stop_once_the_data_is_in, scope)
                async with pool.send_each(Rows(1), grace=0.1) as results:
                    async for _ in results:
                        pytest.fail("the data's reply is delayed past the grace")
    assert verbs(handler.commands).count("MAIL") == 2
    [(key, outcome)] = results.unreported
    assert key == 0
    assert outcome.accepted is None
    assert outcome.attempts == 2


async def test_leaving_the_loop_early_reports_the_rest_as_unreported(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    server = smtpd_server_factory(RecordingHandler())
    rows = Rows(100)
    async with make_pool(server.port) as pool:
        async with pool.send_each(rows, window=8) as results:
            async for key, _ in results:
                first = key
                break
    assert rows.read <= 9
    assert len(results) == 1
    assert first not in dict(results.unreported)
    assert len(results) + len(results.unreported) == rows.read
    assert all(outcome.accepted for _, outcome in results.unreported)


# -- misuse ------------------------------------------------------------------------------


async def test_a_stream_runs_inside_async_with_and_once(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    server = smtpd_server_factory(RecordingHandler())
    async with make_pool(server.port) as pool:
        stream = pool.send_each([message(0)])
        with pytest.raises(RuntimeError, match="inside `async with"):
            await stream.__anext__()
        async with stream:
            assert [key async for key, _ in stream] == [0]
        with pytest.raises(RuntimeError, match="runs once"):
            await stream.__aenter__()
        with pytest.raises(ValueError, match="window"):
            pool.send_each([], window=0)
    with pytest.raises(RuntimeError, match="the pool is closed"):
        async with pool.send_each([message(1)]):
            pass
