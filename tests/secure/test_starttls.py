"""STARTTLS (RFC 3207) against aiosmtpd and scripted servers, with trustme certificates.

aiosmtpd (with ``tls_context``) proves the happy path and the verification failures;
scripted servers prove what aiosmtpd cannot do: refuse STARTTLS, inject a reply after its
``220``, and advertise different capabilities before and after the handshake.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
import trustme

import asmtp
from secure._kit import ME, MESSAGE, UNTRUSTED_CONTEXTS, WAIT, verbs
from support.scripted import Expect, ExpectClosed, ExpectLine, Send, StartTLS, smtp_script

if TYPE_CHECKING:
    from support.fixtures import (
        MemoryServerFactory,
        ScriptedServerFactory,
        SMTPDServerFactory,
        TLSContexts,
    )
    from support.memory import MemoryServer

pytestmark = pytest.mark.anyio

EHLO_WITH_STARTTLS = b"250-scripted.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n"


async def test_starttls_encrypts_resends_ehlo_and_rereads_the_extensions_before_a_send(
    smtpd_server_factory: SMTPDServerFactory, tls_contexts: TLSContexts
) -> None:
    """aiosmtpd offers STARTTLS before TLS and not after, so the features must change."""
    server = smtpd_server_factory(tls_context=tls_contexts.server)
    async with asmtp.SMTP(server.host, server.port, local_hostname=ME, timeout=WAIT) as smtp:
        await smtp.ehlo()
        assert smtp.has_extn("starttls")
        encrypted_before = smtp.is_encrypted
        code, _ = await smtp.starttls(context=tls_contexts.client)
        assert code == 220
        assert not encrypted_before
        assert smtp.is_encrypted
        # EHLO was sent again and its answer replaced what was learned in the clear.
        assert smtp.does_esmtp
        assert smtp.ehlo_resp is not None
        assert not smtp.has_extn("starttls")
        assert smtp.has_extn("size")
        assert await smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE) == {}
    assert verbs(server.handler.commands) == [
        "EHLO",
        "STARTTLS",
        "EHLO",
        "MAIL",
        "RCPT",
        "DATA",
        "QUIT",
    ]
    assert server.handler.deliveries[0].content == MESSAGE


async def test_starttls_sends_ehlo_first_when_none_was_sent(
    smtpd_server_factory: SMTPDServerFactory, tls_contexts: TLSContexts
) -> None:
    server = smtpd_server_factory(tls_context=tls_contexts.server)
    async with asmtp.SMTP(server.host, server.port, local_hostname=ME, timeout=WAIT) as smtp:
        await smtp.starttls(context=tls_contexts.client)
        assert smtp.is_encrypted
    assert verbs(server.handler.commands) == ["EHLO", "STARTTLS", "EHLO", "QUIT"]


@pytest.mark.parametrize("make_context", UNTRUSTED_CONTEXTS.values(), ids=UNTRUSTED_CONTEXTS)
async def test_starttls_to_a_certificate_from_an_unknown_ca_fails_verification_and_closes(
    smtpd_server_factory: SMTPDServerFactory,
    tls_contexts: TLSContexts,
    make_context: Callable[[], ssl.SSLContext | None],
) -> None:
    server = smtpd_server_factory(tls_context=tls_contexts.server)
    async with asmtp.SMTP(server.host, server.port, local_hostname=ME, timeout=WAIT) as smtp:
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            await smtp.starttls(context=make_context())
        assert info.value.verify_message == "unable to get local issuer certificate"
        assert not smtp.is_connected
        assert not smtp.is_encrypted
        with pytest.raises(asmtp.SMTPServerDisconnected):
            await smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE)
    assert verbs(server.handler.commands) == ["EHLO"]
    assert server.handler.deliveries == []


@pytest.mark.parametrize(
    ("cert_names", "server_hostname"),
    [
        (("127.0.0.1", "localhost"), "wrong.example"),
        (("mail.example",), None),  # connected to 127.0.0.1, which the cert does not name
    ],
    ids=["explicit-wrong-name", "address-not-in-cert"],
)
async def test_starttls_to_a_certificate_for_another_name_fails_verification(
    smtpd_server_factory: SMTPDServerFactory,
    trustme_ca: trustme.CA,
    tls_contexts: TLSContexts,
    cert_names: tuple[str, ...],
    server_hostname: str | None,
) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme_ca.issue_cert(*cert_names).configure_cert(server_context)
    server = smtpd_server_factory(tls_context=server_context)
    async with asmtp.SMTP(server.host, server.port, local_hostname=ME, timeout=WAIT) as smtp:
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            await smtp.starttls(context=tls_contexts.client, server_hostname=server_hostname)
        assert "mismatch" in str(info.value.verify_message)
        assert not smtp.is_connected


async def test_starttls_server_hostname_selects_the_name_the_certificate_is_checked_against(
    smtpd_server_factory: SMTPDServerFactory, trustme_ca: trustme.CA, tls_contexts: TLSContexts
) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme_ca.issue_cert("mail.example").configure_cert(server_context)
    server = smtpd_server_factory(tls_context=server_context)
    async with asmtp.SMTP(server.host, server.port, local_hostname=ME, timeout=WAIT) as smtp:
        await smtp.starttls(context=tls_contexts.client, server_hostname="mail.example")
        assert smtp.is_encrypted
        assert await smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE) == {}


async def test_starttls_not_advertised_raises_not_supported_and_sends_nothing(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """aiosmtpd without ``tls_context`` does not advertise STARTTLS."""
    server = smtpd_server_factory()
    async with asmtp.SMTP(server.host, server.port, local_hostname=ME, timeout=WAIT) as smtp:
        with pytest.raises(asmtp.SMTPNotSupportedError):
            await smtp.starttls()
        assert not smtp.is_encrypted
        assert (await smtp.noop())[0] == 250  # still in step
    assert verbs(server.handler.commands) == ["EHLO", "NOOP", "QUIT"]


@pytest.mark.parametrize("refusal", [b"454 4.7.0 TLS not available\r\n", b"501 5.5.4 no\r\n"])
async def test_refused_starttls_raises_the_servers_reply_and_stays_in_the_clear(
    scripted_server_factory: ScriptedServerFactory, refusal: bytes
) -> None:
    """Scripted: aiosmtpd cannot refuse a STARTTLS it advertised."""
    server = scripted_server_factory(
        smtp_script(
            [
                (ExpectLine(b"EHLO "), EHLO_WITH_STARTTLS),
                (b"STARTTLS\r\n", refusal),
                (b"NOOP\r\n", b"250 ok\r\n"),
                (b"QUIT\r\n", b"221 bye\r\n"),
                (ExpectClosed(), b""),
            ]
        )
    )
    async with asmtp.SMTP(server.host, server.port, local_hostname=ME, timeout=WAIT) as smtp:
        with pytest.raises(asmtp.SMTPResponseException) as info:
            await smtp.starttls()
        assert (info.value.smtp_code, info.value.smtp_error) == (
            int(refusal[:3]),
            refusal[4:-2],
        )
        assert not smtp.is_encrypted
        assert (await smtp.noop())[0] == 250


async def test_reply_injected_after_starttls_220_is_a_protocol_error_without_a_handshake(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    """Scripted: the 220 and an injected reply arrive in one write (CVE-2011-0411 style).

    The server then expects the client to close: a TLS ClientHello (or any byte) would
    fail the script.
    """
    server = scripted_server_factory(
        smtp_script(
            [
                (ExpectLine(b"EHLO "), EHLO_WITH_STARTTLS),
                (b"STARTTLS\r\n", b"220 go\r\n250 injected\r\n"),
                (ExpectClosed(), b""),
            ]
        )
    )
    async with asmtp.SMTP(server.host, server.port, local_hostname=ME, timeout=WAIT) as smtp:
        with pytest.raises(asmtp.SMTPProtocolError) as info:
            await smtp.starttls()
        assert isinstance(info.value, asmtp.SMTPResponseException)
        assert info.value.smtp_code == -1
        assert b"injection" in info.value.smtp_error
        assert not smtp.is_connected
        assert not smtp.is_encrypted
    assert server.received.endswith(b"STARTTLS\r\n")


async def test_capabilities_learned_before_tls_are_forgotten_after_it(
    scripted_server_factory: ScriptedServerFactory, tls_contexts: TLSContexts
) -> None:
    """Scripted: AUTH PLAIN is offered in the clear only, as a stripping attacker would."""
    server = scripted_server_factory(
        smtp_script(
            [
                (ExpectLine(b"EHLO "), b"250-scripted.test\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n"),
                (b"STARTTLS\r\n", b"220 go ahead\r\n"),
                (StartTLS(tls_contexts.server), b""),
                (Expect(f"EHLO {ME}\r\n".encode()), b"250-scripted.test\r\n250 SIZE 1000\r\n"),
                (b"QUIT\r\n", b"221 bye\r\n"),
            ]
        )
    )
    async with asmtp.SMTP(server.host, server.port, local_hostname=ME, timeout=WAIT) as smtp:
        await smtp.ehlo()
        assert smtp.has_extn("auth")
        await smtp.starttls(context=tls_contexts.client)
        assert smtp.is_encrypted
        assert not smtp.has_extn("auth")
        assert not smtp.has_extn("starttls")
        assert smtp.esmtp_features == {"size": "1000"}
        with pytest.raises(asmtp.SMTPNotSupportedError):
            await smtp.login("user", "password")


async def test_starttls_then_send_over_a_scripted_tls_session(
    scripted_server_factory: ScriptedServerFactory, tls_contexts: TLSContexts
) -> None:
    """Scripted: the exact bytes after the handshake are EHLO, then the transaction."""
    server = scripted_server_factory(
        [
            Send(b"220 scripted.test ESMTP\r\n"),
            Expect(f"EHLO {ME}\r\n".encode()),
            Send(EHLO_WITH_STARTTLS),
            Expect(b"STARTTLS\r\n"),
            Send(b"220 go ahead\r\n"),
            StartTLS(tls_contexts.server),
            Expect(f"EHLO {ME}\r\n".encode()),
            Send(b"250 scripted.test\r\n"),
            Expect(b"MAIL FROM:<a@x.test>\r\n"),
            Send(b"250 ok\r\n"),
            Expect(b"RCPT TO:<b@x.test>\r\n"),
            Send(b"250 ok\r\n"),
            Expect(b"DATA\r\n"),
            Send(b"354 go\r\n"),
            Expect(MESSAGE + b".\r\n"),
            Send(b"250 queued\r\n"),
            Expect(b"QUIT\r\n"),
            Send(b"221 bye\r\n"),
        ]
    )
    async with asmtp.SMTP(server.host, server.port, local_hostname=ME, timeout=WAIT) as smtp:
        await smtp.starttls(context=tls_contexts.client)
        # PIPELINING was offered in the clear only: the envelope now goes in lock-step.
        assert await smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE) == {}


def _client(server: MemoryServer) -> asmtp.SMTP:
    return asmtp.SMTP(server.host, server.port, ME, timeout=WAIT, connector=server.connector)


@pytest.mark.parametrize("name", ["", ME], ids=["default-name", "same-name"])
async def test_the_smtplib_idiom_ehlo_after_starttls_sends_no_second_ehlo(
    memory_server_factory: MemoryServerFactory, tls_contexts: TLSContexts, name: str
) -> None:
    """smtplib code says ``ehlo()`` after ``starttls()``; asmtp's starttls() already said
    EHLO, and a server may refuse a second one (OpenSMTPD: 503 Already identified). The
    script has exactly one EHLO under TLS, so a second would fail it."""
    server = memory_server_factory(
        smtp_script(
            [
                (ExpectLine(b"EHLO"), b"250-plain.test\r\n250 STARTTLS\r\n"),
                (b"STARTTLS\r\n", b"220 go ahead\r\n"),
                (StartTLS(tls_contexts.server), b""),
                (ExpectLine(b"EHLO"), b"250-secure.test\r\n250 AUTH PLAIN\r\n"),
                (ExpectLine(b"AUTH PLAIN"), b"235 2.7.0 ok\r\n"),
                (b"QUIT\r\n", b"221 bye\r\n"),
            ]
        )
    )
    async with _client(server) as client:
        await client.starttls(context=tls_contexts.client)
        assert await client.ehlo(name) == (250, b"secure.test\nAUTH PLAIN")
        assert await client.login("user", "pass") == (235, b"2.7.0 ok")


async def test_ehlo_with_another_name_after_starttls_is_sent(
    memory_server_factory: MemoryServerFactory, tls_contexts: TLSContexts
) -> None:
    server = memory_server_factory(
        smtp_script(
            [
                (ExpectLine(b"EHLO"), b"250-plain.test\r\n250 STARTTLS\r\n"),
                (b"STARTTLS\r\n", b"220 go ahead\r\n"),
                (StartTLS(tls_contexts.server), b""),
                (ExpectLine(b"EHLO"), b"250 secure.test\r\n"),
                (b"EHLO other.example\r\n", b"250 secure.test again\r\n"),
                (b"QUIT\r\n", b"221 bye\r\n"),
            ]
        )
    )
    async with _client(server) as client:
        await client.starttls(context=tls_contexts.client)
        assert await client.ehlo("other.example") == (250, b"secure.test again")
