"""SMTPPool batches: queued sends ride back to back on a busy caller's connection.

Scripted servers prove the overlap (a message's final reply is withheld until the next
queued message's envelope arrived) and that each caller gets its own result, including
when the connection fails with two callers' messages on the wire. aiosmtpd with PIPELINING
advertised proves many concurrent callers get every message delivered exactly once.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from anyio.abc import TaskStatus

import asmtp
from asmtp import RetryPolicy, SendResult, SMTPPool
from pool._kit import STEP_TIMEOUT, body, message_ids, verbs
from support.aiosmtpd_server import RecordingHandler
from support.scripted import Close, ExpectData, ExpectLine, Hold, Sleep, Step, smtp_script

if TYPE_CHECKING:
    from support.fixtures import ScriptedServerFactory, SMTPDServerFactory

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
EHLO: tuple[bytes | Step, bytes] = (
    ExpectLine(b"EHLO"),
    b"250-scripted.test\r\n250 PIPELINING\r\n",
)
QUIT: tuple[bytes | Step, bytes] = (b"QUIT\r\n", b"221 bye\r\n")
ENVELOPE_OK = b"250 ok\r\n250 ok\r\n354 go ahead\r\n"


def group(recipient: str) -> bytes:
    return b"MAIL FROM:<a@x.test>\r\nRCPT TO:<%s>\r\nDATA\r\n" % recipient.encode()


def make_pool(port: int, **options: Any) -> SMTPPool:
    options.setdefault("retry", FAST)
    return SMTPPool("127.0.0.1", port, tls="none", timeout=STEP_TIMEOUT, **options)


async def send_concurrently(
    pool: SMTPPool, recipients: list[str], all_queued: threading.Event
) -> dict[str, object]:
    """One task per recipient, each queued at the pool before the next starts; their results.

    ``tg.start`` returns once the task reported started, and nothing between that and the
    pool's queue awaits, so the queue order is the list order on every backend. The script
    holds its greeting (``Hold(all_queued)``) until every task is queued: caller 1's
    connection gets nowhere before then, however the scheduler orders the tasks.
    """
    results: dict[str, object] = {}

    async def send(recipient: str, *, task_status: TaskStatus[None]) -> None:
        task_status.started()
        try:
            results[recipient] = await pool.sendmail("a@x.test", [recipient], b"hi\r\n")
        except asmtp.SMTPException as exc:
            results[recipient] = exc

    async with anyio.create_task_group() as tg:
        for recipient in recipients:
            await tg.start(send, recipient)
        all_queued.set()
    return results


async def test_queued_sends_overlap_on_the_busy_connection(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    """Scripted server, one connection: callers 2 and 3 queue while caller 1 connects.

    Message 1's final reply is withheld until message 2's envelope arrived, and so on: the
    queued messages went out on caller 1's connection, each MAIL before the previous reply.
    Caller 2's recipient is refused at RCPT: only caller 2 hears of it.
    """
    all_queued = threading.Event()
    server = scripted_server_factory(
        [
            Hold(all_queued),
            *smtp_script(
                [
                    EHLO,
                    (group("one@x.test"), ENVELOPE_OK),
                    (ExpectData(), b""),
                    (
                        group("two@x.test"),
                        b"250 queued 1\r\n250 ok\r\n550 5.1.1 no such user\r\n"
                        b"554 no valid recipients\r\n",
                    ),
                    (b"RSET\r\n", b"250 flushed\r\n"),
                    (group("three@x.test"), ENVELOPE_OK),
                    (ExpectData(), b""),
                    (group("four@x.test"), b"250 queued 3\r\n" + ENVELOPE_OK),
                    (ExpectData(), b"250 queued 4\r\n"),
                    QUIT,
                ]
            ),
        ]
    )
    async with make_pool(server.port, max_connections=1) as pool:
        results = await send_concurrently(
            pool, ["one@x.test", "two@x.test", "three@x.test", "four@x.test"], all_queued
        )
    assert results["one@x.test"] == {} and results["three@x.test"] == {}
    assert results["four@x.test"] == {}
    refused = results["two@x.test"]
    assert isinstance(refused, asmtp.SMTPRecipientsRefused)
    assert refused.recipients == {"two@x.test": (550, b"5.1.1 no such user")}
    assert vars(refused)["attempts"] == 1
    assert all(
        isinstance(result, SendResult) and result.attempts == 1
        for result in results.values()
        if not isinstance(result, Exception)
    )


async def test_max_batch_bounds_one_callers_turn(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    """Scripted server: with max_batch=2, caller 1 carries caller 2's message and stops;
    caller 3 then runs the connection itself, after message 2's reply was read."""
    all_queued = threading.Event()
    server = scripted_server_factory(
        [
            Hold(all_queued),
            *smtp_script(
                [
                    EHLO,
                    (group("one@x.test"), ENVELOPE_OK),
                    (ExpectData(), b""),
                    (group("two@x.test"), b"250 queued 1\r\n" + ENVELOPE_OK),
                    (ExpectData(), b"250 queued 2\r\n"),  # answered before message 3 begins
                    (group("three@x.test"), ENVELOPE_OK),
                    (ExpectData(), b"250 queued 3\r\n"),
                    QUIT,
                ]
            ),
        ]
    )
    async with make_pool(server.port, max_connections=1, max_batch=2) as pool:
        results = await send_concurrently(
            pool, ["one@x.test", "two@x.test", "three@x.test"], all_queued
        )
    assert results == {"one@x.test": {}, "two@x.test": {}, "three@x.test": {}}


async def test_lost_connection_resends_only_what_cannot_have_arrived(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    """Scripted server: the first connection dies after message 1's end and message 2's envelope.

    Message 1 may have been delivered: its caller gets SMTPTransactionInterrupted with an
    unknown outcome and no retry. Message 2 cannot have been: it is sent again on a new
    connection. Nothing is lost and nothing is duplicated.
    """
    all_queued = threading.Event()
    first = [
        Hold(all_queued),
        *smtp_script(
            [
                EHLO,
                (group("one@x.test"), ENVELOPE_OK),
                (ExpectData(), b""),
                (group("two@x.test"), b""),
            ]
        ),
        Close(),
    ]
    second = smtp_script(
        [EHLO, (group("two@x.test"), ENVELOPE_OK), (ExpectData(), b"250 queued\r\n"), QUIT]
    )
    server = scripted_server_factory(scripts=[first, second])
    async with make_pool(server.port, max_connections=1) as pool:
        results = await send_concurrently(pool, ["one@x.test", "two@x.test"], all_queued)
    lost = results["one@x.test"]
    assert isinstance(lost, asmtp.SMTPTransactionInterrupted)
    assert lost.outcome.accepted is None and vars(lost)["attempts"] == 1
    resent = results["two@x.test"]
    assert isinstance(resent, SendResult) and resent == {} and resent.attempts == 2


async def test_deadline_sends_are_not_batched(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    """Scripted server: a queued send with a deadline waits for its own turn on the connection."""
    server = scripted_server_factory(
        smtp_script(
            [
                EHLO,
                (group("one@x.test"), ENVELOPE_OK),
                (ExpectData(), b"250 queued 1\r\n"),
                (group("two@x.test"), ENVELOPE_OK),
                (ExpectData(), b"250 queued 2\r\n"),
                QUIT,
            ]
        )
    )
    async with make_pool(server.port, max_connections=1) as pool:

        async def send(recipient: str, *, task_status: TaskStatus[None]) -> None:
            task_status.started()
            deadline = 5.0 if recipient == "two@x.test" else None
            await pool.sendmail("a@x.test", [recipient], b"hi\r\n", deadline=deadline)

        async with anyio.create_task_group() as tg:
            await tg.start(send, "one@x.test")
            await tg.start(send, "two@x.test")
    # Batched, message 2's envelope would ride in the write ending message 1; in its own
    # turn it is written only after message 1's reply, so never in the same read.
    assert not any(b"hi\r\n.\r\n" in data and b"two@x.test" in data for data in server.reads[0])


async def test_many_callers_over_few_pipelining_connections(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """aiosmtpd advertising PIPELINING: 300 callers, 3 connections, every message once."""
    handler = RecordingHandler(advertise_pipelining=True)
    server = smtpd_server_factory(handler)
    results: dict[int, SendResult] = {}
    async with make_pool(server.port, max_connections=3, max_batch=8) as pool:

        async def send_one(n: int) -> None:
            results[n] = await pool.sendmail("a@x.test", [f"r{n}@pool.test"], body(n))

        async with anyio.create_task_group() as tg:
            for n in range(300):
                tg.start_soon(send_one, n)
    assert all(results[n] == {} and results[n].attempts == 1 for n in range(300))
    assert message_ids(handler.deliveries) == {f"{n}@pool.test": 1 for n in range(300)}
    assert {d.rcpt_tos for d in handler.deliveries} == {(f"r{n}@pool.test",) for n in range(300)}
    assert verbs(handler.commands).count("EHLO") == server.connection_count <= 3
    assert "RSET" not in verbs(handler.commands)


async def test_cancelled_caller_whose_message_is_on_another_connection(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    """Scripted server: caller 2 gives up while its message rides on caller 1's connection.

    The message still completes (the script runs to its end, QUIT included), so the
    connection stays in step; caller 2 just stops waiting.
    """
    both_queued = threading.Event()
    server = scripted_server_factory(
        [
            Hold(both_queued),
            *smtp_script(
                [
                    EHLO,
                    (group("one@x.test"), ENVELOPE_OK),
                    (ExpectData(), b""),
                    (group("two@x.test"), b"250 queued 1\r\n250 ok\r\n250 ok\r\n"),
                ]
            ),
            Sleep(1.0),
            *smtp_script(
                [(b"", b"354 go ahead\r\n"), (ExpectData(), b"250 queued 2\r\n"), QUIT],
                greeting=None,
            ),
        ]
    )
    outcome: dict[str, object] = {}
    async with make_pool(server.port, max_connections=1) as pool:

        async def impatient(*, task_status: TaskStatus[None]) -> None:
            with anyio.move_on_after(0.3) as scope:
                task_status.started()
                await pool.sendmail("a@x.test", ["two@x.test"], b"hi\r\n")
            outcome["cancelled"] = scope.cancelled_caught

        async def first(*, task_status: TaskStatus[None]) -> None:
            task_status.started()
            outcome["first"] = await pool.sendmail("a@x.test", ["one@x.test"], b"hi\r\n")

        async with anyio.create_task_group() as tg:
            await tg.start(first)
            await tg.start(impatient)
            both_queued.set()
    assert outcome == {"first": {}, "cancelled": True}


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        SMTPPool(max_batch=0)
