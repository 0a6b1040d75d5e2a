"""A client used without a connection raises smtplib's error from every method.

smtplib's constructor connects; asmtp's cannot (it would have to await), so code ported
from smtplib meets this first: every public coroutine method of ``SMTP``, ``SMTP_SSL`` and
``LMTP`` raises ``SMTPServerDisconnected("please run connect() first: ...")``, saying that
the constructor does not connect. After a connection was closed the class is the same.
"""

from __future__ import annotations

import email.message
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import pytest

import asmtp
from client._kit import HOST, ME

if TYPE_CHECKING:
    from support.aiosmtpd_server import ThreadedSMTPServer

pytestmark = pytest.mark.anyio


def _message() -> email.message.EmailMessage:
    msg = email.message.EmailMessage()
    msg["From"], msg["To"] = "a@x.test", "b@x.test"
    msg.set_content("hi")
    return msg


Call = Callable[[asmtp.SMTP], Awaitable[object]]

# Every public coroutine method but connect() and close(), with arguments that are valid.
CALLS: dict[str, Call] = {
    "getreply": lambda c: c.getreply(),
    "docmd": lambda c: c.docmd("NOOP"),
    "helo": lambda c: c.helo(),
    "ehlo": lambda c: c.ehlo(),
    "ehlo_or_helo_if_needed": lambda c: c.ehlo_or_helo_if_needed(),
    "help": lambda c: c.help(),
    "rset": lambda c: c.rset(),
    "noop": lambda c: c.noop(),
    "verify": lambda c: c.verify("b@x.test"),
    "vrfy": lambda c: c.vrfy("b@x.test"),
    "expn": lambda c: c.expn("list@x.test"),
    "quit": lambda c: c.quit(),
    "starttls": lambda c: c.starttls(),
    "auth": lambda c: c.auth("PLAIN", asmtp.auth.Plain("ada", "pw")),
    "login": lambda c: c.login("ada", "pw"),
    "mail": lambda c: c.mail("a@x.test"),
    "rcpt": lambda c: c.rcpt("b@x.test"),
    "data": lambda c: c.data(b"Subject: hi\r\n\r\nhi\r\n"),
    "sendmail": lambda c: c.sendmail("a@x.test", ["b@x.test"], b"hi\r\n"),
    "send_message": lambda c: c.send_message(_message()),
    "sendmail_many": lambda c: c.sendmail_many([asmtp.Outgoing("a@x.test", ["b@x.test"], b"")]),
}
CLASSES = [asmtp.SMTP, asmtp.SMTP_SSL, asmtp.LMTP]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_public_coroutine_method_is_covered(cls: type[asmtp.SMTP]) -> None:
    public = {
        name
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and inspect.iscoroutinefunction(member)
    }
    assert public - {"connect", "close"} == set(CALLS)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS)
async def test_before_connect_every_method_says_the_constructor_does_not_connect(
    cls: type[asmtp.SMTP], call: Call
) -> None:
    client = cls(HOST, 2525, ME)
    with pytest.raises(asmtp.SMTPServerDisconnected) as info:
        await call(client)
    assert str(info.value) == (
        "please run connect() first: unlike smtplib's, asmtp's constructor does not connect; "
        "use 'async with asmtp.SMTP(host, port) as smtp:' or 'await smtp.connect()'"
    )
    assert not client.is_connected


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS)
async def test_after_quit_every_method_raises_the_same_class(
    smtpd_server: ThreadedSMTPServer, call: Call
) -> None:
    client = asmtp.SMTP(HOST, smtpd_server.port, ME, timeout=5)
    async with client:
        await client.noop()
    assert not client.is_connected
    with pytest.raises(
        asmtp.SMTPServerDisconnected, match=r"^please run connect\(\) first: the connection is"
    ):
        await call(client)


async def test_close_without_a_connection_is_harmless() -> None:
    client = asmtp.SMTP()
    await client.close()
    assert not client.is_connected
