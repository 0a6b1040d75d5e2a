"""The transaction layer's ``on_start`` hook: called just before a message's first byte.

A bulk journal marks a message "in flight" in this hook, so the hook must come after
everything that can refuse the message before the wire (EHLO, a bad address, a body of the
wrong type) and before any byte of the message is written: the server must not have seen
the message's MAIL when the hook runs. aiosmtpd's recording handler tells what it saw.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from asmtp import Outgoing, SMTPTransactionInterrupted
from asmtp._client import Session, client_settings, open_session, send_batch, send_one
from client._kit import HOST, ME
from support.aiosmtpd_server import RecordingHandler

if TYPE_CHECKING:
    from support.fixtures import SMTPDServerFactory

pytestmark = pytest.mark.anyio


async def _session(port: int) -> Session:
    settings = client_settings(
        HOST,
        port,
        tls="none",
        username=None,
        password=None,
        mechanism=None,
        context=None,
        local_hostname=ME,
        timeout=5,
        source_address=None,
    )
    session = Session(settings)
    await open_session(session)
    return session


def _mails(handler: RecordingHandler) -> int:
    return sum(command.startswith("MAIL") for command in handler.commands)


def _message(n: int, recipient: str = "b@x.test") -> Outgoing:
    return Outgoing("a@x.test", [recipient], f"Subject: {n}\r\n\r\nmessage {n}\r\n".encode())


async def test_on_start_runs_once_before_the_server_sees_the_message(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    handler = RecordingHandler()
    server = smtpd_server_factory(handler)
    session = await _session(server.port)
    seen_at_start: list[int] = []

    def started() -> None:
        seen_at_start.append(_mails(handler))

    try:
        await session.run(send_one, session, _message(1), on_start=started)
    finally:
        await session.close()
    assert seen_at_start == [0]  # called once, and no MAIL had reached the server yet
    assert len(handler.deliveries) == 1


async def test_on_start_is_not_called_for_a_message_refused_before_the_wire(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """A CR in an address fails its message before any byte of it exists."""
    server = smtpd_server_factory(RecordingHandler())
    session = await _session(server.port)
    started: list[str] = []
    results: dict[str, object] = {}
    items = iter([("bad", _message(1, "evil@x.test\r\nRCPT TO:<x@y>")), ("good", _message(2))])
    try:
        await send_batch(session, items, results.__setitem__, started.append)
    finally:
        await session.close()
    assert started == ["good"]
    assert isinstance(results["bad"], ValueError)
    assert results["good"] == {}


async def test_on_start_in_a_batch_comes_before_each_message_reaches_the_server(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """With the transactions overlapped, message n+1 starts before message n is answered;
    each hook still runs before its own MAIL is written."""
    handler = RecordingHandler(advertise_pipelining=True)
    server = smtpd_server_factory(handler)
    session = await _session(server.port)
    seen: dict[int, int] = {}
    results: dict[int, object] = {}
    items = iter([(n, _message(n)) for n in range(1, 6)])
    try:
        await send_batch(
            session, items, results.__setitem__, lambda n: seen.setdefault(n, _mails(handler))
        )
    finally:
        await session.close()
    assert sorted(seen) == [1, 2, 3, 4, 5]
    assert all(seen[n] <= n - 1 for n in seen)  # the server had seen at most the earlier ones
    assert all(results[n] == {} for n in range(1, 6))


async def test_a_hook_that_raises_in_a_batch_leaves_the_message_before_it_answered(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """Message 2's end of data rides with message 3's envelope; when 3's hook raises, 2 is
    still ended and its reply read, so its outcome is known, not unknown."""
    handler = RecordingHandler(advertise_pipelining=True)
    server = smtpd_server_factory(handler)
    session = await _session(server.port)
    results: dict[int, object] = {}

    def started(n: int) -> None:
        if n == 3:
            raise LookupError("row 3 is locked")

    items = iter([(n, _message(n)) for n in range(1, 6)])
    try:
        with pytest.raises(LookupError):
            await send_batch(session, items, results.__setitem__, started)
    finally:
        await session.close()
    assert results[1] == {} and results[2] == {}
    interrupted = results[3]
    assert isinstance(interrupted, SMTPTransactionInterrupted)
    assert interrupted.outcome.accepted is False  # not begun: safe to send again
    assert len(handler.deliveries) == 2
