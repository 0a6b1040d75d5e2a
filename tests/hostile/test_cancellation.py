"""Cancellation at every await point of a send, and what the connection is afterwards.

After any cancellation the client must be either closed or exactly in step (no reply owed,
no body half sent), so the next command can never read an earlier command's reply. Every
reply of the servers here names its command and sequence number (``250 ok NOOP #7``), so
such a mix-up shows in the reply text. ``last_outcome`` must say ``None`` whenever the end
of the data reached the server unanswered, and ``False`` only when it cannot have.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Callable
from typing import Any, Final

import anyio
import anyio.lowlevel
import pytest
import sniffio

import asmtp
from asmtp._transport import Transport
from asmtp.protocol import State

from ._kit import RECIPIENTS, SENDER, DelayedSMTPServer, Dialogue, client

pytestmark = pytest.mark.anyio

IN_STEP: Final = {State.GREETED, State.READY}
BODY: Final = [b"Subject: cancel\r\n\r\n", b"first line\r\n", b".dotted\r\n", b"last\r\n"]


class BlockingTransport:
    """An in-memory transport to a :class:`Dialogue`; its ``block_at``-th await never returns.

    When it blocks it first calls ``on_block`` (which cancels the caller's scope), so the
    cancellation lands exactly on that await.
    """

    def __init__(self, dialogue: Dialogue) -> None:
        self.dialogue = dialogue
        self.outbox = bytearray(dialogue.greeting())
        self.awaits = 0
        self.block_at = 0
        self.on_block: Callable[[], None] = lambda: None
        self.blocked = False
        self.closed = False

    async def _step(self) -> None:
        self.awaits += 1
        if self.awaits == self.block_at:
            self.blocked = True
            self.on_block()
            await anyio.sleep_forever()
        await anyio.lowlevel.checkpoint()

    async def send(self, data: bytes, deadline: float = math.inf) -> None:
        await self._step()
        if self.closed:
            raise ConnectionResetError("closed")
        for reply in self.dialogue.feed(data):
            self.outbox += reply

    async def receive(self, deadline: float = math.inf) -> bytes:
        await self._step()
        if not self.outbox:
            if self.dialogue.closed:
                return b""
            raise AssertionError("the client reads a reply no command asked for")
        data = bytes(self.outbox)
        self.outbox.clear()
        return data

    def receive_nowait(self) -> bytes | None:
        if self.outbox:
            raise AssertionError(f"replies left unread: {bytes(self.outbox)!r}")
        return b"" if self.dialogue.closed else None

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, deadline: float
    ) -> None:
        raise AssertionError("no TLS here")

    async def aclose(self) -> None:
        self.closed = True

    @property
    def local_address(self) -> str | None:
        return "127.0.0.1"

    @property
    def is_tls(self) -> bool:
        return False

    @property
    def tls_version(self) -> str | None:
        return None


class FakeSMTP(asmtp.SMTP):
    """An SMTP client whose connection is a :class:`BlockingTransport`."""

    def __init__(self, transport: BlockingTransport) -> None:
        async def connector(host: str, port: int, **options: Any) -> Transport:
            return transport

        super().__init__("fake.test", 25, "client.test", timeout=5, connector=connector)
        self.fake = transport


def _check_after_cancel(smtp: FakeSMTP) -> None:
    transport, dialogue = smtp.fake, smtp.fake.dialogue
    if smtp.is_connected:
        assert smtp.state in IN_STEP, smtp.state
        assert not transport.outbox, f"unread replies {bytes(transport.outbox)!r}"
        assert not dialogue.in_body
    else:
        assert transport.closed, "forgot the transport without closing it"
        assert smtp.state in (State.ERROR, State.CLOSED)
    outcome = smtp.last_outcome
    if outcome is None:
        return  # cancelled before the send began
    if dialogue.messages:  # the end of the data reached the server, no reply was read
        assert outcome.accepted is None, outcome
    if not any(command == b"DATA" for command in dialogue.commands):
        assert outcome.accepted is False, outcome


@pytest.mark.parametrize("pipelining", [False, True], ids=["lockstep", "pipelined"])
async def test_cancel_at_every_await_point_of_a_send(pipelining: bool) -> None:
    points = 0
    for point in range(1, 100):
        transport = BlockingTransport(Dialogue(pipelining=pipelining))
        smtp = FakeSMTP(transport)
        await smtp.connect()
        with anyio.CancelScope() as scope:
            transport.on_block = scope.cancel
            transport.block_at = transport.awaits + point
            refused = await smtp.sendmail(SENDER, list(RECIPIENTS), BODY)
        if not transport.blocked:
            assert refused == {}
            assert len(transport.dialogue.messages) == 1
            break
        points += 1
        assert scope.cancelled_caught
        _check_after_cancel(smtp)
        if smtp.is_connected:
            number = len(transport.dialogue.commands) + 1
            assert await smtp.noop() == (250, b"ok NOOP #%d" % number)
            await smtp.quit()
        # A fresh connection always works.
        fresh = FakeSMTP(BlockingTransport(Dialogue(pipelining=pipelining)))
        async with fresh:
            assert await fresh.sendmail(SENDER, list(RECIPIENTS), BODY) == {}
        assert len(fresh.fake.dialogue.messages) == 1
    else:
        raise AssertionError("the send never completed")
    assert points >= (5 if pipelining else 9), f"only {points} await points"


async def _cancel_natively(smtp: asmtp.SMTP, delay: float) -> bool:
    """Cancel a send after ``delay`` s the loop's own way; True if it was cancelled."""
    if sniffio.current_async_library() == "asyncio":
        import asyncio

        task = asyncio.create_task(smtp.sendmail(SENDER, list(RECIPIENTS), BODY))
        await asyncio.sleep(delay)
        cancelled = task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return cancelled
        return False
    import trio

    with trio.CancelScope() as scope:
        scope.deadline = trio.current_time() + delay
        await smtp.sendmail(SENDER, list(RECIPIENTS), BODY)
    return scope.cancelled_caught


DELAYS: Final = [0.0, 0.01, 0.025, 0.04, 0.06, 0.09]


@pytest.mark.parametrize("how", ["move_on_after", "native"])
@pytest.mark.parametrize("pipelining", [False, True], ids=["lockstep", "pipelined"])
async def test_cancel_against_a_slow_server_then_reuse(pipelining: bool, how: str) -> None:
    """Replies come 10 ms late; cancel after increasing delays, then use the client again.

    ``native`` is ``asyncio.Task.cancel()`` under asyncio and uvloop, a trio cancel scope
    under trio.
    """
    with DelayedSMTPServer(delay=0.01, pipelining=pipelining) as server:
        for delay in DELAYS:
            smtp = client(server.port, timeout=2)
            await smtp.connect()
            await smtp.ehlo()
            if how == "native":
                cancelled = await _cancel_natively(smtp, delay)
            else:
                with anyio.move_on_after(delay) as scope:
                    await smtp.sendmail(SENDER, list(RECIPIENTS), BODY)
                cancelled = scope.cancelled_caught
            if cancelled and smtp.is_connected:
                assert smtp.state in IN_STEP, (delay, smtp.state)
            if smtp.is_connected:
                code, message = await smtp.noop()
                assert (code, message.split(b" #")[0]) == (250, b"ok NOOP"), (delay, message)
                await smtp.quit()
            async with client(server.port, timeout=2) as fresh:
                assert await fresh.sendmail(SENDER, list(RECIPIENTS), BODY) == {}
        assert any(dialogue.messages for dialogue in server.dialogues)
