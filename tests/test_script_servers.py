"""The two script servers, MemoryServer and ScriptedServer, play Step scripts alike.

Where both can say the same thing, a test runs on both (``script_server_factory``, or both
classes), driving asmtp's own transports with raw bytes, so the two stay interchangeable.
The rest is what only memory does: time that passes without waiting, TLS handshakes
recorded rather than run, and the steps that need a real socket refused. What only the
socket server does (Hold, dribbles over TCP, Unix sockets, real TLS) is in
``test_support_servers.py``.
"""

from __future__ import annotations

import contextlib
import math
import ssl
import threading
import time
from typing import TYPE_CHECKING, Final

import anyio
import pytest

import asmtp
from asmtp._transport import Transport
from support.memory import PORT, MemoryServer
from support.scripted import (
    Close,
    Expect,
    ExpectBytes,
    ExpectClosed,
    ExpectData,
    ExpectLine,
    Hold,
    PostHandshakeRecord,
    ScriptedServer,
    Send,
    Signal,
    Sleep,
    StartTLS,
    Step,
    smtp_script,
)

if TYPE_CHECKING:
    from support.fixtures import MemoryServerFactory, ScriptServerFactory

pytestmark = pytest.mark.anyio

WAIT: Final = 5.0
ME: Final = "client.test"
GROUP: Final = b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n"
SERVERS: Final = pytest.mark.parametrize("kind", [MemoryServer, ScriptedServer])


async def connect(
    server: MemoryServer | ScriptedServer,
    *,
    tls: ssl.SSLContext | None = None,
    hostname: str | None = None,
) -> Transport:
    """A raw byte stream to ``server``, opened the way the client opens one."""
    return await server.connector(
        server.host,
        server.port,
        tls_context=tls,
        server_hostname=hostname,
        source_address=None,
        deadline=anyio.current_time() + WAIT,
    )


async def receive_until(transport: Transport, marker: bytes) -> bytes:
    """Read until ``marker`` arrived (a socket may need several reads)."""
    data = b""
    while marker not in data:
        chunk = await transport.receive(anyio.current_time() + WAIT)
        if not chunk:
            raise AssertionError(f"end of stream before {marker!r}; got {data!r}")
        data += chunk
    return data


async def send(transport: Transport, data: bytes) -> None:
    await transport.send(data, anyio.current_time() + WAIT)


def failure_of(server: MemoryServer | ScriptedServer) -> str:
    """The text of the AssertionError ``check()`` raises (the test fails if it passes)."""
    try:
        server.check(timeout=WAIT)
    except AssertionError as exc:
        return str(exc)
    finally:
        server.stop()
    raise AssertionError("check() passed")


# -- what both servers do alike -----------------------------------------------------------------


def _pipelining_script() -> list[Step]:
    return smtp_script(
        [
            (b"EHLO c\r\n", b"250-scripted.test\r\n250 PIPELINING\r\n"),
            (GROUP, b"250 ok\r\n250 ok\r\n354 go\r\n"),
            (ExpectData(), b"250 queued\r\n"),
            (b"QUIT\r\n", b"221 bye\r\n"),
            (ExpectClosed(), b""),
        ]
    )


@pytest.mark.parametrize("writes", ["one-write", "line-by-line"])
async def test_an_expect_is_met_by_any_writes_and_answered_once_all_arrived(
    script_server_factory: ScriptServerFactory, writes: str
) -> None:
    """The group goes out in one write or a write per line; the replies come only after
    the last, so a client that waited for each reply would never get one."""
    server = script_server_factory(_pipelining_script())
    transport = await connect(server)
    try:
        await receive_until(transport, b"220 ")
        await send(transport, b"EHLO c\r\n")
        await receive_until(transport, b"250 PIPELINING\r\n")
        for line in [GROUP] if writes == "one-write" else GROUP.splitlines(keepends=True):
            assert transport.receive_nowait() is None  # nothing until the whole group
            await send(transport, line)
        assert await receive_until(transport, b"354 go\r\n") == b"250 ok\r\n250 ok\r\n354 go\r\n"
        await send(transport, b"hi\r\n.\r\n")
        await receive_until(transport, b"250 queued\r\n")
        await send(transport, b"QUIT\r\n")
        await receive_until(transport, b"221 bye\r\n")
    finally:
        await transport.aclose()
    server.check()
    assert server.received == b"EHLO c\r\n" + GROUP + b"hi\r\n.\r\nQUIT\r\n"
    assert server.captured == [b"EHLO c\r\n", GROUP, b"hi\r\n.\r\n", b"QUIT\r\n"]


@SERVERS
async def test_a_client_waiting_for_each_reply_gets_none_and_fails_the_script(
    kind: type[MemoryServer | ScriptedServer],
) -> None:
    """The socket server times out and closes; in memory the client's read times out."""
    server = kind(_pipelining_script(), step_timeout=0.3).start()
    transport = await connect(server)
    try:
        await receive_until(transport, b"220 ")
        await send(transport, b"EHLO c\r\n")
        await receive_until(transport, b"250 PIPELINING\r\n")
        await send(transport, b"MAIL FROM:<a@x.test>\r\n")
        with contextlib.suppress(TimeoutError):
            assert await transport.receive(anyio.current_time() + WAIT) == b""
    finally:
        await transport.aclose()
    assert "waiting for b'MAIL FROM" in failure_of(server)


@SERVERS
async def test_a_wrong_command_fails_check_naming_the_step_and_the_bytes_received(
    kind: type[MemoryServer | ScriptedServer],
) -> None:
    server = kind(smtp_script([(b"EHLO a\r\n", b"250 ok\r\n")]), step_timeout=0.3).start()
    transport = await connect(server)
    try:
        await receive_until(transport, b"220 ")
        await send(transport, b"HELO b\r\n")
        assert await transport.receive(anyio.current_time() + WAIT) == b""  # closed, no reply
    finally:
        await transport.aclose()
    text = failure_of(server)
    assert "connection 0, step 1 Expect(data=b'EHLO a\\r\\n'" in text
    assert "expected b'EHLO a\\r\\n', got b'HELO b\\r\\n'" in text
    assert "received on this connection: b'HELO b\\r\\n'" in text


@SERVERS
async def test_a_client_that_leaves_early_fails_check_at_the_step_it_left(
    kind: type[MemoryServer | ScriptedServer],
) -> None:
    server = kind(smtp_script([(ExpectLine(b"EHLO"), b"250 ok\r\n"), (b"QUIT\r\n", b"")])).start()
    transport = await connect(server)
    await receive_until(transport, b"220 ")
    await send(transport, b"EHLO c\r\nQU")
    await receive_until(transport, b"250 ok\r\n")
    await transport.aclose()
    text = failure_of(server)
    assert "step 3 Expect(data=b'QUIT\\r\\n'" in text
    assert "connection closed while waiting for b'QUIT\\r\\n'; unconsumed bytes: b'QU'" in text


@SERVERS
@pytest.mark.parametrize(
    ("step", "sent", "expected"),
    [
        (ExpectLine(b"MAIL"), b"RCPT TO:<b>\r\n", "expected a line starting b'MAIL', got"),
        (ExpectBytes(4), b"abcd", None),
        (ExpectData(), b"body\r\n.\r\n", None),
        (ExpectData(), b".\r\n", None),
        (ExpectClosed(), b"NOOP\r\n", "expected close, got b'NOOP\\r\\n'"),
    ],
    ids=["line-prefix", "bytes", "data", "empty-data", "closed"],
)
async def test_each_expect_step_consumes_or_refuses_as_on_sockets(
    kind: type[MemoryServer | ScriptedServer], step: Step, sent: bytes, expected: str | None
) -> None:
    server = kind([Send(b"220 hi\r\n"), step, Send(b"250 ok\r\n"), ExpectClosed()]).start()
    transport = await connect(server)
    try:
        await receive_until(transport, b"220 ")
        await send(transport, sent)
        reply = await transport.receive(anyio.current_time() + WAIT)
    finally:
        await transport.aclose()
    if expected is None:
        assert reply == b"250 ok\r\n"
        try:
            server.check()
        finally:
            server.stop()
        assert server.captured == [sent]
    else:
        assert reply == b""
        assert expected in failure_of(server)


async def test_each_connection_plays_its_own_script_while_others_are_open(
    script_server_factory: ScriptServerFactory,
) -> None:
    first_script = smtp_script([(b"QUIT\r\n", b"221 first\r\n")])
    second_script = smtp_script([(b"NOOP\r\n", b"250 second\r\n"), (b"QUIT\r\n", b"221 bye\r\n")])
    server = script_server_factory(scripts=[first_script, second_script])
    first = await connect(server)
    await receive_until(first, b"220 ")
    second = await connect(server)
    try:
        await receive_until(second, b"220 ")
        await send(second, b"NOOP\r\n")
        assert await receive_until(second, b"\r\n") == b"250 second\r\n"
        await send(first, b"QUIT\r\n")
        assert await receive_until(first, b"\r\n") == b"221 first\r\n"
        await send(second, b"QUIT\r\n")
        await receive_until(second, b"221 bye\r\n")
    finally:
        await first.aclose()
        await second.aclose()
    server.check()
    assert server.received_per_connection == [b"QUIT\r\n", b"NOOP\r\nQUIT\r\n"]


async def test_close_ends_the_stream_and_reset_makes_the_next_read_fail(
    script_server_factory: ScriptServerFactory,
) -> None:
    server = script_server_factory(
        scripts=[
            [Send(b"220 hi\r\n"), Expect(b"NOOP\r\n"), Close()],
            [Send(b"220 hi\r\n"), Expect(b"NOOP\r\n"), Close(reset=True)],
        ]
    )
    for reset in (False, True):
        transport = await connect(server)
        try:
            await receive_until(transport, b"220 ")
            await send(transport, b"NOOP\r\n")
            if reset:
                with pytest.raises(ConnectionResetError):
                    await transport.receive(anyio.current_time() + WAIT)
            else:
                assert await transport.receive(anyio.current_time() + WAIT) == b""
        finally:
            await transport.aclose()


async def test_bytes_written_while_the_script_sleeps_are_read_at_once(
    memory_server_factory: MemoryServerFactory,
) -> None:
    """Three writes during the pause make one read, as a socket server's next ``recv()``
    would return them: the record shows a client that did not wait for the reply (the
    lock-step tests rely on it)."""
    server = memory_server_factory(
        [
            Send(b"220 hi\r\n"),
            Expect(b"MAIL\r\n"),
            Sleep(0.3),
            Send(b"250 ok\r\n"),
            Expect(b"RCPT\r\n"),
            Send(b"250 ok\r\n250 ok\r\n"),
            Expect(b"RCPT\r\nDATA\r\n"),
            Send(b"354 go\r\n"),
            ExpectClosed(),
        ]
    )
    transport = await connect(server)
    try:
        await receive_until(transport, b"220 ")
        for line in (b"MAIL\r\n", b"RCPT\r\n", b"RCPT\r\n", b"DATA\r\n"):
            await send(transport, line)
        await receive_until(transport, b"354 go\r\n")
    finally:
        await transport.aclose()
    server.check()
    assert server.reads == [[b"MAIL\r\n", b"RCPT\r\nRCPT\r\nDATA\r\n"]]


async def test_signal_is_set_when_the_script_gets_there_even_after_close(
    script_server_factory: ScriptServerFactory,
) -> None:
    before, after = threading.Event(), threading.Event()
    server = script_server_factory([Send(b"220 hi\r\n"), Signal(before), Close(), Signal(after)])
    transport = await connect(server)
    try:
        assert await receive_until(transport, b"220 ") == b"220 hi\r\n"
    finally:
        await transport.aclose()
    server.check()
    assert before.wait(WAIT) and after.wait(WAIT)


# -- what only memory does ----------------------------------------------------------------------


async def test_a_late_answer_arrives_within_the_deadline_without_waiting(
    memory_server_factory: MemoryServerFactory,
) -> None:
    server = memory_server_factory([Sleep(3), Send(b"220 late\r\n"), Sleep(30), Send(b"x")])
    transport = await connect(server)
    started = time.monotonic()
    try:
        assert await transport.receive(anyio.current_time() + 4) == b"220 late\r\n"
        with pytest.raises(TimeoutError):
            await transport.receive(anyio.current_time() + 29)
    finally:
        await transport.aclose()
    assert time.monotonic() - started < 1.0  # nothing really waited
    server.check()


async def test_a_read_while_the_script_waits_for_the_client_times_out_at_once(
    memory_server_factory: MemoryServerFactory,
) -> None:
    server = memory_server_factory(smtp_script([(b"QUIT\r\n", b"221 bye\r\n")]))
    transport = await connect(server)
    started = time.monotonic()
    try:
        await receive_until(transport, b"220 ")
        with pytest.raises(TimeoutError):
            await transport.receive(anyio.current_time() + 30)
        with pytest.raises(AssertionError, match="waits forever"):
            await transport.receive(math.inf)
        await send(transport, b"QUIT\r\n")
        assert await transport.receive(anyio.current_time() + WAIT) == b"221 bye\r\n"
        assert await transport.receive(anyio.current_time() + WAIT) == b""  # the script ended
    finally:
        await transport.aclose()
    assert time.monotonic() - started < 1.0


async def test_a_dribbled_send_arrives_one_byte_per_read(
    memory_server_factory: MemoryServerFactory,
) -> None:
    server = memory_server_factory([Send(b"220 slow\r\n", per_byte_delay=0.5), ExpectClosed()])
    transport = await connect(server)
    try:
        chunks = [await transport.receive(anyio.current_time() + 1) for _ in range(10)]
    finally:
        await transport.aclose()
    assert chunks == [bytes([byte]) for byte in b"220 slow\r\n"]
    server.check()


async def test_a_script_left_in_a_pause_is_played_to_its_end_by_check(
    memory_server_factory: MemoryServerFactory,
) -> None:
    """As a socket server sleeps and then goes on, check() lets the pause end."""
    done = threading.Event()
    server = memory_server_factory([Send(b"220 hi\r\n"), Sleep(60), Signal(done)])
    transport = await connect(server)
    assert await transport.receive(anyio.current_time() + WAIT) == b"220 hi\r\n"
    server.check()
    assert done.is_set()
    await transport.aclose()


def _starttls_script(context: ssl.SSLContext) -> list[Step]:
    return smtp_script(
        [
            (b"STARTTLS\r\n", b"220 go ahead\r\n"),
            (StartTLS(context), b""),
            (b"EHLO c\r\n", b"250 secure\r\n"),
        ]
    )


async def test_starttls_records_the_handshake_and_its_server_hostname(
    memory_server_factory: MemoryServerFactory,
) -> None:
    context = ssl.create_default_context()
    server = memory_server_factory(_starttls_script(context))
    transport = await connect(server)
    try:
        await receive_until(transport, b"220 ")
        await send(transport, b"STARTTLS\r\n")
        await receive_until(transport, b"220 go ahead\r\n")
        await transport.start_tls(context, "mx.example", anyio.current_time() + WAIT)
        assert transport.is_tls
        await send(transport, b"EHLO c\r\n")
        assert await transport.receive(anyio.current_time() + WAIT) == b"250 secure\r\n"
    finally:
        await transport.aclose()
    server.check()
    assert server.handshakes == [["mx.example"]]


@pytest.mark.parametrize("when", ["pipelined-with-starttls", "no-starttls-step"])
async def test_a_handshake_the_script_does_not_expect_fails_it_and_the_client(
    memory_server_factory: MemoryServerFactory, when: str
) -> None:
    context = ssl.create_default_context()
    if when == "no-starttls-step":
        steps = smtp_script([(b"STARTTLS\r\n", b"220 go ahead\r\n"), (b"EHLO c\r\n", b"")])
    else:
        steps = _starttls_script(context)
    server = MemoryServer(steps)
    transport = await connect(server)
    try:
        await receive_until(transport, b"220 ")
        # Sent with STARTTLS, EHLO is plain text the server must not take for TLS.
        extra = b"EHLO c\r\n" if when == "pipelined-with-starttls" else b""
        await send(transport, b"STARTTLS\r\n" + extra)
        await receive_until(transport, b"220 go ahead\r\n")
        with pytest.raises(ssl.SSLError):
            await transport.start_tls(context, "mx.example", anyio.current_time() + WAIT)
    finally:
        await transport.aclose()
    expected = "bytes before the TLS handshake: b'EHLO c\\r\\n'" if extra else "started TLS"
    assert expected in failure_of(server)
    assert server.handshakes == [[]]


async def test_ssl_context_makes_every_connection_implicit_tls(
    memory_server_factory: MemoryServerFactory,
) -> None:
    context = ssl.create_default_context()
    server = memory_server_factory(
        smtp_script([(b"QUIT\r\n", b"221 bye\r\n")]), ssl_context=context, connections=2
    )
    for hostname in ("a.example", "b.example"):
        transport = await connect(server, tls=context, hostname=hostname)
        try:
            assert transport.is_tls
            await receive_until(transport, b"220 ")
            await send(transport, b"QUIT\r\n")
            await receive_until(transport, b"221 bye\r\n")
        finally:
            await transport.aclose()
    assert server.handshakes == [["a.example"], ["b.example"]]


async def test_a_plain_client_of_an_implicit_tls_script_fails_it() -> None:
    server = MemoryServer(smtp_script([]), ssl_context=ssl.create_default_context())
    transport = await connect(server)
    try:
        with pytest.raises(TimeoutError):  # it waits for a handshake, says nothing
            await transport.receive(anyio.current_time() + WAIT)
    finally:
        await transport.aclose()
    assert "implicit TLS handshake: connection closed while waiting" in failure_of(server)


@pytest.mark.parametrize(
    "step", [Hold(threading.Event()), PostHandshakeRecord()], ids=["Hold", "PostHandshakeRecord"]
)
async def test_steps_that_need_a_real_socket_fail_the_script(step: Step) -> None:
    server = MemoryServer([Send(b"220 hi\r\n"), step, ExpectClosed()])
    transport = await connect(server)
    try:
        assert await transport.receive(anyio.current_time() + WAIT) == b"220 hi\r\n"
        assert await transport.receive(anyio.current_time() + WAIT) == b""
    finally:
        await transport.aclose()
    assert f"{type(step).__name__} needs a real socket: use ScriptedServer" in failure_of(server)


async def test_a_connection_beyond_the_scripts_is_refused_and_an_unused_script_fails() -> None:
    server = MemoryServer(scripts=[[Send(b"220 one\r\n")], [ExpectClosed()]])
    await (await connect(server)).aclose()
    await (await connect(server)).aclose()
    with pytest.raises(ConnectionRefusedError):
        await connect(server)
    assert "connection 2: more connections than the 2 scripts" in failure_of(server)
    unused = MemoryServer(smtp_script([]), connections=2)
    await (await connect(unused)).aclose()
    assert "connection 1: no client connected" in failure_of(unused)


def test_unix_path_becomes_the_host_the_client_connects_to() -> None:
    server = MemoryServer(unix_path="/run/lmtp.sock")
    assert (server.host, server.port, server.unix_path) == (
        "/run/lmtp.sock",
        PORT,
        "/run/lmtp.sock",
    )


async def test_an_smtp_client_sends_pipelined_over_the_memory_connector(
    memory_server_factory: MemoryServerFactory,
) -> None:
    """The whole client on each event loop: the envelope in one write, the body in another."""
    server = memory_server_factory(_pipelining_script())
    async with asmtp.SMTP(server.host, server.port, "c", connector=server.connector) as smtp:
        assert await smtp.sendmail("a@x.test", ["b@x.test"], b"hi\r\n") == {}
    assert server.reads == [[b"EHLO c\r\n", GROUP, b"hi\r\n.\r\n", b"QUIT\r\n"]]
    assert server.connected_to == [("127.0.0.1", PORT)]


LEAVES_EARLY = """
import pytest

import asmtp
from support.scripted import smtp_script

pytest_plugins = ["support.fixtures"]


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_leaves_before_quit(memory_server_factory):
    server = memory_server_factory(
        smtp_script([(b"NOOP\\r\\n", b"250 ok\\r\\n"), (b"QUIT\\r\\n", b"221 bye\\r\\n")])
    )
    smtp = asmtp.SMTP(server.host, server.port, "c", connector=server.connector)
    await smtp.connect()
    assert await smtp.noop() == (250, b"ok")
    await smtp.close()
"""


def test_the_memory_fixture_fails_a_test_whose_client_left_the_script_early(
    pytester: pytest.Pytester,
) -> None:
    """As scripted_server_factory does: at teardown, naming the step and the bytes received."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(LEAVES_EARLY)
    result = pytester.runpytest_inprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*connection 0, step 3 Expect(data=b'QUIT\\r\\n'*: connection closed while waiting*",
            "*received on this connection: b'NOOP\\r\\n'*",
        ]
    )


async def test_bytes_the_script_never_read_are_still_on_record(
    script_server_factory: ScriptServerFactory,
) -> None:
    """Written while the script paused before its end: a socket server drains them."""
    server = script_server_factory([Send(b"220 hi\r\n"), Sleep(0.2)])
    transport = await connect(server)
    try:
        await receive_until(transport, b"220 ")
        await send(transport, b"QUIT\r\n")
        assert await transport.receive(anyio.current_time() + WAIT) == b""
    finally:
        await transport.aclose()
    server.check()
    assert server.received == b"QUIT\r\n"
