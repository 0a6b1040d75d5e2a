"""Every way of sending signs with the client's DKIMSigner, and bad bodies fail before MAIL.

Against aiosmtpd (asyncio, trio, uvloop): each delivered message verifies with dkimpy
against the test key, Bcc removed before signing. A body that can be read only once, or a
message DKIM cannot sign, raises before anything of it is sent.
"""

from __future__ import annotations

import email.message
import os
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import TYPE_CHECKING, BinaryIO, Final
from unittest import mock

import anyio.to_thread
import pytest
from client._kit import HOST, ME, TIMEOUT, verbs

import asmtp
from asmtp._dkim._apply import IN_LOOP_LIMIT
from signing._keys import DOMAIN, ed25519_key, rsa_key, verify

if TYPE_CHECKING:
    from support.aiosmtpd_server import ThreadedSMTPServer
    from support.fixtures import SMTPDServerFactory, TLSContexts

pytestmark = pytest.mark.anyio

SENDER: Final = "ann@example.org"
RECIPIENT: Final = "bob@example.net"
RAW: Final = b"From: ann@example.org\nTo: bob@example.net\nSubject: raw\n\nbare LF\n.dot\nno end"


@pytest.fixture(params=["rsa", "ed25519"])
def key(request: pytest.FixtureRequest) -> bytes:
    return rsa_key() if request.param == "rsa" else ed25519_key()


@pytest.fixture
def signer(key: bytes) -> asmtp.DKIMSigner:
    return asmtp.DKIMSigner(domain=DOMAIN, selector="sel", private_key=key)


def message() -> email.message.EmailMessage:
    msg = email.message.EmailMessage()
    msg["From"] = f"Ann <{SENDER}>"
    msg["To"] = RECIPIENT
    msg["Bcc"] = "hidden@example.net"
    msg["Subject"] = "signed"
    msg.set_content("Hello\n.dot line\n")
    msg.add_attachment(b"\x00\x01" * 500, maintype="application", subtype="octet-stream")
    return msg


def delivered(server: ThreadedSMTPServer, count: int = 1) -> list[bytes]:
    return [each.content for each in server.handler.wait_for_deliveries(count)]


def client(server: ThreadedSMTPServer, signer: asmtp.DKIMSigner) -> asmtp.SMTP:
    return asmtp.SMTP(server.host, server.port, ME, timeout=TIMEOUT, dkim=signer)


async def test_sendmail_and_send_message_sign(
    smtpd_server: ThreadedSMTPServer, signer: asmtp.DKIMSigner, key: bytes
) -> None:
    with tempfile.TemporaryFile() as file:
        file.write(RAW)
        file.seek(0)
        async with client(smtpd_server, signer) as smtp:
            assert await smtp.sendmail(SENDER, RECIPIENT, RAW) == {}
            assert await smtp.sendmail(SENDER, RECIPIENT, RAW.decode()) == {}
            assert await smtp.sendmail(SENDER, RECIPIENT, [RAW[:10], RAW[10:]]) == {}
            assert await smtp.sendmail(SENDER, RECIPIENT, file) == {}
            assert await smtp.send_message(message()) == {}
    contents = delivered(smtpd_server, 5)
    assert all(verify(content, "sel", key) for content in contents)
    # The same message four ways: the same bytes after the signature (whose t= may differ).
    assert len({content.split(b"\r\nFrom: ", 1)[1] for content in contents[:4]}) == 1
    assert contents[0].startswith(b"DKIM-Signature: v=1; a=")
    assert b"bare LF\r\n..dot\r\nno end\r\n" not in contents[0]  # aiosmtpd unstuffs
    assert contents[0].endswith(b"\r\nbare LF\r\n.dot\r\nno end\r\n")
    assert b"hidden@example.net" not in contents[4]


async def test_a_message_larger_than_the_in_loop_limit_is_signed_off_the_loop(
    smtpd_server: ThreadedSMTPServer, signer: asmtp.DKIMSigner, key: bytes
) -> None:
    large = RAW + b"\n" + (b"z" * 75 + b"\n") * (IN_LOOP_LIMIT // 76 + 10)
    with mock.patch.object(anyio.to_thread, "run_sync", wraps=anyio.to_thread.run_sync) as hop:
        async with client(smtpd_server, signer) as smtp:
            assert await smtp.sendmail(SENDER, RECIPIENT, large) == {}
            assert await smtp.sendmail(SENDER, RECIPIENT, RAW) == {}
    assert hop.call_count == 1  # the large one only
    assert all(verify(content, "sel", key) for content in delivered(smtpd_server, 2))


async def test_sendmail_many_signs_each_message(
    smtpd_server: ThreadedSMTPServer, signer: asmtp.DKIMSigner, key: bytes
) -> None:
    async with client(smtpd_server, signer) as smtp:
        results = await smtp.sendmail_many(
            [asmtp.Outgoing(SENDER, RECIPIENT, RAW), asmtp.Outgoing.message(message())]
        )
    assert all(isinstance(result, asmtp.SendResult) for result in results)
    assert all(verify(content, "sel", key) for content in delivered(smtpd_server, 2))


async def test_smtp_ssl_and_lmtp_sign(
    smtpd_server_factory: SMTPDServerFactory,
    tls_contexts: TLSContexts,
    signer: asmtp.DKIMSigner,
    key: bytes,
) -> None:
    secure = smtpd_server_factory(ssl_context=tls_contexts.server)
    lmtp = smtpd_server_factory(lmtp=True)
    async with asmtp.SMTP_SSL(
        HOST, secure.port, ME, context=tls_contexts.client, timeout=TIMEOUT, dkim=signer
    ) as smtp:
        await smtp.sendmail(SENDER, RECIPIENT, RAW)
    async with asmtp.LMTP(HOST, lmtp.port, ME, timeout=TIMEOUT, dkim=signer) as client_:
        await client_.sendmail(SENDER, RECIPIENT, RAW)
    assert verify(delivered(secure)[0], "sel", key)
    assert verify(delivered(lmtp)[0], "sel", key)


async def test_one_shot_functions_and_the_pool_sign(
    smtpd_server: ThreadedSMTPServer, signer: asmtp.DKIMSigner, key: bytes
) -> None:
    port = smtpd_server.port
    await asmtp.sendmail(SENDER, RECIPIENT, RAW, host=HOST, port=port, tls="none", dkim=signer)
    await asmtp.send_message(message(), host=HOST, port=port, tls="none", dkim=signer)
    async with asmtp.connect(host=HOST, port=port, tls="none", dkim=signer) as smtp:
        await smtp.sendmail(SENDER, RECIPIENT, RAW)
    async with asmtp.SMTPPool(host=HOST, port=port, tls="none", dkim=signer) as pool:
        assert pool is not None
        await pool.sendmail(SENDER, RECIPIENT, RAW)
        await pool.send_message(message())
    contents = delivered(smtpd_server, 5)
    assert all(verify(content, "sel", key) for content in contents)


@pytest.fixture
def pipe() -> Iterator[BinaryIO]:
    """The reading end of a pipe holding RAW: a binary file that cannot seek."""
    read, write = os.pipe()
    os.write(write, RAW)
    os.close(write)
    with open(read, "rb") as file:
        yield file


async def _chunks() -> AsyncIterator[bytes]:
    yield RAW


def _generator() -> Iterator[bytes]:
    yield RAW


@pytest.mark.parametrize("kind", ["async iterator", "iterator", "pipe"])
async def test_a_body_read_once_is_refused_before_mail(
    smtpd_server: ThreadedSMTPServer, signer: asmtp.DKIMSigner, pipe: BinaryIO, kind: str
) -> None:
    body = {"async iterator": _chunks(), "iterator": _generator(), "pipe": pipe}[kind]
    async with client(smtpd_server, signer) as smtp:
        with pytest.raises(TypeError, match="is read once"):
            await smtp.sendmail(SENDER, RECIPIENT, body)
        assert (await smtp.noop())[0] == 250  # the connection is still usable
    if isinstance(body, AsyncGenerator):
        await body.aclose()
    assert "MAIL" not in verbs(smtpd_server.handler.commands)


async def test_a_message_dkim_cannot_sign_is_refused_before_mail(
    smtpd_server: ThreadedSMTPServer, signer: asmtp.DKIMSigner
) -> None:
    async with client(smtpd_server, signer) as smtp:
        with pytest.raises(ValueError, match="no From field"):
            await smtp.sendmail(SENDER, RECIPIENT, b"Subject: x\r\n\r\nno From\r\n")
        results = await smtp.sendmail_many(
            [
                asmtp.Outgoing(SENDER, RECIPIENT, b"Subject: x\r\n\r\nno From\r\n"),
                asmtp.Outgoing(SENDER, RECIPIENT, RAW),
            ]
        )
    assert isinstance(results[0], ValueError)
    assert isinstance(results[1], asmtp.SendResult)
    assert verbs(smtpd_server.handler.commands).count("MAIL") == 1


def test_dkim_must_be_a_signer() -> None:
    with pytest.raises(TypeError, match=r"dkim must be an asmtp\.DKIMSigner"):
        asmtp.SMTP("localhost", dkim="example.org")  # type: ignore[arg-type]
