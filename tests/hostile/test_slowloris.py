"""Slow and silent servers: every operation ends within its timeout, a send within its deadline.

A slowloris server keeps each read short (one byte every 0.2 s) so that a timeout applied to
each socket read never fires while the operation as a whole drags on for minutes. These
tests bound every operation from the outside (twice its timeout plus slack) so a client that
does not enforce its own bound fails here instead of hanging the suite.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Final

import anyio
import pytest

import asmtp
from support.scripted import ExpectBytes, ExpectData, ExpectLine, Send, Sleep, Step

from ._kit import (
    EHLO_LOCKSTEP,
    GREETING,
    HOST,
    RECIPIENTS,
    SENDER,
    SLACK,
    TIMEOUT,
    client,
    unchecked,
)

pytestmark = pytest.mark.anyio

DRIP: Final = 0.2
"""Seconds between two bytes of a slowloris reply: well inside any per-read timeout."""
SLOW_TEXT: Final = b"s" * 60
"""A reply text that takes 12 s to dribble out: far longer than :data:`TIMEOUT`."""
OUTER: Final = TIMEOUT + SLACK + 0.5
"""The test's own bound on an operation whose timeout is :data:`TIMEOUT`."""


def _reply(code: bytes, *, silent: bool) -> Step:
    if silent:
        return Sleep(OUTER + 1)
    return Send(code + b" " + SLOW_TEXT + b"\r\n", per_byte_delay=DRIP)


async def _greeting_op(smtp: asmtp.SMTP) -> object:
    return await smtp.connect()


async def _ehlo_op(smtp: asmtp.SMTP) -> object:
    await smtp.connect()
    return await smtp.ehlo()


OPERATIONS: Final[dict[str, tuple[Callable[[asmtp.SMTP], Awaitable[object]], list[bytes]]]] = {
    # name: (operation, the command lines the server reads before its slow reply)
    "greeting": (_greeting_op, []),
    "ehlo": (_ehlo_op, [b"EHLO"]),
}


def _script(name: str, *, silent: bool) -> list[Step]:
    lines = OPERATIONS[name][1]
    if not lines:
        return [_reply(b"220", silent=silent)]
    steps: list[Step] = [Send(GREETING)]
    for number, prefix in enumerate(lines):
        steps.append(ExpectLine(prefix))
        if number < len(lines) - 1:
            steps.append(Send(EHLO_LOCKSTEP))
    steps.append(_reply(b"250", silent=silent))
    return steps


@pytest.mark.parametrize("silent", [False, True], ids=["slowloris", "silent"])
@pytest.mark.parametrize("name", list(OPERATIONS))
async def test_each_operation_ends_within_its_timeout(name: str, silent: bool) -> None:
    operation = OPERATIONS[name][0]
    with unchecked(_script(name, silent=silent)) as server:
        smtp = client(server.port)
        started = time.monotonic()
        try:
            with anyio.move_on_after(OUTER) as outer, pytest.raises(TimeoutError):
                await operation(smtp)
            elapsed = time.monotonic() - started
            assert not outer.cancelled_caught, f"{name} outlived its {TIMEOUT}s timeout"
            assert elapsed < TIMEOUT + SLACK, f"{name} took {elapsed:.1f}s"
            assert not smtp.is_connected
        finally:
            await smtp.close()


async def test_server_that_stops_reading_mid_body_times_out_the_write() -> None:
    """A write blocked on a full socket buffer is bounded too; the message was not accepted."""
    script: list[Step] = [
        Send(GREETING),
        ExpectLine(b"EHLO"),
        Send(EHLO_LOCKSTEP),
        ExpectLine(b"MAIL"),
        Send(b"250 ok\r\n"),
        ExpectLine(b"RCPT"),
        Send(b"250 ok\r\n"),
        ExpectLine(b"DATA"),
        Send(b"354 go\r\n"),
        ExpectBytes(1024),
        Sleep(OUTER * 3),
    ]
    with unchecked(script) as server:
        smtp = client(server.port)
        await smtp.connect()
        try:
            with anyio.move_on_after(OUTER * 3) as outer:
                with pytest.raises(asmtp.SMTPTransactionTimeout) as caught:
                    await smtp.sendmail(SENDER, RECIPIENTS[0], b"x" * (48 * 1024 * 1024))
            assert not outer.cancelled_caught, "a blocked write outlived its timeout"
            assert caught.value.outcome.accepted is False
            assert not smtp.is_connected
        finally:
            await smtp.close()


def _slow_envelope() -> list[Step]:
    """Every reply within the per-operation timeout, the whole send far beyond the deadline."""
    slow = 0.06  # 10 bytes per reply: 0.6 s each, inside TIMEOUT even for a whole-reply bound
    return [
        Send(GREETING),
        ExpectLine(b"EHLO"),
        Send(EHLO_LOCKSTEP),
        ExpectLine(b"MAIL"),
        Send(b"250 okay\r\n", per_byte_delay=slow),
        ExpectLine(b"RCPT"),
        Send(b"250 okay\r\n", per_byte_delay=slow),
        ExpectLine(b"DATA"),
        Send(b"354 go on\r\n", per_byte_delay=slow),
        ExpectData(),
        Send(b"250 queued\r\n", per_byte_delay=slow),
    ]


def _slow_after_the_dot() -> list[Step]:
    return [
        Send(GREETING),
        ExpectLine(b"EHLO"),
        Send(EHLO_LOCKSTEP),
        ExpectLine(b"MAIL"),
        Send(b"250 ok\r\n"),
        ExpectLine(b"RCPT"),
        Send(b"250 ok\r\n"),
        ExpectLine(b"DATA"),
        Send(b"354 go\r\n"),
        ExpectData(),
        Sleep(OUTER),
    ]


@pytest.mark.parametrize(
    ("script", "accepted"),
    [
        pytest.param(_slow_envelope, False, id="deadline-during-envelope"),
        pytest.param(_slow_after_the_dot, None, id="deadline-after-the-dot"),
    ],
)
@pytest.mark.parametrize("per_operation", [TIMEOUT * 3, None], ids=["timeout-3s", "no-timeout"])
async def test_sendmail_deadline_bounds_the_whole_send(
    script: Callable[[], list[Step]], accepted: bool | None, per_operation: float | None
) -> None:
    deadline = 0.8
    with unchecked(script()) as server:
        smtp = client(server.port, timeout=per_operation)
        await smtp.connect()
        started = time.monotonic()
        try:
            with anyio.move_on_after(deadline + OUTER) as outer:
                with pytest.raises(asmtp.SMTPTransactionTimeout) as caught:
                    await smtp.sendmail(SENDER, RECIPIENTS[0], b"hello\r\n", deadline=deadline)
            elapsed = time.monotonic() - started
            assert not outer.cancelled_caught
            assert deadline - 0.05 <= elapsed < deadline + SLACK, f"took {elapsed:.2f}s"
            assert isinstance(caught.value, TimeoutError)
            assert caught.value.outcome.accepted is accepted
            assert smtp.last_outcome == caught.value.outcome
            assert not smtp.is_connected
        finally:
            await smtp.close()


async def test_one_shot_deadline_bounds_connecting_too() -> None:
    """asmtp.sendmail(deadline=...) covers a greeting that never finishes."""
    with unchecked([_reply(b"220", silent=False)]) as server:
        started = time.monotonic()
        with anyio.move_on_after(OUTER) as outer, pytest.raises(TimeoutError):
            await asmtp.sendmail(
                SENDER,
                RECIPIENTS[0],
                b"hello\r\n",
                host=HOST,
                port=server.port,
                tls="none",
                local_hostname="client.test",
                timeout=None,
                deadline=TIMEOUT,
            )
        elapsed = time.monotonic() - started
        assert not outer.cancelled_caught
        assert elapsed < TIMEOUT + SLACK


async def test_each_reply_gets_the_whole_timeout_afresh() -> None:
    """Four replies of 0.6 s each: every one inside TIMEOUT, together far beyond it.

    Under asyncio one watchdog timer per connection bounds the reads; it fires at the first
    read's deadline and must re-arm for the read waiting then instead of failing it.
    """
    with unchecked([*_slow_envelope(), ExpectLine(b"QUIT"), Send(b"221 bye\r\n")]) as server:
        smtp = client(server.port)
        started = time.monotonic()
        async with smtp:
            assert await smtp.sendmail(SENDER, RECIPIENTS[0], b"hello\r\n") == {}
        assert time.monotonic() - started > 2 * TIMEOUT


async def test_timeout_error_names_the_step() -> None:
    with unchecked([Send(GREETING), ExpectLine(b"EHLO"), Sleep(OUTER + 1)]) as server:
        smtp = client(server.port)
        await smtp.connect()
        try:
            with pytest.raises(
                TimeoutError,
                match=rf"no complete reply from .* within the timeout of {TIMEOUT} seconds",
            ):
                await smtp.ehlo()
        finally:
            await smtp.close()
