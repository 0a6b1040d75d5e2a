"""send_message adds the Date and Message-ID a message lacks, on the copy it sends.

RFC 5322 §3.6 requires Date (and asks for Message-ID); RFC 6409 §8 lets a submission server
add them, and many do not. asmtp adds them by default to what goes on the wire, never to the
caller's message object, keeps any the message has, and sends the message as it is with
``add_missing_headers=False``, from ``SMTP.send_message``, the one-shot ``send_message`` and
``SMTPPool.send_message`` alike. Against aiosmtpd, on asyncio, trio and uvloop.
"""

from __future__ import annotations

import copy
import datetime
import email
import email.message
import email.policy
import email.utils
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import pytest

import asmtp
from asmtp._client._message import missing_headers
from client._kit import HOST, ME, TIMEOUT

if TYPE_CHECKING:
    from support.aiosmtpd_server import ThreadedSMTPServer

pytestmark = pytest.mark.anyio

Send = Callable[["ThreadedSMTPServer", email.message.Message, bool], Awaitable[object]]


async def _smtp(server: ThreadedSMTPServer, msg: email.message.Message, add: bool) -> object:
    async with asmtp.SMTP(HOST, server.port, ME, timeout=TIMEOUT) as smtp:
        return await smtp.send_message(msg, add_missing_headers=add)


async def _oneshot(server: ThreadedSMTPServer, msg: email.message.Message, add: bool) -> object:
    return await asmtp.send_message(
        msg, host=HOST, port=server.port, local_hostname=ME, add_missing_headers=add
    )


async def _pool(server: ThreadedSMTPServer, msg: email.message.Message, add: bool) -> object:
    async with asmtp.SMTPPool(HOST, server.port, local_hostname=ME) as pool:
        return await pool.send_message(msg, add_missing_headers=add)


SENDS: dict[str, Send] = {"SMTP": _smtp, "one-shot": _oneshot, "SMTPPool": _pool}


def message(sender: str = "Ann <a@example.org>") -> email.message.EmailMessage:
    msg = email.message.EmailMessage()
    msg["From"] = sender
    msg["To"] = "b@x.test"
    msg["Bcc"] = "hidden@x.test"
    msg["Subject"] = "no date"
    msg.set_content("body\n")
    return msg


def delivered(server: ThreadedSMTPServer) -> email.message.Message:
    (delivery,) = server.handler.deliveries
    return email.message_from_bytes(delivery.content, policy=email.policy.SMTP)


@pytest.mark.parametrize("send", SENDS.values(), ids=SENDS)
async def test_date_and_message_id_are_added_to_what_is_sent_not_to_the_message(
    smtpd_server: ThreadedSMTPServer, send: Send
) -> None:
    msg = message()
    before = copy.deepcopy(msg).as_bytes()
    started = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    await send(smtpd_server, msg, True)
    got = delivered(smtpd_server)
    date = email.utils.parsedate_to_datetime(str(got["Date"]))
    assert started <= date <= datetime.datetime.now(datetime.timezone.utc)
    assert date.utcoffset() == datetime.timedelta(0)
    assert re.fullmatch(r"<[^@<>\s]+@example\.org>", str(got["Message-ID"]))  # sender's domain
    assert got.keys()[-2:] == ["Date", "Message-ID"]  # after the message's own fields
    assert "Bcc" not in got
    assert msg.as_bytes() == before  # the caller's object is untouched
    assert "Date" not in msg and "Message-ID" not in msg


@pytest.mark.parametrize("send", SENDS.values(), ids=SENDS)
async def test_a_message_is_sent_as_it_is_when_asked(
    smtpd_server: ThreadedSMTPServer, send: Send
) -> None:
    await send(smtpd_server, message(), False)
    got = delivered(smtpd_server)
    assert "Date" not in got and "Message-ID" not in got


async def test_the_messages_own_date_and_message_id_are_kept(
    smtpd_server: ThreadedSMTPServer,
) -> None:
    msg = message()
    msg["Date"] = "Mon, 1 Jan 2024 00:00:00 +0000"
    await _smtp(smtpd_server, msg, True)
    got = delivered(smtpd_server)
    assert got.get_all("Date") == ["Mon, 01 Jan 2024 00:00:00 +0000"]
    assert len(got.get_all("Message-ID") or []) == 1  # only the missing one was added

    smtpd_server.handler.reset()
    msg["Message-ID"] = "<mine@example.org>"
    await _smtp(smtpd_server, msg, True)
    assert delivered(smtpd_server).get_all("Message-ID") == ["<mine@example.org>"]


async def test_sendmail_sends_a_message_object_as_it_is(smtpd_server: ThreadedSMTPServer) -> None:
    """Only send_message completes the header: sendmail's message is the caller's to shape."""
    async with asmtp.SMTP(HOST, smtpd_server.port, ME, timeout=TIMEOUT) as smtp:
        await smtp.sendmail("a@example.org", ["b@x.test"], message())
    got = delivered(smtpd_server)
    assert "Date" not in got and "Message-ID" not in got


@pytest.mark.parametrize(
    ("sender", "local_hostname", "domain"),
    [
        ("a@example.org", "client.test", "example.org"),
        ("Ann <a@mail.example.org>", "client.test", "mail.example.org"),
        ("a@b\u00fccher.example", "client.test", "client.test"),  # not ASCII: EHLO's name
        ("", "[127.0.0.1]", "[127.0.0.1]"),  # the null sender
        ("a@[192.0.2.1]", None, "localhost"),
    ],
)
def test_the_message_id_names_the_senders_domain_else_the_ehlo_name(
    sender: str, local_hostname: str | None, domain: str
) -> None:
    added = dict(missing_headers(email.message.EmailMessage(), sender, local_hostname))
    assert added["Message-ID"].endswith(f"@{domain}>")
    assert email.utils.parsedate_to_datetime(added["Date"]).tzinfo is not None
