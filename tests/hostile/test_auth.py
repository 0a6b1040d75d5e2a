"""Hostile AUTH exchanges: endless challenges, malformed challenges, plain-text credential bait.

RFC 4954 §4: a client that cannot go on answers ``*`` and the server replies 501; the
session stays in step. smtplib's limit of five challenges is kept, but asmtp also cancels the
exchange rather than leaving the server waiting for a sixth answer.
"""

from __future__ import annotations

import base64
import email.message
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

import pytest

import asmtp
from asmtp.auth import XOAuth2
from support.scripted import ExpectLine, Send, Step, smtp_script

from ._kit import GREETING, HOST, QUIT, SENDER, client

if TYPE_CHECKING:
    from support.fixtures import ScriptedServerFactory

pytestmark = pytest.mark.anyio

EHLO_AUTH: Final = b"250-hostile.test\r\n250 AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256 XOAUTH2\r\n"
CHALLENGE: Final = b"334 " + base64.b64encode(b"tell me more") + b"\r\n"
CANCELLED: Final = (b"*\r\n", b"501 5.7.0 cancelled\r\n")
NOOP: Final = (b"NOOP\r\n", b"250 still in step\r\n")


def _plain_callable(challenge: bytes | None = None) -> str:
    return "\0user\0password"


async def _login_plain(smtp: asmtp.SMTP) -> object:
    return await smtp.login("user", "password", mechanisms=["PLAIN"])


async def _auth_callable(smtp: asmtp.SMTP) -> object:
    return await smtp.auth("PLAIN", _plain_callable)


@pytest.mark.parametrize("how", [_login_plain, _auth_callable], ids=["login", "auth-callable"])
async def test_endless_challenges_are_cancelled_after_five(
    scripted_server_factory: ScriptedServerFactory,
    how: Callable[[asmtp.SMTP], Awaitable[object]],
) -> None:
    answers: list[tuple[bytes | Step, bytes]] = [(ExpectLine(b""), CHALLENGE) for _ in range(5)]
    server = scripted_server_factory(
        smtp_script(
            [
                (ExpectLine(b"EHLO"), EHLO_AUTH),
                (ExpectLine(b"AUTH PLAIN "), CHALLENGE),
                *answers,
                CANCELLED,
                NOOP,
                QUIT,
            ],
            greeting=GREETING,
        )
    )
    async with client(server.port) as smtp:
        await smtp.ehlo()
        with pytest.raises(asmtp.SMTPException, match="infinite loop") as caught:
            await how(smtp)
        assert not isinstance(caught.value, asmtp.SMTPResponseException)
        assert await smtp.noop() == (250, b"still in step")
    server.check()


@pytest.mark.parametrize(
    ("mechanism", "auth_line", "challenge"),
    [
        pytest.param("CRAM-MD5", b"AUTH CRAM-MD5\r\n", b"334 !!!not base64!!!\r\n", id="symbols"),
        pytest.param("CRAM-MD5", b"AUTH CRAM-MD5\r\n", b"334 YWJj=ZGVm\r\n", id="inner-padding"),
        pytest.param("CRAM-MD5", b"AUTH CRAM-MD5\r\n", b"334 YWJ\r\n", id="bad-length"),
        pytest.param("CRAM-MD5", b"AUTH CRAM-MD5\r\n", b"334 \xff\xfe\x00\r\n", id="binary"),
        pytest.param(
            "SCRAM-SHA-256",
            b"AUTH SCRAM-SHA-256 ",
            b"334 " + base64.b64encode(b"r=not-our-nonce,s=c2FsdA==,i=4096") + b"\r\n",
            id="scram-foreign-nonce",
        ),
    ],
)
async def test_malformed_challenge_is_cancelled_with_star(
    scripted_server_factory: ScriptedServerFactory,
    mechanism: str,
    auth_line: bytes,
    challenge: bytes,
) -> None:
    expect: bytes | Step = auth_line if auth_line.endswith(b"\r\n") else ExpectLine(auth_line)
    server = scripted_server_factory(
        smtp_script(
            [(ExpectLine(b"EHLO"), EHLO_AUTH), (expect, challenge), CANCELLED, NOOP, QUIT],
            greeting=GREETING,
        )
    )
    async with client(server.port) as smtp:
        await smtp.ehlo()
        with pytest.raises(asmtp.SMTPAuthenticationError):
            await smtp.login("user", "password", mechanisms=[mechanism])
        assert await smtp.noop() == (250, b"still in step")
    server.check()


def _message() -> email.message.EmailMessage:
    msg = email.message.EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = SENDER, "b@x.test", "hi"
    msg.set_content("hello")
    return msg


async def _one_shot_login(port: int) -> object:
    return await asmtp.send_message(
        _message(),
        host=HOST,
        port=port,
        username="user",
        password="password",
        local_hostname="client.test",
        timeout=2,
    )


async def _one_shot_mechanism(port: int) -> object:
    async with asmtp.connect(
        HOST,
        port,
        mechanism=XOAuth2("user", "token"),
        local_hostname="client.test",
        timeout=2,
    ):
        raise AssertionError("connect() yielded a client on a plain connection with a token")


@pytest.mark.parametrize(
    "how", [_one_shot_login, _one_shot_mechanism], ids=["send_message-login", "connect-xoauth2"]
)
async def test_server_offering_auth_without_tls_gets_no_credentials(
    scripted_server_factory: ScriptedServerFactory, how: Callable[[int], Awaitable[object]]
) -> None:
    """tls="auto" (the default) with credentials, no STARTTLS: TLSRequiredError, no AUTH."""
    server = scripted_server_factory(
        smtp_script([(ExpectLine(b"EHLO"), EHLO_AUTH), QUIT], greeting=GREETING)
    )
    with pytest.raises(asmtp.TLSRequiredError):
        await how(server.port)
    server.check()
    assert b"AUTH" not in server.received
    assert b"MAIL" not in server.received


async def test_scram_server_that_cannot_prove_itself_fails_and_closes(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    """A server answering 235 without SCRAM's server signature is an impostor."""
    server = scripted_server_factory(
        [
            Send(GREETING),
            ExpectLine(b"EHLO"),
            Send(EHLO_AUTH),
            ExpectLine(b"AUTH SCRAM-SHA-256 "),
            # No server-first message, so no v= signature can follow: it cannot know the
            # password, yet it claims success.
            Send(b"235 2.7.0 welcome, trust me\r\n"),
        ]
    )
    smtp = client(server.port)
    await smtp.connect()
    try:
        with pytest.raises(asmtp.SMTPAuthenticationError):
            await smtp.login("user", "password", mechanisms=["SCRAM-SHA-256"])
        assert not smtp.is_connected
    finally:
        await smtp.close()
