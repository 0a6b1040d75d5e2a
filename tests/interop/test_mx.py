"""asmtp against Postfix's smtpd as an MX: refusals, body transparency, SMTPUTF8, DSN,
and PIPELINING and CHUNKING as Postfix's own log shows them."""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import random
from collections.abc import AsyncIterator

import pytest

import asmtp
from asmtp.protocol import Body, EnvId, Notify, Orcpt, Ret
from interop import _kit
from interop._kit import BODIES
from interop.realservers import Servers

pytestmark = [pytest.mark.anyio, pytest.mark.server("Postfix 3.7")]

CHUNKING = pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
"""Postfix offers CHUNKING: run the body both as BDAT chunks and as dot-stuffed DATA."""


def mx(servers: Servers, *, chunking: bool = True, helo: str = _kit.ME) -> asmtp.SMTP:
    smtp = asmtp.SMTP(servers.host, servers.smtp_port, helo, timeout=_kit.TIMEOUT)
    smtp.use_chunking = chunking
    return smtp


@pytest.mark.feature("refusal at RCPT (unknown user)")
@CHUNKING
async def test_refused_dict_names_exactly_the_unknown_recipients(
    servers: Servers, chunking: bool
) -> None:
    marker = _kit.token()
    sent = _kit.message(marker, b"to one known and two unknown recipients\r\n")
    unknown = ["nobody@example.test", "ghost@example.test"]
    async with mx(servers, chunking=chunking) as smtp:
        refused = await smtp.sendmail(
            servers.address("sender"), [unknown[0], servers.address("user"), unknown[1]], sent
        )
    assert sorted(refused) == sorted(unknown)
    for code, text in refused.values():
        assert code == 550
        assert b"5.1.1" in text
    stored = await _kit.delivered(servers.maildir("user"), marker)
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)


@pytest.mark.feature("refusal at RCPT (unknown user)")
async def test_all_recipients_unknown_raises_recipients_refused(servers: Servers) -> None:
    async with mx(servers) as smtp:
        with pytest.raises(asmtp.SMTPRecipientsRefused) as caught:
            await smtp.sendmail(
                servers.address("sender"),
                ["nobody@example.test", "ghost@example.test"],
                _kit.message(_kit.token(), b"nobody home\r\n"),
            )
        assert set(caught.value.recipients) == {"nobody@example.test", "ghost@example.test"}
        # The transaction was reset: the connection sends the next message.
        marker = _kit.token()
        assert (
            await smtp.sendmail(
                servers.address("sender"), servers.address("user"), _kit.message(marker, b"ok\r\n")
            )
            == {}
        )
    await _kit.delivered(servers.maildir("user"), marker)


@pytest.mark.feature("body transparency (Maildir, byte for byte)")
@CHUNKING
@pytest.mark.parametrize("body", list(BODIES.values()), ids=list(BODIES))
async def test_body_arrives_unchanged_after_the_headers(
    servers: Servers, chunking: bool, body: bytes
) -> None:
    marker = _kit.token()
    sent = _kit.message(marker, body)
    async with mx(servers, chunking=chunking) as smtp:
        assert await smtp.sendmail(servers.address("sender"), servers.address("user"), sent) == {}
    stored = await _kit.delivered(servers.maildir("user"), marker)
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)


async def _pieces(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.mark.feature("body transparency (Maildir, byte for byte)")
@CHUNKING
async def test_streamed_body_split_inside_line_endings_and_dots(
    servers: Servers, chunking: bool
) -> None:
    marker = _kit.token()
    head = _kit.message(marker, b"")
    parts = [
        b"first line\r",
        b"",
        b"\n.",
        b"dotted\r\n",
        b".",
        b"\r",
        b"\n",
        b"bare lf\n",
        b".\n",
        b"end",
    ]
    async with mx(servers, chunking=chunking) as smtp:
        refused = await smtp.sendmail(
            servers.address("sender"), servers.address("user"), _pieces(head, *parts)
        )
    assert refused == {}
    stored = await _kit.delivered(servers.maildir("user"), marker)
    assert _kit.body_after_headers(stored) == _kit.expected_body(head + b"".join(parts))


@pytest.mark.feature("8BITMIME")
@CHUNKING
async def test_8bit_utf8_body_with_body_8bitmime(servers: Servers, chunking: bool) -> None:
    marker = _kit.token()
    body = "Grüße aus Köln € 8-bit, не ASCII, 日本語 ✉\r\n.ünicode after a dot\r\n".encode()
    sent = _kit.message(
        marker,
        body,
        headers=b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n",
    )
    async with mx(servers, chunking=chunking) as smtp:
        refused = await smtp.sendmail(
            servers.address("sender"), servers.address("user"), sent, [Body("8BITMIME")]
        )
    assert refused == {}
    stored = await _kit.delivered(servers.maildir("user"), marker)
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)


@pytest.mark.feature("body transparency (Maildir, byte for byte)")
@CHUNKING
async def test_5mb_attachment_with_send_message(servers: Servers, chunking: bool) -> None:
    marker = _kit.token()
    payload = random.Random(marker).randbytes(5 * 1024 * 1024)
    msg = email.message.EmailMessage()
    msg["From"] = servers.address("sender")
    msg["To"] = servers.address("user")
    msg["Subject"] = f"interop {marker}"
    msg.set_content("Five megabytes attached.\n.\nA lone dot above.\n")
    msg.add_attachment(payload, maintype="application", subtype="octet-stream", filename="big.bin")
    # Flattening fixes the MIME boundary in msg, so this is what send_message sends.
    sent = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
    async with mx(servers, chunking=chunking) as smtp:
        assert await smtp.send_message(msg) == {}
    stored = await _kit.delivered(servers.maildir("user"), marker)
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)
    parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(stored)
    assert isinstance(parsed, email.message.EmailMessage)
    attachments = list(parsed.iter_attachments())
    assert len(attachments) == 1
    assert attachments[0].get_content() == payload


@pytest.mark.feature("SMTPUTF8")
async def test_smtputf8_address_and_headers_with_send_message(servers: Servers) -> None:
    marker = _kit.token()
    msg = email.message.EmailMessage()
    msg["From"] = "Jörg <sender@example.test>"
    msg["To"] = f"José <{servers.address('intl')}>"
    msg["Subject"] = f"interop {marker} € ünïcödé"
    msg.set_content("Olá, José! Body in UTF-8.\n")
    async with mx(servers) as smtp:
        await smtp.ehlo()
        assert smtp.has_extn("smtputf8")
        assert await smtp.send_message(msg) == {}
    stored = await _kit.delivered(servers.maildir("intl"), marker)
    headers = _kit.headers_of(stored)
    assert f"Delivered-To: {servers.address('intl')}".encode() in headers
    assert b" with UTF8SMTP id " in headers  # RFC 6531 §4.3: SMTPUTF8 was in use
    assert f"Subject: interop {marker} € ünïcödé".encode() in headers
    assert _kit.body_after_headers(stored) == "Olá, José! Body in UTF-8.\n".encode()


@pytest.mark.feature("SMTPUTF8")
@CHUNKING
async def test_utf8_envelope_recipient_with_sendmail(servers: Servers, chunking: bool) -> None:
    marker = _kit.token()
    sent = _kit.message(marker, "envelope only: jösé\r\n".encode())
    async with mx(servers, chunking=chunking) as smtp:
        refused = await smtp.sendmail(
            servers.address("sender"), [servers.address("intl"), "nöbody@example.test"], sent
        )
    assert list(refused) == ["nöbody@example.test"]
    assert refused["nöbody@example.test"][0] == 550
    stored = await _kit.delivered(servers.maildir("intl"), marker)
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)


@pytest.mark.feature("DSN")
async def test_dsn_parameters_are_accepted_and_honoured(servers: Servers) -> None:
    marker = _kit.token()
    envid = f"id-1.{marker}"
    sent = _kit.message(marker, b"please notify on success\r\n")
    async with mx(servers) as smtp:
        refused = await smtp.sendmail(
            servers.address("sender"),
            servers.address("user"),
            sent,
            mail_options=[Ret("HDRS"), EnvId(envid)],
            rcpt_options=[Notify(("SUCCESS", "FAILURE")), Orcpt(servers.address("user"))],
        )
    assert refused == {}
    stored = await _kit.delivered(servers.maildir("user"), marker)
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)
    # NOTIFY=SUCCESS: Postfix reports the delivery to the sender, quoting ENVID and ORCPT.
    report = await _kit.delivered(servers.maildir("sender"), envid, anywhere=True)
    assert f"Original-Envelope-Id: {envid}".encode() in report
    assert f"Original-Recipient: rfc822;{servers.address('user')}".encode() in report


@pytest.mark.feature("PIPELINING and CHUNKING (server log)")
@CHUNKING
async def test_pipelining_and_chunking_show_in_postfix_log(
    servers: Servers, chunking: bool
) -> None:
    marker = _kit.token()
    helo = f"trace-{marker}.interop.test"
    sent = _kit.message(marker, b"one write for the whole transaction\r\n")
    recipients = [servers.address("user"), "nobody@example.test", servers.address("sender")]
    smtp = asmtp.SMTP(servers.host, servers.trace_port, helo, timeout=_kit.TIMEOUT)
    smtp.use_chunking = chunking
    async with smtp:
        refused = await smtp.sendmail(servers.address("sender"), recipients, sent)
    assert list(refused) == ["nobody@example.test"]
    session = await _kit.trace_session(servers.logs["postfix"], helo)
    verb = "BDAT" if chunking else "DATA"
    assert [c.split()[0].upper() for c in _kit.commands(session)] == [
        "EHLO", "MAIL", "RCPT", "RCPT", "RCPT", verb, "QUIT"
    ]  # fmt: skip
    if chunking:
        assert _kit.commands(session)[5].upper() == f"BDAT {len(sent)} LAST"
    # Five commands from MAIL to BDAT/DATA; in lock-step each needs a read of its own.
    assert _kit.client_reads_before(session, verb) == 1
    counts = _kit.command_counts(session)
    assert ("bdat=1" if chunking else "data=1") in counts.split()
    await _kit.delivered(servers.maildir("user"), marker)


@pytest.mark.feature("sendmail_many")
@CHUNKING
async def test_sendmail_many_back_to_back_to_postfix(servers: Servers, chunking: bool) -> None:
    """Five messages on one connection, one refused at RCPT: the others are each stored once.

    With DATA each next MAIL goes out with the previous end of data (RFC 2920 §3.1); with
    BDAT each waits for the previous reply. Either way the replies land on their messages.
    """
    markers = [_kit.token() for _ in range(5)]
    sender, user = servers.address("sender"), servers.address("user")
    batch = [
        asmtp.Outgoing(sender, [user], _kit.message(marker, b"back to back\r\n.dot\r\n"))
        for marker in markers
    ]
    batch[2] = asmtp.Outgoing(sender, ["nobody@example.test"], _kit.message(markers[2], b"x\r\n"))
    async with mx(servers, chunking=chunking) as smtp:
        results = await smtp.sendmail_many(batch)
    refused = results.pop(2)
    assert isinstance(refused, asmtp.SMTPRecipientsRefused)
    assert list(refused.recipients) == ["nobody@example.test"]
    assert results == [{}, {}, {}, {}]
    for index, marker in enumerate(markers):
        if index == 2:
            assert await _kit.absent(servers.maildir("user"), marker)
            continue
        stored = await _kit.delivered(servers.maildir("user"), marker)
        assert b"\n.dot\n" in stored.replace(b"\r\n", b"\n")


@pytest.mark.feature("sendmail_many")
async def test_sendmail_many_overlap_shows_in_postfix_log(servers: Servers) -> None:
    """Postfix's trace log: message 2's MAIL arrives in the read that ends message 1.

    Without the overlap, smtpd would read message 1's body and end, answer, and only then
    read message 2's MAIL in a read of its own.
    """
    marker = _kit.token()
    helo = f"overlap-{marker}.interop.test"
    sender, user = servers.address("sender"), servers.address("user")
    batch = [
        asmtp.Outgoing(sender, [user], _kit.message(f"{marker}-{n}", b"overlapped\r\n"))
        for n in range(3)
    ]
    smtp = asmtp.SMTP(servers.host, servers.trace_port, helo, timeout=_kit.TIMEOUT)
    smtp.use_chunking = False
    async with smtp:
        assert await smtp.sendmail_many(batch) == [{}, {}, {}]
    session = await _kit.trace_session(servers.logs["postfix"], helo)
    verbs = [c.split()[0].upper() for c in _kit.commands(session)]
    assert verbs == ["EHLO", *["MAIL", "RCPT", "DATA"] * 3, "QUIT"]
    assert _kit.client_reads_between(session, ("DATA", 1), ("MAIL", 2)) == 1
    assert _kit.client_reads_between(session, ("DATA", 2), ("MAIL", 3)) == 1
    for n in range(3):
        await _kit.delivered(servers.maildir("user"), f"{marker}-{n}")


@pytest.mark.feature("BINARYMIME (absent: refused before the wire)")
async def test_binarymime_is_refused_before_the_wire_where_postfix_lacks_it(
    servers: Servers,
) -> None:
    """Postfix offers CHUNKING but not BINARYMIME: asking for it fails before MAIL, and the
    connection goes on to send the next message."""
    marker = _kit.token()
    async with mx(servers) as smtp:
        await smtp.ehlo()
        assert not smtp.has_extn("binarymime") and smtp.has_extn("chunking")
        with pytest.raises(asmtp.SMTPNotSupportedError, match="BINARYMIME"):
            await smtp.sendmail(
                servers.address("sender"), [servers.address("user")], b"\x00", ["BODY=BINARYMIME"]
            )
        sent = _kit.message(marker, b"after the refusal\r\n")
        assert await smtp.sendmail(servers.address("sender"), [servers.address("user")], sent) == {}
    await _kit.delivered(servers.maildir("user"), marker)
