"""asmtp against Postfix's submission ports with Dovecot SASL: STARTTLS verified against the
test CA, AUTH with every mechanism on offer, implicit TLS, and the one-shot TLS policy."""

from __future__ import annotations

import smtplib
import ssl

import pytest

import asmtp
from interop import _kit
from interop.realservers import Servers

pytestmark = [pytest.mark.anyio, pytest.mark.server("Postfix 3.7 + Dovecot SASL")]

MECHANISMS = ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"]
"""What Dovecot is configured to offer (``auth_mechanisms``); asmtp speaks them all."""


def submission(servers: Servers) -> asmtp.SMTP:
    return asmtp.SMTP(servers.host, servers.submission_port, _kit.ME, timeout=_kit.TIMEOUT)


@pytest.mark.feature("STARTTLS")
async def test_starttls_is_required_before_auth_and_mail(servers: Servers) -> None:
    async with submission(servers) as smtp:
        await smtp.ehlo()
        assert smtp.has_extn("starttls")
        assert not smtp.has_extn("auth")
        with pytest.raises(smtplib.SMTPSenderRefused) as caught:
            await smtp.sendmail(
                servers.address("user"), servers.address("user"), _kit.message("x", b"x\r\n")
            )
        assert caught.value.smtp_code == 530


@pytest.mark.feature("STARTTLS")
async def test_starttls_fails_verification_without_the_test_ca(servers: Servers) -> None:
    async with submission(servers) as smtp:
        with pytest.raises(ssl.SSLCertVerificationError):
            await smtp.starttls(context=ssl.create_default_context())
        assert not smtp.is_connected


@pytest.mark.feature("AUTH PLAIN/LOGIN/CRAM-MD5/SCRAM-SHA-256")
@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_starttls_then_login_with_each_mechanism(
    servers: Servers, ca_context: ssl.SSLContext, mechanism: str
) -> None:
    marker = _kit.token()
    sent = _kit.message(marker, f"authenticated with {mechanism}\r\n".encode())
    async with submission(servers) as smtp:
        code, _ = await smtp.starttls(context=ca_context)
        assert code == 220
        assert smtp.is_encrypted
        await smtp.ehlo()
        assert mechanism in smtp.esmtp_features["auth"].upper().split()
        code, text = await smtp.login(
            servers.address("user"), servers.password("user"), mechanisms=[mechanism]
        )
        assert (code, text[:5]) == (235, b"2.7.0")
        assert await smtp.sendmail(servers.address("user"), servers.address("user"), sent) == {}
    stored = await _kit.delivered(servers.maildir("user"), marker)
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)


@pytest.mark.feature("AUTH PLAIN/LOGIN/CRAM-MD5/SCRAM-SHA-256")
async def test_every_advertised_mechanism_is_one_asmtp_tried(
    servers: Servers, ca_context: ssl.SSLContext
) -> None:
    async with submission(servers) as smtp:
        await smtp.starttls(context=ca_context)
        await smtp.ehlo()
        advertised = set(smtp.esmtp_features["auth"].upper().split())
    assert advertised == set(MECHANISMS)


@pytest.mark.feature("AUTH PLAIN/LOGIN/CRAM-MD5/SCRAM-SHA-256")
@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_wrong_password_raises_authentication_error(
    servers: Servers, ca_context: ssl.SSLContext, mechanism: str
) -> None:
    async with submission(servers) as smtp:
        await smtp.starttls(context=ca_context)
        with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
            await smtp.login(servers.address("user"), "not-the-password", mechanisms=[mechanism])
        assert caught.value.smtp_code == 535
        # The session survives a failed AUTH: the right password still works.
        code, _ = await smtp.login(
            servers.address("user"), servers.password("user"), mechanisms=[mechanism]
        )
        assert code == 235


@pytest.mark.feature("AUTH PLAIN/LOGIN/CRAM-MD5/SCRAM-SHA-256")
async def test_default_login_authenticates(servers: Servers, ca_context: ssl.SSLContext) -> None:
    async with submission(servers) as smtp:
        await smtp.starttls(context=ca_context)
        code, _ = await smtp.login(servers.address("user"), servers.password("user"))
        assert code == 235


@pytest.mark.feature("implicit TLS")
async def test_implicit_tls_on_submissions(servers: Servers, ca_context: ssl.SSLContext) -> None:
    marker = _kit.token()
    sent = _kit.message(marker, b"over implicit TLS\r\n")
    async with asmtp.SMTP_SSL(
        servers.host,
        servers.submissions_port,
        _kit.ME,
        timeout=_kit.TIMEOUT,
        context=ca_context,
    ) as smtp:
        assert smtp.is_encrypted
        await smtp.login(servers.address("user"), servers.password("user"))
        assert await smtp.sendmail(servers.address("user"), servers.address("user"), sent) == {}
    stored = await _kit.delivered(servers.maildir("user"), marker)
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)


@pytest.mark.parametrize(
    ("tls", "port"),
    [
        ("auto", "submission_port"),
        ("starttls", "submission_port"),
        ("implicit", "submissions_port"),
    ],
)
@pytest.mark.feature("one-shot sendmail() with TLS and AUTH")
async def test_one_shot_sendmail_with_credentials(
    servers: Servers, ca_context: ssl.SSLContext, tls: asmtp.TLSMode, port: str
) -> None:
    marker = _kit.token()
    sent = _kit.message(marker, f"asmtp.sendmail(tls={tls!r})\r\n".encode())
    refused = await asmtp.sendmail(
        servers.address("user"),
        [servers.address("user"), "nobody@example.test"],
        sent,
        host=servers.host,
        port=getattr(servers, port),
        tls=tls,
        username=servers.address("user"),
        password=servers.password("user"),
        context=ca_context,
        local_hostname=_kit.ME,
        timeout=_kit.TIMEOUT,
        deadline=30,
    )
    assert list(refused) == ["nobody@example.test"]
    stored = await _kit.delivered(servers.maildir("user"), marker)
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)


@pytest.mark.feature("one-shot sendmail() with TLS and AUTH")
async def test_one_shot_send_message_without_login_is_refused(
    servers: Servers, ca_context: ssl.SSLContext
) -> None:
    """Submission relays for authenticated clients only: RCPT is refused without AUTH."""
    with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
        await asmtp.sendmail(
            servers.address("user"),
            servers.address("user"),
            _kit.message(_kit.token(), b"no login\r\n"),
            host=servers.host,
            port=servers.submission_port,
            context=ca_context,
            local_hostname=_kit.ME,
            timeout=_kit.TIMEOUT,
        )
    ((code, _),) = caught.value.recipients.values()
    assert code == 554
