"""asmtp against OpenSMTPD 7.4 (bookworm-backports, see ``_opensmtpd.py``): delivery into
Maildirs byte for byte, its refusals and limits (unknown recipients, max-rcpt, max-mails,
max-message-size, MAIL before AUTH), DSN, a server without PIPELINING or CHUNKING,
STARTTLS, implicit TLS and AUTH PLAIN and LOGIN against a credentials table."""

from __future__ import annotations

import email.message
import ssl

import anyio
import pytest

import asmtp
from asmtp.protocol import Body, EnvId, Notify, Orcpt, Ret
from interop import _kit, _scenarios
from interop._opensmtpd import MAX_MAILS, MAX_RCPT, SIZE_LIMIT, OpenSMTPD

pytestmark = [pytest.mark.anyio, pytest.mark.server("OpenSMTPD 7.4")]

MECHANISMS = ["PLAIN", "LOGIN"]
"""What OpenSMTPD offers against a credentials table, under TLS only."""
BODIES = ["leading-dots", "lone-dot", "bare-lf", "no-final-newline", "long-lines", "empty"]


def mx(server: OpenSMTPD, *, helo: str = _kit.ME) -> asmtp.SMTP:
    return asmtp.SMTP(server.host, server.smtp_port, helo, timeout=_kit.TIMEOUT)


@pytest.mark.feature("refusal at RCPT (unknown user)")
async def test_unknown_recipient_refused_at_rcpt_without_pipelining(opensmtpd: OpenSMTPD) -> None:
    """OpenSMTPD offers no PIPELINING: asmtp goes command by command and gets each reply."""
    marker = _kit.token()
    sent = _kit.message(marker, b"to one known and one unknown\r\n")
    async with mx(opensmtpd) as smtp:
        await smtp.ehlo()
        assert not smtp.has_extn("pipelining") and not smtp.has_extn("chunking")
        refused = await smtp.sendmail(
            opensmtpd.address("sender"), ["nobody@example.test", opensmtpd.address("user")], sent
        )
    assert refused == {"nobody@example.test": (550, b"Invalid recipient: <nobody@example.test>")}
    stored = await _kit.delivered(opensmtpd.maildir("user"), marker)
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)


@pytest.mark.feature("body transparency (Maildir, byte for byte)")
@pytest.mark.parametrize("name", BODIES)
async def test_body_arrives_unchanged_after_the_headers(opensmtpd: OpenSMTPD, name: str) -> None:
    marker = _kit.token()
    sent = _kit.message(marker, _kit.BODIES[name])
    async with mx(opensmtpd) as smtp:
        assert (
            await smtp.sendmail(opensmtpd.address("sender"), opensmtpd.address("user"), sent) == {}
        )
    stored = await _kit.delivered(opensmtpd.maildir("user"), marker)
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)


@pytest.mark.feature("8BITMIME")
async def test_8bit_body_with_body_8bitmime(opensmtpd: OpenSMTPD) -> None:
    marker = _kit.token()
    sent = _kit.message(marker, "Grüße, не ASCII, 日本語\r\n.dot\r\n".encode())
    async with mx(opensmtpd) as smtp:
        refused = await smtp.sendmail(
            opensmtpd.address("sender"), opensmtpd.address("user"), sent, [Body("8BITMIME")]
        )
    assert refused == {}
    stored = await _kit.delivered(opensmtpd.maildir("user"), marker)
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)


@pytest.mark.feature("limits: recipients per message")
async def test_recipients_past_max_rcpt_are_refused_and_the_rest_delivered(
    opensmtpd: OpenSMTPD,
) -> None:
    marker = _kit.token()
    names = ["user", "sender", "r1", "r2", "r3", "r4", "r5"]
    recipients = [opensmtpd.address(name) for name in names]
    async with mx(opensmtpd) as smtp:
        refused = await smtp.sendmail(
            opensmtpd.address("sender"), recipients, _kit.message(marker, b"many\r\n")
        )
    over = recipients[MAX_RCPT:]
    assert list(refused) == over
    assert all(code == 451 and text.startswith(b"4.5.3 ") for code, text in refused.values())
    for name in names[:MAX_RCPT]:
        await _kit.delivered(opensmtpd.maildir(name), marker)
    for name in names[MAX_RCPT:]:
        assert await _kit.absent(opensmtpd.maildir(name), marker, settle=0)


@pytest.mark.feature("limits: messages per session")
async def test_sendmail_many_past_max_mails_refuses_exactly_the_excess(
    opensmtpd: OpenSMTPD,
) -> None:
    markers = [_kit.token() for _ in range(MAX_MAILS + 2)]
    sender, user = opensmtpd.address("sender"), opensmtpd.address("user")
    batch = [asmtp.Outgoing(sender, [user], _kit.message(m, b"batched\r\n")) for m in markers]
    async with mx(opensmtpd) as smtp:
        results = await smtp.sendmail_many(batch)
    assert results[:MAX_MAILS] == [{}] * MAX_MAILS
    for result in results[MAX_MAILS:]:
        assert isinstance(result, asmtp.SMTPSenderRefused)
        assert (result.smtp_code, result.smtp_error[:6]) == (452, b"4.5.3 ")
    for marker in markers[:MAX_MAILS]:
        await _kit.delivered(opensmtpd.maildir("user"), marker)
    for marker in markers[MAX_MAILS:]:
        assert await _kit.absent(opensmtpd.maildir("user"), marker, settle=0)


@pytest.mark.feature("limits: messages per session, through SMTPPool")
async def test_pool_moves_to_a_new_connection_when_the_session_is_worn_out(
    opensmtpd: OpenSMTPD,
) -> None:
    """After max-mails, OpenSMTPD answers MAIL with 452 4.5.3: the pool sends that message
    at once on a new connection, so every message of the stream is delivered once.

    The first connection carries ten messages and is refused the eleventh; whether a later
    one carries ten depends on the order the waiting sends are taken in, so a second
    refusal may or may not come."""
    count = 2 * MAX_MAILS + 3
    markers = [_kit.token() for _ in range(count)]
    sender, user = opensmtpd.address("sender"), opensmtpd.address("user")
    rows = [(m, asmtp.Outgoing(sender, [user], _kit.message(m, b"streamed\r\n"))) for m in markers]
    policy = asmtp.RetryPolicy(attempts=2, base_delay=30.0, jitter=False)  # never waited
    async with asmtp.SMTPPool(
        opensmtpd.host,
        opensmtpd.smtp_port,
        tls="none",
        local_hostname=_kit.ME,
        timeout=_kit.TIMEOUT,
        max_connections=1,
        retry=policy,
    ) as pool:
        with anyio.fail_after(policy.base_delay / 2):
            async with pool.send_each(rows) as results:
                outcomes = {marker: outcome async for marker, outcome in results}
    assert results.accepted == count
    attempts = [outcome.attempts for outcome in outcomes.values()]
    assert set(attempts) == {1, 2} and attempts.count(2) <= 2
    for marker in markers:
        await _kit.delivered(opensmtpd.maildir("user"), marker)


@pytest.mark.feature("SIZE refusal")
async def test_message_over_max_message_size_is_refused_after_data(opensmtpd: OpenSMTPD) -> None:
    """OpenSMTPD advertises SIZE but ignores SIZE= at MAIL: it refuses after the data,
    with 554 (a permanent failure of the transaction)."""
    marker = _kit.token()
    sent = _kit.message(marker, (b"y" * 1022 + b"\r\n") * (SIZE_LIMIT // 1024 + 1))
    async with mx(opensmtpd) as smtp:
        await smtp.ehlo()
        assert smtp.esmtp_features["size"] == str(SIZE_LIMIT)
        with pytest.raises(asmtp.SMTPDataError) as caught:
            await smtp.sendmail(opensmtpd.address("sender"), opensmtpd.address("user"), sent)
        assert (caught.value.smtp_code, caught.value.smtp_error[:6]) == (554, b"5.3.4 ")
        assert (await smtp.noop())[0] == 250
    assert await _kit.absent(opensmtpd.maildir("user"), marker)


@pytest.mark.feature("DSN")
async def test_notify_success_gets_a_delivery_report(opensmtpd: OpenSMTPD) -> None:
    """NOTIFY=SUCCESS reaches OpenSMTPD: it reports the delivery to the sender, quoting the
    message's headers (it does not echo ENVID or ORCPT in the report)."""
    marker = _kit.token()
    sent = _kit.message(marker, b"notify me\r\n")
    async with mx(opensmtpd) as smtp:
        refused = await smtp.sendmail(
            opensmtpd.address("sender"),
            opensmtpd.address("user"),
            sent,
            mail_options=[Ret("HDRS"), EnvId(f"id-1.{marker}")],
            rcpt_options=[Notify(("SUCCESS",)), Orcpt(opensmtpd.address("user"))],
        )
    assert refused == {}
    stored = await _kit.delivered(opensmtpd.maildir("user"), marker)
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)
    report = await _kit.delivered(opensmtpd.maildir("sender"), marker, anywhere=True)
    assert b"Subject: Delivery status notification: delivered" in report
    assert f"Final-Recipient: rfc822; {opensmtpd.address('user')}".encode() in report
    assert b"Action: delivered" in report


@pytest.mark.feature("SMTPPool")
@pytest.mark.parametrize("tls", ["none", "implicit"])
async def test_pool_opens_a_new_session_for_each_max_mails_messages(
    opensmtpd: OpenSMTPD, tls: asmtp.TLSMode
) -> None:
    """OpenSMTPD takes MAX_MAILS messages per session; with the pool's
    ``max_messages_per_connection`` set to it, 30 concurrent sends go over fresh
    sessions (in plain text, or over implicit TLS each logging in), none refused for the
    limit, each stored exactly once."""
    markers = [_kit.token() for _ in range(3 * MAX_MAILS)]
    results: list[asmtp.SendResult] = []
    sessions = _kit.log_count(opensmtpd.logs["smtpd"], " smtp connected ")
    secure = tls == "implicit"
    async with asmtp.SMTPPool(
        opensmtpd.host,
        opensmtpd.smtps_port if secure else opensmtpd.smtp_port,
        tls=tls,
        context=opensmtpd.client_context(),
        username=opensmtpd.address("user") if secure else None,
        password=opensmtpd.password("user") if secure else None,
        local_hostname=_kit.ME,
        timeout=_kit.TIMEOUT,
        max_connections=2,
        max_messages_per_connection=MAX_MAILS,
    ) as pool:

        async def send(marker: str) -> None:
            sent = _kit.message(marker, b"pooled\r\n.leading dot\r\n")
            sender, user = opensmtpd.address("sender"), opensmtpd.address("user")
            results.append(await pool.sendmail(sender, [user], sent))

        async with anyio.create_task_group() as tg:
            for marker in markers:
                tg.start_soon(send, marker)
    assert len(results) == len(markers)
    assert all(result == {} and result.attempts == 1 for result in results)
    opened = _kit.log_count(opensmtpd.logs["smtpd"], " smtp connected ") - sessions
    # No session was asked for more than it takes; the last ones share the remainder.
    assert len(markers) // MAX_MAILS <= opened <= len(markers) // MAX_MAILS + 1
    for marker in markers:
        stored = await _kit.delivered(opensmtpd.maildir("user"), marker)
        assert b"\n.leading dot\n" in stored.replace(b"\r\n", b"\n")


@pytest.mark.feature("STARTTLS")
async def test_starttls_verified_then_auth_offered_and_mail_delivered(
    opensmtpd: OpenSMTPD,
) -> None:
    """AUTH only once TLS is on; ``starttls()`` says EHLO again itself (RFC 3207 §4.2), so
    no ``ehlo()`` follows it: OpenSMTPD refuses a second EHLO in a session (503)."""
    marker = _kit.token()
    sent = _kit.message(marker, b"over STARTTLS, not authenticated\r\n")
    async with mx(opensmtpd) as smtp:
        await smtp.ehlo()
        assert smtp.has_extn("starttls") and not smtp.has_extn("auth")
        code, _ = await smtp.starttls(context=opensmtpd.client_context())
        assert code == 220 and smtp.is_encrypted
        assert sorted(smtp.esmtp_features["auth"].split()) == sorted(MECHANISMS)
        assert not smtp.has_extn("starttls")
        assert (
            await smtp.sendmail(opensmtpd.address("sender"), opensmtpd.address("user"), sent) == {}
        )
    stored = await _kit.delivered(opensmtpd.maildir("user"), marker)
    assert b" with ESMTPS " in _kit.headers_of(stored)  # RFC 3848: TLS, no AUTH
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)


@pytest.mark.feature("smtplib idiom: ehlo() after starttls()")
async def test_smtplib_idiom_starttls_ehlo_login(opensmtpd: OpenSMTPD) -> None:
    """Code ported from smtplib: ``starttls()``, ``ehlo()``, ``login()``. starttls() said
    EHLO already and OpenSMTPD takes only one per session: the ehlo() gets that reply."""
    async with mx(opensmtpd) as smtp:
        await smtp.starttls(context=opensmtpd.client_context())
        await smtp.ehlo()
        code, _ = await smtp.login(opensmtpd.address("user"), opensmtpd.password("user"))
        assert code == 235


@pytest.mark.feature("STARTTLS")
async def test_starttls_fails_verification_without_the_test_ca(opensmtpd: OpenSMTPD) -> None:
    async with mx(opensmtpd) as smtp:
        with pytest.raises(ssl.SSLCertVerificationError):
            await smtp.starttls(context=ssl.create_default_context())
        assert not smtp.is_connected


@pytest.mark.feature("STARTTLS")
async def test_one_shot_sendmail_never_falls_back_to_plain_text(opensmtpd: OpenSMTPD) -> None:
    """tls="auto" with STARTTLS offered and a certificate the system CAs cannot verify: the
    send fails with the verification error; nothing is delivered unencrypted."""
    marker = _kit.token()
    with pytest.raises(ssl.SSLCertVerificationError):
        await asmtp.sendmail(
            opensmtpd.address("sender"),
            [opensmtpd.address("user")],
            _kit.message(marker, b"must not arrive\r\n"),
            host=opensmtpd.host,
            port=opensmtpd.smtp_port,
            local_hostname=_kit.ME,
            timeout=_kit.TIMEOUT,
        )
    assert await _kit.absent(opensmtpd.maildir("user"), marker)


@pytest.mark.feature("AUTH PLAIN/LOGIN")
@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_starttls_then_login_with_each_mechanism(
    opensmtpd: OpenSMTPD, mechanism: str
) -> None:
    """A wrong password first (535, the session goes on), then the right one from the
    credentials table; OpenSMTPD's Received: header says ESMTPSA (RFC 3848: TLS and AUTH)."""
    sent, stored = await _scenarios.login_after_a_wrong_password(opensmtpd, mechanism)
    assert b" with ESMTPSA " in _kit.headers_of(stored)
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)


@pytest.mark.feature("implicit TLS")
async def test_implicit_tls_refuses_mail_until_auth(opensmtpd: OpenSMTPD) -> None:
    """``listen ... smtps ... auth``: MAIL before AUTH is refused (530) and the session goes
    on; after ``login()`` the message is delivered."""
    marker = _kit.token()
    user = opensmtpd.address("user")
    sent = _kit.message(marker, b"over implicit TLS\r\n")
    async with asmtp.SMTP_SSL(
        opensmtpd.host,
        opensmtpd.smtps_port,
        _kit.ME,
        timeout=_kit.TIMEOUT,
        context=opensmtpd.client_context(),
    ) as smtp:
        assert smtp.is_encrypted
        with pytest.raises(asmtp.SMTPSenderRefused) as caught:
            await smtp.sendmail(user, [user], sent)
        assert caught.value.smtp_code == 530
        assert sorted(smtp.esmtp_features["auth"].split()) == sorted(MECHANISMS)
        await smtp.login(user, opensmtpd.password("user"))
        assert await smtp.sendmail(user, [user], sent) == {}
    stored = await _kit.delivered(opensmtpd.maildir("user"), marker)
    assert b" with ESMTPSA " in _kit.headers_of(stored)
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)


@pytest.mark.feature("one-shot sendmail() with TLS and AUTH")
@pytest.mark.parametrize("tls", ["auto", "starttls", "implicit"])
async def test_one_shot_sendmail_with_credentials(opensmtpd: OpenSMTPD, tls: asmtp.TLSMode) -> None:
    refused, sent, stored = await _scenarios.one_shot_with_credentials(opensmtpd, tls)
    unknown = _scenarios.UNKNOWN
    assert refused == {unknown: (550, f"Invalid recipient: <{unknown}>".encode())}
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)


@pytest.mark.feature("SMTPUTF8")
async def test_utf8_address_where_smtputf8_is_not_offered_is_refused_before_the_wire(
    opensmtpd: OpenSMTPD,
) -> None:
    msg = email.message.EmailMessage()
    msg["From"] = "sender@example.test"
    msg["To"] = "jösé@example.test"
    msg["Subject"] = "no SMTPUTF8 here"
    msg.set_content("x\n")
    async with mx(opensmtpd) as smtp:
        with pytest.raises(asmtp.SMTPNotSupportedError):
            await smtp.send_message(msg)
        assert (await smtp.noop())[0] == 250
