"""send_message's header rules and the one-shot asmtp.sendmail / asmtp.send_message.

Every test runs against aiosmtpd (127.0.0.1, ephemeral port) on asyncio, trio and uvloop;
the RecordingHandler shows the envelope and the exact bytes delivered.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import smtplib
from typing import TYPE_CHECKING

import pytest

import asmtp
from client._kit import HOST, ME, TIMEOUT, smtp, verbs
from support.aiosmtpd_server import RecordingHandler

if TYPE_CHECKING:
    from support.aiosmtpd_server import ThreadedSMTPServer
    from support.fixtures import SMTPDServerFactory

pytestmark = pytest.mark.anyio

RESENT_DATE = "Mon, 1 Jan 2024 00:00:00 +0000"


def message(*headers: tuple[str, str]) -> email.message.EmailMessage:
    msg = email.message.EmailMessage()
    for name, value in headers:
        msg[name] = value
    msg["Subject"] = "send_message"
    msg.set_content("body line\n.dot line\n")
    return msg


def delivered_headers(content: bytes) -> email.message.Message:
    return email.message_from_bytes(content, policy=email.policy.SMTP)


@pytest.mark.parametrize(
    ("headers", "sender", "recipients"),
    [
        ([("From", "Ann <a@x.test>"), ("To", "b@x.test")], "a@x.test", ("b@x.test",)),
        (
            [("From", "a@x.test"), ("Sender", "Sec <s@x.test>"), ("To", "b@x.test")],
            "s@x.test",
            ("b@x.test",),
        ),
        (
            [
                ("From", "a@x.test"),
                ("To", "B <b@x.test>, c@x.test"),
                ("Cc", "d@x.test"),
                ("Bcc", "e@x.test"),
            ],
            "a@x.test",
            ("b@x.test", "c@x.test", "e@x.test", "d@x.test"),  # To, Bcc, Cc: smtplib's order
        ),
    ],
    ids=["from", "sender-over-from", "to-cc-bcc"],
)
async def test_envelope_comes_from_the_headers(
    smtpd_server: ThreadedSMTPServer,
    headers: list[tuple[str, str]],
    sender: str,
    recipients: tuple[str, ...],
) -> None:
    """aiosmtpd: Sender wins over From; To, Bcc and Cc are the recipients."""
    msg = message(*headers)
    async with smtp(smtpd_server) as client:
        assert await client.send_message(msg) == {}
    [delivery] = smtpd_server.handler.deliveries
    assert (delivery.mail_from, delivery.rcpt_tos) == (sender, recipients)
    assert delivered_headers(delivery.content)["Subject"] == "send_message"


async def test_one_resent_block_gives_the_envelope(smtpd_server: ThreadedSMTPServer) -> None:
    """aiosmtpd: with exactly one Resent-Date the Resent-* headers are used, not From/To,
    and Resent-Bcc is a recipient but is removed from the delivered bytes."""
    msg = message(
        ("From", "a@x.test"),
        ("To", "b@x.test"),
        ("Resent-Date", RESENT_DATE),
        ("Resent-From", "r@x.test"),
        ("Resent-Sender", "rs@x.test"),
        ("Resent-To", "rt@x.test"),
        ("Resent-Cc", "rc@x.test"),
        ("Resent-Bcc", "rb@x.test"),
    )
    async with smtp(smtpd_server) as client:
        assert await client.send_message(msg) == {}
    [delivery] = smtpd_server.handler.deliveries
    assert delivery.mail_from == "rs@x.test"
    assert delivery.rcpt_tos == ("rt@x.test", "rb@x.test", "rc@x.test")
    assert b"rb@x.test" not in delivery.content
    assert delivered_headers(delivery.content)["Resent-To"] == "rt@x.test"


async def test_more_than_one_resent_block_raises_value_error_before_mail(
    smtpd_server: ThreadedSMTPServer,
) -> None:
    """aiosmtpd: two Resent-Date headers make the envelope ambiguous; nothing is sent."""
    msg = message(("From", "a@x.test"), ("To", "b@x.test"), ("Resent-Date", RESENT_DATE))
    msg["Resent-Date"] = "Tue, 2 Jan 2024 00:00:00 +0000"
    async with smtp(smtpd_server) as client:
        with pytest.raises(ValueError, match="more than one 'Resent-' header block"):
            await client.send_message(msg)
        assert await client.noop() == (250, b"2.0.0 OK")
    assert "MAIL" not in verbs(smtpd_server.handler.commands)


@pytest.mark.parametrize("header", ["Bcc", "Resent-Bcc"])
async def test_bcc_headers_are_stripped_but_still_recipients(
    smtpd_server: ThreadedSMTPServer, header: str
) -> None:
    """aiosmtpd: the hidden recipient gets the message; its header is not in the bytes;
    the caller's message is left unchanged."""
    headers = [("From", "a@x.test"), ("To", "b@x.test"), ("Bcc", "hidden@x.test")]
    if header == "Resent-Bcc":
        headers += [
            ("Resent-Date", RESENT_DATE),
            ("Resent-From", "a@x.test"),
            ("Resent-To", "b@x.test"),
            ("Resent-Bcc", "hidden@x.test"),
        ]
    msg = message(*headers)
    async with smtp(smtpd_server) as client:
        assert await client.send_message(msg) == {}
    [delivery] = smtpd_server.handler.deliveries
    assert delivery.rcpt_tos == ("b@x.test", "hidden@x.test")
    assert b"hidden@x.test" not in delivery.content
    assert b"Bcc" not in delivery.content
    assert msg[header] == "hidden@x.test"


async def test_explicit_from_and_to_override_the_headers_but_bcc_is_still_stripped(
    smtpd_server: ThreadedSMTPServer,
) -> None:
    """aiosmtpd: from_addr and to_addrs replace the header-derived envelope."""
    msg = message(("From", "a@x.test"), ("To", "b@x.test"), ("Bcc", "hidden@x.test"))
    async with smtp(smtpd_server) as client:
        assert await client.send_message(msg, "o@x.test", ["p@x.test", "q@x.test"]) == {}
    [delivery] = smtpd_server.handler.deliveries
    assert (delivery.mail_from, delivery.rcpt_tos) == ("o@x.test", ("p@x.test", "q@x.test"))
    assert b"hidden@x.test" not in delivery.content


@pytest.mark.parametrize(
    ("sender", "to"), [("jörg@x.test", "b@x.test"), ("a@x.test", "Zoë <zoë@x.test>")]
)
async def test_non_ascii_address_uses_smtputf8_when_advertised(
    smtpd_server_factory: SMTPDServerFactory, sender: str, to: str
) -> None:
    """aiosmtpd with enable_SMTPUTF8: MAIL carries SMTPUTF8 and BODY=8BITMIME, addresses go
    as UTF-8 and the headers are sent as raw UTF-8 (not RFC 2047 encoded words)."""
    server = smtpd_server_factory(RecordingHandler(), enable_SMTPUTF8=True)
    msg = message(("From", sender), ("To", to))
    async with smtp(server) as client:
        assert await client.send_message(msg) == {}
    [delivery] = server.handler.deliveries
    assert {"SMTPUTF8", "BODY=8BITMIME"} <= set(delivery.mail_options)
    assert delivery.mail_from == sender
    assert delivery.rcpt_tos == (email.utils.parseaddr(to)[1],)
    header = f"From: {sender}" if not sender.isascii() else f"To: {to}"
    assert f"{header}\r\n".encode() in delivery.content
    assert b"=?utf-8?" not in delivery.content


async def test_non_ascii_address_without_smtputf8_raises_before_mail(
    smtpd_server: ThreadedSMTPServer,
) -> None:
    """aiosmtpd without SMTPUTF8: SMTPNotSupportedError and no MAIL."""
    msg = message(("From", "a@x.test"), ("To", "jörg@x.test"))
    async with smtp(smtpd_server) as client:
        with pytest.raises(smtplib.SMTPNotSupportedError):
            await client.send_message(msg)
    assert verbs(smtpd_server.handler.commands) == ["EHLO", "QUIT"]


@pytest.mark.parametrize("tls", ["none", "auto"])
@pytest.mark.parametrize("function", ["sendmail", "send_message"])
async def test_one_shot_functions_send_and_quit(
    smtpd_server: ThreadedSMTPServer, tls: asmtp.TLSMode, function: str
) -> None:
    """aiosmtpd without STARTTLS: tls="auto" without credentials, like tls="none", sends in
    the clear; one connection, one message, then QUIT."""
    msg = message(("From", "a@x.test"), ("To", "b@x.test, nobody@x.test"))
    smtpd_server.handler.refuse_recipients["nobody@x.test"] = "550 5.1.1 no such user"
    port = smtpd_server.port
    if function == "sendmail":
        refused = await asmtp.sendmail(
            "a@x.test",
            ["b@x.test", "nobody@x.test"],
            msg.as_bytes(),
            host=HOST,
            port=port,
            tls=tls,
            local_hostname=ME,
            timeout=TIMEOUT,
        )
    else:
        refused = await asmtp.send_message(
            msg, host=HOST, port=port, tls=tls, local_hostname=ME, timeout=TIMEOUT
        )
    assert refused == {"nobody@x.test": (550, b"5.1.1 no such user")}
    assert verbs(smtpd_server.handler.commands) == ["EHLO", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"]
    assert smtpd_server.connection_count == 1
    [delivery] = smtpd_server.handler.deliveries
    assert (delivery.mail_from, delivery.rcpt_tos) == ("a@x.test", ("b@x.test",))


async def test_one_shot_refusal_still_quits(smtpd_server_factory: SMTPDServerFactory) -> None:
    """aiosmtpd refusing every recipient: the exception reaches the caller after RSET and QUIT."""
    server = smtpd_server_factory(RecordingHandler(refuse_recipients={"b@x.test": "550 no"}))
    with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
        await asmtp.sendmail(
            "a@x.test", "b@x.test", b"hi", host=HOST, port=server.port, tls="none", timeout=TIMEOUT
        )
    assert info.value.recipients == {"b@x.test": (550, b"no")}
    assert verbs(server.handler.commands) == ["EHLO", "MAIL", "RCPT", "RSET", "QUIT"]
