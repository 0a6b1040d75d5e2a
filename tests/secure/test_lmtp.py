"""LMTP (RFC 2033): LHLO, and one reply per accepted recipient after the data (§4.2).

Two servers prove it. aiosmtpd in LMTP mode, where the kit's RecordingHandler works around
aiosmtpd's stock single reply after DATA by answering once per recipient
(``lmtp_data_replies``), over a Unix socket and over TCP. And scripts, which check the
exact bytes (LHLO, not EHLO) and send the per-recipient replies in separate writes,
pipelined or not: in memory, and over a Unix socket.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import asmtp
from secure._kit import ME, MESSAGE, WAIT, verbs
from support.aiosmtpd_server import RecordingHandler, ThreadedSMTPServer
from support.memory import MemoryServer
from support.scripted import Expect, ExpectData, ScriptedServer, Send, Sleep, Step, smtp_script

if TYPE_CHECKING:
    from support.fixtures import (
        MemoryServerFactory,
        ScriptedServerFactory,
        ScriptServerFactory,
        SMTPDServerFactory,
    )

pytestmark = pytest.mark.anyio

transports = pytest.mark.parametrize("transport", ["unix", "tcp"])


def lmtp_server(
    factory: SMTPDServerFactory, handler: RecordingHandler, transport: str, path: Path
) -> ThreadedSMTPServer:
    if transport == "unix":
        return factory(handler, lmtp=True, unix_path=path)
    return factory(handler, lmtp=True)


def lmtp_client(server: ThreadedSMTPServer | ScriptedServer | MemoryServer) -> asmtp.LMTP:
    """An LMTP client for ``server``: a path starting with '/' means its Unix socket."""
    connector = server.connector
    if server.unix_path is not None:
        assert server.unix_path.startswith("/")
        return asmtp.LMTP(server.unix_path, local_hostname=ME, timeout=WAIT, connector=connector)
    return asmtp.LMTP(
        server.host, server.port, local_hostname=ME, timeout=WAIT, connector=connector
    )


@transports
async def test_lmtp_delivers_to_every_recipient_after_lhlo(
    smtpd_server_factory: SMTPDServerFactory, unix_socket_path: Path, transport: str
) -> None:
    """aiosmtpd LMTP (the kit's handler replies once per recipient)."""
    handler = RecordingHandler()
    server = lmtp_server(smtpd_server_factory, handler, transport, unix_socket_path)
    async with lmtp_client(server) as lmtp:
        refused = await lmtp.sendmail("a@x.test", ["b@x.test", "c@x.test"], MESSAGE)
        assert refused == {}
        assert (await lmtp.noop())[0] == 250  # no per-recipient reply was left unread
    assert handler.commands[0] == f"LHLO {ME}"
    assert verbs(handler.commands) == ["LHLO", "MAIL", "RCPT", "RCPT", "DATA", "NOOP", "QUIT"]
    assert [d.rcpt_tos for d in handler.deliveries] == [("b@x.test", "c@x.test")]


@transports
async def test_lmtp_refused_dict_holds_rcpt_and_after_data_refusals_with_their_codes(
    smtpd_server_factory: SMTPDServerFactory, unix_socket_path: Path, transport: str
) -> None:
    """aiosmtpd LMTP: ``gone`` refused at RCPT, ``full`` and ``over`` after DATA."""
    handler = RecordingHandler(
        refuse_recipients={"gone@x.test": "550 5.1.1 no such user"},
        lmtp_data_replies={
            "full@x.test": "452 4.2.2 mailbox full",
            "over@x.test": "552 5.2.2 over quota",
        },
    )
    server = lmtp_server(smtpd_server_factory, handler, transport, unix_socket_path)
    recipients = ["ok@x.test", "gone@x.test", "full@x.test", "also@x.test", "over@x.test"]
    async with lmtp_client(server) as lmtp:
        refused = await lmtp.sendmail("a@x.test", recipients, MESSAGE)
        assert (await lmtp.noop())[0] == 250
    assert refused == {
        "gone@x.test": (550, b"5.1.1 no such user"),
        "full@x.test": (452, b"4.2.2 mailbox full"),
        "over@x.test": (552, b"5.2.2 over quota"),
    }
    assert [d.rcpt_tos for d in handler.deliveries] == [("ok@x.test", "also@x.test")]


@transports
async def test_lmtp_all_recipients_failing_after_data_raises_recipients_refused(
    smtpd_server_factory: SMTPDServerFactory, unix_socket_path: Path, transport: str
) -> None:
    """aiosmtpd LMTP: one refused at RCPT, the other two after DATA."""
    handler = RecordingHandler(
        refuse_recipients={"gone@x.test": "550 5.1.1 no such user"},
        lmtp_data_replies={
            "full@x.test": "452 4.2.2 mailbox full",
            "over@x.test": "552 5.2.2 over quota",
        },
    )
    server = lmtp_server(smtpd_server_factory, handler, transport, unix_socket_path)
    async with lmtp_client(server) as lmtp:
        with pytest.raises(asmtp.SMTPRecipientsRefused) as info:
            await lmtp.sendmail("a@x.test", ["gone@x.test", "full@x.test", "over@x.test"], MESSAGE)
        assert (await lmtp.noop())[0] == 250
    assert info.value.recipients == {
        "gone@x.test": (550, b"5.1.1 no such user"),
        "full@x.test": (452, b"4.2.2 mailbox full"),
        "over@x.test": (552, b"5.2.2 over quota"),
    }
    assert handler.deliveries == []


def _lmtp_script(*, pipelining: bool) -> list[Step]:
    """ok and later accepted; gone refused at RCPT; full refused after DATA."""
    envelope = [
        (b"MAIL FROM:<a@x.test>\r\n", b"250 2.1.0 ok\r\n"),
        (b"RCPT TO:<ok@x.test>\r\n", b"250 2.1.5 ok\r\n"),
        (b"RCPT TO:<gone@x.test>\r\n", b"550 5.1.1 no such user\r\n"),
        (b"RCPT TO:<full@x.test>\r\n", b"250 2.1.5 ok\r\n"),
        (b"RCPT TO:<later@x.test>\r\n", b"250 2.1.5 ok\r\n"),
        (b"DATA\r\n", b"354 go ahead\r\n"),
    ]
    if pipelining:  # one group in, one burst of replies out
        envelope = [(b"".join(c for c, _ in envelope), b"".join(r for _, r in envelope))]
    capabilities = b"250-lmtp.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
    steps = smtp_script(
        [
            (f"LHLO {ME}\r\n".encode(), capabilities if pipelining else b"250 lmtp.test\r\n"),
            *envelope,
            (ExpectData(), b""),
        ],
        greeting=b"220 lmtp.test LMTP\r\n",
    )
    # RFC 2033 §4.2: one reply per accepted recipient, in RCPT order, here one per write.
    for reply in (b"250 2.0.0 ok delivered\r\n", b"452 4.2.2 mailbox full\r\n"):
        steps += [Send(reply), Sleep(0.05)]
    steps += [Send(b"250 2.0.0 later delivered\r\n")]
    steps += [Expect(b"QUIT\r\n"), Send(b"221 bye\r\n")]
    return steps


@pytest.mark.parametrize("pipelining", [False, True])
async def test_lmtp_reads_each_per_recipient_reply_from_a_script(
    script_server_factory: ScriptServerFactory, unix_socket_path: Path, pipelining: bool
) -> None:
    """In memory and on a Unix socket: exact bytes, LHLO not EHLO, replies after the data
    dribbled out."""
    server = script_server_factory(_lmtp_script(pipelining=pipelining), unix_path=unix_socket_path)
    async with lmtp_client(server) as lmtp:
        refused = await lmtp.sendmail(
            "a@x.test", ["ok@x.test", "gone@x.test", "full@x.test", "later@x.test"], MESSAGE
        )
    assert refused == {
        "gone@x.test": (550, b"5.1.1 no such user"),
        "full@x.test": (452, b"4.2.2 mailbox full"),
    }
    assert server.received.startswith(f"LHLO {ME}\r\n".encode())
    assert b"EHLO" not in server.received
    assert b"HELO" not in server.received


async def test_lmtp_over_a_unix_socket_needs_no_port_and_no_tls_host_name(
    scripted_server_factory: ScriptedServerFactory, unix_socket_path: Path
) -> None:
    """ScriptedServer on a Unix socket: ``connect(path)`` takes the path as the host."""
    scripted_server_factory(
        smtp_script(
            [(f"LHLO {ME}\r\n".encode(), b"250 lmtp.test\r\n"), (b"QUIT\r\n", b"221 bye\r\n")]
        ),
        unix_path=unix_socket_path,
    )
    lmtp = asmtp.LMTP(local_hostname=ME, timeout=WAIT)
    try:
        assert (await lmtp.connect(str(unix_socket_path)))[0] == 220
        assert await lmtp.ehlo() == (250, b"lmtp.test")
        assert not lmtp.is_encrypted
        with pytest.raises(asmtp.SMTPNotSupportedError):
            await lmtp.starttls()  # not offered: refused before anything is sent
        assert (await lmtp.docmd("QUIT"))[0] == 221
    finally:
        await lmtp.close()


async def test_lmtp_all_recipients_refused_after_data_by_a_script(
    memory_server_factory: MemoryServerFactory,
) -> None:
    """A script in memory: both accepted at RCPT, both refused after DATA."""
    server = memory_server_factory(
        smtp_script(
            [
                (f"LHLO {ME}\r\n".encode(), b"250 lmtp.test\r\n"),
                (b"MAIL FROM:<a@x.test>\r\n", b"250 ok\r\n"),
                (b"RCPT TO:<b@x.test>\r\n", b"250 ok\r\n"),
                (b"RCPT TO:<c@x.test>\r\n", b"250 ok\r\n"),
                (b"DATA\r\n", b"354 go\r\n"),
                (ExpectData(), b"550 5.1.1 b gone\r\n452 4.2.2 c full\r\n"),
                (b"RSET\r\n", b"250 ok\r\n"),
                (b"QUIT\r\n", b"221 bye\r\n"),
            ]
        )
    )
    async with lmtp_client(server) as lmtp:
        with pytest.raises(asmtp.SMTPRecipientsRefused) as info:
            await lmtp.sendmail("a@x.test", ["b@x.test", "c@x.test"], MESSAGE)
        assert (await lmtp.rset())[0] == 250
    assert info.value.recipients == {
        "b@x.test": (550, b"5.1.1 b gone"),
        "c@x.test": (452, b"4.2.2 c full"),
    }
