"""Messages given as objects: what the recipients and the server get to see.

Wherever asmtp takes an ``email.message.Message`` (``sendmail``, ``sendmail_many``, the
pool, the one-shot functions, ``send_message``) it flattens it the same way: ``Bcc`` and
``Resent-Bcc`` are removed, and a header that would not come out as one header field
(header injection, the CVE-2024-6923 class, which the ``email`` generator of this
interpreter lets through) is refused with :class:`asmtp.MalformedHeaderError` before any
byte of the message is written. The caller's message object is never changed.

What asmtp encodes itself (a ``str`` as UTF-8, a message it flattens) is declared in MAIL
when it is 8-bit (``BODY=8BITMIME``, and ``SMTPUTF8`` for UTF-8 in the header block), or
refused with :class:`asmtp.EightBitNotSupportedError` before MAIL when the server cannot
take it; bytes the caller gives are theirs to declare.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import asmtp
from asmtp._client._source import to_source
from support.aiosmtpd_server import RecordingHandler
from support.scripted import ExpectLine, smtp_script

from ._kit import GREETING, HOST, QUIT, TIMEOUT, client

if TYPE_CHECKING:
    from support.aiosmtpd_server import ThreadedSMTPServer
    from support.fixtures import MemoryServerFactory, SMTPDServerFactory

pytestmark = pytest.mark.anyio

SENDER: Final = "a@x.test"
TO: Final = "b@x.test"
HIDDEN: Final = "hidden@x.test"
RESENT_DATE: Final = "Mon, 1 Jan 2024 00:00:00 +0000"
NOOP: Final = (b"NOOP\r\n", b"250 in step\r\n")

Send = Callable[["ThreadedSMTPServer", email.message.Message], Awaitable[object]]


async def _smtp_sendmail(server: ThreadedSMTPServer, msg: email.message.Message) -> object:
    async with client(server.port) as smtp:
        return await smtp.sendmail(SENDER, [TO], msg)


async def _smtp_sendmail_many(server: ThreadedSMTPServer, msg: email.message.Message) -> object:
    async with client(server.port) as smtp:
        first, second = await smtp.sendmail_many(
            [asmtp.Outgoing(SENDER, [TO], msg), asmtp.Outgoing(SENDER, [TO], b"S: next\r\n\r\n")]
        )
        assert second == {}, "one message's bad header must not stop the next"
        if isinstance(first, Exception):
            raise first
        return first


async def _smtp_send_message(server: ThreadedSMTPServer, msg: email.message.Message) -> object:
    async with client(server.port) as smtp:
        return await smtp.send_message(msg, SENDER, [TO])


async def _pool_sendmail(server: ThreadedSMTPServer, msg: email.message.Message) -> object:
    async with asmtp.SMTPPool(HOST, server.port, tls="none", timeout=TIMEOUT) as pool:
        return await pool.sendmail(SENDER, [TO], msg)


async def _pool_send_message(server: ThreadedSMTPServer, msg: email.message.Message) -> object:
    async with asmtp.SMTPPool(HOST, server.port, tls="none", timeout=TIMEOUT) as pool:
        return await pool.send_message(msg, SENDER, [TO])


async def _one_shot_sendmail(server: ThreadedSMTPServer, msg: email.message.Message) -> object:
    return await asmtp.sendmail(
        SENDER, [TO], msg, host=HOST, port=server.port, tls="none", timeout=TIMEOUT
    )


async def _one_shot_send_message(server: ThreadedSMTPServer, msg: email.message.Message) -> object:
    return await asmtp.send_message(
        msg,
        from_addr=SENDER,
        to_addrs=[TO],
        host=HOST,
        port=server.port,
        tls="none",
        timeout=TIMEOUT,
    )


SENDS: Final[dict[str, Send]] = {
    "SMTP.sendmail": _smtp_sendmail,
    "SMTP.sendmail_many": _smtp_sendmail_many,
    "SMTP.send_message": _smtp_send_message,
    "SMTPPool.sendmail": _pool_sendmail,
    "SMTPPool.send_message": _pool_send_message,
    "asmtp.sendmail": _one_shot_sendmail,
    "asmtp.send_message": _one_shot_send_message,
}


def _new(kind: str) -> email.message.Message:
    return email.message.Message() if kind == "Message" else email.message.EmailMessage()


def _with_hidden_recipient(kind: str, header: str) -> email.message.Message:
    msg = _new(kind)
    msg["From"], msg["To"], msg["Subject"] = SENDER, TO, "with a hidden copy"
    if header == "Resent-Bcc":
        msg["Resent-Date"], msg["Resent-From"], msg["Resent-To"] = RESENT_DATE, SENDER, TO
    msg[header] = HIDDEN
    msg.set_payload("hello\r\n")
    return msg


# -- Bcc never reaches the wire -----------------------------------------------------------------


@pytest.mark.parametrize("header", ["Bcc", "Resent-Bcc"])
@pytest.mark.parametrize("kind", ["Message", "EmailMessage"])
@pytest.mark.parametrize("send", list(SENDS))
async def test_bcc_headers_never_reach_the_wire_and_the_callers_message_is_unchanged(
    smtpd_server: ThreadedSMTPServer, send: str, kind: str, header: str
) -> None:
    """``sendmail(msg=Message)`` used to flatten the message as it was, so every recipient
    saw the hidden ones; now every entry point strips them, as send_message always did."""
    msg = _with_hidden_recipient(kind, header)
    headers_before = msg.items()
    assert await SENDS[send](smtpd_server, msg) == {}
    delivery = smtpd_server.handler.wait_for_deliveries(1)[0]
    assert b"Subject: with a hidden copy" in delivery.content
    assert HIDDEN.encode() not in delivery.content
    assert not re.search(rb"(?im)^(resent-)?bcc:", delivery.content)
    assert msg.items() == headers_before


# -- header injection ---------------------------------------------------------------------------


def _compat32(name: str, value: str) -> email.message.Message:
    msg = email.message.Message()
    msg["Subject"] = "hostile"
    msg[name] = value
    msg.set_payload("body\r\n")
    return msg


def _raw(name: str, value: str) -> email.message.Message:
    """EmailMessage refuses CR and LF in ``msg[name] = value``, but not in set_raw()."""
    msg = email.message.EmailMessage()
    msg["Subject"] = "hostile"
    msg.set_raw(name, value)
    msg.set_payload("body\r\n")
    return msg


def _in_an_attachment(name: str, value: str) -> email.message.Message:
    msg = email.message.EmailMessage()
    msg["Subject"] = "hostile"
    msg.set_content("body\n")
    msg.add_attachment(b"data", maintype="application", subtype="octet-stream")
    [attachment] = msg.iter_attachments()
    attachment.set_raw(name, value)
    return msg


def _parsed(name: str, value: str) -> email.message.Message:
    """A message as received, to be forwarded: a long header is refolded on the way out,
    from its decoded form, where an encoded word can hold CR LF (CVE-2024-6923)."""
    source = f"Subject: hostile\r\n{name}: {'x' * 70} {value}\r\n\r\nbody\r\n"
    return email.message_from_bytes(source.encode(), policy=email.policy.default)


HOSTILE: Final = [
    pytest.param(_compat32, "X-Note", "hi\r\nBcc: evil@x.test", id="Message-crlf-field"),
    pytest.param(_compat32, "X-Note", "hi\r\n\r\nforged body", id="Message-blank-line"),
    pytest.param(_compat32, "X-Note", "hi\rX-Evil: 1", id="Message-bare-cr"),
    pytest.param(_compat32, "X-Note", "trailing break\n", id="Message-trailing-lf"),
    pytest.param(_compat32, "X-Note:Forged", "v", id="Message-colon-in-name"),
    pytest.param(_compat32, "Bad Name", "v", id="Message-space-in-name"),
    pytest.param(_raw, "X-Note", "hi\r\nBcc: evil@x.test", id="set_raw-crlf-field"),
    pytest.param(_raw, "X-Note", "last\r\n\r\nforged body", id="set_raw-blank-line-ends-headers"),
    pytest.param(_raw, "X-Note", "a\u2028Bcc: evil@x.test", id="set_raw-line-separator"),
    pytest.param(_raw, "X-Note", "a\x85X-Evil: 1", id="set_raw-next-line"),
    pytest.param(_raw, "X-Note", "a\x0bX-Evil: 1", id="set_raw-vertical-tab"),
    pytest.param(_raw, "X-Note", "a\r\n \r\n b", id="set_raw-whitespace-only-line"),
    pytest.param(_in_an_attachment, "X-Note", "a\r\n\r\n--forged", id="attachment-header"),
    pytest.param(
        _parsed, "X-Note", "=?utf-8?q?a=0D=0ABcc:_evil@x.test?=", id="parsed-encoded-crlf"
    ),
    pytest.param(_parsed, "X-Note", "=?utf-8?b?DQoNCmZvcmdlZA==?=", id="parsed-encoded-blank-line"),
]


@pytest.mark.parametrize(("build", "name", "value"), HOSTILE)
@pytest.mark.parametrize("send", list(SENDS))
async def test_a_header_that_is_not_one_field_is_refused_before_any_byte_of_the_message(
    smtpd_server: ThreadedSMTPServer,
    send: str,
    build: Callable[[str, str], email.message.Message],
    name: str,
    value: str,
) -> None:
    """The generator here writes such a value's line breaks as they are (no CVE-2024-6923
    fix): the value would become a header field of its own, or end the header block."""
    msg = build(name, value)
    with pytest.raises(asmtp.MalformedHeaderError) as info:
        await SENDS[send](smtpd_server, msg)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, asmtp.BadArgument)
    assert repr(name[:20]) in str(info.value)
    expected = ["MAIL", "RCPT", "DATA"] if send == "SMTP.sendmail_many" else []  # the next one
    assert [c.split()[0] for c in smtpd_server.handler.commands if c[:4] != "EHLO"][:-1] == expected
    assert len(smtpd_server.handler.deliveries) == len(expected) // 3


async def test_the_session_stays_usable_after_a_refused_message(
    smtpd_server: ThreadedSMTPServer,
) -> None:
    async with client(smtpd_server.port) as smtp:
        with pytest.raises(asmtp.MalformedHeaderError, match="line break"):
            await smtp.sendmail(SENDER, [TO], _raw("X-Note", "hi\r\nBcc: evil@x.test"))
        assert await smtp.noop() == (250, b"2.0.0 OK")
        assert await smtp.sendmail(SENDER, [TO], _raw("X-Note", "hi\r\n folded")) == {}
    [delivery] = smtpd_server.handler.deliveries
    assert b"X-Note: hi\r\n folded\r\n" in delivery.content


LINE_BREAKS: Final = ["\r\n", "\r", "\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]  # fmt: skip
ENCODED_BREAKS: Final = [
    "=?utf-8?q?a=0D=0ABcc:_evil@x.test?=",
    "=?utf-8?q?=0A=0A?=",
    "=?utf-8?b?DQo=?=",
]
PIECES: Final = [
    *LINE_BREAKS,
    *ENCODED_BREAKS,
    *(" ", "\t", ":", "Bcc: evil@x.test", "X-Evil: 1", "x" * 90, "é"),
]
VALUES: Final = st.lists(
    st.one_of(st.sampled_from(PIECES), st.text(st.characters(codec="utf-8"), max_size=6)),
    max_size=12,
).map("".join)
HEADERS: Final = ("Subject", "X-Note", "Comments")


def _independent_header_lines(data: bytes) -> list[bytes]:
    """The header block's lines as a server splits them (any CR, LF or CRLF ends one)."""
    block = re.split(rb"\r\n\r\n|\r\n\n|\n\r\n|\n\n|\r\r", data, maxsplit=1)[0]
    return re.split(rb"\r\n|\r|\n", block)


def _hypothetical(kind: str, value: str, position: int) -> email.message.Message:
    """``Message`` takes the value as it is; ``EmailMessage`` through set_raw(), since its
    ``msg[name] = value`` refuses CR and LF itself; "parsed" as received, on one line."""
    values = ["ok"] * len(HEADERS)
    values[position] = value
    if kind == "parsed":
        values[position] = re.sub(r"\s", " ", value)  # a source line holds no line break
        lines = "".join(f"{name}: {text}\r\n" for name, text in zip(HEADERS, values, strict=True))
        return email.message_from_bytes(
            f"{lines}\r\nbody\r\n".encode(), policy=email.policy.default
        )
    msg = email.message.EmailMessage() if kind == "EmailMessage" else email.message.Message()
    for name, text in zip(HEADERS, values, strict=True):
        if isinstance(msg, email.message.EmailMessage):
            msg.set_raw(name, text)
        else:
            msg[name] = text
    msg.set_payload("body\r\n")
    return msg


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=VALUES,
    position=st.integers(0, len(HEADERS) - 1),
    kind=st.sampled_from(["Message", "EmailMessage", "parsed"]),
)
@example(value="hi\r\n\r\nforged body", position=2, kind="EmailMessage")
@example(value="hi\r\nBcc: evil@x.test", position=0, kind="Message")
@example(value="a\u2028X-Evil: 1", position=1, kind="EmailMessage")
@example(value="x" * 80 + " =?utf-8?q?a=0D=0ABcc:_evil@x.test?=", position=0, kind="parsed")
@example(value="x" * 97 + ":\u00e9  ", position=2, kind="parsed")  # refolded: spaces alone
def test_no_header_value_adds_a_field_or_moves_the_end_of_the_header_block(
    value: str, position: int, kind: str
) -> None:
    """Either the message is refused, or a parser sees exactly its fields and its body."""
    msg = _hypothetical(kind, value, position)
    try:
        data = to_source(msg)
    except asmtp.MalformedHeaderError:
        # An encoded word may decode to a line break where the generator refolds the source.
        possible = LINE_BREAKS if kind == "Message" else [*LINE_BREAKS, "=?"]
        assert any(each in value for each in possible), "refused a harmless value"
        return
    except UnicodeEncodeError:
        # set_raw() skips the encoding msg[name] = value does, and the generator cannot
        # refold a received header's raw 8-bit bytes: the email package's own limits.
        assert kind != "Message" and not value.isascii()
        return
    assert isinstance(data, bytes)
    parsed = email.message_from_bytes(data, policy=email.policy.compat32)
    assert [name.lower() for name in parsed.keys()] == [name.lower() for name in msg.keys()]
    assert parsed.get_payload() == "body\r\n"
    assert not parsed.defects
    for line in _independent_header_lines(data):
        assert re.match(rb"[\x21-\x39\x3b-\x7e]+:|[ \t]+[^ \t]", line), line


def _sloppy_policy(extra: bytes) -> email.policy.EmailPolicy:
    """A policy whose folding of X-Note appends ``extra``: a stand-in for any generator
    behaviour the checks on the values did not foresee."""

    class Sloppy(email.policy.EmailPolicy):
        def fold_binary(self, name: str, value: str) -> bytes:
            folded = super().fold_binary(name, value)
            return folded + extra if name == "X-Note" else folded

    return Sloppy()


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (b"forged line\r\n", "line 3 .* is neither a header field nor a folded continuation"),
        (b"Bcc: evil@x.test\r\n", "line 3 .* is a field the message does not have there"),
        (b"\r\nforged body\r\n", "ends before the message's header 'Comments'"),
        (b" \t\nforged\r\n", "line 3 .* is not a folded continuation"),
        (b" folded\nforged\r\n", "line 4 .* is neither"),
    ],
    ids=["non-field-line", "extra-field", "early-blank-line", "blank-continuation-lf", "bare-lf"],
)
def test_the_flattened_header_block_is_checked_whatever_the_generator_wrote(
    extra: bytes, problem: str
) -> None:
    msg = email.message.EmailMessage(policy=_sloppy_policy(extra))
    msg["Subject"], msg["X-Note"], msg["Comments"] = "checked", "note", "last"
    msg.set_payload("body\r\n")
    with pytest.raises(asmtp.MalformedHeaderError, match=problem):
        to_source(msg)


@pytest.mark.parametrize("extra", [b" \t\r\n", b" \r\n\t\r\n"])
def test_a_continuation_line_of_whitespace_alone_is_left_out(extra: bytes) -> None:
    """RFC 5322 §3.2.2 has no place for it and some parsers end the header block there:
    it carries only whitespace, so it is dropped rather than the message refused."""
    msg = email.message.EmailMessage(policy=_sloppy_policy(extra))
    msg["Subject"], msg["X-Note"], msg["Comments"] = "checked", "note", "last"
    msg.set_payload("body\r\n")
    data = to_source(msg)
    assert data == b"Subject: checked\r\nX-Note: note\r\nComments: last\r\n\r\nbody\r\n"


def test_a_body_line_of_whitespace_alone_is_sent_as_it_is() -> None:
    """Only the header block loses such lines, even in a message without header fields."""
    body = "line\r\n \t\r\nline\r\n\r\nmore\r\n"
    bare = email.message.Message()
    bare.set_payload(body)
    assert to_source(bare) == b"\r\n" + body.encode()
    with_header = email.message.Message()
    with_header["Subject"] = "x"
    with_header.set_payload(body)
    assert to_source(with_header) == b"Subject: x\r\n\r\n" + body.encode()


def test_a_refolded_value_ending_in_whitespace_is_sent() -> None:
    """email's folder writes the trailing spaces of this received value on a line of their
    own, after the encoded words."""
    value = "x" * 97 + ":\u00e9  "
    received = f"Comments: {value}\r\n\r\nbody\r\n".encode()
    msg = email.message_from_bytes(received, policy=email.policy.default)
    data = to_source(msg)
    assert isinstance(data, bytes)
    assert data.endswith(b"=3A=C3=A9?=\r\n\r\nbody\r\n")
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert str(parsed["Comments"]) == value.rstrip()


def test_the_transfer_encoding_the_generator_adds_itself_is_not_taken_for_an_injection() -> None:
    """A 7-bit policy re-encodes a received 8-bit body and adds Content-Transfer-Encoding."""
    received = b"Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nh\xc3\xa9llo\r\n"
    msg = email.message_from_bytes(received, policy=email.policy.compat32.clone(cte_type="7bit"))
    data = to_source(msg)
    assert isinstance(data, bytes)
    assert b"\r\nContent-Transfer-Encoding: base64\r\n\r\naMOpbGxvDQo=\r\n" in data
    assert "Content-Transfer-Encoding" not in msg


@pytest.mark.parametrize("kind", ["Message", "EmailMessage"])
async def test_folded_and_non_ascii_headers_still_go_out(
    smtpd_server_factory: SMTPDServerFactory, kind: str
) -> None:
    """Folding whitespace after a line break is a continuation, not an injection."""
    server = smtpd_server_factory(RecordingHandler())
    msg = _new(kind)
    msg["Subject"] = "a subject long enough to be folded by the generator " * 3
    msg["X-Name"] = "Zoë"
    if isinstance(msg, email.message.EmailMessage):
        msg.set_raw("X-Folded", "first\r\n\tsecond")
    msg.set_payload("body\r\n")
    async with client(server.port) as smtp:
        assert await smtp.sendmail(SENDER, [TO], msg) == {}
    [delivery] = server.handler.deliveries
    parsed = email.message_from_bytes(delivery.content, policy=email.policy.default)
    assert parsed["Subject"].split() == msg["Subject"].split()
    assert parsed["X-Name"] == "Zoë"


# -- 8-bit content asmtp encodes is declared, or refused before MAIL ----------------------------


def _eight_bit_body_message() -> email.message.Message:
    msg = email.message.EmailMessage()
    msg["Subject"] = "8-bit body"
    msg.set_content("héllo wörld\n", cte="8bit")
    return msg


def _received_utf8_header() -> email.message.Message:
    """A message as received with a raw UTF-8 header, which the generator writes back raw."""
    return email.message_from_bytes(
        "Subject: café\r\n\r\nhi\r\n".encode(), policy=email.policy.compat32
    )


# (what is sent, the MAIL parameters besides SIZE= that must declare it)
EIGHT_BIT: Final = [
    pytest.param("Subject: hi\r\n\r\nhéllo\r\n", {"BODY=8BITMIME"}, id="str-8bit-body"),
    pytest.param("Subject: café\n\nhi\n", {"SMTPUTF8", "BODY=8BITMIME"}, id="str-utf8-header"),
    pytest.param("Subject: hi\r\n\r\nhello\r\n", set(), id="str-ascii"),
    pytest.param(_eight_bit_body_message(), {"BODY=8BITMIME"}, id="Message-8bit-body"),
    pytest.param(_received_utf8_header(), {"SMTPUTF8", "BODY=8BITMIME"}, id="Message-utf8-header"),
    pytest.param("Subject: hi\r\n\r\nh\xe9llo\r\n".encode(), set(), id="bytes-are-the-callers"),
]


async def _one_shot_any(server: ThreadedSMTPServer, msg: object) -> object:
    return await asmtp.sendmail(
        SENDER, [TO], msg, host=HOST, port=server.port, tls="none", timeout=TIMEOUT
    )


async def _pool_any(server: ThreadedSMTPServer, msg: object) -> object:
    async with asmtp.SMTPPool(HOST, server.port, tls="none", timeout=TIMEOUT) as pool:
        return await pool.sendmail(SENDER, [TO], msg)


async def _sendmail_many_any(server: ThreadedSMTPServer, msg: object) -> object:
    async with client(server.port) as smtp:
        [result] = await smtp.sendmail_many([asmtp.Outgoing(SENDER, [TO], msg)])
    if isinstance(result, Exception):
        raise result
    return result


async def _sendmail_any(server: ThreadedSMTPServer, msg: object) -> object:
    async with client(server.port) as smtp:
        return await smtp.sendmail(SENDER, [TO], msg)


async def _send_message_any(server: ThreadedSMTPServer, msg: object) -> object:
    assert isinstance(msg, email.message.Message)
    async with client(server.port) as smtp:
        return await smtp.send_message(msg, SENDER, [TO])


ANY_SENDS: Final[dict[str, Callable[[ThreadedSMTPServer, object], Awaitable[object]]]] = {
    "SMTP.sendmail": _sendmail_any,
    "SMTP.sendmail_many": _sendmail_many_any,
    "SMTP.send_message": _send_message_any,
    "SMTPPool.sendmail": _pool_any,
    "asmtp.sendmail": _one_shot_any,
}


@pytest.mark.parametrize(
    ("send", "msg", "declared"),
    [
        pytest.param(send, *case.values, id=f"{send}-{case.id}")
        for send in ANY_SENDS
        for case in EIGHT_BIT
        if send != "SMTP.send_message" or isinstance(case.values[0], email.message.Message)
    ],
)
async def test_8bit_content_asmtp_encodes_is_declared_in_mail(
    smtpd_server_factory: SMTPDServerFactory, send: str, msg: object, declared: set[str]
) -> None:
    """aiosmtpd offering 8BITMIME and SMTPUTF8: a non-ASCII str (UTF-8) or an 8-bit
    flattened message says so in MAIL; ASCII text costs nothing, and bytes the caller
    gives are sent as given, as smtplib does."""
    server = smtpd_server_factory(RecordingHandler(), enable_SMTPUTF8=True)
    assert await ANY_SENDS[send](server, msg) == {}
    [delivery] = server.handler.wait_for_deliveries(1)
    assert {o for o in delivery.mail_options if not o.startswith("SIZE=")} == declared


EHLO_PLAIN: Final = b"250 hostile.test\r\n"
EHLO_8BITMIME: Final = b"250-hostile.test\r\n250 8BITMIME\r\n"


@pytest.mark.parametrize(
    ("how", "ehlo", "msg", "reason"),
    [
        pytest.param("sendmail", EHLO_PLAIN, "S: hi\r\n\r\nhéllo\r\n", "8BITMIME", id="str-body"),
        pytest.param(
            "sendmail", EHLO_8BITMIME, "S: café\r\n\r\nhi\r\n", "SMTPUTF8", id="str-header"
        ),
        pytest.param("sendmail", None, "S: hi\r\n\r\nhéllo\r\n", "ESMTP", id="helo-only-server"),
        *(
            pytest.param(how, ehlo, build(), reason, id=f"{how}-{name}")
            for how in ("sendmail", "send_message")
            for ehlo, build, reason, name in [
                (EHLO_PLAIN, _eight_bit_body_message, "8BITMIME", "Message-body"),
                (EHLO_8BITMIME, _received_utf8_header, "SMTPUTF8", "Message-header"),
                (None, _eight_bit_body_message, "ESMTP", "Message-helo-only-server"),
            ]
        ),
    ],
)
async def test_8bit_content_the_server_cannot_take_is_refused_before_mail(
    memory_server_factory: MemoryServerFactory,
    ehlo: bytes | None,
    msg: object,
    reason: str,
    how: str,
) -> None:
    """Before, the UTF-8 went out undeclared; smtplib raises UnicodeEncodeError here."""
    greeting = (
        [(ExpectLine(b"EHLO"), ehlo)]
        if ehlo
        else [
            (ExpectLine(b"EHLO"), b"502 5.5.1 no EHLO here\r\n"),
            (ExpectLine(b"HELO"), b"250 hostile.test\r\n"),
        ]
    )
    server = memory_server_factory(smtp_script([*greeting, NOOP, QUIT], greeting=GREETING))
    async with client(server.port, connector=server.connector) as smtp:
        with pytest.raises(asmtp.EightBitNotSupportedError, match=reason) as info:
            if isinstance(msg, email.message.Message) and how == "send_message":
                await smtp.send_message(msg, SENDER, [TO])
            else:
                await smtp.sendmail(SENDER, [TO], msg)
        assert isinstance(info.value, ValueError)
        assert await smtp.noop() == (250, b"in step")
    server.check()
    assert b"MAIL" not in server.received


@pytest.mark.parametrize(
    ("text", "options", "sent"),
    [
        ("Subject: hi\r\n\r\nhéllo\r\n", ["BODY=7BIT"], {"BODY=7BIT"}),
        ("Subject: café\r\n\r\nhéllo\r\n", ["BODY=7BIT"], {"BODY=7BIT", "SMTPUTF8"}),
        ("Subject: café\r\n\r\nhéllo\r\n", ["SMTPUTF8"], {"SMTPUTF8", "BODY=8BITMIME"}),
        ("Subject: café\r\n\r\n", ["SMTPUTF8", "BODY=8BITMIME"], {"SMTPUTF8", "BODY=8BITMIME"}),
    ],
    ids=["body-kept", "body-kept-smtputf8-added", "smtputf8-once", "all-given"],
)
async def test_the_callers_own_declarations_are_kept_and_not_repeated(
    smtpd_server_factory: SMTPDServerFactory, text: str, options: list[str], sent: set[str]
) -> None:
    """A BODY= the caller gave is theirs; SMTPUTF8 is still added when the header needs it."""
    server = smtpd_server_factory(RecordingHandler(), enable_SMTPUTF8=True)
    async with client(server.port) as smtp:
        await smtp.sendmail(SENDER, [TO], text, options)
    [delivery] = server.handler.deliveries
    declared = [o for o in delivery.mail_options if not o.startswith("SIZE=")]
    assert sorted(declared) == sorted(sent)


async def test_an_8bit_str_going_by_bdat_is_declared_binarymime(
    memory_server_factory: MemoryServerFactory,
) -> None:
    """A server offering CHUNKING and BINARYMIME but not 8BITMIME: BODY=BINARYMIME
    (RFC 3030 §3) declares the 8-bit body, so nothing is refused."""
    wire = "Subject: hi\r\n\r\nhéllo\r\n".encode()
    ehlo = b"250-hostile.test\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 BINARYMIME\r\n"
    envelope = b"MAIL FROM:<a@x.test> BODY=BINARYMIME\r\nRCPT TO:<b@x.test>\r\n"
    server = memory_server_factory(
        smtp_script(
            [
                (ExpectLine(b"EHLO"), ehlo),
                (envelope + b"BDAT %d LAST\r\n" % len(wire) + wire, b"250 ok\r\n" * 3),
                QUIT,
            ],
            greeting=GREETING,
        )
    )
    async with client(server.port, connector=server.connector) as smtp:
        assert await smtp.sendmail(SENDER, [TO], "Subject: hi\n\nhéllo\n") == {}
    server.check()
