"""The smtplib-shaped session: connect, EHLO/HELO, simple commands, QUIT, timeouts,
exclusive use and the debug transcript.

Where smtplib's answer is the specification, the same call goes through smtplib against the
same aiosmtpd server and the results must be equal.
"""

from __future__ import annotations

import base64
import logging
import re
import smtplib
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from aiosmtpd.smtp import AuthResult

import asmtp
from client._kit import HOST, ME, TIMEOUT, closing, connected, smtp, verbs
from support.aiosmtpd_server import RecordingHandler
from support.scripted import Expect, ExpectClosed, ExpectLine, Send, Sleep, smtp_script

if TYPE_CHECKING:
    from support.aiosmtpd_server import ThreadedSMTPServer
    from support.fixtures import MemoryServerFactory, ScriptedServerFactory, SMTPDServerFactory

pytestmark = pytest.mark.anyio

USER = "alice"
PASSWORD = "s3cret-Pa55word!"


def _accept_alice(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = (data.login, data.password) == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok)


def _smtplib(server: ThreadedSMTPServer) -> smtplib.SMTP:
    return smtplib.SMTP(server.host, server.port, local_hostname=ME, timeout=TIMEOUT)


async def test_connect_returns_the_greeting_as_smtplib(smtpd_server: ThreadedSMTPServer) -> None:
    """aiosmtpd: connect() returns (220, message bytes), exactly smtplib's tuple."""

    def with_smtplib() -> tuple[int, bytes]:
        theirs = smtplib.SMTP(local_hostname=ME, timeout=TIMEOUT)
        try:
            return theirs.connect(HOST, smtpd_server.port)
        finally:
            theirs.close()

    expected = await anyio.to_thread.run_sync(with_smtplib)
    async with closing(asmtp.SMTP(local_hostname=ME, timeout=TIMEOUT)) as client:
        assert not connected(client)
        assert await client.connect(HOST, smtpd_server.port) == expected
        assert expected[0] == 220
        assert connected(client)
    assert not connected(client)


@pytest.mark.parametrize("where", ["connect", "constructor"])
async def test_host_port_string_form_connects(smtpd_server: ThreadedSMTPServer, where: str) -> None:
    """aiosmtpd: "host:port" works in connect() and in the constructor, as in smtplib."""
    target = f"{HOST}:{smtpd_server.port}"
    if where == "connect":
        async with closing(asmtp.SMTP(local_hostname=ME, timeout=TIMEOUT)) as client:
            assert (await client.connect(target))[0] == 220
            assert (await client.quit())[0] == 221
    else:
        async with asmtp.SMTP(target, local_hostname=ME, timeout=TIMEOUT) as client:
            assert (await client.noop())[0] == 250
    assert smtpd_server.handler.commands[-1] == "QUIT"


async def test_async_with_connects_and_quits_on_exit(smtpd_server: ThreadedSMTPServer) -> None:
    """aiosmtpd: entering connects (the constructor cannot), leaving sends QUIT and closes."""
    client = smtp(smtpd_server)
    async with client as entered:
        assert entered is client
        assert connected(client)
        await client.noop()
    assert not connected(client)
    assert smtpd_server.handler.commands == ["NOOP", "QUIT"]


async def test_ehlo_sets_the_same_attributes_as_smtplib(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """aiosmtpd with AUTH and extra lines: ehlo_resp, does_esmtp and esmtp_features equal
    smtplib's, with the same types (bytes, bool, dict[str, str])."""
    handler = RecordingHandler(advertise_pipelining=True, extra_ehlo_lines=["DSN", "X-Y a b"])
    server = smtpd_server_factory(handler, authenticator=_accept_alice)

    def with_smtplib() -> tuple[tuple[int, bytes], bytes | None, bool, dict[str, str]]:
        with _smtplib(server) as theirs:
            reply = theirs.ehlo()
            return reply, theirs.ehlo_resp, theirs.does_esmtp, theirs.esmtp_features

    expected = await anyio.to_thread.run_sync(with_smtplib)
    async with smtp(server) as client:
        assert (client.ehlo_resp, client.does_esmtp, client.esmtp_features) == (None, False, {})
        reply = await client.ehlo()
        ours = (reply, client.ehlo_resp, client.does_esmtp, client.esmtp_features)
    assert ours == expected
    assert type(client.esmtp_features) is dict
    assert all(type(k) is str and type(v) is str for k, v in client.esmtp_features.items())
    assert type(client.ehlo_resp) is bytes
    assert {"pipelining", "dsn", "x-y", "auth", "size"} <= client.esmtp_features.keys()


async def test_refused_ehlo_falls_back_to_helo(
    memory_server_factory: MemoryServerFactory,
) -> None:
    """A script answering 502 to EHLO: HELO follows, helo_resp is set, no ESMTP."""
    server = memory_server_factory(
        smtp_script(
            [
                (f"EHLO {ME}\r\n".encode(), b"502 5.5.1 EHLO not implemented\r\n"),
                (f"HELO {ME}\r\n".encode(), b"250 scripted.test\r\n"),
                (b"MAIL FROM:<a@x.test>\r\n", b"250 ok\r\n"),
                (b"RCPT TO:<b@x.test>\r\n", b"250 ok\r\n"),
                (b"DATA\r\n", b"354 go\r\n"),
                (b"hi\r\n.\r\n", b"250 queued\r\n"),
                (b"QUIT\r\n", b"221 bye\r\n"),
            ]
        )
    )
    async with smtp(server) as client:
        await client.ehlo_or_helo_if_needed()
        assert client.helo_resp == b"scripted.test"
        assert client.ehlo_resp == b"5.5.1 EHLO not implemented"
        assert (client.does_esmtp, client.esmtp_features) == (False, {})
        # No SIZE and no options on a plain SMTP server, as smtplib.
        assert await client.sendmail("a@x.test", "b@x.test", b"hi", ["BODY=8BITMIME"]) == {}
    server.check()


async def test_ehlo_or_helo_if_needed_raises_helo_error_when_both_fail(
    memory_server_factory: MemoryServerFactory,
) -> None:
    """A script refusing EHLO and HELO: SMTPHeloError with HELO's code and text."""
    server = memory_server_factory(
        smtp_script(
            [
                (ExpectLine(b"EHLO"), b"502 no EHLO\r\n"),
                (ExpectLine(b"HELO"), b"504 5.5.2 bad hostname\r\n"),
                (b"QUIT\r\n", b"221 bye\r\n"),
            ]
        )
    )
    async with smtp(server) as client:
        with pytest.raises(smtplib.SMTPHeloError) as info:
            await client.ehlo_or_helo_if_needed()
    assert (info.value.smtp_code, info.value.smtp_error) == (504, b"5.5.2 bad hostname")
    server.check()


@pytest.mark.parametrize("name", ["size", "SIZE", "Size", "8BitMime", "HELP"])
async def test_has_extn_is_case_insensitive(smtpd_server: ThreadedSMTPServer, name: str) -> None:
    """aiosmtpd advertises SIZE, 8BITMIME and HELP; it does not advertise STARTTLS here."""
    async with smtp(smtpd_server) as client:
        assert not client.has_extn(name)  # nothing is known before EHLO
        await client.ehlo()
        assert client.has_extn(name)
        assert not client.has_extn("starttls")


Call = Callable[[Any], Any]

# Each pair calls the same method on smtplib.SMTP and on asmtp.SMTP (there awaited).
SIMPLE_COMMANDS: dict[str, Call] = {
    "noop": lambda c: c.noop(),
    "rset": lambda c: c.rset(),
    "verify": lambda c: c.verify("b@x.test"),
    "vrfy": lambda c: c.vrfy("<b@x.test>"),
    "expn": lambda c: c.expn("staff"),
    "help": lambda c: c.help(),
    "help-arg": lambda c: c.help("MAIL"),
    "docmd": lambda c: c.docmd("NOOP"),
    "docmd-unknown": lambda c: c.docmd("XYZZY", "plugh"),
    "rcpt-before-mail": lambda c: c.rcpt("b@x.test"),
    "data-before-mail": lambda c: c.docmd("DATA"),
}


@pytest.mark.parametrize("command", SIMPLE_COMMANDS)
async def test_simple_commands_return_what_smtplib_returns(
    smtpd_server: ThreadedSMTPServer, command: str
) -> None:
    """aiosmtpd: each call's result equals smtplib's, including the server's own 503 for
    rcpt() before mail() (no local exception) and 500 for an unknown command."""
    call = SIMPLE_COMMANDS[command]

    def with_smtplib() -> object:
        with _smtplib(smtpd_server) as theirs:
            theirs.ehlo()
            return call(theirs)

    expected = await anyio.to_thread.run_sync(with_smtplib)
    async with smtp(smtpd_server) as client:
        await client.ehlo()
        assert await call(client) == expected
        assert (await client.noop())[0] == 250  # still in step afterwards


async def test_commands_after_quit_raise_server_disconnected(
    smtpd_server: ThreadedSMTPServer,
) -> None:
    """aiosmtpd: quit() returns the 221 reply and closes; every later command raises."""
    async with closing(smtp(smtpd_server)) as client:
        await client.connect()
        await client.ehlo()
        assert await client.quit() == (221, b"2.0.0 Bye")
        assert not client.is_connected
        assert client.ehlo_resp is None  # forgotten, as smtplib
        calls: list[Callable[[], Awaitable[object]]] = [
            client.noop,
            client.ehlo,
            client.rset,
            lambda: client.mail("a@x.test"),
        ]
        for call in calls:
            with pytest.raises(smtplib.SMTPServerDisconnected):
                await call()
        with pytest.raises(smtplib.SMTPServerDisconnected):
            await client.sendmail("a@x.test", ["b@x.test"], b"hi")
    assert verbs(smtpd_server.handler.commands) == ["EHLO", "QUIT"]


async def test_silent_server_times_out_connect_and_the_client_closes(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    """Scripted server that accepts but never greets: connect() raises TimeoutError after
    about ``timeout`` seconds, and the server sees the client close the connection."""
    server = scripted_server_factory([ExpectClosed(timeout=3)])
    async with closing(smtp(server, timeout=0.5)) as client:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await client.connect()
        assert 0.4 < time.monotonic() - started < 2.0
        assert not client.is_connected
        server.check()


async def test_silent_reply_times_out_the_command_and_closes_the_connection(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    """Scripted server that reads NOOP and never answers: TimeoutError after about
    ``timeout`` seconds; the reply is owed, so the connection is closed, never reused."""
    server = scripted_server_factory(
        [Send(b"220 scripted.test\r\n"), Expect(b"NOOP\r\n"), ExpectClosed(timeout=3)]
    )
    async with closing(smtp(server, timeout=0.5)) as client:
        await client.connect()
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await client.noop()
        assert 0.4 < time.monotonic() - started < 2.0
        assert not client.is_connected
        with pytest.raises(smtplib.SMTPServerDisconnected):
            await client.noop()
        server.check()


async def test_concurrent_use_from_a_second_task_raises_runtime_error(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    """Scripted server that holds its NOOP reply back: a second task using the connection
    meanwhile gets RuntimeError, and the first task's exchange is unharmed."""
    server = scripted_server_factory(
        [
            Send(b"220 scripted.test\r\n"),
            Expect(b"NOOP\r\n"),
            Sleep(0.5),
            Send(b"250 first\r\n"),
            *smtp_script(
                [(b"NOOP\r\n", b"250 again\r\n"), (b"QUIT\r\n", b"221 bye\r\n")], greeting=None
            ),
        ]
    )
    results: list[tuple[int, bytes]] = []
    async with smtp(server) as client:

        async def first() -> None:
            results.append(await client.noop())

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            with anyio.fail_after(TIMEOUT):
                while b"NOOP" not in server.received:  # noqa: ASYNC110 - another thread's state
                    await anyio.sleep(0.01)
            with pytest.raises(RuntimeError, match="another task"):
                await client.noop()
            with pytest.raises(RuntimeError):
                await client.sendmail("a@x.test", ["b@x.test"], b"hi")
            assert client.is_connected
        assert results == [(250, b"first")]
        assert await client.noop() == (250, b"again")
    server.check()


@pytest.fixture
def asmtp_logger() -> Iterator[logging.Logger]:
    """The ``asmtp`` logger, with its level and handlers restored afterwards."""
    logger = logging.getLogger("asmtp")
    level, handlers = logger.level, list(logger.handlers)
    yield logger
    logger.setLevel(level)
    logger.handlers[:] = handlers


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
@pytest.mark.parametrize("sink", ["set_debuglevel", "logging"])
async def test_debug_transcript_is_shown_and_never_shows_the_password(
    smtpd_server_factory: SMTPDServerFactory,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    asmtp_logger: logging.Logger,
    mechanism: str,
    sink: str,
) -> None:
    """aiosmtpd with an authenticator: set_debuglevel(1) prints the dialogue to stderr, and
    the ``asmtp`` logger at DEBUG gets it too; the password, in clear or base64 (alone or in
    PLAIN's message), appears in neither."""
    server = smtpd_server_factory(RecordingHandler(), authenticator=_accept_alice)
    asmtp_logger.setLevel(logging.WARNING)

    def transcript() -> str:
        # Only asmtp's records: aiosmtpd logs too, and its log is not under test.
        logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "asmtp")
        return logged + capsys.readouterr().err

    async with smtp(server) as client:
        await client.noop()
        assert transcript() == ""  # nothing is shown before it is asked for
        if sink == "set_debuglevel":
            client.set_debuglevel(1)
        else:
            asmtp_logger.setLevel(logging.DEBUG)
        assert await client.login(USER, PASSWORD, mechanisms=[mechanism]) == (
            235,
            b"2.7.0 Authentication successful",
        )
        await client.sendmail("a@x.test", ["b@x.test"], b"hi")
        shown = transcript()
    secrets = [
        PASSWORD,
        base64.b64encode(PASSWORD.encode()).decode(),
        base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode(),
        base64.b64encode(f"{USER}\0{USER}\0{PASSWORD}".encode()).decode(),
    ]
    for secret in secrets:
        assert secret not in shown
    for expected in (f"AUTH {mechanism} <redacted>", "MAIL FROM:<a@x.test>", "235"):
        assert expected in shown
    ours = [record for record in caplog.records if record.name == "asmtp"]
    if sink == "logging":
        assert {record.levelno for record in ours} == {logging.DEBUG}
    else:
        assert ours == []


async def test_set_debuglevel_shows_its_own_connection_only_and_zero_stops_it(
    smtpd_server: ThreadedSMTPServer,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    asmtp_logger: logging.Logger,
) -> None:
    """As smtplib's: the transcript of the connection it was called on, on stderr. The
    ``asmtp`` logger is left as the application configured it, so other connections and
    pools stay quiet; level 2 prefixes each line with the time."""
    level, handlers = asmtp_logger.level, list(asmtp_logger.handlers)
    async with smtp(smtpd_server) as loud, smtp(smtpd_server) as quiet:
        loud.set_debuglevel(1)
        await loud.sendmail("loud@x.test", ["b@x.test"], b"hi")
        await quiet.sendmail("quiet@x.test", ["b@x.test"], b"hi")
        async with asmtp.SMTPPool(HOST, smtpd_server.port, tls="none", timeout=TIMEOUT) as pool:
            await pool.sendmail("pool@x.test", ["b@x.test"], b"hi")
        err = capsys.readouterr().err
        assert "send: b'MAIL FROM:<loud@x.test>" in err
        assert "reply: 250 " in err
        assert "quiet@" not in err and "pool@" not in err
        loud.set_debuglevel(2)
        await loud.noop()
        stamped = capsys.readouterr().err.splitlines()
        assert stamped and all(
            re.match(r"\d\d:\d\d:\d\d\.\d+ (send|reply): ", line) for line in stamped
        )
        loud.set_debuglevel(0)
        await loud.sendmail("again@x.test", ["b@x.test"], b"hi")
    assert capsys.readouterr().err == ""
    assert (asmtp_logger.level, asmtp_logger.handlers) == (level, handlers)
    assert [record for record in caplog.records if record.name == "asmtp"] == []


async def test_the_asmtp_logger_at_debug_gets_every_connections_transcript(
    smtpd_server: ThreadedSMTPServer,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """logging integration: configured by the application, for every connection and pool,
    and nothing printed unless set_debuglevel asked for it."""
    caplog.set_level(logging.DEBUG, logger="asmtp")
    async with smtp(smtpd_server) as one, smtp(smtpd_server) as two:
        await one.sendmail("one@x.test", ["b@x.test"], b"hi")
        await two.sendmail("two@x.test", ["b@x.test"], b"hi")
    async with asmtp.SMTPPool(HOST, smtpd_server.port, tls="none", timeout=TIMEOUT) as pool:
        await pool.sendmail("pool@x.test", ["b@x.test"], b"hi")
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "asmtp")
    for sender in ("one", "two", "pool"):
        assert f"send: b'MAIL FROM:<{sender}@x.test>" in logged
    assert capsys.readouterr().err == ""


def test_a_client_reconnected_under_another_event_loop_reads_that_loops_clock(
    smtpd_server: ThreadedSMTPServer,
) -> None:
    """Deadlines are read from the clock of the loop that opened the connection, found once
    per connection: the same client connected under trio, then under asyncio, then under
    trio again reads each loop's own clock (trio's cannot be read outside trio)."""
    client = asmtp.SMTP(local_hostname=ME, timeout=TIMEOUT)

    async def noop_on_a_new_connection() -> int:
        await client.connect(HOST, smtpd_server.port)
        code, _ = await client.noop()
        await client.quit()
        return code

    for backend in ("trio", "asyncio", "trio"):
        assert anyio.run(noop_on_a_new_connection, backend=backend) == 250
