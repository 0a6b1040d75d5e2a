"""asmtp against Exim 4 (Debian's exim4-daemon-heavy): delivery into Maildirs byte for byte,
refusals at RCPT and after the data, SIZE, DSN, SMTPUTF8, STARTTLS, implicit TLS, AUTH,
and PIPELINING and CHUNKING as Exim's own log records them."""

from __future__ import annotations

import email.message
import re
import ssl
from collections.abc import AsyncIterator

import anyio
import pytest

import asmtp
from asmtp.protocol import Body, EnvId, Notify, Orcpt, Ret
from interop import _kit, _scenarios
from interop._exim import REFUSE_HEADER, SIZE_LIMIT, Exim

pytestmark = [pytest.mark.anyio, pytest.mark.server("Exim 4.96")]

CHUNKING = pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
MECHANISMS = ["PLAIN", "LOGIN", "CRAM-MD5"]
"""The authenticators configured (plaintext and cram_md5 drivers)."""
REFUSED = (REFUSE_HEADER + ": yes\r\n").encode()


def mx(exim: Exim, *, chunking: bool = True, helo: str = _kit.ME) -> asmtp.SMTP:
    smtp = asmtp.SMTP(exim.host, exim.smtp_port, helo, timeout=_kit.TIMEOUT)
    smtp.use_chunking = chunking
    return smtp


async def accepted_line(exim: Exim, helo: str) -> str:
    """Exim's ``<=`` log line for the message received from the session ``helo``."""
    pattern = re.compile(rf"^\S+ \S+ \S+ <= .* H=\({re.escape(helo)}\) .*$", re.MULTILINE)
    with anyio.fail_after(_kit.DELIVERY_WAIT):
        while True:
            found = pattern.search(await anyio.Path(exim.logs["main"]).read_text("utf-8"))
            if found:
                return found[0]
            await anyio.sleep(0.05)


@pytest.mark.feature("refusal at RCPT (unknown user)")
@CHUNKING
async def test_unknown_recipients_refused_at_rcpt_and_the_rest_delivered(
    exim: Exim, chunking: bool
) -> None:
    marker = _kit.token()
    sent = _kit.message(marker, b"one known, two unknown\r\n")
    unknown = ["nobody@example.test", "ghost@example.test"]
    async with mx(exim, chunking=chunking) as smtp:
        refused = await smtp.sendmail(
            exim.address("sender"), [unknown[0], exim.address("user"), unknown[1]], sent
        )
    assert refused == {address: (550, b"Unrouteable address") for address in unknown}
    stored = await _kit.delivered(exim.maildir("user"), marker)
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)


@pytest.mark.feature("body transparency (Maildir, byte for byte)")
@CHUNKING
@pytest.mark.parametrize("body", list(_kit.BODIES.values()), ids=list(_kit.BODIES))
async def test_body_arrives_unchanged_after_the_headers(
    exim: Exim, chunking: bool, body: bytes
) -> None:
    marker = _kit.token()
    sent = _kit.message(marker, body)
    async with mx(exim, chunking=chunking) as smtp:
        assert await smtp.sendmail(exim.address("sender"), exim.address("user"), sent) == {}
    stored = await _kit.delivered(exim.maildir("user"), marker)
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)


@pytest.mark.feature("refusal after the data (DATA ACL)")
@CHUNKING
async def test_data_acl_refusal_raises_data_error_and_the_session_goes_on(
    exim: Exim, chunking: bool
) -> None:
    refused_marker, marker = _kit.token(), _kit.token()
    async with mx(exim, chunking=chunking) as smtp:
        with pytest.raises(asmtp.SMTPDataError) as caught:
            await smtp.sendmail(
                exim.address("sender"),
                exim.address("user"),
                _kit.message(refused_marker, b"refused after the data\r\n", headers=REFUSED),
            )
        assert (caught.value.smtp_code, caught.value.smtp_error) == (
            550,
            b"5.7.1 refused by the data ACL",
        )
        sent = _kit.message(marker, b"the next message\r\n")
        assert await smtp.sendmail(exim.address("sender"), exim.address("user"), sent) == {}
    await _kit.delivered(exim.maildir("user"), marker)
    assert await _kit.absent(exim.maildir("user"), refused_marker)


@pytest.mark.feature("PIPELINING and CHUNKING (server log)")
@CHUNKING
async def test_pipelining_and_chunking_show_in_exims_log(exim: Exim, chunking: bool) -> None:
    """Exim's accept line says ``L.`` when the client pipelined (``L.-`` when it did not,
    as smtplib does) and ``K`` when the message came by BDAT."""
    marker = _kit.token()
    helo = f"log-{marker}.interop.test"
    async with mx(exim, chunking=chunking, helo=helo) as smtp:
        recipients = [exim.address("user"), "nobody@example.test", exim.address("sender")]
        refused = await smtp.sendmail(exim.address("sender"), recipients, _kit.message(marker, b""))
    assert list(refused) == ["nobody@example.test"]
    fields = (await accepted_line(exim, helo)).split()
    assert "L." in fields
    assert ("K" in fields) is chunking
    await _kit.delivered(exim.maildir("user"), marker)


@pytest.mark.feature("8BITMIME")
@CHUNKING
async def test_8bit_body_with_body_8bitmime(exim: Exim, chunking: bool) -> None:
    marker = _kit.token()
    body = "Grüße, не ASCII, 日本語 ✉\r\n.ünicode after a dot\r\n".encode()
    sent = _kit.message(marker, body, headers=b"Content-Type: text/plain; charset=utf-8\r\n")
    async with mx(exim, chunking=chunking) as smtp:
        refused = await smtp.sendmail(
            exim.address("sender"), exim.address("user"), sent, [Body("8BITMIME")]
        )
    assert refused == {}
    stored = await _kit.delivered(exim.maildir("user"), marker)
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)


@pytest.mark.feature("SMTPUTF8")
async def test_smtputf8_recipient_and_headers_with_send_message(exim: Exim) -> None:
    marker = _kit.token()
    msg = email.message.EmailMessage()
    msg["From"] = "Jörg <sender@example.test>"
    msg["To"] = f"José <{exim.address('intl')}>"
    msg["Subject"] = f"interop {marker} ünïcödé"
    msg.set_content("Olá, José!\n")
    async with mx(exim) as smtp:
        await smtp.ehlo()
        assert smtp.has_extn("smtputf8")
        assert await smtp.send_message(msg) == {}
    stored = await _kit.delivered(exim.maildir("intl"), marker)
    headers = _kit.headers_of(stored)
    assert b" with utf8esmtp" in headers  # RFC 6531 §4.3: SMTPUTF8 was in use
    assert f"Subject: interop {marker} ünïcödé".encode() in headers
    assert _kit.body_after_headers(stored) == "Olá, José!\n".encode()


@pytest.mark.feature("SIZE refusal")
@CHUNKING
async def test_declared_size_over_the_limit_is_refused_at_mail(exim: Exim, chunking: bool) -> None:
    """asmtp declares SIZE=; Exim refuses MAIL (RFC 1870 §6.1) and nothing is stored.

    Over BDAT asmtp has pipelined every chunk behind MAIL: Exim answers MAIL 552, each
    BDAT 503, and hangs up for too many protocol errors. asmtp reads those replies, but
    when the reset reaches it during the RSET that follows, it reports the transaction
    as interrupted (outcome unknown) rather than the 552 it read; which one happens
    depends on timing. smtplib's ``_rset()`` ignores a lost connection there.
    """
    marker = _kit.token()
    sent = _kit.message(marker, (b"y" * 1022 + b"\r\n") * (SIZE_LIMIT // 1024 + 1))
    async with mx(exim, chunking=chunking) as smtp:
        await smtp.ehlo()
        assert smtp.esmtp_features["size"] == str(SIZE_LIMIT)
        expected = (
            (asmtp.SMTPSenderRefused, asmtp.SMTPTransactionInterrupted)
            if chunking
            else asmtp.SMTPSenderRefused
        )
        with pytest.raises(expected) as caught:
            await smtp.sendmail(exim.address("sender"), exim.address("user"), sent)
        error = caught.value
        if isinstance(error, asmtp.SMTPTransactionInterrupted):
            assert error.outcome.accepted is not True
        else:
            assert isinstance(error, asmtp.SMTPSenderRefused) and error.smtp_code == 552
        if not chunking:
            assert (await smtp.noop())[0] == 250
    assert await _kit.absent(exim.maildir("user"), marker)


async def _oversized(marker: str) -> AsyncIterator[bytes]:
    """A streamed body (size unknown, so no SIZE=) larger than Exim's limit."""
    yield _kit.message(marker, b"")
    line = b"s" * 1022 + b"\r\n"
    for _ in range(SIZE_LIMIT // len(line) + 64):
        yield line


@pytest.mark.feature("SIZE refusal")
async def test_streamed_body_over_the_limit_is_refused_after_data(exim: Exim) -> None:
    marker = _kit.token()
    async with mx(exim, chunking=False) as smtp:
        with pytest.raises(asmtp.SMTPDataError) as caught:
            await smtp.sendmail(exim.address("sender"), exim.address("user"), _oversized(marker))
        assert caught.value.smtp_code == 552
        assert (await smtp.noop())[0] == 250
    assert await _kit.absent(exim.maildir("user"), marker)


@pytest.mark.feature("SIZE refusal")
async def test_streamed_bdat_body_over_the_limit_is_never_reported_sent(exim: Exim) -> None:
    """Over BDAT, Exim answers the chunk that crosses the limit with 552 and then drops
    the connection for the chunks already pipelined after it: asmtp reports the refusal
    or, when the reset arrives first, an interrupted transaction; never a success."""
    marker = _kit.token()
    async with mx(exim, chunking=True) as smtp:
        with pytest.raises((asmtp.SMTPDataError, asmtp.SMTPTransactionInterrupted)) as caught:
            await smtp.sendmail(exim.address("sender"), exim.address("user"), _oversized(marker))
    if isinstance(caught.value, asmtp.SMTPDataError):
        assert caught.value.smtp_code == 552
    assert await _kit.absent(exim.maildir("user"), marker)


@pytest.mark.feature("DSN")
async def test_dsn_success_report_quotes_envid_and_orcpt(exim: Exim) -> None:
    marker = _kit.token()
    envid = f"id-1.{marker}"
    sent = _kit.message(marker, b"notify me\r\n")
    async with mx(exim) as smtp:
        refused = await smtp.sendmail(
            exim.address("sender"),
            exim.address("user"),
            sent,
            mail_options=[Ret("HDRS"), EnvId(envid)],
            rcpt_options=[Notify(("SUCCESS",)), Orcpt(exim.address("user"))],
        )
    assert refused == {}
    stored = await _kit.delivered(exim.maildir("user"), marker)
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)
    report = await _kit.delivered(exim.maildir("sender"), envid, anywhere=True)
    assert f"Original-Envelope-ID: {envid}".encode() in report
    assert f"Original-Recipient: rfc822;{exim.address('user')}".encode() in report
    assert b"Action: delivered" in report


@pytest.mark.feature("STARTTLS")
async def test_auth_is_offered_only_after_starttls(exim: Exim) -> None:
    async with mx(exim) as smtp:
        await smtp.ehlo()
        assert smtp.has_extn("starttls") and not smtp.has_extn("auth")
        await smtp.starttls(context=exim.client_context())
        assert smtp.is_encrypted
        assert sorted(smtp.esmtp_features["auth"].split()) == sorted(MECHANISMS)


@pytest.mark.feature("STARTTLS")
async def test_starttls_fails_verification_without_the_test_ca(exim: Exim) -> None:
    async with mx(exim) as smtp:
        with pytest.raises(ssl.SSLCertVerificationError):
            await smtp.starttls(context=ssl.create_default_context())
        assert not smtp.is_connected


@pytest.mark.feature("AUTH PLAIN/LOGIN/CRAM-MD5")
@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_starttls_then_login_with_each_mechanism(exim: Exim, mechanism: str) -> None:
    sent, stored = await _scenarios.login_after_a_wrong_password(exim, mechanism)
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)


@pytest.mark.feature("implicit TLS")
async def test_implicit_tls_with_smtp_ssl(exim: Exim) -> None:
    marker = _kit.token()
    sent = _kit.message(marker, b"over implicit TLS\r\n")
    async with asmtp.SMTP_SSL(
        exim.host, exim.smtps_port, _kit.ME, timeout=_kit.TIMEOUT, context=exim.client_context()
    ) as smtp:
        assert smtp.is_encrypted
        await smtp.login(exim.address("user"), exim.password("user"))
        assert await smtp.sendmail(exim.address("user"), exim.address("user"), sent) == {}
    stored = await _kit.delivered(exim.maildir("user"), marker)
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)


@pytest.mark.feature("one-shot sendmail() with TLS and AUTH")
@pytest.mark.parametrize("tls", ["auto", "starttls", "implicit"])
async def test_one_shot_sendmail_with_credentials(exim: Exim, tls: asmtp.TLSMode) -> None:
    refused, sent, stored = await _scenarios.one_shot_with_credentials(exim, tls)
    assert list(refused) == [_scenarios.UNKNOWN]
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)


@pytest.mark.feature("sendmail_many")
@CHUNKING
async def test_sendmail_many_reports_each_refusal_at_its_message(
    exim: Exim, chunking: bool
) -> None:
    """Six messages on one connection: one refused at RCPT, one by the DATA ACL after its
    data; every other one is stored exactly once."""
    markers = [_kit.token() for _ in range(6)]
    sender, user = exim.address("sender"), exim.address("user")
    batch = [
        asmtp.Outgoing(sender, [user], _kit.message(m, b"batched\r\n.dot\r\n")) for m in markers
    ]
    batch[1] = asmtp.Outgoing(sender, ["nobody@example.test"], _kit.message(markers[1], b"x\r\n"))
    batch[4] = asmtp.Outgoing(sender, [user], _kit.message(markers[4], b"x\r\n", headers=REFUSED))
    async with mx(exim, chunking=chunking) as smtp:
        results = await smtp.sendmail_many(batch)
    assert isinstance(results[1], asmtp.SMTPRecipientsRefused)
    assert list(results[1].recipients) == ["nobody@example.test"]
    assert isinstance(results[4], asmtp.SMTPDataError)
    assert results[4].smtp_code == 550
    assert [results[i] for i in (0, 2, 3, 5)] == [{}, {}, {}, {}]
    for index, marker in enumerate(markers):
        if index in (1, 4):
            assert await _kit.absent(exim.maildir("user"), marker)
        else:
            stored = await _kit.delivered(exim.maildir("user"), marker)
            assert b"\n.dot\n" in stored.replace(b"\r\n", b"\n")


@pytest.mark.feature("SMTPPool")
@CHUNKING
async def test_pool_delivers_every_message_exactly_once(exim: Exim, chunking: bool) -> None:
    markers = [_kit.token() for _ in range(24)]
    results: list[asmtp.SendResult] = []
    async with asmtp.SMTPPool(
        exim.host,
        exim.smtp_port,
        chunking=chunking,
        tls="starttls",
        context=exim.client_context(),
        username=exim.address("user"),
        password=exim.password("user"),
        local_hostname=_kit.ME,
        timeout=_kit.TIMEOUT,
        max_connections=4,
    ) as pool:

        async def send(marker: str) -> None:
            sent = _kit.message(marker, f"pooled {marker}\r\n.leading dot\r\n".encode())
            results.append(await pool.sendmail(exim.address("user"), [exim.address("user")], sent))

        async with anyio.create_task_group() as tg:
            for marker in markers:
                tg.start_soon(send, marker)
    assert len(results) == len(markers)
    assert all(result == {} and result.attempts == 1 for result in results)
    for marker in markers:
        stored = await _kit.delivered(exim.maildir("user"), marker)
        assert b"\n.leading dot\n" in stored.replace(b"\r\n", b"\n")


@pytest.mark.feature("limits: messages per session")
async def test_a_dozen_messages_on_one_connection_are_each_delivered(exim: Exim) -> None:
    """Exim queues a connection's messages past the tenth without delivering them unless
    ``smtp_accept_queue_per_connection`` says otherwise; this instance delivers them all,
    as a pool's long-lived connections need."""
    markers = [_kit.token() for _ in range(12)]
    sender, user = exim.address("sender"), exim.address("user")
    batch = [asmtp.Outgoing(sender, [user], _kit.message(m, b"one of twelve\r\n")) for m in markers]
    async with mx(exim) as smtp:
        assert await smtp.sendmail_many(batch) == [{}] * len(markers)
    for marker in markers:
        await _kit.delivered(exim.maildir("user"), marker, wait=10.0)
