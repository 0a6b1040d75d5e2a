"""Implicit TLS (RFC 8314, SMTP_SSL) against aiosmtpd serving TLS from the first byte.

aiosmtpd with ``ssl_context`` proves the handshake, the verification failures and that a
caller's SSLContext is left as it was given (for STARTTLS too).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trustme

import asmtp
from secure._kit import ME, MESSAGE, UNTRUSTED_CONTEXTS, WAIT, context_state, verbs

if TYPE_CHECKING:
    from support.fixtures import SMTPDServerFactory, TLSContexts

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("server_hostname", [None, "localhost", "127.0.0.1"])
async def test_smtp_ssl_sends_over_tls_from_the_first_byte(
    smtpd_server_factory: SMTPDServerFactory,
    tls_contexts: TLSContexts,
    server_hostname: str | None,
) -> None:
    server = smtpd_server_factory(ssl_context=tls_contexts.server)
    async with asmtp.SMTP_SSL(
        server.host,
        server.port,
        local_hostname=ME,
        timeout=WAIT,
        context=tls_contexts.client,
        server_hostname=server_hostname,
    ) as smtp:
        assert smtp.is_encrypted
        assert await smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE) == {}
        with pytest.raises(asmtp.SMTPNotSupportedError):
            await smtp.starttls(context=tls_contexts.client)  # not offered inside TLS
    assert verbs(server.handler.commands) == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    assert server.handler.deliveries[0].content == MESSAGE


async def test_smtp_ssl_to_a_unix_socket_speaks_tls_from_the_first_byte(
    smtpd_server_factory: SMTPDServerFactory, tls_contexts: TLSContexts, unix_socket_path: Path
) -> None:
    server = smtpd_server_factory(ssl_context=tls_contexts.server, unix_path=unix_socket_path)
    async with asmtp.SMTP_SSL(
        str(unix_socket_path),
        local_hostname=ME,
        timeout=WAIT,
        context=tls_contexts.client,
        server_hostname="localhost",
    ) as smtp:
        assert smtp.is_encrypted
        assert await smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE) == {}
    assert server.handler.deliveries[0].content == MESSAGE


async def test_smtp_ssl_connect_returns_the_greeting_and_quit_ends_the_session(
    smtpd_server_factory: SMTPDServerFactory, tls_contexts: TLSContexts
) -> None:
    server = smtpd_server_factory(ssl_context=tls_contexts.server)
    smtp = asmtp.SMTP_SSL(local_hostname=ME, timeout=WAIT, context=tls_contexts.client)
    code, _ = await smtp.connect(server.host, server.port)
    try:
        assert code == 220
        assert smtp.is_encrypted
        assert (await smtp.noop())[0] == 250
        assert (await smtp.quit())[0] == 221
        assert not smtp.is_connected
    finally:
        await smtp.close()
    assert verbs(server.handler.commands) == ["NOOP", "QUIT"]


@pytest.mark.parametrize("make_context", UNTRUSTED_CONTEXTS.values(), ids=UNTRUSTED_CONTEXTS)
async def test_smtp_ssl_to_a_certificate_from_an_unknown_ca_fails_verification(
    smtpd_server_factory: SMTPDServerFactory,
    tls_contexts: TLSContexts,
    make_context: Callable[[], ssl.SSLContext | None],
) -> None:
    """``asmtp-default`` is SMTP_SSL without ``context``: the default context verifies."""
    server = smtpd_server_factory(ssl_context=tls_contexts.server)
    smtp = asmtp.SMTP_SSL(
        server.host, server.port, local_hostname=ME, timeout=WAIT, context=make_context()
    )
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        async with smtp:
            pytest.fail("connected to an untrusted server")
    assert info.value.verify_message == "unable to get local issuer certificate"
    assert not smtp.is_connected
    assert server.handler.commands == []


async def test_smtp_ssl_default_context_verifies_chain_and_host_name() -> None:
    context = asmtp.SMTP_SSL(timeout=WAIT).context
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize(
    ("cert_names", "server_hostname"),
    [(("127.0.0.1", "localhost"), "wrong.example"), (("mail.example",), None)],
    ids=["explicit-wrong-name", "address-not-in-cert"],
)
async def test_smtp_ssl_to_a_certificate_for_another_name_fails_verification(
    smtpd_server_factory: SMTPDServerFactory,
    trustme_ca: trustme.CA,
    tls_contexts: TLSContexts,
    cert_names: tuple[str, ...],
    server_hostname: str | None,
) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme_ca.issue_cert(*cert_names).configure_cert(server_context)
    server = smtpd_server_factory(ssl_context=server_context)
    smtp = asmtp.SMTP_SSL(
        server.host,
        server.port,
        local_hostname=ME,
        timeout=WAIT,
        context=tls_contexts.client,
        server_hostname=server_hostname,
    )
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        await smtp.connect()
    assert "mismatch" in str(info.value.verify_message)
    assert not smtp.is_connected


async def test_smtp_ssl_to_a_plain_text_server_fails_the_handshake(
    smtpd_server_factory: SMTPDServerFactory, tls_contexts: TLSContexts
) -> None:
    server = smtpd_server_factory()
    smtp = asmtp.SMTP_SSL(
        server.host, server.port, local_hostname=ME, timeout=WAIT, context=tls_contexts.client
    )
    with pytest.raises(ssl.SSLError):
        await smtp.connect()
    assert not smtp.is_connected


@pytest.mark.parametrize("mode", ["implicit", "starttls"])
@pytest.mark.parametrize("outcome", ["verified", "refused"])
async def test_the_callers_ssl_context_is_never_mutated(
    smtpd_server_factory: SMTPDServerFactory,
    tls_contexts: TLSContexts,
    mode: str,
    outcome: str,
) -> None:
    """A permissive context stays permissive and a strict one strict, whatever happens."""
    context = tls_contexts.client
    if outcome == "refused":
        context = ssl.create_default_context()  # trusts no trustme CA
    context.options |= ssl.OP_NO_COMPRESSION
    before = context_state(context)
    smtp: asmtp.SMTP
    if mode == "implicit":
        server = smtpd_server_factory(ssl_context=tls_contexts.server)
        smtp = asmtp.SMTP_SSL(
            server.host, server.port, local_hostname=ME, timeout=WAIT, context=context
        )
    else:
        server = smtpd_server_factory(tls_context=tls_contexts.server)
        smtp = asmtp.SMTP(server.host, server.port, local_hostname=ME, timeout=WAIT)
    try:
        async with smtp:
            if mode == "starttls":
                await smtp.starttls(context=context)
            await smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE)
    except ssl.SSLCertVerificationError:
        assert outcome == "refused"
    else:
        assert outcome == "verified"
    assert context_state(context) == before
    if mode == "implicit":
        assert isinstance(smtp, asmtp.SMTP_SSL)
        assert smtp.context is context
