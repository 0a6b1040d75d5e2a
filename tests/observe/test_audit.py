"""Python's audit events, as smtplib raises them: ``smtplib.connect`` and ``smtplib.send``.

Audit hooks cannot be removed, so this module adds one for the whole process that records
only while a test's context asks it to (``_recording``).
"""

from __future__ import annotations

import smtplib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import asmtp
from support.aiosmtpd_server import RecordingHandler

if TYPE_CHECKING:
    from support.fixtures import SMTPDServerFactory

pytestmark = pytest.mark.anyio

Events = list[tuple[str, tuple[Any, ...]]]
_recording: ContextVar[Events | None] = ContextVar("audit_recording", default=None)


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event.startswith("smtplib."):
        events = _recording.get()
        if events is not None:
            events.append((event, args))


sys.addaudithook(_hook)


@contextmanager
def recording() -> Iterator[Events]:
    """The smtplib audit events raised in this context until the block ends."""
    events: Events = []
    token = _recording.set(events)
    try:
        yield events
    finally:
        _recording.reset(token)


SENDER = "a@audit.test"
RECIPIENTS = ["b@audit.test", "c@audit.test"]
MESSAGE = b"Subject: audited\r\n\r\nline\r\n.starts with a dot\r\n"
NAME = "client.audit.test"


def _smtplib_events(port: int) -> Events:
    with recording() as events, smtplib.SMTP("127.0.0.1", port, NAME, timeout=5) as smtp:
        smtp.sendmail(SENDER, RECIPIENTS, MESSAGE)
    return events


def _sent(events: Events) -> bytes:
    return b"".join(args[1] for name, args in events if name == "smtplib.send")


async def test_the_events_match_smtplibs_for_the_same_exchange(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """Without PIPELINING both send the same commands in the same order: the connect event
    has the same host and port, the send events hold the same bytes, and one object
    identifies the connection in all of them."""
    server = smtpd_server_factory(RecordingHandler())
    expected = await anyio.to_thread.run_sync(_smtplib_events, server.port)
    with recording() as events:
        async with asmtp.SMTP("127.0.0.1", server.port, NAME, timeout=5) as smtp:
            await smtp.sendmail(SENDER, RECIPIENTS, MESSAGE)
    assert events[0] == ("smtplib.connect", (events[0][1][0], "127.0.0.1", server.port))
    assert expected[0][1][1:] == events[0][1][1:]
    assert {name for name, _ in events[1:]} == {"smtplib.send"}
    assert len({id(args[0]) for _, args in events}) == 1
    assert all(type(args[1]) is bytes for _, args in events[1:])
    # smtplib spells its verbs and parameters in lower case; the bytes are otherwise equal.
    assert _sent(events).lower() == _sent(expected).lower()
    assert _sent(events).endswith(b"QUIT\r\n")
    assert len(server.handler.deliveries) == 2


async def test_a_pipelined_group_is_one_event_with_every_command_of_the_write(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    server = smtpd_server_factory(RecordingHandler(advertise_pipelining=True))
    with recording() as events:
        await asmtp.sendmail(
            SENDER, RECIPIENTS, MESSAGE, host="127.0.0.1", port=server.port, tls="none"
        )
    writes = [args[1] for name, args in events if name == "smtplib.send"]
    group = [write for write in writes if write.startswith(b"MAIL FROM:")]
    assert group == [
        b"MAIL FROM:<a@audit.test> SIZE=%d\r\nRCPT TO:<b@audit.test>\r\n"
        b"RCPT TO:<c@audit.test>\r\nDATA\r\n" % len(MESSAGE)
    ]
    # The body, dot-stuffed, with its end of data and the pipelined QUIT: one write.
    assert writes[-1] == (b"Subject: audited\r\n\r\nline\r\n..starts with a dot\r\n.\r\nQUIT\r\n")


async def test_connecting_raises_the_event_before_the_connection_is_tried(
    unix_socket_path: Any,
) -> None:
    """As in smtplib, a connection that then fails was still audited (a Unix socket's
    port is 0)."""
    path = str(unix_socket_path)
    with recording() as events, pytest.raises(OSError):
        await asmtp.sendmail(SENDER, RECIPIENTS, MESSAGE, host=path, tls="none", timeout=5)
    assert [(name, args[1:]) for name, args in events] == [("smtplib.connect", (path, 0))]
