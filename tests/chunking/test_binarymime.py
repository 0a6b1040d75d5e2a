"""BINARYMIME (RFC 3030 §3) in sendmail, proved byte for byte against scripts in memory.

aiosmtpd offers neither CHUNKING nor BINARYMIME, and Postfix offers no BINARYMIME, so the
kit's scripts check the exact MAIL parameters and BDAT payloads here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

import asmtp
from asmtp.protocol import Body
from support.memory import MemoryServer
from support.scripted import ExpectLine, smtp_script

if TYPE_CHECKING:
    from support.fixtures import MemoryServerFactory

pytestmark = pytest.mark.anyio

EHLO_BINARYMIME = b"250-scripted.test\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 BINARYMIME\r\n"
EHLO_CHUNKING = b"250-scripted.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n"
QUIT = (b"QUIT\r\n", b"221 bye\r\n")
ACCEPTED = b"250 ok\r\n250 ok\r\n250 queued\r\n"


def transaction(body_param: bytes, payload: bytes) -> bytes:
    return (
        b"MAIL FROM:<a@x.test>" + body_param + b"\r\nRCPT TO:<b@x.test>\r\n"
        b"BDAT %d LAST\r\n" % len(payload) + payload
    )


def client(server: MemoryServer) -> asmtp.SMTP:
    return asmtp.SMTP(
        server.host, server.port, "client.test", timeout=5, connector=server.connector
    )


async def test_an_8bit_body_is_declared_binarymime(
    memory_server_factory: MemoryServerFactory,
) -> None:
    """A script offering BINARYMIME: BODY=BINARYMIME, line endings still CRLF."""
    body = "Subject: café\n\nnaïve\n".encode()
    wire = "Subject: café\r\n\r\nnaïve\r\n".encode()
    server = memory_server_factory(
        smtp_script(
            [
                (ExpectLine(b"EHLO"), EHLO_BINARYMIME),
                (transaction(b" BODY=BINARYMIME", wire), ACCEPTED),
                QUIT,
            ]
        )
    )
    async with client(server) as smtp:
        assert await smtp.sendmail("a@x.test", ["b@x.test"], body) == {}


@pytest.mark.parametrize(
    "option", ["BODY=BINARYMIME", b"body=binarymime", Body("BINARYMIME")], ids=repr
)
async def test_binarymime_asked_for_sends_the_bytes_as_given(
    memory_server_factory: MemoryServerFactory, option: asmtp.protocol.Param
) -> None:
    """Bare CR, bare LF, NUL and a dot line reach it untouched, by BDAT
    even with use_chunking off (RFC 3030 §3 allows BINARYMIME only with BDAT)."""
    payload = b"Subject: blob\r\n\r\n\x00\x01\rbare CR\nbare LF\r\n.\r\n\xff\xfe"
    param = b" " + asmtp.protocol.param_bytes(option)
    server = memory_server_factory(
        smtp_script(
            [
                (ExpectLine(b"EHLO"), EHLO_BINARYMIME),
                (transaction(param, payload), ACCEPTED),
                QUIT,
            ]
        )
    )
    async with client(server) as smtp:
        smtp.use_chunking = False
        assert await smtp.sendmail("a@x.test", ["b@x.test"], payload, [option]) == {}


async def test_binarymime_without_server_support_is_refused_before_the_wire(
    memory_server_factory: MemoryServerFactory,
) -> None:
    """A script with CHUNKING but no BINARYMIME: nothing after EHLO but QUIT."""
    server = memory_server_factory(smtp_script([(ExpectLine(b"EHLO"), EHLO_CHUNKING), QUIT]))
    async with client(server) as smtp:
        with pytest.raises(asmtp.SMTPNotSupportedError, match="BINARYMIME"):
            await smtp.sendmail("a@x.test", ["b@x.test"], b"\x00", ["BODY=BINARYMIME"])


@pytest.mark.parametrize(
    ("ehlo", "body", "options", "param"),
    [
        (EHLO_BINARYMIME, b"Subject: plain\r\n\r\nascii\r\n", [], b""),
        (EHLO_CHUNKING, "Subject: é\r\n\r\n8-bit\r\n".encode(), [], b""),
        (
            EHLO_BINARYMIME,
            "Subject: é\r\n\r\n8-bit\r\n".encode(),
            ["BODY=8BITMIME"],
            b" BODY=8BITMIME",
        ),
    ],
    ids=["ascii-body", "no-binarymime-offered", "caller-chose-8bitmime"],
)
async def test_binarymime_is_not_declared_when_it_does_not_apply(
    memory_server_factory: MemoryServerFactory,
    ehlo: bytes,
    body: bytes,
    options: list[str],
    param: bytes,
) -> None:
    server = memory_server_factory(
        smtp_script([(ExpectLine(b"EHLO"), ehlo), (transaction(param, body), ACCEPTED), QUIT])
    )
    async with client(server) as smtp:
        assert await smtp.sendmail("a@x.test", ["b@x.test"], body, options) == {}


async def test_sendmail_many_sends_binarymime_by_bdat_not_overlapped(
    memory_server_factory: MemoryServerFactory,
) -> None:
    """With use_chunking off, a BINARYMIME message still goes by BDAT
    while the plain one before it goes by DATA."""
    payload = b"\x00binary\n"
    server = memory_server_factory(
        smtp_script(
            [
                (ExpectLine(b"EHLO"), EHLO_BINARYMIME),
                (
                    b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n",
                    b"250 ok\r\n250 ok\r\n354 go\r\n",
                ),
                (b"hi\r\n.\r\n", b"250 queued 1\r\n"),
                (transaction(b" BODY=BINARYMIME", payload), ACCEPTED),
                QUIT,
            ]
        )
    )
    async with client(server) as smtp:
        smtp.use_chunking = False
        results = await smtp.sendmail_many(
            [
                asmtp.Outgoing("a@x.test", ["b@x.test"], b"hi\r\n"),
                asmtp.Outgoing("a@x.test", ["b@x.test"], payload, ["BODY=BINARYMIME"]),
            ]
        )
    assert results == [{}, {}]
