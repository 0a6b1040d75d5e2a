"""The test-server kit works: driven by the standard library's blocking smtplib and raw sockets."""

from __future__ import annotations

import smtplib
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from support.aiosmtpd_server import Delivery, RecordingHandler, ThreadedSMTPServer
from support.scripted import (
    Close,
    Expect,
    ExpectClosed,
    ExpectData,
    Hold,
    ScriptedServer,
    Send,
    Signal,
    StartTLS,
    smtp_script,
)

if TYPE_CHECKING:  # importing the plugin module before pytest registers it defeats assert rewriting
    from support.fixtures import ScriptedServerFactory, SMTPDServerFactory, TLSContexts

pytest_plugins = ["support.fixtures"]

WAIT = 5.0
ME = "client.test"


def _connect(host: str, port: int) -> socket.socket:
    return socket.create_connection((host, port), timeout=WAIT)


def _recv_until(sock: socket.socket, marker: bytes) -> bytes:
    """Read until ``marker`` has arrived; the socket's timeout bounds each read."""
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError(f"EOF before {marker!r}; got {data!r}")
        data += chunk
    return data


def _smtp(server: ThreadedSMTPServer) -> smtplib.SMTP:
    return smtplib.SMTP(server.host, server.port, local_hostname=ME, timeout=WAIT)


# aiosmtpd in its own thread


def test_delivery_records_envelope_hook_order_and_exact_body_bytes(
    smtpd_server: ThreadedSMTPServer,
) -> None:
    body = b"Subject: hi\r\n\r\n.starts with a dot\r\n8-bit: \xc3\xa9\r\n"
    with _smtp(smtpd_server) as client:
        assert client.sendmail("a@x.test", ["b@x.test", "c@x.test"], body) == {}
    size = f"SIZE={len(body)}"
    assert smtpd_server.handler.deliveries == [
        Delivery("a@x.test", ("b@x.test", "c@x.test"), (size,), ((), ()), body)
    ]
    assert smtpd_server.handler.commands == [
        f"EHLO {ME}",
        f"MAIL a@x.test {size}",
        "RCPT b@x.test",
        "RCPT c@x.test",
        "DATA",
        "QUIT",
    ]
    assert smtpd_server.connection_count == 1
    assert smtpd_server.handler.errors == []


def test_refused_sender_and_recipient_get_their_configured_replies(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    handler = RecordingHandler(
        refuse_senders={"bad@x.test": "550 5.1.0 sender rejected"},
        refuse_recipients={"nobody@x.test": "550 5.1.1 no such user"},
    )
    server = smtpd_server_factory(handler)
    with _smtp(server) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused_sender:
            client.sendmail("bad@x.test", ["b@x.test"], b"hi\r\n")
        assert (refused_sender.value.smtp_code, refused_sender.value.smtp_error) == (
            550,
            b"5.1.0 sender rejected",
        )
        refused = client.sendmail("a@x.test", ["nobody@x.test", "b@x.test"], b"hi\r\n")
    assert refused == {"nobody@x.test": (550, b"5.1.1 no such user")}
    assert [d.rcpt_tos for d in handler.deliveries] == [("b@x.test",)]


def test_data_reply_override_rejects_the_message_and_records_no_delivery(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    server = smtpd_server_factory(RecordingHandler(data_reply="554 5.6.0 rejected"))
    with _smtp(server) as client, pytest.raises(smtplib.SMTPDataError) as info:
        client.sendmail("a@x.test", ["b@x.test"], b"hi\r\n")
    assert (info.value.smtp_code, info.value.smtp_error) == (554, b"5.6.0 rejected")
    assert server.handler.deliveries == []


@pytest.mark.parametrize("advertise", [True, False])
def test_ehlo_advertises_pipelining_and_extra_lines_only_when_asked(
    smtpd_server_factory: SMTPDServerFactory, advertise: bool
) -> None:
    extra = ["CHUNKING", "DSN"] if advertise else []
    handler = RecordingHandler(advertise_pipelining=advertise, extra_ehlo_lines=extra)
    server = smtpd_server_factory(handler)
    with _smtp(server) as client:
        code, _ = client.ehlo()
        assert code == 250
        for keyword in ("pipelining", "chunking", "dsn"):
            assert client.has_extn(keyword) is advertise
        assert client.has_extn("8bitmime")  # aiosmtpd's own lines are kept
        assert client.ehlo_resp is not None
        assert client.ehlo_resp.splitlines()[-1] == b"HELP"


@pytest.mark.parametrize("verb", ["EHLO", "MAIL", "RCPT", "DATA"])
def test_disconnect_after_closes_the_connection_without_a_reply(
    smtpd_server_factory: SMTPDServerFactory, verb: str
) -> None:
    server = smtpd_server_factory(RecordingHandler(disconnect_after=verb))
    with _smtp(server) as client, pytest.raises(smtplib.SMTPServerDisconnected):
        client.sendmail("a@x.test", ["b@x.test"], b"hi\r\n")
    assert server.handler.commands[-1].split()[0] == verb
    assert server.handler.deliveries == []
    assert server.handler.errors == []


def test_lmtp_over_a_unix_socket_answers_data_once_per_recipient(
    smtpd_server_factory: SMTPDServerFactory, unix_socket_path: Path
) -> None:
    handler = RecordingHandler(lmtp_data_replies={"full@x.test": "452 4.2.2 mailbox full"})
    server = smtpd_server_factory(handler, lmtp=True, unix_path=unix_socket_path)
    with smtplib.LMTP(str(server.unix_path), local_hostname=ME, timeout=WAIT) as client:
        # smtplib reads only the first per-recipient reply; the second is still queued.
        assert client.sendmail("a@x.test", ["ok@x.test", "full@x.test"], b"hi\r\n") == {}
        assert client.getreply() == (452, b"4.2.2 mailbox full")
    assert handler.commands[0] == f"LHLO {ME}"
    assert [(d.rcpt_tos, d.content) for d in handler.deliveries] == [(("ok@x.test",), b"hi\r\n")]


def test_lmtp_single_reply_keeps_aiosmtpd_answering_data_once(
    smtpd_server_factory: SMTPDServerFactory, unix_socket_path: Path
) -> None:
    handler = RecordingHandler(lmtp_single_reply=True)
    server = smtpd_server_factory(handler, lmtp=True, unix_path=unix_socket_path)
    with smtplib.LMTP(str(server.unix_path), local_hostname=ME, timeout=WAIT) as client:
        assert client.sendmail("a@x.test", ["b@x.test", "c@x.test"], b"hi\r\n") == {}
        assert client.noop() == (250, b"2.0.0 OK")  # no second DATA reply was queued
    assert handler.deliveries[0].rcpt_tos == ("b@x.test", "c@x.test")


def test_aiosmtpd_answers_commands_pipelined_in_one_write_in_order(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    server = smtpd_server_factory(RecordingHandler(advertise_pipelining=True))
    with _connect(server.host, server.port) as sock:
        sock.sendall(b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n")
        replies = _recv_until(sock, b"354 ")
        sock.sendall(b"hi\r\n.\r\nQUIT\r\n")
        replies += _recv_until(sock, b"221 ")
    last_lines = [line[:4] for line in replies.split(b"\r\n") if line[3:4] == b" "]
    assert last_lines == [b"220 ", b"250 ", b"250 ", b"250 ", b"354 ", b"250 ", b"221 "]
    assert server.handler.wait_for_deliveries(1)[0].content == b"hi\r\n"


@pytest.mark.parametrize("mode", ["implicit", "starttls"])
def test_tls_modes_deliver_with_a_trustme_certificate(
    smtpd_server_factory: SMTPDServerFactory, tls_contexts: TLSContexts, mode: str
) -> None:
    client: smtplib.SMTP
    if mode == "implicit":
        server = smtpd_server_factory(ssl_context=tls_contexts.server)
        client = smtplib.SMTP_SSL(
            server.host, server.port, local_hostname=ME, timeout=WAIT, context=tls_contexts.client
        )
    else:
        server = smtpd_server_factory(tls_context=tls_contexts.server, require_starttls=True)
        client = _smtp(server)
        client.starttls(context=tls_contexts.client)
    with client:
        assert client.sendmail("a@x.test", ["b@x.test"], b"hi\r\n") == {}
    expected = ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    if mode == "starttls":
        expected[:0] = ["EHLO", "STARTTLS"]
    assert [command.split()[0] for command in server.handler.commands] == expected
    assert len(server.handler.deliveries) == 1


def test_data_delay_postpones_the_reply_to_the_end_of_data(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    server = smtpd_server_factory(RecordingHandler(data_delay=0.3))
    with _smtp(server) as client:
        client.ehlo()
        client.mail("a@x.test")
        client.rcpt("b@x.test")
        started = time.monotonic()
        assert client.data(b"hi\r\n")[0] == 250
        assert time.monotonic() - started >= 0.3


# ScriptedServer


def test_scripted_server_passes_when_smtplib_follows_the_script(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    server = scripted_server_factory(
        smtp_script(
            [
                (f"ehlo {ME}\r\n".encode(), b"250-scripted.test\r\n250 8BITMIME\r\n"),
                (b"mail FROM:<a@x.test>\r\n", b"250 ok\r\n"),
                (b"rcpt TO:<b@x.test>\r\n", b"250 ok\r\n"),
                (b"data\r\n", b"354 go\r\n"),
                (ExpectData(), b"250 queued\r\n"),
                (b"QUIT\r\n", b"221 bye\r\n"),
                (ExpectClosed(), b""),
            ]
        )
    )
    with smtplib.SMTP(server.host, server.port, local_hostname=ME, timeout=WAIT) as client:
        assert client.sendmail("a@x.test", ["b@x.test"], b"hi\r\n.dot\r\n") == {}
    server.check()
    assert b"hi\r\n..dot\r\n.\r\n" in server.captured


@pytest.mark.parametrize(
    ("client_sends", "message"),
    [(b"HELO b\r\n", "expected b'EHLO a\\r\\n', got b'HELO b\\r\\n'"), (b"", "timed out")],
)
def test_scripted_check_raises_naming_the_step_and_the_received_bytes(
    client_sends: bytes, message: str
) -> None:
    server = ScriptedServer(smtp_script([(b"EHLO a\r\n", b"250 ok\r\n")]), step_timeout=0.3)
    server.start()
    try:
        with _connect(server.host, server.port) as sock:
            _recv_until(sock, b"220 ")
            sock.sendall(client_sends)
            assert sock.recv(4096) == b""  # after a failure the server closes, no reply
        with pytest.raises(AssertionError) as info:
            server.check()
    finally:
        server.stop()
    text = str(info.value)
    assert "step 1 Expect(data=b'EHLO a\\r\\n'" in text
    assert message in text
    assert f"received on this connection: {client_sends!r}" in text


def test_send_with_per_byte_delay_dribbles_the_reply(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    server = scripted_server_factory([Send(b"220 slow\r\n", per_byte_delay=0.01), ExpectClosed()])
    chunks: list[bytes] = []
    with _connect(server.host, server.port) as sock:
        while b"".join(chunks) != b"220 slow\r\n":
            chunks.append(sock.recv(4096))
    assert len(chunks) > 1


def test_hold_sends_nothing_until_the_test_releases_it_and_signal_says_so(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    release, sent = threading.Event(), threading.Event()
    server = scripted_server_factory(
        [Send(b"220 hi\r\n"), Hold(release), Send(b"421 bye\r\n"), Signal(sent), ExpectClosed()]
    )
    with _connect(server.host, server.port) as sock:
        _recv_until(sock, b"220 hi\r\n")
        sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            sock.recv(4096)
        assert not sent.is_set()
        release.set()
        assert sent.wait(WAIT)
        sock.settimeout(WAIT)
        assert _recv_until(sock, b"\r\n") == b"421 bye\r\n"


def test_a_hold_never_released_fails_the_script() -> None:
    server = ScriptedServer([Hold(threading.Event(), timeout=0.2)]).start()
    try:
        with _connect(server.host, server.port):
            with pytest.raises(AssertionError, match="never released the Hold"):
                server.check()
    finally:
        server.stop()


def test_scripted_connections_are_served_concurrently(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    server = scripted_server_factory(smtp_script([(b"QUIT\r\n", b"221 bye\r\n")]), connections=2)
    with _connect(server.host, server.port) as first, _connect(server.host, server.port) as second:
        _recv_until(second, b"220 ")
        _recv_until(first, b"220 ")
        for sock in (second, first):
            sock.sendall(b"QUIT\r\n")
            _recv_until(sock, b"221 bye\r\n")
    server.check()
    assert server.received_per_connection == [b"QUIT\r\n", b"QUIT\r\n"]


def test_close_with_reset_makes_the_client_see_a_connection_reset(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    server = scripted_server_factory([Send(b"220 hi\r\n"), Expect(b"NOOP\r\n"), Close(reset=True)])
    with _connect(server.host, server.port) as sock:
        _recv_until(sock, b"220 ")
        sock.sendall(b"NOOP\r\n")
        with pytest.raises(ConnectionResetError):
            sock.recv(4096)


def test_starttls_step_upgrades_the_connection_for_smtplib(
    scripted_server_factory: ScriptedServerFactory, tls_contexts: TLSContexts
) -> None:
    server = scripted_server_factory(
        smtp_script(
            [
                (f"ehlo {ME}\r\n".encode(), b"250-scripted.test\r\n250 STARTTLS\r\n"),
                (b"STARTTLS\r\n", b"220 go ahead\r\n"),
                (StartTLS(tls_contexts.server), b""),
                (f"ehlo {ME}\r\n".encode(), b"250 scripted.test\r\n"),
                (b"QUIT\r\n", b"221 bye\r\n"),
            ]
        )
    )
    with smtplib.SMTP(server.host, server.port, local_hostname=ME, timeout=WAIT) as client:
        assert client.starttls(context=tls_contexts.client)[0] == 220
        assert client.ehlo()[0] == 250
    server.check()


def test_scripted_server_listens_on_a_unix_socket(
    scripted_server_factory: ScriptedServerFactory, unix_socket_path: Path
) -> None:
    server = scripted_server_factory(
        smtp_script([(f"lhlo {ME}\r\n".encode(), b"250 scripted.test\r\n")]),
        unix_path=unix_socket_path,
    )
    client = smtplib.LMTP(str(server.unix_path), local_hostname=ME, timeout=WAIT)
    try:
        assert client.ehlo() == (250, b"scripted.test")
    finally:
        client.close()
    server.check()


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.anyio
async def test_both_servers_serve_a_client_on_the_test_threads_own_event_loop(
    smtpd_server: ThreadedSMTPServer, scripted_server_factory: ScriptedServerFactory
) -> None:
    scripted = scripted_server_factory(smtp_script([(b"QUIT\r\n", b"221 bye\r\n")]))
    for host, port in [(smtpd_server.host, smtpd_server.port), (scripted.host, scripted.port)]:
        with anyio.fail_after(WAIT):
            async with await anyio.connect_tcp(host, port) as stream:
                received = b""
                while b"\r\n" not in received:
                    received += await stream.receive()
                await stream.send(b"QUIT\r\n")
                while b"221 " not in received:
                    received += await stream.receive()
        assert received.startswith(b"220 ")
