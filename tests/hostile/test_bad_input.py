"""Bad input from the caller: nothing that could break the framing ever reaches the wire.

CR, LF or NUL in any argument is a :class:`ValueError` (``asmtp.BadArgument``) raised
before the first byte of the command that would carry it, and the session stays in step
(the script, played in memory, checks the exact bytes it receives: only EHLO, then NOOP and
QUIT).
Non-ASCII addresses need SMTPUTF8; message bodies of every documented type are accepted and
anything else is a :class:`TypeError` before MAIL.
"""

from __future__ import annotations

import email.message
import email.policy
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Final

import pytest

import asmtp
from asmtp.protocol import Param
from support.aiosmtpd_server import RecordingHandler
from support.scripted import ExpectLine, smtp_script

from ._kit import EHLO_LOCKSTEP, EHLO_PIPELINING, GREETING, QUIT, client

if TYPE_CHECKING:
    from support.fixtures import MemoryServerFactory, SMTPDServerFactory

pytestmark = pytest.mark.anyio

NOOP: Final = (b"NOOP\r\n", b"250 in step\r\n")
EHLO_AUTH: Final = b"250-hostile.test\r\n250 AUTH PLAIN LOGIN\r\n"
EHLO_UTF8: Final = b"250-hostile.test\r\n250 SMTPUTF8\r\n"
SMUGGLED: Final = "\r\nRCPT TO:<evil@x.test>"

# (sender, recipients, mail options, rcpt options); one of them carries the bad bytes.
Envelope = tuple[str, Sequence[str], Sequence[Param], Sequence[Param]]
ENVELOPES: Final[list[object]] = [
    pytest.param(("a@x.test" + SMUGGLED, ["b@x.test"], (), ()), id="sender-crlf"),
    pytest.param(("a@x\n.test", ["b@x.test"], (), ()), id="sender-lf"),
    pytest.param(("a@x\0.test", ["b@x.test"], (), ()), id="sender-nul"),
    pytest.param(("a@x.test", ["b@x.test", "c@x.test" + SMUGGLED], (), ()), id="recipient-crlf"),
    pytest.param(("a@x.test", ["b@x.test", "c@x\r.test"], (), ()), id="recipient-cr"),
    pytest.param(("a@x.test", ["b@x\0.test"], (), ()), id="recipient-nul"),
    pytest.param(("a@x.test", ["b@x.test"], ["SIZE=10" + SMUGGLED], ()), id="mail-option-crlf"),
    pytest.param(("a@x.test", ["b@x.test"], [b"X=\0"], ()), id="mail-option-nul-bytes"),
    pytest.param(("a@x.test", ["b@x.test"], (), ["NOTIFY=NEVER\nRSET"]), id="rcpt-option-lf"),
    pytest.param(("a@x.test", ["b@x.test"], (), [b"X=1\r"]), id="rcpt-option-cr-bytes"),
]


@pytest.mark.parametrize("pipelining", [False, True], ids=["lockstep", "pipelined"])
@pytest.mark.parametrize("envelope", ENVELOPES)
async def test_crlf_or_nul_in_the_envelope_is_refused_before_any_byte(
    memory_server_factory: MemoryServerFactory, envelope: Envelope, pipelining: bool
) -> None:
    sender, recipients, mail_options, rcpt_options = envelope
    ehlo = EHLO_PIPELINING if pipelining else EHLO_LOCKSTEP
    server = memory_server_factory(
        smtp_script([(ExpectLine(b"EHLO"), ehlo), NOOP, QUIT], greeting=GREETING)
    )
    async with client(server.port, connector=server.connector) as smtp:
        with pytest.raises(ValueError, match=r"CR, LF or NUL|contains"):
            await smtp.sendmail(sender, recipients, b"body\r\n", mail_options, rcpt_options)
        assert await smtp.noop() == (250, b"in step")
    server.check()
    assert server.received == b"EHLO client.test\r\nNOOP\r\nQUIT\r\n"


async def _mail(smtp: asmtp.SMTP) -> object:
    return await smtp.mail("a@x.test" + SMUGGLED)


async def _rcpt(smtp: asmtp.SMTP) -> object:
    return await smtp.rcpt("b@x.test", ["NOTIFY=NEVER" + SMUGGLED])


async def _ehlo(smtp: asmtp.SMTP) -> object:
    return await smtp.ehlo("client.test" + SMUGGLED)


async def _helo(smtp: asmtp.SMTP) -> object:
    return await smtp.helo("client\0.test")


async def _docmd_args(smtp: asmtp.SMTP) -> object:
    return await smtp.docmd("NOOP", "x" + SMUGGLED)


async def _docmd_verb(smtp: asmtp.SMTP) -> object:
    return await smtp.docmd("NOOP\r\nRSET")


async def _docmd_nul(smtp: asmtp.SMTP) -> object:
    return await smtp.docmd("NOOP", "\0")


async def _verify(smtp: asmtp.SMTP) -> object:
    return await smtp.verify("b@x.test\r\nEXPN all")


async def _expn(smtp: asmtp.SMTP) -> object:
    return await smtp.expn("staff\nQUIT")


async def _help(smtp: asmtp.SMTP) -> object:
    return await smtp.help("x\r\nRSET")


COMMANDS: Final[dict[str, Callable[[asmtp.SMTP], Awaitable[object]]]] = {
    "mail": _mail,
    "rcpt-option": _rcpt,
    "ehlo-name": _ehlo,
    "helo-name": _helo,
    "docmd-args": _docmd_args,
    "docmd-verb": _docmd_verb,
    "docmd-nul": _docmd_nul,
    "verify": _verify,
    "expn": _expn,
    "help": _help,
}


@pytest.mark.parametrize("name", list(COMMANDS))
async def test_crlf_or_nul_in_a_command_argument_is_refused_before_any_byte(
    memory_server_factory: MemoryServerFactory, name: str
) -> None:
    server = memory_server_factory(
        smtp_script([(ExpectLine(b"EHLO"), EHLO_LOCKSTEP), NOOP, QUIT], greeting=GREETING)
    )
    async with client(server.port, connector=server.connector) as smtp:
        await smtp.ehlo()
        with pytest.raises(ValueError):
            await COMMANDS[name](smtp)
        assert await smtp.noop() == (250, b"in step")
    server.check()


async def test_crlf_in_local_hostname_is_refused_before_ehlo(
    memory_server_factory: MemoryServerFactory,
) -> None:
    server = memory_server_factory(smtp_script([NOOP, QUIT], greeting=GREETING))
    smtp = asmtp.SMTP(
        server.host, server.port, "client.test" + SMUGGLED, 2.0, connector=server.connector
    )
    async with smtp:
        with pytest.raises(ValueError):
            await smtp.sendmail("a@x.test", "b@x.test", b"body\r\n")
        assert await smtp.noop() == (250, b"in step")
    server.check()
    assert server.received == b"NOOP\r\nQUIT\r\n"


@pytest.mark.parametrize("bad", ["\r", "\n", "\0"], ids=["cr", "lf", "nul"])
@pytest.mark.parametrize("field", ["user", "password"])
async def test_crlf_or_nul_in_login_credentials_is_refused_before_auth(
    memory_server_factory: MemoryServerFactory, field: str, bad: str
) -> None:
    """PLAIN separates its fields with NUL (RFC 4616: neither may contain one)."""
    server = memory_server_factory(
        smtp_script([(ExpectLine(b"EHLO"), EHLO_AUTH), NOOP, QUIT], greeting=GREETING)
    )
    user, password = ("us" + bad + "er", "password") if field == "user" else ("user", "pa" + bad)
    async with client(server.port, connector=server.connector) as smtp:
        with pytest.raises(ValueError):
            await smtp.login(user, password, mechanisms=["PLAIN"])
        assert await smtp.noop() == (250, b"in step")
    server.check()


@pytest.mark.parametrize(
    ("sender", "recipient"),
    [("ü@x.test", "b@x.test"), ("a@x.test", "björn@x.test")],
    ids=["sender", "recipient"],
)
async def test_non_ascii_address_needs_smtputf8(
    memory_server_factory: MemoryServerFactory, sender: str, recipient: str
) -> None:
    server = memory_server_factory(
        smtp_script(
            [
                (ExpectLine(b"EHLO"), EHLO_LOCKSTEP),
                NOOP,
                (ExpectLine(b"EHLO"), EHLO_UTF8),
                (f"MAIL FROM:<{sender}> SMTPUTF8\r\n".encode(), b"250 ok\r\n"),
                (f"RCPT TO:<{recipient}>\r\n".encode(), b"250 ok\r\n"),
                (b"DATA\r\n", b"354 go\r\n"),
                (b"body\r\n.\r\n", b"250 queued\r\n"),
                QUIT,
            ],
            greeting=GREETING,
        )
    )
    async with client(server.port, connector=server.connector) as smtp:
        with pytest.raises(asmtp.SMTPNotSupportedError):
            await smtp.sendmail(sender, recipient, b"body\r\n")
        assert await smtp.noop() == (250, b"in step")
        await smtp.ehlo()  # the server now offers SMTPUTF8
        assert await smtp.sendmail(sender, recipient, b"body\r\n") == {}
    server.check()


def _legacy_message() -> email.message.Message:
    msg = email.message.Message()
    msg["Subject"] = "legacy"
    msg.set_payload("hello\n.dot line\n")
    return msg


def _modern_message() -> email.message.EmailMessage:
    msg = email.message.EmailMessage(policy=email.policy.SMTP)
    msg["Subject"] = "modern"
    msg.set_content("héllo wörld\n", cte="8bit")
    return msg


def _flattened(msg: email.message.Message) -> bytes:
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


@pytest.mark.parametrize(
    ("body", "delivered"),
    [
        pytest.param("Subject: é\n\nhéllo ✉\n", "Subject: é\r\n\r\nhéllo ✉\r\n".encode(), id="str"),
        pytest.param(
            b"Subject: b\r\n\r\n\xff\xfe\r\n", b"Subject: b\r\n\r\n\xff\xfe\r\n", id="bytes"
        ),
        pytest.param(bytearray(b"S: x\n\nba\n"), b"S: x\r\n\r\nba\r\n", id="bytearray"),
        pytest.param(memoryview(b"S: x\n\nmv\n"), b"S: x\r\n\r\nmv\r\n", id="memoryview"),
        pytest.param([b"S: x\r\n", b"\r\nlist\r\n"], b"S: x\r\n\r\nlist\r\n", id="list-of-bytes"),
        pytest.param(_legacy_message(), _flattened(_legacy_message()), id="Message"),
        pytest.param(_modern_message(), _flattened(_modern_message()), id="EmailMessage"),
    ],
)
async def test_every_documented_body_type_is_delivered(
    smtpd_server_factory: SMTPDServerFactory, body: object, delivered: bytes
) -> None:
    """The str body's UTF-8 header needs SMTPUTF8, which this server offers."""
    server = smtpd_server_factory(RecordingHandler(), enable_SMTPUTF8=True)
    async with client(server.port, connector=server.connector) as smtp:
        assert await smtp.sendmail("a@x.test", "b@x.test", body) == {}
    (delivery,) = server.handler.wait_for_deliveries(1)
    assert delivery.content == delivered


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(42, id="int"),
        pytest.param(3.5, id="float"),
        pytest.param(None, id="None"),
        pytest.param({"Subject": "x"}, id="dict-str"),
        pytest.param({b"Subject: x\r\n": b""}, id="dict-bytes"),
        pytest.param(["Subject: x\r\n", "\r\nbody\r\n"], id="list-of-str"),
        pytest.param(("a", b"b"), id="tuple-mixed"),
        pytest.param({"a", "b"}, id="set-of-str"),
        pytest.param(object(), id="object"),
    ],
)
async def test_a_body_of_the_wrong_type_is_a_type_error_before_mail(
    memory_server_factory: MemoryServerFactory, body: object
) -> None:
    server = memory_server_factory(
        smtp_script([(ExpectLine(b"EHLO"), EHLO_PIPELINING), NOOP, QUIT], greeting=GREETING)
    )
    async with client(server.port, connector=server.connector) as smtp:
        await smtp.ehlo()
        with pytest.raises(TypeError):
            await smtp.sendmail("a@x.test", "b@x.test", body)
        assert await smtp.noop() == (250, b"in step")
    server.check()
    assert b"MAIL" not in server.received
