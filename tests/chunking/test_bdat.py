"""CHUNKING (RFC 3030) in sendmail, proved against scripts.

aiosmtpd offers no CHUNKING, so every test here plays a script that checks the exact bytes
the client writes, in memory (the pipelined one over sockets too); the interop suite proves
the same against Postfix.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import anyio
import pytest

import asmtp
from support.memory import MemoryServer
from support.scripted import ExpectLine, ScriptedServer, smtp_script

if TYPE_CHECKING:
    from support.fixtures import MemoryServerFactory, ScriptServerFactory

pytestmark = pytest.mark.anyio

EHLO_CHUNKING_PIPELINING = b"250-scripted.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n"
EHLO_CHUNKING_ONLY = b"250-scripted.test\r\n250 CHUNKING\r\n"
QUIT = (b"QUIT\r\n", b"221 bye\r\n")


def client(server: MemoryServer | ScriptedServer) -> asmtp.SMTP:
    return asmtp.SMTP(
        server.host, server.port, "client.test", timeout=5, connector=server.connector
    )


async def test_envelope_and_whole_body_go_out_in_one_write_with_pipelining(
    script_server_factory: ScriptServerFactory,
) -> None:
    """One round trip: the server answers nothing until MAIL, RCPT and BDAT LAST all arrived
    (in memory and over sockets)."""
    group = (
        b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\n"
        b"BDAT 17 LAST\r\nSubject: x\r\n\r\n.\r\n"
    )
    server = script_server_factory(
        smtp_script(
            [
                (ExpectLine(b"EHLO"), EHLO_CHUNKING_PIPELINING),
                (group, b"250 ok\r\n550 no such user\r\n250 ok\r\n250 queued\r\n"),
                QUIT,
            ]
        )
    )
    async with client(server) as smtp:
        refused = await smtp.sendmail("a@x.test", ["b@x.test", "c@x.test"], b"Subject: x\n\n.\n")
    assert refused == {"b@x.test": (550, b"no such user")}
    server.check()


async def test_chunking_without_pipelining_is_lock_step(
    memory_server_factory: MemoryServerFactory,
) -> None:
    """Each command waits for its reply; dots are not stuffed and bare LF becomes CRLF."""
    server = memory_server_factory(
        smtp_script(
            [
                (ExpectLine(b"EHLO"), EHLO_CHUNKING_ONLY),
                (b"MAIL FROM:<a@x.test>\r\n", b"250 ok\r\n"),
                (b"RCPT TO:<b@x.test>\r\n", b"250 ok\r\n"),
                (b"BDAT 10 LAST\r\n..a\r\nb\r\n\r\n", b"250 queued\r\n"),
                QUIT,
            ]
        )
    )
    async with client(server) as smtp:
        assert await smtp.sendmail("a@x.test", "b@x.test", b"..a\nb\r\n\r") == {}
    server.check()


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_streamed_body_becomes_several_chunks_the_last_marked_last(
    memory_server_factory: MemoryServerFactory,
) -> None:
    """A CR split across source chunks is carried into the next BDAT, never sent bare,
    and a source chunk that leaves nothing to send makes no empty BDAT (Postfix refuses
    ``BDAT 0`` without LAST)."""
    server = memory_server_factory(
        smtp_script(
            [
                (ExpectLine(b"EHLO"), EHLO_CHUNKING_PIPELINING),
                (
                    b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nBDAT 3\r\nabc",
                    b"",
                ),
                (
                    b"BDAT 7 LAST\r\n\r\ndef\r\n",
                    b"250 ok\r\n250 ok\r\n250 ok\r\n250 done\r\n",
                ),
                QUIT,
            ]
        )
    )
    async with client(server) as smtp:
        refused = await smtp.sendmail("a@x.test", "b@x.test", _chunks(b"abc\r", b"\ndef", b"\r"))
    assert refused == {}
    server.check()


async def test_refused_last_chunk_raises_data_error_and_resets(
    memory_server_factory: MemoryServerFactory,
) -> None:
    server = memory_server_factory(
        smtp_script(
            [
                (ExpectLine(b"EHLO"), EHLO_CHUNKING_PIPELINING),
                (
                    b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nBDAT 1 LAST\r\nz",
                    b"250 ok\r\n250 ok\r\n554 5.6.0 rejected\r\n",
                ),
                (b"RSET\r\n", b"250 reset\r\n"),
                QUIT,
            ]
        )
    )
    async with client(server) as smtp:
        with pytest.raises(asmtp.SMTPDataError) as caught:
            await smtp.sendmail("a@x.test", "b@x.test", b"z")
    assert (caught.value.smtp_code, caught.value.smtp_error) == (554, b"5.6.0 rejected")
    server.check()


async def test_refused_sender_with_chunking_raises_sender_refused(
    memory_server_factory: MemoryServerFactory,
) -> None:
    server = memory_server_factory(
        smtp_script(
            [
                (ExpectLine(b"EHLO"), EHLO_CHUNKING_PIPELINING),
                (
                    b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nBDAT 1 LAST\r\nz",
                    b"550 bad sender\r\n503 no mail\r\n503 no valid recipients\r\n",
                ),
                (b"RSET\r\n", b"250 reset\r\n"),
                QUIT,
            ]
        )
    )
    async with client(server) as smtp:
        with pytest.raises(asmtp.SMTPSenderRefused) as caught:
            await smtp.sendmail("a@x.test", "b@x.test", b"z")
    assert caught.value.sender == "a@x.test"
    server.check()


async def test_lmtp_bdat_last_gets_one_reply_per_accepted_recipient(
    memory_server_factory: MemoryServerFactory,
) -> None:
    """RFC 2033 §4.2 with BDAT: the recipient refused after the data joins the refused dict."""
    server = memory_server_factory(
        smtp_script(
            [
                (ExpectLine(b"LHLO"), EHLO_CHUNKING_PIPELINING),
                (
                    b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\n"
                    b"RCPT TO:<d@x.test>\r\nBDAT 1 LAST\r\nz",
                    b"250 ok\r\n250 ok\r\n550 unknown\r\n250 ok\r\n"
                    b"250 2.0.0 b delivered\r\n552 5.2.2 d over quota\r\n",
                ),
                QUIT,
            ]
        )
    )
    lmtp = asmtp.LMTP(
        server.host, server.port, "client.test", timeout=5, connector=server.connector
    )
    async with lmtp:
        refused = await lmtp.sendmail("a@x.test", ["b@x.test", "c@x.test", "d@x.test"], b"z")
    assert refused == {
        "c@x.test": (550, b"unknown"),
        "d@x.test": (552, b"5.2.2 d over quota"),
    }
    server.check()


async def test_use_chunking_false_falls_back_to_data(
    memory_server_factory: MemoryServerFactory,
) -> None:
    server = memory_server_factory(
        smtp_script(
            [
                (ExpectLine(b"EHLO"), EHLO_CHUNKING_PIPELINING),
                (
                    b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n",
                    b"250 ok\r\n250 ok\r\n354 go\r\n",
                ),
                (b"z\r\n.\r\n", b"250 queued\r\n"),
                QUIT,
            ]
        )
    )
    async with client(server) as smtp:
        smtp.use_chunking = False
        assert await smtp.sendmail("a@x.test", "b@x.test", b"z") == {}
    server.check()


class _RefusingBdatServer:
    """Refuses MAIL (552, size) and answers every later command, BDAT chunks included (whose
    payload it reads, as RFC 3030 requires), with 503; counts the chunks it was sent."""

    def __init__(self) -> None:
        self.chunks = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(5)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        sock, _ = self._listener.accept()
        with sock, sock.makefile("rb") as reader:
            sock.sendall(b"220 refuser.test ESMTP\r\n")
            while line := reader.readline():
                verb = line[:4].upper()
                if verb == b"EHLO":
                    reply = b"250-refuser.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n"
                elif verb == b"MAIL":
                    reply = b"552 5.3.4 message too big\r\n"
                elif verb == b"BDAT":
                    self.chunks += 1
                    reader.read(int(line.split()[1]))
                    reply = b"503 5.5.1 no valid MAIL\r\n"
                elif verb == b"QUIT":
                    sock.sendall(b"221 bye\r\n")
                    return
                else:
                    reply = b"503 5.5.1 no valid MAIL\r\n" if verb != b"RSET" else b"250 ok\r\n"
                sock.sendall(reply)

    def close(self) -> None:
        self._thread.join(5)
        self._listener.close()


async def test_a_refusal_already_in_stops_the_chunks_before_the_window_is_full() -> None:
    """RFC 3030 §4.2: no further BDAT after a refusal. With PIPELINING the client writes
    ahead, but a refusal that has arrived is read between chunks, not after 32 of them."""
    server = _RefusingBdatServer()

    async def body() -> AsyncIterator[bytes]:
        for n in range(200):
            yield b"line %d " % n + b"x" * 65536 + b"\r\n"
            await anyio.sleep(0.001)  # a source that takes its time, as a file read can

    try:
        async with asmtp.SMTP("127.0.0.1", server.port, "client.test", timeout=5) as smtp:
            with pytest.raises(asmtp.SMTPSenderRefused) as caught:
                await smtp.sendmail("a@x.test", "b@x.test", body())
    finally:
        server.close()
    assert caught.value.smtp_code == 552
    assert server.chunks < 16, server.chunks  # the window alone would allow 32
