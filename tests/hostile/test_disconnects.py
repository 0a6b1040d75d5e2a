"""A server that hangs up, or says 421, at every step of a send, lock-step and pipelined.

For each step the test checks what smtplib's users rely on (the exception class) and what
asmtp adds (``outcome``: could the server have accepted the message, and which recipients
it accepted at RCPT), and that the connection is closed afterwards. ``accepted`` must be
``False`` wherever the end of the data cannot have reached the server, and ``None`` (never
``False``) when it went out and no reply came. The scripts play in memory; a hang-up while
the body is in flight also plays over real sockets, with a body larger than any loopback
socket buffer (there the kernel takes part of it before a write fails). A cancellation
needs a server that really keeps the client waiting: a socket server.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final, Literal

import anyio
import pytest

import asmtp
from asmtp.protocol import State
from support.memory import MemoryServer
from support.scripted import (
    Close,
    ExpectBytes,
    ExpectData,
    ExpectLine,
    ScriptedServer,
    Send,
    Sleep,
    Step,
)

from ._kit import (
    EHLO_LOCKSTEP,
    EHLO_PIPELINING,
    GREETING,
    RECIPIENTS,
    SENDER,
    client,
    unchecked,
)

if TYPE_CHECKING:
    from support.fixtures import MemoryServerFactory, ScriptedServerFactory

pytestmark = pytest.mark.anyio

Kill = Literal["close", "421"]
Mode = Literal["lockstep", "pipelined"]

SMALL_BODY: Final = b"Subject: t\r\n\r\nhello\r\n"
LARGE_BODY: Final = b"x" * (32 * 1024 * 1024)
CLOSING: Final = b"421 4.3.2 closing\r\n"

# The envelope in the order the client sends it: (line prefix, reply when all is well).
ENVELOPE: Final = [(b"MAIL", b"250 ok\r\n"), (b"RCPT", b"250 ok\r\n"), (b"RCPT", b"250 ok\r\n")]
DATA: Final = (b"DATA", b"354 go\r\n")
ENVELOPE_STEPS: Final = ["mail", "first-rcpt", "second-rcpt", "data"]

# step -> (exception for a 421 there, recipients accepted at RCPT before it, body)
STEPS: Final[dict[str, tuple[type[Exception] | None, tuple[str, ...], bytes]]] = {
    "ehlo": (asmtp.SMTPServerDisconnected, (), SMALL_BODY),
    "mail": (asmtp.SMTPSenderRefused, (), SMALL_BODY),
    "first-rcpt": (asmtp.SMTPRecipientsRefused, (), SMALL_BODY),
    "second-rcpt": (asmtp.SMTPRecipientsRefused, RECIPIENTS[:1], SMALL_BODY),
    "data": (asmtp.SMTPDataError, RECIPIENTS, SMALL_BODY),
    "after-354": (None, RECIPIENTS, LARGE_BODY),
    "mid-body": (None, RECIPIENTS, LARGE_BODY),
    "after-dot": (asmtp.SMTPDataError, RECIPIENTS, SMALL_BODY),
}


def _kill(kill: Kill) -> list[Step]:
    return [Close()] if kill == "close" else [Send(CLOSING), Close()]


def _script(step: str, kill: Kill, mode: Mode) -> list[Step]:
    steps: list[Step] = [Send(GREETING), ExpectLine(b"EHLO")]
    if step == "ehlo":
        return steps + _kill(kill)
    steps.append(Send(EHLO_PIPELINING if mode == "pipelined" else EHLO_LOCKSTEP))
    commands = [*ENVELOPE, DATA]
    stop = ENVELOPE_STEPS.index(step) if step in ENVELOPE_STEPS else len(commands)
    if mode == "pipelined":
        # A real server reads the whole group before it answers or hangs up.
        steps += [ExpectLine(prefix) for prefix, _ in commands]
        steps += [Send(reply) for _, reply in commands[:stop]]
    else:
        for prefix, reply in commands[:stop]:
            steps += [ExpectLine(prefix), Send(reply)]
        if stop < len(commands):
            steps.append(ExpectLine(commands[stop][0]))
    if step in ENVELOPE_STEPS:
        return steps + _kill(kill)
    if step == "after-354":
        return [*steps, Close()]
    if step == "mid-body":
        return [*steps, ExpectBytes(64 * 1024), Close()]
    return [*steps, ExpectData(), *_kill(kill)]


def _cases() -> list[object]:
    cases: list[object] = []
    for step, (refusal, _, _) in STEPS.items():
        for mode in ("lockstep", "pipelined"):
            if step == "ehlo" and mode == "pipelined":
                continue  # nothing is known about PIPELINING before the EHLO reply
            for kill in ("close", "421"):
                if kill == "421" and refusal is None:
                    continue  # the client does not read while it sends the body
                cases.append(pytest.param(step, kill, mode, id=f"{mode}-{step}-{kill}"))
    return cases


async def _send_and_check(
    server: MemoryServer | ScriptedServer, step: str, kill: Kill, mode: Mode
) -> None:
    """Send through ``server``'s script for ``step``; check the exception and the outcome."""
    refusal, accepted_at_rcpt, body = STEPS[step]
    smtp = client(server.port, timeout=5, connector=server.connector)
    await smtp.connect()
    try:
        with pytest.raises(asmtp.SMTPException) as caught:
            await smtp.sendmail(SENDER, list(RECIPIENTS), body)
        connected, state = smtp.is_connected, smtp.state
    finally:
        await smtp.close()
    exc = caught.value
    if kill == "close":
        assert isinstance(exc, asmtp.SMTPTransactionInterrupted), repr(exc)
        assert smtp.last_outcome == exc.outcome
    else:
        assert refusal is not None
        assert isinstance(exc, refusal), repr(exc)
    outcome = exc.outcome if isinstance(exc, asmtp.SMTPTransactionInterrupted) else None
    outcome = outcome or smtp.last_outcome
    assert outcome is not None
    dot_unanswered = step == "after-dot" and kill == "close"
    assert outcome.accepted is (None if dot_unanswered else False), outcome
    assert outcome.safe_to_retry is not dot_unanswered
    assert outcome.recipients == accepted_at_rcpt, outcome
    assert state in (State.CLOSED, State.ERROR)
    assert not connected, f"{type(exc).__name__} left the connection open"


@pytest.mark.parametrize(("step", "kill", "mode"), _cases())
async def test_disconnect_or_421_at_every_step(
    memory_server_factory: MemoryServerFactory, step: str, kill: Kill, mode: Mode
) -> None:
    await _send_and_check(memory_server_factory(_script(step, kill, mode)), step, kill, mode)


@pytest.mark.parametrize("mode", ["lockstep", "pipelined"])
@pytest.mark.parametrize("step", ["after-354", "mid-body"])
async def test_hang_up_while_the_body_is_in_flight_on_a_real_socket(
    scripted_server_factory: ScriptedServerFactory, step: str, mode: Mode
) -> None:
    server = scripted_server_factory(_script(step, "close", mode), step_timeout=10)
    await _send_and_check(server, step, "close", mode)


@pytest.mark.parametrize("kill", ["close", "421", "close-before-answer"])
async def test_disconnect_or_421_during_auth(
    memory_server_factory: MemoryServerFactory, kill: str
) -> None:
    """After a 334 challenge: a hang-up is SMTPServerDisconnected, a 421 fails the login."""
    steps: list[Step] = [
        Send(GREETING),
        ExpectLine(b"EHLO"),
        Send(b"250-hostile.test\r\n250 AUTH PLAIN\r\n"),
        ExpectLine(b"AUTH PLAIN"),
        Send(b"334 \r\n"),
    ]
    if kill == "close-before-answer":
        steps.append(Close())
    else:
        steps += [ExpectLine(b""), *_kill("close" if kill == "close" else "421")]
    server = memory_server_factory(steps)
    smtp = client(server.port, connector=server.connector)
    await smtp.connect()
    expected = asmtp.SMTPAuthenticationError if kill == "421" else asmtp.SMTPServerDisconnected
    try:
        with pytest.raises(expected):
            await smtp.login("user", "password", initial_response_ok=False)
        connected = smtp.is_connected
    finally:
        await smtp.close()
    assert not connected, "the connection was left open"


@pytest.mark.parametrize(
    ("when", "accepted"),
    [
        pytest.param("before-354", False, id="before-354"),
        pytest.param("after-dot", None, id="after-dot"),
    ],
)
async def test_cancelled_send_leaves_last_outcome(when: str, accepted: bool | None) -> None:
    """A cancellation carries no outcome: ``last_outcome`` tells it, and the socket is closed."""
    steps: list[Step] = [Send(GREETING), ExpectLine(b"EHLO"), Send(EHLO_LOCKSTEP)]
    steps += [ExpectLine(b"MAIL"), Send(b"250 ok\r\n"), ExpectLine(b"RCPT"), Send(b"250 ok\r\n")]
    steps += [ExpectLine(b"DATA")]
    if when == "after-dot":
        steps += [Send(b"354 go\r\n"), ExpectData()]
    mark = b"\r\n.\r\n" if when == "after-dot" else b"DATA\r\n"
    with unchecked([*steps, Sleep(5)]) as server:
        smtp = client(server.port, timeout=5)
        await smtp.connect()
        async with anyio.create_task_group() as tg:
            tg.start_soon(smtp.sendmail, SENDER, RECIPIENTS[0], SMALL_BODY)
            deadline = time.monotonic() + 5
            # The server is a thread: there is nothing to await but time.
            while mark not in server.received and time.monotonic() < deadline:  # noqa: ASYNC110
                await anyio.sleep(0.01)
            await anyio.sleep(0.05)  # let the client reach its read of the reply
            tg.cancel_scope.cancel()
        assert mark in server.received
        outcome = smtp.last_outcome
        assert outcome is not None
        assert outcome.accepted is accepted
        assert outcome.recipients == RECIPIENTS[:1]
        assert not smtp.is_connected
