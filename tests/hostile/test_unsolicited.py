"""Bytes nobody asked for: a stray reply, a 421 or a close while no command is pending.

The client reads only while it awaits a reply, so what the server sends in between waits in
the core or in the transport; paired with the next command it would shift every later reply
by one. It never is: a stray reply is ``SMTPProtocolError``, a ``421`` or a close is
``SMTPServerDisconnected`` saying so, the next command is never written, and a pool never
reuses such a connection (nor counts it as a failed attempt). The bytes arrive in the same
write as the previous reply, in a write of their own right behind it, or later while the
client idles; in plain text and over TLS. A TLS 1.3 record that carries no application data
is none of these.
"""

from __future__ import annotations

import ssl
import threading
from typing import TYPE_CHECKING, Final, Literal

import pytest

import asmtp
from support.scripted import (
    Close,
    Expect,
    ExpectClosed,
    ExpectData,
    ExpectLine,
    Hold,
    PostHandshakeRecord,
    Send,
    Signal,
    Step,
)

from ._kit import EHLO_LOCKSTEP, GREETING, HOST, QUIT, SENDER, TIMEOUT, client, idle_until

if TYPE_CHECKING:
    from support.fixtures import ScriptedServerFactory, TLSContexts

pytestmark = pytest.mark.anyio

When = Literal["with-the-reply", "behind-the-reply", "while-idle"]
WHEN: Final[list[When]] = ["with-the-reply", "behind-the-reply", "while-idle"]
TIMEOUT_421: Final = b"421 4.4.2 timeout exceeded\r\n"
RECIPIENT: Final = "b@x.test"


def _after_noop(extra: bytes, when: When, idle: threading.Event) -> list[Step]:
    """Greeting, EHLO and a NOOP answered ``250``, with ``extra`` sent ``when``."""
    steps: list[Step] = [Send(GREETING), ExpectLine(b"EHLO"), Send(EHLO_LOCKSTEP)]
    steps.append(Expect(b"NOOP\r\n"))
    if when == "with-the-reply":
        return [*steps, Send(b"250 2.0.0 ok\r\n" + extra)]
    steps.append(Send(b"250 2.0.0 ok\r\n"))
    if when == "while-idle":
        steps.append(Hold(idle))
    return [*steps, Send(extra)] if extra else steps


def _transaction() -> list[Step]:
    return [
        Expect(f"MAIL FROM:<{SENDER}>\r\n".encode()),
        Send(b"250 ok\r\n"),
        Expect(f"RCPT TO:<{RECIPIENT}>\r\n".encode()),
        Send(b"250 ok\r\n"),
        Expect(b"DATA\r\n"),
        Send(b"354 go\r\n"),
        ExpectData(),
        Send(b"250 queued\r\n"),
    ]


def _client(port: int, tls: ssl.SSLContext | None) -> asmtp.SMTP:
    if tls is None:
        return client(port)
    return asmtp.SMTP_SSL(HOST, port, "client.test", timeout=TIMEOUT, context=tls)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize("when", WHEN)
@pytest.mark.parametrize(
    "extra", [b"250 2.0.0 extra\r\n", b"25"], ids=["stray-reply", "start-of-a-reply"]
)
async def test_a_reply_nobody_asked_for_is_never_paired_with_the_next_command(
    scripted_server_factory: ScriptedServerFactory,
    tls_contexts: TLSContexts,
    tls: bool,
    when: When,
    extra: bytes,
) -> None:
    """The second NOOP is refused before it is written (the script expects the close)."""
    idle, sent = threading.Event(), threading.Event()
    server = scripted_server_factory(
        [*_after_noop(extra, when, idle), Signal(sent), ExpectClosed()],
        ssl_context=tls_contexts.server if tls else None,
    )
    smtp = _client(server.port, tls_contexts.client if tls else None)
    await smtp.connect()
    await smtp.ehlo()
    assert await smtp.noop() == (250, b"2.0.0 ok")
    idle.set()
    await idle_until(sent)
    with pytest.raises(asmtp.SMTPProtocolError, match="unsolicited"):
        await smtp.noop()
    assert not smtp.is_connected


def _kill_cases() -> list[object]:
    cases = [
        ("421", "with-the-reply", "noop", False),
        ("421-and-close", "while-idle", "noop", False),
    ]
    for kill in ("421", "close"):
        for call in ("noop", "sendmail"):
            cases += [(kill, "while-idle", call, False), (kill, "while-idle", call, True)]
    return [
        pytest.param(*case, id=f"{case[0]}-{case[1]}-{case[2]}-{'tls' if case[3] else 'plain'}")
        for case in cases
    ]


@pytest.mark.parametrize(("kill", "when", "call", "tls"), _kill_cases())
async def test_a_421_or_a_close_while_idle_is_the_server_disconnecting(
    scripted_server_factory: ScriptedServerFactory,
    tls_contexts: TLSContexts,
    tls: bool,
    call: str,
    kill: str,
    when: When,
) -> None:
    """Reported as the server closing, with its reply; the next command is never written."""
    idle, sent = threading.Event(), threading.Event()
    extra = TIMEOUT_421 if kill.startswith("421") else b""
    end: list[Step] = [Close(), Signal(sent)] if kill.endswith("close") else [Signal(sent)]
    if not kill.endswith("close"):
        end.append(ExpectClosed())
    server = scripted_server_factory(
        [*_after_noop(extra, when, idle), *end], ssl_context=tls_contexts.server if tls else None
    )
    smtp = _client(server.port, tls_contexts.client if tls else None)
    await smtp.connect()
    await smtp.ehlo()
    await smtp.noop()
    idle.set()
    await idle_until(sent)
    with pytest.raises(asmtp.SMTPServerDisconnected) as caught:
        if call == "noop":
            await smtp.noop()
        else:
            await smtp.sendmail(SENDER, RECIPIENT, b"hello\r\n")
    message = str(caught.value)
    assert "the server closed the connection" in message
    assert ("421 4.4.2 timeout exceeded" in message) is bool(extra), message
    if call == "sendmail":
        assert isinstance(caught.value, asmtp.SMTPTransactionInterrupted)
        assert caught.value.outcome.accepted is False
    assert not smtp.is_connected


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize("kill", ["421", "stray-reply", "close"])
async def test_pool_never_reuses_a_connection_the_server_wrote_to_while_idle(
    scripted_server_factory: ScriptedServerFactory,
    tls_contexts: TLSContexts,
    tls: bool,
    kill: str,
) -> None:
    """The idle connection is closed at checkout, without QUIT; a new one sends, first try."""
    idle, sent = threading.Event(), threading.Event()
    first: list[Step] = [Send(GREETING), ExpectLine(b"EHLO"), Send(EHLO_LOCKSTEP)]
    first += [*_transaction(), Hold(idle)]
    if kill == "close":
        first += [Close(), Signal(sent)]
    else:
        first += [Send(TIMEOUT_421 if kill == "421" else b"250 2.0.0 stray\r\n"), Signal(sent)]
        first.append(ExpectClosed())  # no MAIL, no QUIT
    second: list[Step] = [Send(GREETING), ExpectLine(b"EHLO"), Send(EHLO_LOCKSTEP)]
    second += [*_transaction(), Expect(QUIT[0]), Send(QUIT[1])]
    server = scripted_server_factory(
        scripts=[first, second], ssl_context=tls_contexts.server if tls else None
    )
    async with asmtp.SMTPPool(
        HOST,
        server.port,
        tls="implicit" if tls else "none",
        context=tls_contexts.client,
        local_hostname="client.test",
        timeout=TIMEOUT,
        max_connections=1,
    ) as pool:
        assert (await pool.sendmail(SENDER, RECIPIENT, b"one\r\n")).attempts == 1
        idle.set()
        await idle_until(sent)
        assert (await pool.sendmail(SENDER, RECIPIENT, b"two\r\n")).attempts == 1
    server.check()


async def test_a_tls_record_without_application_data_while_idle_is_not_a_reply(
    scripted_server_factory: ScriptedServerFactory, tls_contexts: TLSContexts
) -> None:
    """TLS 1.3 post-handshake messages (here a CertificateRequest) arrive while idle; the
    client answers them with its next bytes and the conversation goes on in step."""
    tls_contexts.server.verify_mode = ssl.CERT_OPTIONAL
    tls_contexts.client.post_handshake_auth = True
    idle, sent = threading.Event(), threading.Event()
    steps: list[Step] = [Send(GREETING), ExpectLine(b"EHLO"), Send(EHLO_LOCKSTEP)]
    steps += [Hold(idle), PostHandshakeRecord(), Signal(sent)]
    steps += [Expect(b"NOOP\r\n"), Send(b"250 2.0.0 ok\r\n"), Expect(QUIT[0]), Send(QUIT[1])]
    server = scripted_server_factory(steps, ssl_context=tls_contexts.server)
    async with _client(server.port, tls_contexts.client) as smtp:
        await smtp.ehlo()
        idle.set()
        await idle_until(sent)
        assert await smtp.noop() == (250, b"2.0.0 ok")  # the record was read, not paired


@pytest.mark.parametrize(
    "then",
    [
        pytest.param(b"221 2.7.0 Error: I can break rules, too. Goodbye.\r\n", id="221-goodbye"),
        pytest.param(b"502 5.5.2 Error: command not recognized\r\n", id="stray-502"),
    ],
)
async def test_replies_to_a_refused_chunk_read_as_commands_leave_the_refusal_reported(
    scripted_server_factory: ScriptedServerFactory, then: bytes
) -> None:
    """As Postfix requiring TLS does: MAIL, RCPT and BDAT refused, then the chunk's bytes
    read as a command line and answered. The refusal is what the caller sees; RSET is not
    paired with that extra reply but never written, and the connection is closed."""
    body = b"Subject: x\r\n\r\nx\r\n"
    refused = b"530 5.7.0 Must issue a STARTTLS command first\r\n"
    steps: list[Step] = [Send(GREETING), ExpectLine(b"EHLO")]
    steps.append(Send(b"250-hostile.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n"))
    steps += [ExpectLine(b"MAIL"), ExpectLine(b"RCPT"), ExpectLine(b"BDAT"), Expect(body)]
    steps += [Send(refused * 3 + then)]
    steps += [Close()] if then.startswith(b"221") else [ExpectClosed()]
    server = scripted_server_factory(steps)
    smtp = client(server.port)
    await smtp.connect()
    with pytest.raises(asmtp.SMTPSenderRefused) as caught:
        await smtp.sendmail(SENDER, RECIPIENT, body)
    assert caught.value.smtp_code == 530
    assert not smtp.is_connected
