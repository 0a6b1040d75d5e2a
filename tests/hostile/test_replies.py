"""Hostile replies: split at every byte, malformed, binary, oversized and endless.

What is accepted: any chunking of well-formed replies, bare-LF line ends and code-only lines
(as smtplib), and any bytes (NUL, non-ASCII) in a reply's text, returned as bytes. What is
rejected with :class:`asmtp.SMTPProtocolError` (the connection is then closed): a code
that is not three digits from 200 to 599, a bad separator, a multiline reply that changes
its code, and a line or reply over the limits, however long the server goes on sending.
Scripts play in memory, where a dribbled reply really arrives one byte per read; the
endless replies come from a socket server, against the client's real read buffers.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final

import pytest

import asmtp
from asmtp.protocol import RemoteProtocolError, State
from support.memory import MemoryServer
from support.scripted import Close, ExpectData, ExpectLine, Send, Sleep, smtp_script

from ._kit import (
    GREETING,
    QUIT,
    SLACK,
    TIMEOUT,
    StreamingServer,
    client,
    peak_memory,
)

if TYPE_CHECKING:
    from support.fixtures import MemoryServerFactory

pytestmark = pytest.mark.anyio

MiB: Final = 1024 * 1024
MEMORY_BOUND: Final = 4 * MiB
"""Peak traced allocation allowed while a hostile server streams 100 MB: the default
limits are 8 KiB per line and 1 MiB per reply, so a few MiB is the honest bound."""


def _one_byte_steps(data: bytes) -> list[Send | Sleep]:
    steps: list[Send | Sleep] = []
    for i in range(len(data)):
        steps += [Send(data[i : i + 1]), Sleep(0.002)]
    return steps


async def test_every_reply_split_at_every_byte_still_parses(
    memory_server_factory: MemoryServerFactory,
) -> None:
    """Greeting sent one byte per step; every later reply dribbled one byte per write."""
    dribble = 0.001
    ehlo = b"250-hostile.test greets you\r\n250-SIZE 1000\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
    server = memory_server_factory(
        [
            *_one_byte_steps(b"220-hostile.test\r\n220 ESMTP ready\r\n"),
            ExpectLine(b"EHLO"),
            Send(ehlo, per_byte_delay=dribble),
            ExpectLine(b"MAIL FROM:<a@x.test> SIZE=4"),
            ExpectLine(b"RCPT TO:<b@x.test>"),
            ExpectLine(b"DATA"),
            Send(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n", per_byte_delay=dribble),
            ExpectData(),
            Send(b"250 2.0.0 queued\r\n", per_byte_delay=dribble),
            ExpectLine(b"QUIT"),
            Send(b"221 bye\r\n", per_byte_delay=dribble),
        ]
    )
    smtp = client(server.port, timeout=5, connector=server.connector)
    assert await smtp.connect() == (220, b"hostile.test\nESMTP ready")
    async with smtp:
        assert await smtp.ehlo() == (
            250,
            b"hostile.test greets you\nSIZE 1000\nPIPELINING\n8BITMIME",
        )
        assert smtp.esmtp_features == {"size": "1000", "pipelining": "", "8bitmime": ""}
        assert await smtp.sendmail("a@x.test", "b@x.test", b"hi\r\n") == {}
    assert not smtp.is_connected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        pytest.param(b"250 \x00nul\x00 inside\r\n", b"\x00nul\x00 inside", id="nul"),
        pytest.param(
            b"250 h\xc3\xa9llo w\xffrld \x80\r\n", b"h\xc3\xa9llo w\xffrld \x80", id="8bit"
        ),
        pytest.param(
            b"250-\x00\xff\r\n250 \x1b[31m\x7f\r\n", b"\x00\xff\n\x1b[31m\x7f", id="multi"
        ),
        pytest.param(b"250 bare lf\n", b"bare lf", id="bare-lf"),
        pytest.param(b"250\r\n", b"", id="code-only"),
        pytest.param(b"250 ok\r\r\n", b"ok", id="cr-cr-lf"),
    ],
)
async def test_odd_bytes_inside_a_well_formed_reply_are_returned_as_bytes(
    memory_server_factory: MemoryServerFactory, reply: bytes, expected: bytes
) -> None:
    server = memory_server_factory(smtp_script([(b"NOOP\r\n", reply), QUIT]))
    async with client(server.port, connector=server.connector) as smtp:
        assert await smtp.noop() == (250, expected)


BAD_REPLIES: Final = [
    pytest.param(b"250-first\r\n251 changed code\r\n", id="multiline-code-changes"),
    pytest.param(b"250-first\r\n550 changed class\r\n", id="multiline-class-changes"),
    pytest.param(b"250-first\r\n250-second\r\ngarbage\r\n", id="garbage-mid-multiline"),
    pytest.param(b"abc hello\r\n", id="letters"),
    pytest.param(b"2a0 x\r\n", id="letter-in-code"),
    pytest.param(b"600 x\r\n", id="code-600"),
    pytest.param(b"199 x\r\n", id="code-199"),
    pytest.param(b"099 x\r\n", id="code-099"),
    pytest.param(b"25\r\n", id="two-digits"),
    pytest.param(b"2500 x\r\n", id="four-digits"),
    pytest.param(b"250x\r\n", id="no-separator"),
    pytest.param(b" 250 x\r\n", id="leading-space"),
    pytest.param(b"\r\n", id="empty-line"),
    pytest.param(b"\xff\xfe\xfd x\r\n", id="binary-code"),
    pytest.param(b"\x00\x00\x00 x\r\n", id="nul-code"),
    pytest.param(b"-250 x\r\n", id="dash-first"),
]


@pytest.mark.parametrize("reply", BAD_REPLIES)
async def test_malformed_reply_raises_protocol_error_and_closes(reply: bytes) -> None:
    """The client walks away from the script, which is therefore never checked."""
    server = MemoryServer([Send(GREETING), ExpectLine(b"EHLO"), Send(reply), Sleep(2)])
    smtp = client(server.port, connector=server.connector)
    await smtp.connect()
    with pytest.raises(asmtp.SMTPProtocolError) as caught:
        await smtp.ehlo()
    assert caught.value.smtp_code == -1
    assert isinstance(caught.value.__cause__, RemoteProtocolError)
    assert not smtp.is_connected
    assert smtp.state is State.ERROR
    with pytest.raises(asmtp.SMTPServerDisconnected):
        await smtp.noop()
    assert server.received == b"EHLO client.test\r\n"


@pytest.mark.parametrize(
    "greeting",
    [
        pytest.param(b"abc\r\n", id="bad-code"),
        pytest.param(b"220-a\r\n250 b\r\n", id="code-changes"),
        pytest.param(b"220 " + b"x" * 9000 + b"\r\n", id="overlong"),
    ],
)
async def test_malformed_greeting_raises_protocol_error_and_closes(greeting: bytes) -> None:
    """The greeting is read by connect(): it must be translated and closed like any reply."""
    server = MemoryServer([Send(greeting), Sleep(2)])
    smtp = client(server.port, connector=server.connector)
    try:
        with pytest.raises(asmtp.SMTPProtocolError):
            await smtp.connect()
        assert not smtp.is_connected
    finally:
        await smtp.close()


async def _stream_reply(*, head: bytes, chunk: bytes, at_greeting: bool) -> None:
    """Stream 100 MB from a hostile server; the client must give up fast at bounded memory."""
    total = 100 * MiB
    greeting = b"" if at_greeting else GREETING
    with StreamingServer(
        greeting=greeting, head=head, chunk=chunk, total=total, wait_line=not at_greeting
    ) as server:
        smtp = client(server.port)
        started = time.monotonic()
        try:
            with peak_memory() as peak, pytest.raises(asmtp.SMTPProtocolError):
                await smtp.connect()
                await smtp.ehlo()
        finally:
            await smtp.close()
        elapsed = time.monotonic() - started
    assert peak[0] < MEMORY_BOUND, f"peak {peak[0] / MiB:.1f} MiB"
    assert elapsed < TIMEOUT + SLACK * 3, f"took {elapsed:.1f}s"
    assert server.sent < total // 4, "the client kept reading a hostile reply"
    assert not smtp.is_connected


@pytest.mark.parametrize("at_greeting", [False, True], ids=["ehlo-reply", "greeting"])
async def test_100_mb_reply_line_fails_fast_at_bounded_memory(
    at_greeting: bool,
) -> None:
    code = b"220 " if at_greeting else b"250 "
    chunk = b"x" * 65536
    await _stream_reply(head=code, chunk=chunk, at_greeting=at_greeting)


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(b"250-x\r\n", id="short-lines"),
        pytest.param(b"250-" + b"y" * 8000 + b"\r\n", id="long-lines"),
    ],
)
async def test_never_ending_multiline_reply_fails_at_bounded_memory(
    line: bytes,
) -> None:
    chunk = line * (65536 // len(line) + 1)
    await _stream_reply(head=b"", chunk=chunk, at_greeting=False)


async def test_reply_limits_are_the_callers_to_lower(
    memory_server_factory: MemoryServerFactory,
) -> None:
    """A stricter client refuses what the defaults allow; the server's bytes stop mattering."""
    server = memory_server_factory(
        [Send(GREETING), ExpectLine(b"EHLO"), Send(b"250-a\r\n" * 3 + b"250 end\r\n"), Close()]
    )
    smtp = client(server.port, max_reply_lines=3, connector=server.connector)
    await smtp.connect()
    with pytest.raises(asmtp.SMTPProtocolError, match="more than 3 lines"):
        await smtp.ehlo()
    assert not smtp.is_connected


async def test_reply_flood_while_the_client_writes_is_bounded() -> None:
    """The server floods 64 MiB while the client is busy writing a body it never reads.

    Whatever the client is doing, bytes it has not asked for must wait in the kernel (read
    flow control), not pile up in the process.
    """
    total = 64 * MiB
    body = b"y" * (48 * MiB)
    replies = [b"250 hostile.test\r\n", b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n"]
    with StreamingServer(
        greeting=GREETING,
        replies=replies,
        pause=0.3,  # the client is writing the body now; the server reads none of it
        head=b"",
        chunk=b"x" * 65536,
        total=total,
    ) as server:
        smtp = client(server.port)
        await smtp.connect()
        try:
            with peak_memory() as peak, pytest.raises((asmtp.SMTPException, TimeoutError)):
                await smtp.sendmail("a@x.test", "b@x.test", body)
        finally:
            await smtp.close()
    assert peak[0] < MEMORY_BOUND, (
        f"peak {peak[0] / MiB:.1f} MiB; the server sent {server.sent / MiB:.0f}"
    )
