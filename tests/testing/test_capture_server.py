"""The capture server records what clients send and fails where it is told to.

Clients are asmtp (asyncio, trio, uvloop), smtplib and aiosmtplib; bytes no client sends
(malformed BDAT) go over a raw socket.
"""

from __future__ import annotations

import asyncio
import functools
import smtplib
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import aiosmtplib
import pytest

import asmtp
from asmtp.testing import CaptureServer, ReceivedMessage

from ._wire import Wire

MESSAGE = (
    b"From: app@example.org\r\nTo: ada@example.com\r\nSubject: Hello\r\n\r\n"
    b"line one\r\n.a line starting with a dot\r\n"
)


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    with CaptureServer() as started:
        yield started


def test_records_the_envelope_the_bytes_and_the_parsed_message(server: CaptureServer) -> None:
    with smtplib.SMTP(server.host, server.port, local_hostname="client.test") as client:
        refused = client.sendmail(
            "app@example.org", ["ada@example.com", "bob@example.com"], MESSAGE
        )
    assert refused == {}
    (received,) = server.messages
    assert received.mail_from == "app@example.org"
    assert received.rcpt_tos == ("ada@example.com", "bob@example.com")
    assert received.raw == MESSAGE  # dot-stuffing undone, CRLF kept
    assert received.helo == "client.test"
    assert received.subject == "Hello"
    assert received.text == "line one\n.a line starting with a dot\n"
    assert received.message["To"] == "ada@example.com"
    assert received.peer.startswith("127.0.0.1:")
    assert (received.tls, received.username, received.chunked, received.lmtp) == (
        False,
        None,
        False,
        False,
    )
    assert server.connections == 1


@pytest.mark.anyio
async def test_asmtp_on_every_backend_sends_by_bdat_when_chunking_is_offered() -> None:
    body = MESSAGE + b"x" * 700_000 + b"\r\n"  # several BDAT chunks
    with CaptureServer(chunking=True) as server:
        async with asmtp.SMTP(server.host, server.port) as client:
            await client.ehlo()
            assert client.has_extn("chunking")
            assert await client.sendmail("app@example.org", ["ada@example.com"], body) == {}
    (received,) = server.messages
    assert received.chunked
    assert received.raw == body


@pytest.mark.asyncio
async def test_aiosmtplib_under_pytest_asyncio(server: CaptureServer) -> None:
    # Not marked anyio: this runs on pytest-asyncio's loop (strict mode, explicit marker).
    await aiosmtplib.send(
        MESSAGE,
        sender="app@example.org",
        recipients=["ada@example.com"],
        hostname=server.host,
        port=server.port,
        start_tls=False,
    )
    assert server.wait_for(1)[0].raw == MESSAGE


def test_smtplib_from_another_thread_and_wait_for(server: CaptureServer) -> None:
    def send_later() -> None:
        time.sleep(0.1)
        with smtplib.SMTP(server.host, server.port) as client:
            client.sendmail("app@example.org", ["ada@example.com"], MESSAGE)

    worker = threading.Thread(target=send_later)
    worker.start()
    try:
        assert server.wait_for(1, timeout=5)[0].rcpt_tos == ("ada@example.com",)
    finally:
        worker.join(5)


def test_wait_for_fails_with_what_arrived(server: CaptureServer) -> None:
    with pytest.raises(AssertionError, match=r"at least 1 message\(s\) within 0.1 s, received 0"):
        server.wait_for(1, timeout=0.1)


def test_refusals_at_mail_rcpt_and_end_of_data(server: CaptureServer) -> None:
    server.refuse_sender("spam@*")
    server.refuse_recipient("*@blocked.example", "550 5.7.1 Blocked")
    with smtplib.SMTP(server.host, server.port) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as sender:
            client.sendmail("SPAM@example.org", ["ada@example.com"], MESSAGE)
        assert sender.value.smtp_code == 550
        refused = client.sendmail(
            "app@example.org", ["ada@example.com", "x@Blocked.Example"], MESSAGE
        )
        assert refused == {"x@Blocked.Example": (550, b"5.7.1 Blocked")}
        server.refuse_data("554 5.6.0 Virus found")
        with pytest.raises(smtplib.SMTPDataError) as data:
            client.sendmail("app@example.org", ["ada@example.com"], MESSAGE)
        assert (data.value.smtp_code, data.value.smtp_error) == (554, b"5.6.0 Virus found")
    assert [m.rcpt_tos for m in server.messages] == [("ada@example.com",)]
    server.reset()
    assert server.messages == []
    assert server.script.recipients == ()


@pytest.mark.parametrize("reply", ["250 OK", "5xx bad", "550 a\r\n250 b", ""])
def test_scripted_replies_must_be_one_refusal_line(reply: str) -> None:
    with CaptureServer() as server, pytest.raises(ValueError, match="reply line"):
        server.refuse_recipient("*", reply)


def test_close_after_answers_421_and_closes(server: CaptureServer) -> None:
    server.close_after(2)
    with smtplib.SMTP(server.host, server.port) as client:
        client.sendmail("app@example.org", ["a@example.com"], MESSAGE)
        client.sendmail("app@example.org", ["b@example.com"], MESSAGE)
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail("app@example.org", ["c@example.com"], MESSAGE)
        assert refused.value.smtp_code == 421
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    assert [m.rcpt_tos for m in server.messages] == [("a@example.com",), ("b@example.com",)]


@pytest.mark.anyio
@pytest.mark.parametrize("point", ["connect", "ehlo", "mail", "rcpt", "data"])
async def test_stall_makes_the_callers_timeout_fire(point: str) -> None:
    with CaptureServer() as server:
        server.stall(point, 5)  # type: ignore[arg-type]
        began = time.monotonic()
        with pytest.raises(TimeoutError):
            await asmtp.sendmail(
                "app@example.org",
                ["ada@example.com"],
                MESSAGE,
                host=server.host,
                port=server.port,
                timeout=0.3,
            )
        assert time.monotonic() - began < 3
        assert server.messages == []


def test_stall_rejects_unknown_points(server: CaptureServer) -> None:
    with pytest.raises(ValueError, match="stall point"):
        server.stall("quit", 1)  # type: ignore[arg-type]


def _ehlo_keywords(server: CaptureServer) -> set[str]:
    with smtplib.SMTP(server.host, server.port) as client:
        client.ehlo()
        return set(client.esmtp_features)


def test_offer_shows_and_hides_extensions(server: CaptureServer) -> None:
    assert _ehlo_keywords(server) >= {"pipelining", "8bitmime", "smtputf8", "size"}
    assert not _ehlo_keywords(server) & {"chunking", "starttls", "auth"}
    server.offer(pipelining=False, smtputf8=False, eightbitmime=False, size=None, chunking=True)
    keywords = _ehlo_keywords(server)
    assert "chunking" in keywords
    assert not keywords & {"pipelining", "smtputf8", "8bitmime", "size"}


def test_smtputf8_addresses_when_offered(server: CaptureServer) -> None:
    with smtplib.SMTP(server.host, server.port) as client:
        client.sendmail(
            "app@example.org", ["ümlaut@exämple.de"], MESSAGE, mail_options=["SMTPUTF8"]
        )
    assert server.messages[0].rcpt_tos == ("ümlaut@exämple.de",)


@pytest.mark.anyio
async def test_lmtp_answers_once_per_recipient_after_the_data(unix_socket_path: Path) -> None:
    with CaptureServer(lmtp=True, unix_path=unix_socket_path) as server:
        server.refuse_after_data("full@*")
        async with asmtp.LMTP(str(unix_socket_path)) as client:
            refused = await client.sendmail(
                "app@example.org", ["ada@example.com", "full@example.com"], MESSAGE
            )
    assert refused == {"full@example.com": (552, b"5.2.2 Mailbox full")}
    (received,) = server.messages
    assert received.rcpt_tos == ("ada@example.com",)
    assert received.lmtp


def test_the_unix_socket_is_removed_on_stop(unix_socket_path: Path) -> None:
    with CaptureServer(unix_path=unix_socket_path) as server:
        assert unix_socket_path.is_socket()
        assert server.address == str(unix_socket_path)
    assert not unix_socket_path.exists()


def test_refuse_after_data_needs_lmtp(server: CaptureServer) -> None:
    with pytest.raises(ValueError, match="LMTP"):
        server.refuse_after_data("*")


@pytest.mark.anyio
async def test_starttls_and_auth_with_the_known_user() -> None:
    with CaptureServer(starttls=True, auth=("ada", "s3cret"), auth_require_tls=True) as server:
        assert server.ca_file.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
        context = ssl.create_default_context(cafile=str(server.ca_file))
        send = functools.partial(
            asmtp.sendmail,
            "ada@example.org",
            ["bob@example.com"],
            MESSAGE,
            host=server.host,
            port=server.port,
            username="ada",
            context=context,
        )
        await send(password="s3cret", tls="starttls")
        with pytest.raises(smtplib.SMTPAuthenticationError) as wrong:
            await send(password="wrong")
        assert wrong.value.smtp_code == 535
        ca_dir = server.ca_file.parent
    (received,) = server.messages
    assert (received.tls, received.username) == (True, "ada")
    assert not ca_dir.exists()  # removed by stop()


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_plain_and_login_over_smtplib(mechanism: str) -> None:
    with CaptureServer(auth=("ada", "s3cret")) as server:
        with smtplib.SMTP(server.host, server.port) as client:
            client.ehlo()
            assert set(client.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}
            with pytest.raises(smtplib.SMTPSenderRefused) as unauthenticated:
                client.sendmail("ada@example.org", ["bob@example.com"], MESSAGE)
            assert unauthenticated.value.smtp_code == 530
            client.user, client.password = "ada", "s3cret"
            assert client.auth(mechanism, getattr(client, f"auth_{mechanism.lower()}"))[0] == 235
            client.sendmail("ada@example.org", ["bob@example.com"], MESSAGE)
    assert server.messages[0].username == "ada"


def test_auth_is_offered_only_after_starttls_when_asked() -> None:
    with CaptureServer(starttls=True, auth=("ada", "pw"), auth_require_tls=True) as server:
        keywords = _ehlo_keywords(server)
    assert "starttls" in keywords
    assert "auth" not in keywords


@pytest.mark.anyio
async def test_implicit_tls() -> None:
    with CaptureServer(implicit_tls=True) as server:
        await asmtp.sendmail(
            "app@example.org",
            ["ada@example.com"],
            MESSAGE,
            host=server.host,
            port=server.port,
            tls="implicit",
            context=server.client_context(),
        )
    assert server.messages[0].tls


def test_a_failing_on_message_refuses_with_451() -> None:
    seen: list[ReceivedMessage] = []

    def full_disk(message: ReceivedMessage) -> None:
        seen.append(message)
        raise OSError(28, "No space left on device")

    with CaptureServer(on_message=full_disk) as server:
        with smtplib.SMTP(server.host, server.port) as client:
            with pytest.raises(smtplib.SMTPDataError) as refused:
                client.sendmail("app@example.org", ["ada@example.com"], MESSAGE)
        assert refused.value.smtp_code == 451
        assert server.messages == []
    assert len(seen) == 1


def test_servers_cannot_restart_and_report_unbound_ports() -> None:
    server = CaptureServer()
    with pytest.raises(RuntimeError, match="not listening"):
        _ = server.port
    assert repr(server) == "<CaptureServer SMTP not listening, 0 message(s)>"
    with server:
        assert repr(server) == f"<CaptureServer SMTP 127.0.0.1:{server.port}, 0 message(s)>"
        with pytest.raises(RuntimeError, match="only be started once"):
            server.start()
    with pytest.raises(RuntimeError, match="offers no TLS"):
        _ = server.ca_file


def test_the_server_thread_has_no_asyncio_loop_of_the_caller() -> None:
    """A caller inside its own running loop still reaches the server (own thread, own loop)."""

    async def inside_a_loop() -> ReceivedMessage:
        with CaptureServer() as server:
            await asmtp.sendmail(
                "app@example.org", ["ada@example.com"], MESSAGE, host=server.host, port=server.port
            )
            return server.messages[0]

    assert asyncio.run(inside_a_loop()).rcpt_tos == ("ada@example.com",)


# -- BDAT (RFC 3030) over a raw socket -----------------------------------------------------


@pytest.fixture
def chunking() -> Iterator[CaptureServer]:
    with CaptureServer(chunking=True, size=1000) as started:
        yield started


@pytest.fixture
def wire(chunking: CaptureServer) -> Iterator[Wire]:
    wire = Wire(chunking.host, chunking.port)
    assert wire.reply().startswith(b"220")
    assert wire.command(b"EHLO client.test").startswith(b"250")
    yield wire
    wire.close()


def test_bdat_chunks_join_into_one_message(chunking: CaptureServer, wire: Wire) -> None:
    assert wire.command(b"MAIL FROM:<a@example.org>").startswith(b"250")
    assert wire.command(b"RCPT TO:<b@example.com>").startswith(b"250")
    assert wire.chunk(b"BDAT 9\r\nSubject: ") == b"250 2.0.0 9 octets received"
    wire.send(b"BDAT 12 LAST\r\nx\r\n\r\n.body\r\n")
    assert wire.reply().startswith(b"250 2.0.0 OK")
    assert chunking.messages[0].raw == b"Subject: x\r\n\r\n.body\r\n"  # never unstuffed
    assert chunking.messages[0].chunked


def test_bdat_without_a_recipient_is_read_and_refused(chunking: CaptureServer, wire: Wire) -> None:
    assert wire.command(b"MAIL FROM:<a@example.org>").startswith(b"250")
    # The chunk holds what looks like a command: it must be swallowed, not executed.
    assert wire.chunk(b"BDAT 6 LAST\r\nQUIT\r\n") == b"503 5.5.1 Error: need RCPT command"
    assert wire.command(b"NOOP").startswith(b"250")
    assert chunking.messages == []


def test_data_after_bdat_is_refused(wire: Wire) -> None:
    wire.command(b"MAIL FROM:<a@example.org>")
    wire.command(b"RCPT TO:<b@example.com>")
    assert wire.chunk(b"BDAT 3\r\nabc").startswith(b"250")
    assert wire.command(b"DATA") == b"503 5.5.1 Error: DATA after BDAT"


def test_bdat_past_the_size_limit_is_refused_whole(chunking: CaptureServer, wire: Wire) -> None:
    wire.command(b"MAIL FROM:<a@example.org>")
    wire.command(b"RCPT TO:<b@example.com>")
    assert wire.chunk(b"BDAT 1001 LAST\r\n" + b"x" * 1001).startswith(b"552")
    assert wire.command(b"NOOP").startswith(b"250")
    assert chunking.messages == []


@pytest.mark.parametrize("argument", [b"", b" x", b" 5 FIRST", b" -1"])
def test_bdat_syntax_errors_end_the_session(wire: Wire, argument: bytes) -> None:
    assert wire.command(b"BDAT" + argument).startswith(b"501")
    assert wire.closed()


def test_bdat_is_unknown_when_chunking_is_not_offered(server: CaptureServer) -> None:
    wire = Wire(server.host, server.port)
    try:
        wire.reply()
        wire.command(b"EHLO client.test")
        assert wire.command(b"BDAT 0 LAST").startswith(b"500")
    finally:
        wire.close()
