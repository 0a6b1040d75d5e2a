"""STARTTLS under attack: injected plaintext, stripped or refused STARTTLS, tampered EHLO.

RFC 3207 §4.2 and the response-injection attacks ("Why TLS is better without STARTTLS",
USENIX Security 2021): nothing the server sends before the handshake may be read after it
(whether it came with the EHLO reply, while the application idled, with the 220 or after it),
nothing learned before TLS may be trusted after it, and a policy that requires TLS never
falls back to plain text, so neither credentials nor a message go out unencrypted.
"""

from __future__ import annotations

import ssl
import threading
from typing import TYPE_CHECKING, Final

import pytest

import asmtp
from support.scripted import (
    Expect,
    ExpectClosed,
    ExpectData,
    ExpectLine,
    Hold,
    Send,
    Signal,
    StartTLS,
    Step,
    smtp_script,
)

from ._kit import GREETING, HOST, QUIT, RECIPIENTS, SENDER, client, idle_until, unchecked

if TYPE_CHECKING:
    from support.fixtures import ScriptedServerFactory, SMTPDServerFactory, TLSContexts

pytestmark = pytest.mark.anyio

EHLO_STARTTLS: Final = b"250-hostile.test\r\n250-PIPELINING\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n"
EHLO_NO_STARTTLS: Final = b"250-hostile.test\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n"


@pytest.mark.parametrize(
    "injected",
    [
        pytest.param(b"250 injected\r\n", id="one-reply"),
        pytest.param(b"250-PIPELINING\r\n250 AUTH PLAIN\r\n", id="fake-ehlo"),
        pytest.param(b"2", id="one-byte"),
    ],
)
async def test_plaintext_injected_before_the_handshake_is_refused(
    scripted_server_factory: ScriptedServerFactory, tls_contexts: TLSContexts, injected: bytes
) -> None:
    """The 220 and the injected bytes arrive together: no handshake is attempted at all."""
    server = scripted_server_factory(
        [
            Send(GREETING),
            ExpectLine(b"EHLO"),
            Send(EHLO_STARTTLS),
            ExpectLine(b"STARTTLS"),
            Send(b"220 2.0.0 go ahead\r\n" + injected),
            ExpectClosed(),  # not one byte of a TLS ClientHello
        ]
    )
    smtp = client(server.port)
    await smtp.connect()
    with pytest.raises(asmtp.SMTPProtocolError, match="injection"):
        await smtp.starttls(context=tls_contexts.client)
    assert not smtp.is_connected
    assert not smtp.is_encrypted


INJECTIONS: Final = [
    pytest.param(b"220 2.0.0 ready to start TLS\r\n", id="forged-220"),
    pytest.param(b"250-hostile.test\r\n250 AUTH PLAIN LOGIN\r\n", id="forged-capabilities"),
    pytest.param(b"2", id="one-byte"),
]


@pytest.mark.parametrize("injected", INJECTIONS)
@pytest.mark.parametrize("when", ["with-the-ehlo-reply", "while-idle"])
async def test_plaintext_received_before_starttls_is_written_is_refused(
    scripted_server_factory: ScriptedServerFactory,
    tls_contexts: TLSContexts,
    injected: bytes,
    when: str,
) -> None:
    """Bytes that arrive between the EHLO reply and STARTTLS (the application awaited
    something in between) are never read as the answer to STARTTLS, nor after TLS: the
    connection is closed before STARTTLS is written."""
    idle, sent = threading.Event(), threading.Event()
    steps: list[Step] = [Send(GREETING), ExpectLine(b"EHLO")]
    if when == "with-the-ehlo-reply":
        steps.append(Send(EHLO_STARTTLS + injected))
    else:
        steps += [Send(EHLO_STARTTLS), Hold(idle), Send(injected)]
    server = scripted_server_factory([*steps, Signal(sent), ExpectClosed()])
    smtp = client(server.port)
    await smtp.connect()
    await smtp.ehlo()
    idle.set()
    await idle_until(sent)
    with pytest.raises(asmtp.SMTPProtocolError, match="unsolicited"):
        await smtp.starttls(context=tls_contexts.client)
    assert not smtp.is_connected
    assert not smtp.is_encrypted


@pytest.mark.parametrize("injected", INJECTIONS)
async def test_plaintext_right_behind_the_220_never_reaches_the_tls_session(
    tls_contexts: TLSContexts, injected: bytes
) -> None:
    """The 220 and the injected bytes in two writes, then a real handshake: whichever layer
    holds them when the handshake starts (core, transport, TLS), the connection fails."""
    steps: list[Step] = [Send(GREETING), ExpectLine(b"EHLO"), Send(EHLO_STARTTLS)]
    steps += [Expect(b"STARTTLS\r\n"), Send(b"220 2.0.0 go ahead\r\n"), Send(injected)]
    steps += [StartTLS(tls_contexts.server), ExpectLine(b"EHLO"), Send(b"250 tls.test\r\n")]
    with unchecked(steps) as server:
        smtp = client(server.port)
        await smtp.connect()
        with pytest.raises((asmtp.SMTPProtocolError, ssl.SSLError)):
            await smtp.starttls(context=tls_contexts.client)
        assert not smtp.is_connected
        assert not smtp.is_encrypted


def _policy_script(starttls: bytes | None) -> list[Step]:
    """EHLO, optionally a STARTTLS refused with ``starttls``, then the QUIT of a clean exit."""
    pairs: list[tuple[bytes | Step, bytes]] = [
        (ExpectLine(b"EHLO"), EHLO_NO_STARTTLS if starttls is None else EHLO_STARTTLS)
    ]
    if starttls is not None:
        pairs.append((b"STARTTLS\r\n", starttls))
    return smtp_script([*pairs, QUIT], greeting=GREETING)


@pytest.mark.parametrize(
    ("tls", "credentials", "starttls", "expected"),
    [
        pytest.param("starttls", False, None, asmtp.TLSRequiredError, id="starttls-not-offered"),
        pytest.param(
            "starttls", True, None, asmtp.TLSRequiredError, id="starttls-not-offered-with-login"
        ),
        pytest.param("auto", True, None, asmtp.TLSRequiredError, id="auto-login-not-offered"),
        pytest.param(
            "starttls",
            False,
            b"454 4.7.0 TLS not available\r\n",
            asmtp.SMTPResponseException,
            id="starttls-refused-454",
        ),
        pytest.param(
            "auto",
            True,
            b"454 4.7.0 TLS not available\r\n",
            asmtp.SMTPResponseException,
            id="auto-login-refused-454",
        ),
    ],
)
async def test_required_tls_fails_closed(
    scripted_server_factory: ScriptedServerFactory,
    tls_contexts: TLSContexts,
    tls: asmtp.TLSMode,
    credentials: bool,
    starttls: bytes | None,
    expected: type[Exception],
) -> None:
    """Neither MAIL nor AUTH ever reaches a server that did not give us TLS."""
    server = scripted_server_factory(_policy_script(starttls))
    with pytest.raises(expected) as caught:
        await asmtp.sendmail(
            SENDER,
            list(RECIPIENTS),
            b"Subject: secret\r\n\r\nsecret\r\n",
            host=HOST,
            port=server.port,
            tls=tls,
            username="user" if credentials else None,
            password="password" if credentials else None,
            context=tls_contexts.client,
            local_hostname="client.test",
            timeout=2,
        )
    if starttls is not None:
        assert isinstance(caught.value, asmtp.SMTPResponseException)
        assert caught.value.smtp_code == 454
    server.check()
    assert b"MAIL" not in server.received
    assert b"AUTH" not in server.received


async def test_capabilities_from_before_tls_are_forgotten(
    scripted_server_factory: ScriptedServerFactory, tls_contexts: TLSContexts
) -> None:
    """A MITM adds AUTH and PIPELINING before TLS; after it the server offers nothing."""
    server = scripted_server_factory(
        [
            Send(GREETING),
            ExpectLine(b"EHLO"),
            Send(EHLO_STARTTLS),
            ExpectLine(b"STARTTLS"),
            Send(b"220 go ahead\r\n"),
            StartTLS(tls_contexts.server),
            ExpectLine(b"EHLO"),
            Send(b"250 tls.test\r\n"),
            ExpectLine(b"MAIL FROM:<a@x.test>"),
            Send(b"250 ok\r\n"),
            ExpectLine(b"RCPT TO:<b@x.test>"),
            Send(b"250 ok\r\n"),
            ExpectLine(b"DATA"),
            Send(b"354 go\r\n"),
            ExpectData(),
            Send(b"250 queued\r\n"),
            ExpectLine(b"QUIT"),
            Send(b"221 bye\r\n"),
        ]
    )
    async with client(server.port) as smtp:
        await smtp.ehlo()
        assert smtp.has_extn("auth") and smtp.has_extn("pipelining")
        await smtp.starttls(context=tls_contexts.client)
        assert smtp.is_encrypted
        assert smtp.esmtp_features == {}
        assert not smtp.has_extn("auth")
        assert not smtp.has_extn("pipelining")
        with pytest.raises(asmtp.SMTPNotSupportedError):
            await smtp.login("user", "password")
        assert await smtp.sendmail(SENDER, RECIPIENTS[0], b"hello\r\n") == {}
    server.check()
    after_tls = server.reads[0]
    assert not any(b"MAIL" in read and b"RCPT" in read for read in after_tls), "pipelined"
    assert b"AUTH" not in server.received


async def test_unverifiable_certificate_fails_closed_with_default_context(
    smtpd_server_factory: SMTPDServerFactory, tls_contexts: TLSContexts
) -> None:
    """The default context verifies: a certificate from an unknown CA aborts the connection."""
    server = smtpd_server_factory(tls_context=tls_contexts.server)
    smtp = client(server.port)
    await smtp.connect()
    with pytest.raises(ssl.SSLCertVerificationError):
        await smtp.starttls()
    assert not smtp.is_connected
    with pytest.raises(ssl.SSLCertVerificationError):
        await asmtp.sendmail(  # tls="auto": STARTTLS is offered, so it must succeed
            SENDER,
            RECIPIENTS[0],
            b"x\r\n",
            host=HOST,
            port=server.port,
            local_hostname="client.test",
            timeout=2,
        )
    assert server.handler.commands == ["EHLO client.test", "EHLO client.test"]
    assert server.handler.deliveries == []
