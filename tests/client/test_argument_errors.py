"""Wrong arguments fail with a typed error that says what to pass, before anything connects.

A wrong type anywhere in the public API is a ``TypeError`` naming the argument and what it
takes (Python would otherwise fail later with an ``AttributeError``, or quietly iterate a
``str`` of options character by character). A password without a user name, which would be
ignored, and a ``str`` holding several recipients, which would reach only the first (as with
smtplib), are ``ValueError``s. The server in these tests is a port nobody listens on: a
client that tried to connect would raise ``ConnectionRefusedError`` instead.
"""

from __future__ import annotations

import email.message
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pytest

import asmtp
from client._kit import HOST, ME

if TYPE_CHECKING:
    from support.aiosmtpd_server import ThreadedSMTPServer

pytestmark = pytest.mark.anyio


def _nobody() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


PORT = _nobody()


def message() -> email.message.EmailMessage:
    msg = email.message.EmailMessage()
    msg["From"], msg["To"] = "a@x.test", "b@x.test"
    msg.set_content("hi")
    return msg


def client() -> asmtp.SMTP:
    return asmtp.SMTP(HOST, PORT, ME, timeout=2)


def pool(**options: Any) -> asmtp.SMTPPool:
    return asmtp.SMTPPool(HOST, PORT, **options)


async def opened(**options: Any) -> None:
    async with asmtp.connect(HOST, PORT, **options):
        pytest.fail("connected")


Call = Callable[[], Awaitable[object] | object]
BAD: Any = b"bytes"  # the wrong type most often passed: bytes for str


def wrong(value: object) -> Any:
    """``value``, typed so that the type checker lets a test pass it where it is wrong."""
    return value


# (what is wrong, the call, a pattern the TypeError's message must match)
TYPE_ERRORS: list[tuple[str, Call, str]] = [
    ("SMTP host", lambda: asmtp.SMTP(BAD), r"^host must be a str, not bytes$"),
    (
        "SMTP port",
        lambda: asmtp.SMTP(HOST, wrong("25")),
        r"^port must be an int \(0 for the default",
    ),
    ("SMTP timeout", lambda: asmtp.SMTP(HOST, timeout=wrong("9")), r"^timeout must be a number"),
    (
        "SMTP limit",
        lambda: asmtp.SMTP(max_line_length=wrong(1.5)),
        r"^max_line_length must be an int",
    ),
    (
        "SMTP source",
        lambda: asmtp.SMTP(source_address=wrong(HOST)),
        r"^source_address must be a \(host, port\) tuple",
    ),
    ("SMTP_SSL context", lambda: asmtp.SMTP_SSL(context=wrong(True)), r"^context must be an ssl\."),
    ("LMTP host", lambda: asmtp.LMTP(BAD), r"^host must be a str"),
    ("connect() host", lambda: client().connect(BAD), r"^host must be a str or None"),
    ("ehlo name", lambda: client().ehlo(BAD), r"^name must be a str, not bytes"),
    ("helo name", lambda: client().helo(BAD), r"^name must be a str"),
    ("docmd cmd", lambda: client().docmd(BAD), r"^cmd must be a str"),
    ("help args", lambda: client().help(BAD), r"^args must be a str"),
    ("verify address", lambda: client().verify(BAD), r"^address must be a str"),
    ("expn address", lambda: client().expn(BAD), r"^address must be a str"),
    ("mail sender", lambda: client().mail(BAD), r"^sender must be a str"),
    (
        "mail options as one str",
        lambda: client().mail("a@x.test", wrong("SMTPUTF8")),
        r"^options must be a list of ESMTP parameters, not one str: pass \['SMTPUTF8'\]",
    ),
    ("rcpt recipient", lambda: client().rcpt(BAD), r"^recip must be a str"),
    (
        "rcpt option",
        lambda: client().rcpt("b@x.test", wrong([1])),
        r"^options\[0\] must be a str, bytes",
    ),
    ("starttls context", lambda: client().starttls(context=BAD), r"^context must be an ssl\."),
    ("login user", lambda: client().login(BAD, "pw"), r"^user must be a str"),
    ("login password", lambda: client().login("ada", BAD), r"^password must be a str, not bytes"),
    (
        "login mechanisms",
        lambda: client().login("ada", "pw", mechanisms=wrong("PLAIN")),
        r"^mechanisms must be a list of str",
    ),
    ("auth name", lambda: client().auth(BAD, asmtp.auth.Plain("a", "b")), r"^mechanism must be"),
    ("auth object", lambda: client().auth("PLAIN", BAD), r"^authobject must be an asmtp\.auth"),
    (
        "data body",
        lambda: client().data(wrong(42)),
        r"^a message must be str, bytes, an email message",
    ),
    ("sendmail from", lambda: client().sendmail(BAD, ["b@x.test"], b""), r"^from_addr must be"),
    (
        "sendmail to",
        lambda: client().sendmail("a@x.test", BAD, b""),
        r"^to_addrs must be an address \(str\) or a list of addresses, not bytes",
    ),
    (
        "sendmail to item",
        lambda: client().sendmail("a@x.test", ["b@x.test", BAD], b""),
        r"^to_addrs\[1\] must be a str",
    ),
    (
        "sendmail options",
        lambda: client().sendmail("a@x.test", ["b@x.test"], b"", wrong("BODY=8BITMIME")),
        r"^mail_options must be a list of ESMTP parameters, not one str",
    ),
    (
        "send_message bytes",
        lambda: client().send_message(BAD),
        r"^send_message\(\) takes an email\.message\.Message, not bytes; send str or bytes "
        r"with sendmail\(from_addr, to_addrs, msg\)",
    ),
    (
        "send_message switch",
        lambda: client().send_message(message(), add_missing_headers=wrong("no")),
        r"^add_missing_headers must be True or False",
    ),
    (
        "sendmail_many item",
        lambda: asmtp.Outgoing.message(BAD),
        r"^send_message\(\) takes an email\.message\.Message",
    ),
    ("set_debuglevel", lambda: client().set_debuglevel(wrong("1")), r"^debuglevel must be an int"),
    (
        "one-shot send_message",
        lambda: asmtp.send_message(BAD, host=HOST, port=PORT),
        r"^send_message\(\) takes an email\.message\.Message",
    ),
    (
        "one-shot sendmail deadline",
        lambda: asmtp.sendmail("a@x.test", "b@x.test", b"", port=PORT, deadline=wrong("5")),
        r"^deadline must be a number of seconds or None",
    ),
    ("one-shot username", lambda: opened(username=BAD, password="pw"), r"^username must be"),
    ("one-shot password", lambda: opened(username="ada", password=BAD), r"^password must be"),
    (
        "one-shot mechanism",
        lambda: opened(mechanism=wrong("PLAIN")),
        r"^mechanism must be an asmtp",
    ),
    ("one-shot context", lambda: opened(context=wrong("ca.pem")), r"^context must be an ssl\."),
    ("one-shot url", lambda: opened(url=BAD), r"^url must be a str, not bytes"),
    ("pool port", lambda: asmtp.SMTPPool(HOST, wrong("25")), r"^port must be an int"),
    ("pool local_hostname", lambda: pool(local_hostname=BAD), r"^local_hostname must be a str"),
    (
        "pool send_message",
        lambda: pool().send_message(BAD),
        r"^send_message\(\) takes an email\.message\.Message",
    ),
]


@pytest.mark.parametrize(
    ("call", "pattern"), [t[1:] for t in TYPE_ERRORS], ids=[t[0] for t in TYPE_ERRORS]
)
async def test_a_wrong_type_is_a_type_error_saying_what_to_pass(call: Call, pattern: str) -> None:
    with pytest.raises(TypeError, match=pattern):
        result = call()
        if isinstance(result, Awaitable):
            await result


async def test_sendmail_many_names_the_item_of_the_wrong_type(
    smtpd_server: ThreadedSMTPServer,
) -> None:
    async with asmtp.SMTP(HOST, smtpd_server.port, ME, timeout=5) as smtp:
        with pytest.raises(TypeError, match=r"^messages\[1\] must be an asmtp\.Outgoing, not"):
            await smtp.sendmail_many([asmtp.Outgoing("a@x.test", ["b@x.test"], b""), wrong(b"x")])
    assert smtpd_server.handler.deliveries == []


# -- a password without a user name -------------------------------------------------------------

PASSWORD_ONLY: dict[str, Call] = {
    "asmtp.connect": lambda: opened(password="secret-pw"),
    "asmtp.sendmail": lambda: asmtp.sendmail(
        "a@x.test", ["b@x.test"], b"", host=HOST, port=PORT, password="secret-pw"
    ),
    "asmtp.send_message": lambda: asmtp.send_message(
        message(), host=HOST, port=PORT, password="secret-pw"
    ),
    "SMTPPool": lambda: pool(password="secret-pw"),
    "url": lambda: opened(url=f"smtp://:secret-pw@{HOST}:{PORT}"),
}


@pytest.mark.parametrize("call", PASSWORD_ONLY.values(), ids=PASSWORD_ONLY)
async def test_a_password_without_a_user_name_is_refused_before_connecting(call: Call) -> None:
    with pytest.raises(ValueError, match=r"password") as info:
        result = call()
        if isinstance(result, Awaitable):
            await result
    assert "secret-pw" not in str(info.value)


# -- several recipients in one str --------------------------------------------------------------

SEVERAL = [
    ("a@x.test, b@x.test", r"2 addresses \('a@x\.test', 'b@x\.test'\): pass a list"),
    ("a@x.test; b@x.test", r"2 addresses"),
    ("Ada <a@x.test>, Bob <b@x.test>", r"2 addresses"),
    ("Doe, Jane <jane@x.test>", r"a display name with a comma must be in quotes"),
]
TO_CALLS: dict[str, Callable[[str], Awaitable[object] | object]] = {
    "SMTP.sendmail": lambda to: client().sendmail("a@x.test", to, b""),
    "SMTP.send_message": lambda to: client().send_message(message(), to_addrs=to),
    "asmtp.sendmail": lambda to: asmtp.sendmail("a@x.test", to, b"", host=HOST, port=PORT),
    "asmtp.send_message": lambda to: asmtp.send_message(
        message(), to_addrs=to, host=HOST, port=PORT
    ),
    "SMTPPool.sendmail": lambda to: pool().sendmail("a@x.test", to, b""),
    "Outgoing": lambda to: asmtp.Outgoing("a@x.test", to, b""),
}


@pytest.mark.parametrize("call", TO_CALLS.values(), ids=TO_CALLS)
@pytest.mark.parametrize(("to", "pattern"), SEVERAL, ids=[to for to, _ in SEVERAL])
async def test_a_str_of_several_recipients_is_refused_saying_to_pass_a_list(
    call: Callable[[str], Awaitable[object] | object], to: str, pattern: str
) -> None:
    with pytest.raises(asmtp.BadArgument, match=pattern) as info:
        result = call(to)
        if isinstance(result, Awaitable):
            await result
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith("to_addrs is one str holding")


@pytest.mark.parametrize("to", ['"Doe, Jane" <jane@x.test>', "jane@x.test", "<jane@x.test>"])
async def test_one_recipient_in_a_str_is_sent_as_smtplib_sends_it(
    smtpd_server: ThreadedSMTPServer, to: str
) -> None:
    """A quoted display name may hold a comma: still one address."""
    async with asmtp.SMTP(HOST, smtpd_server.port, ME, timeout=5) as smtp:
        assert await smtp.sendmail("a@x.test", to, b"Subject: hi\r\n\r\nhi\r\n") == {}
    assert [d.rcpt_tos for d in smtpd_server.handler.deliveries] == [("jane@x.test",)]
