"""Hostile AUTH exchanges: endless challenges, malformed challenges, plain-text credential bait.

RFC 4954 §4: a client that cannot go on answers ``*`` and the server replies 501; the
session stays in step. smtplib's limit of five challenges is kept, but asmtp also cancels the
exchange rather than leaving the server waiting for a sixth answer. The exchanges play in
memory; the one-shot helpers (which open their own sockets) and the key derivation's timing
use socket servers.
"""

from __future__ import annotations

import base64
import email.message
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import anyio
import pytest

import asmtp
from asmtp.auth import ScramSHA256, XOAuth2
from support.scripted import ExpectClosed, ExpectLine, Send, Step, smtp_script

from ._kit import GREETING, HOST, QUIT, SENDER, client, unchecked

if TYPE_CHECKING:
    from support.fixtures import MemoryServerFactory, ScriptedServerFactory

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
    memory_server_factory: MemoryServerFactory,
    how: Callable[[asmtp.SMTP], Awaitable[object]],
) -> None:
    answers: list[tuple[bytes | Step, bytes]] = [(ExpectLine(b""), CHALLENGE) for _ in range(5)]
    server = memory_server_factory(
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
    async with client(server.port, connector=server.connector) as smtp:
        await smtp.ehlo()
        with pytest.raises(asmtp.SMTPException, match="infinite loop") as caught:
            await how(smtp)
        assert not isinstance(caught.value, asmtp.SMTPResponseException)
        assert await smtp.noop() == (250, b"still in step")
    server.check()


def _cancelled_after(ehlo: bytes, auth_line: bytes | Step, challenge: bytes) -> list[Step]:
    """A server sending one bad challenge that expects ``*``, then stays in step."""
    return smtp_script(
        [(ExpectLine(b"EHLO"), ehlo), (auth_line, challenge), CANCELLED, NOOP, QUIT],
        greeting=GREETING,
    )


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
    memory_server_factory: MemoryServerFactory,
    mechanism: str,
    auth_line: bytes,
    challenge: bytes,
) -> None:
    expect: bytes | Step = auth_line if auth_line.endswith(b"\r\n") else ExpectLine(auth_line)
    server = memory_server_factory(_cancelled_after(EHLO_AUTH, expect, challenge))
    async with client(server.port, connector=server.connector) as smtp:
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
    memory_server_factory: MemoryServerFactory,
) -> None:
    """A server answering 235 without SCRAM's server signature is an impostor."""
    server = memory_server_factory(
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
    smtp = client(server.port, connector=server.connector)
    await smtp.connect()
    try:
        with pytest.raises(asmtp.SMTPAuthenticationError):
            await smtp.login("user", "password", mechanisms=["SCRAM-SHA-256"])
        assert not smtp.is_connected
    finally:
        await smtp.close()


# SCRAM-SHA-256 against a server that chooses a hostile iteration count or fakes success.
# The client nonce is fixed so that a scripted server can extend it.

SCRAM_NONCE: Final = "fixedClientNonce0123"
EHLO_SCRAM: Final = b"250-hostile.test\r\n250 AUTH SCRAM-SHA-256 PLAIN\r\n"


def _scram(**options: Any) -> ScramSHA256:
    return ScramSHA256("user", "password", nonce=SCRAM_NONCE, **options)


def _server_first(count: bytes) -> bytes:
    salt = base64.b64encode(b"pepper and salt")
    first = b"r=" + SCRAM_NONCE.encode() + b"+server,s=" + salt + b",i=" + count
    return b"334 " + base64.b64encode(first) + b"\r\n"


def _count_taking(seconds: float) -> int:
    """An iteration count whose PBKDF2 takes about ``seconds`` on this machine (measured)."""
    sample = 4 * 65536
    started = time.perf_counter()
    hashlib.pbkdf2_hmac("sha256", b"password", b"salt", sample)
    return max(sample, int(sample * seconds / (time.perf_counter() - started)))


BAD_COUNTS: Final[dict[str, bytes]] = {
    "above-the-bound": b"65537",
    "huge": b"99999999999999999999",
    "thousands-of-digits": b"9" * 5000,
    "negative": b"-4096",
    "not-a-number": b"4096x",
    "fullwidth-digits": "\uff14\uff10\uff19\uff16".encode(),
    "superscript-digit": "4096²".encode(),
    "leading-zero": b"04096",
    "leading-space": b" 4096",
    "trailing-space": b"4096 ",
    "empty": b"",
    "below-the-minimum": b"4095",
}


@pytest.mark.parametrize("count", BAD_COUNTS.values(), ids=BAD_COUNTS)
async def test_scram_iteration_count_out_of_bounds_is_an_authentication_error(
    memory_server_factory: MemoryServerFactory, count: bytes
) -> None:
    """Never OverflowError or ValueError, never a derivation: refused, cancelled with ``*``."""
    auth_line = ExpectLine(b"AUTH SCRAM-SHA-256 ")
    server = memory_server_factory(_cancelled_after(EHLO_SCRAM, auth_line, _server_first(count)))
    async with client(server.port, connector=server.connector) as smtp:
        await smtp.ehlo()
        with pytest.raises(asmtp.SMTPAuthenticationError, match="iteration count"):
            await smtp.auth("SCRAM-SHA-256", _scram())
        assert await smtp.noop() == (250, b"still in step")
    server.check()


async def test_scram_key_derivation_leaves_the_event_loop_responsive(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    """A ticker task keeps ticking while a costly PBKDF2 runs (in a worker thread)."""
    count = _count_taking(0.8)
    server = scripted_server_factory(
        smtp_script(
            [
                (ExpectLine(b"EHLO"), EHLO_SCRAM),
                (ExpectLine(b"AUTH SCRAM-SHA-256 "), _server_first(str(count).encode())),
                (ExpectLine(b""), b"535 5.7.8 wrong password\r\n"),
                QUIT,
            ],
            greeting=GREETING,
        )
    )
    gaps: list[float] = []

    async def tick() -> None:
        last = anyio.current_time()
        while True:
            await anyio.sleep(0.005)
            now = anyio.current_time()
            gaps.append(now - last)
            last = now

    async with client(server.port, timeout=10) as smtp:
        await smtp.ehlo()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(tick)
            with pytest.raises(asmtp.SMTPAuthenticationError):
                await smtp.auth("SCRAM-SHA-256", _scram(max_iterations=count))
            tasks.cancel_scope.cancel()
    server.check()
    assert len(gaps) > 10
    # Deriving on the loop would leave one gap of about 0.8 s.
    assert max(gaps) < 0.25, max(gaps)


async def test_scram_key_derivation_is_bounded_by_the_timeout() -> None:
    count = _count_taking(1.0)
    steps = smtp_script(
        [
            (ExpectLine(b"EHLO"), EHLO_SCRAM),
            (ExpectLine(b"AUTH SCRAM-SHA-256 "), _server_first(str(count).encode())),
        ],
        greeting=GREETING,
    )
    with unchecked(steps) as server:
        smtp = client(server.port)
        try:
            await smtp.connect()
            await smtp.ehlo()
            smtp.timeout = 0.1
            started = anyio.current_time()
            with pytest.raises(TimeoutError):
                await smtp.auth("SCRAM-SHA-256", _scram(max_iterations=count))
            elapsed = anyio.current_time() - started
            assert not smtp.is_connected
        finally:
            await smtp.close()
    assert elapsed < 0.5, elapsed  # 0.1 s and scheduling, not the 1 s derivation


def _scram_503_script(when: str) -> list[Step]:
    refused = b"503 5.5.1 already authenticated\r\n"
    if when == "to-auth":
        exchange = [(ExpectLine(b"AUTH SCRAM-SHA-256 "), refused)]
    else:
        exchange = [
            (ExpectLine(b"AUTH SCRAM-SHA-256 "), _server_first(b"4096")),
            (ExpectLine(b""), refused),
        ]
    return [
        *smtp_script([(ExpectLine(b"EHLO"), EHLO_SCRAM), *exchange], greeting=GREETING),
        ExpectClosed(),
    ]


async def _auth_scram(smtp: asmtp.SMTP) -> object:
    await smtp.ehlo()
    return await smtp.auth("SCRAM-SHA-256", _scram())


async def _login_scram_first(smtp: asmtp.SMTP) -> object:
    return await smtp.login("user", "password")


@pytest.mark.parametrize(
    ("how", "when"),
    [
        (_auth_scram, "to-auth"),
        (_auth_scram, "after-client-final"),
        (_login_scram_first, "to-auth"),
    ],
    ids=["auth-503-to-auth", "auth-503-after-client-final", "login-503-to-auth"],
)
async def test_503_before_scram_finished_is_an_impostor(
    memory_server_factory: MemoryServerFactory,
    how: Callable[[asmtp.SMTP], Awaitable[object]],
    when: str,
) -> None:
    """smtplib counts 503 as success; for SCRAM it skips the server's proof: refused, closed."""
    server = memory_server_factory(_scram_503_script(when))
    smtp = client(server.port, connector=server.connector)
    await smtp.connect()
    try:
        with pytest.raises(asmtp.SMTPServerNotGenuine):
            await how(smtp)
        assert not smtp.is_connected
    finally:
        await smtp.close()
    server.check()
    assert b"AUTH PLAIN" not in server.received
