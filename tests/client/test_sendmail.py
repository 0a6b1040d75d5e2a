"""SMTP.sendmail against aiosmtpd: results, refusals, RSET, disconnects, options and sources.

Every test starts its own aiosmtpd server (127.0.0.1, ephemeral port; one script in memory
where aiosmtpd cannot help) and runs on asyncio, trio and uvloop. The RecordingHandler shows what the server saw: hook calls in order and the
delivered bytes after the server undid the dot-stuffing.
"""

from __future__ import annotations

import email.message
import io
import smtplib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import asmtp
from client._kit import agen, closing, smtp, verbs
from support.aiosmtpd_server import RecordingHandler
from support.scripted import ExpectData, ExpectLine, smtp_script

if TYPE_CHECKING:
    from support.aiosmtpd_server import ThreadedSMTPServer
    from support.fixtures import MemoryServerFactory, SMTPDServerFactory

pytestmark = pytest.mark.anyio

BODY = b"Subject: hi\r\n\r\n.starts with a dot\r\n..two dots\r\nlast line\r\n"


async def test_success_returns_empty_dict_and_server_gets_the_exact_bytes(
    smtpd_server: ThreadedSMTPServer,
) -> None:
    """aiosmtpd: bare LF becomes CRLF, dots are stuffed on the wire and unstuffed by the
    server, and a missing final line ending is added."""
    sent = b"Subject: hi\n\n.starts with a dot\n..two dots\r\nlast line"
    async with smtp(smtpd_server) as client:
        assert await client.sendmail("a@x.test", ["b@x.test", "c@x.test"], sent) == {}
    [delivery] = smtpd_server.handler.deliveries
    assert delivery.content == BODY
    assert (delivery.mail_from, delivery.rcpt_tos) == ("a@x.test", ("b@x.test", "c@x.test"))
    assert verbs(smtpd_server.handler.commands) == ["EHLO", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"]


async def test_partial_refusal_names_exactly_the_refused_recipients(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """aiosmtpd: the refused dict maps each refused recipient to (code, bytes message)."""
    handler = RecordingHandler(
        refuse_recipients={
            "nobody@x.test": "550 5.1.1 no such user",
            "full@x.test": "452 4.2.2 mailbox full",
        }
    )
    server = smtpd_server_factory(handler)
    recipients = ["nobody@x.test", "b@x.test", "full@x.test"]
    async with smtp(server) as client:
        refused = await client.sendmail("a@x.test", recipients, BODY)
    assert refused == {
        "nobody@x.test": (550, b"5.1.1 no such user"),
        "full@x.test": (452, b"4.2.2 mailbox full"),
    }
    assert [(d.rcpt_tos, d.content) for d in handler.deliveries] == [(("b@x.test",), BODY)]


async def test_all_recipients_refused_raises_with_recipients_and_sends_rset(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """aiosmtpd: SMTPRecipientsRefused.recipients holds every refusal; RSET follows."""
    handler = RecordingHandler(
        refuse_recipients={"b@x.test": "550 5.1.1 no b", "c@x.test": "551 5.1.6 moved"}
    )
    server = smtpd_server_factory(handler)
    async with smtp(server) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            await client.sendmail("a@x.test", ["b@x.test", "c@x.test"], BODY)
        assert client.is_connected
        assert await client.noop() == (250, b"2.0.0 OK")
    assert info.value.recipients == {
        "b@x.test": (550, b"5.1.1 no b"),
        "c@x.test": (551, b"5.1.6 moved"),
    }
    assert verbs(handler.commands) == ["EHLO", "MAIL", "RCPT", "RCPT", "RSET", "NOOP", "QUIT"]
    assert handler.deliveries == []


async def test_sender_refused_raises_with_code_error_and_sender_and_sends_rset(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """aiosmtpd: SMTPSenderRefused carries smtp_code, smtp_error and sender; no RCPT is sent."""
    handler = RecordingHandler(refuse_senders={"bad@x.test": "553 5.1.8 bad sender"})
    server = smtpd_server_factory(handler)
    async with smtp(server) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as info:
            await client.sendmail("bad@x.test", ["b@x.test"], BODY)
    error = info.value
    assert (error.smtp_code, error.smtp_error, error.sender) == (
        553,
        b"5.1.8 bad sender",
        "bad@x.test",
    )
    assert verbs(handler.commands) == ["EHLO", "MAIL", "RSET", "QUIT"]


async def test_data_refused_raises_smtp_data_error_and_sends_rset(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """aiosmtpd: a refusal after the body raises SMTPDataError; RSET follows."""
    handler = RecordingHandler(data_reply="554 5.6.0 content rejected")
    server = smtpd_server_factory(handler)
    async with smtp(server) as client:
        with pytest.raises(smtplib.SMTPDataError) as info:
            await client.sendmail("a@x.test", ["b@x.test"], BODY)
    assert (info.value.smtp_code, info.value.smtp_error) == (554, b"5.6.0 content rejected")
    assert verbs(handler.commands) == ["EHLO", "MAIL", "RCPT", "DATA", "RSET", "QUIT"]
    assert handler.deliveries == []


async def test_421_to_mail_closes_the_connection_without_rset(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """aiosmtpd: 421 means the server is closing, so the client closes instead of RSET."""
    handler = RecordingHandler(refuse_senders={"a@x.test": "421 4.3.2 shutting down"})
    server = smtpd_server_factory(handler)
    async with closing(smtp(server)) as client:
        await client.connect()
        with pytest.raises(smtplib.SMTPSenderRefused) as info:
            await client.sendmail("a@x.test", ["b@x.test"], BODY)
        assert (info.value.smtp_code, info.value.smtp_error) == (421, b"4.3.2 shutting down")
        assert not client.is_connected
        with pytest.raises(smtplib.SMTPServerDisconnected):
            await client.noop()
    assert verbs(handler.commands) == ["EHLO", "MAIL"]


@pytest.mark.parametrize(
    ("verb", "accepted"),
    [("MAIL", False), ("RCPT", False), ("DATA", None)],
    ids=["MAIL", "RCPT", "DATA"],
)
async def test_server_disconnect_mid_transaction_raises_and_closes_the_client(
    smtpd_server_factory: SMTPDServerFactory, verb: str, accepted: bool | None
) -> None:
    """aiosmtpd closes without replying after ``verb`` (DATA: after the whole body).

    SMTPServerDisconnected is raised and the client is closed; the outcome says whether the
    server can have accepted the message (unknown once the end of data went out).
    """
    server = smtpd_server_factory(RecordingHandler(disconnect_after=verb))
    async with closing(smtp(server)) as client:
        await client.connect()
        with pytest.raises(smtplib.SMTPServerDisconnected) as info:
            await client.sendmail("a@x.test", ["b@x.test"], BODY)
        assert not client.is_connected
        assert isinstance(info.value, asmtp.SMTPTransactionInterrupted)
        assert info.value.outcome.accepted is accepted
        with pytest.raises(smtplib.SMTPServerDisconnected):
            await client.noop()
    assert verbs(server.handler.commands)[-1] == verb


def _source_of_unknown_size() -> Iterator[bytes]:
    yield BODY


@pytest.mark.parametrize(
    ("size_limit", "streamed", "size_option"),
    [
        (2**25, False, [f"SIZE={len(BODY)}"]),
        (None, False, []),
        (2**25, True, []),
    ],
    ids=["advertised", "not-advertised", "unknown-size"],
)
async def test_size_is_declared_only_when_advertised_and_known(
    smtpd_server_factory: SMTPDServerFactory,
    size_limit: int | None,
    streamed: bool,
    size_option: list[str],
) -> None:
    """aiosmtpd advertises SIZE only with a data_size_limit; a generator's size is unknown."""
    server = smtpd_server_factory(RecordingHandler(), data_size_limit=size_limit)
    message = _source_of_unknown_size() if streamed else BODY
    async with smtp(server) as client:
        await client.ehlo()
        assert client.has_extn("size") is (size_limit is not None)
        assert await client.sendmail("a@x.test", "b@x.test", message) == {}
    assert server.handler.commands[1].split() == ["MAIL", "a@x.test", *size_option]


async def test_mail_options_are_sent_after_size(smtpd_server: ThreadedSMTPServer) -> None:
    """aiosmtpd records MAIL parameters (it accepts only SIZE, BODY and SMTPUTF8)."""
    async with smtp(smtpd_server) as client:
        await client.sendmail("a@x.test", ["b@x.test"], BODY, mail_options=["BODY=8BITMIME"])
    [delivery] = smtpd_server.handler.deliveries
    assert delivery.mail_options == (f"SIZE={len(BODY)}", "BODY=8BITMIME")


async def test_mail_and_rcpt_options_are_written_on_every_command(
    memory_server_factory: MemoryServerFactory,
) -> None:
    """A script in memory (aiosmtpd refuses every RCPT parameter): exact MAIL and RCPT lines."""
    server = memory_server_factory(
        smtp_script(
            [
                (ExpectLine(b"EHLO"), b"250-scripted.test\r\n250 DSN\r\n"),
                (b"MAIL FROM:<a@x.test> RET=HDRS\r\n", b"250 ok\r\n"),
                (b"RCPT TO:<b@x.test> NOTIFY=NEVER\r\n", b"250 ok\r\n"),
                (b"RCPT TO:<c@x.test> NOTIFY=NEVER\r\n", b"250 ok\r\n"),
                (b"DATA\r\n", b"354 go\r\n"),
                (ExpectData(), b"250 queued\r\n"),
                (b"QUIT\r\n", b"221 bye\r\n"),
            ]
        )
    )
    async with smtp(server) as client:
        refused = await client.sendmail(
            "a@x.test",
            ["b@x.test", "c@x.test"],
            BODY,
            mail_options=["RET=HDRS"],
            rcpt_options=["NOTIFY=NEVER"],
        )
    assert refused == {}
    server.check()


async def test_str_message_with_non_ascii_text_is_sent_as_declared_utf8(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """aiosmtpd with SMTPUTF8: a str body is encoded as UTF-8 and declared, UTF-8 headers
    included (smtplib would refuse it as non-ASCII)."""
    server = smtpd_server_factory(RecordingHandler(), enable_SMTPUTF8=True)
    text = "Subject: café\n\nnaïve ☃ ünïcödé\n"
    async with smtp(server) as client:
        assert await client.sendmail("a@x.test", ["b@x.test"], text) == {}
    [delivery] = server.handler.deliveries
    assert delivery.content == text.replace("\n", "\r\n").encode("utf-8")
    # RFC 1870: the size counts the octets sent, CRLF pairs included (as smtplib declares).
    size = len(delivery.content)
    assert server.handler.commands[1] == f"MAIL a@x.test SIZE={size} SMTPUTF8 BODY=8BITMIME"


def _email_message() -> email.message.EmailMessage:
    msg = email.message.EmailMessage()
    msg["From"] = "a@x.test"
    msg["To"] = "b@x.test"
    msg["Subject"] = "an email.message"
    msg.set_content(".dot first\nsecond line\n")
    return msg


async def test_email_message_is_flattened_with_crlf(smtpd_server: ThreadedSMTPServer) -> None:
    """aiosmtpd: an email.message.Message passed to sendmail arrives as its CRLF bytes."""
    msg = _email_message()
    async with smtp(smtpd_server) as client:
        assert await client.sendmail("a@x.test", ["b@x.test"], msg) == {}
    [delivery] = smtpd_server.handler.deliveries
    assert delivery.content == msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


# The same body in pieces split inside a CRLF and right before a leading dot: the encoder
# must carry bytes over between pieces, never sending a bare CR or an unstuffed dot.
PIECES = (b"Subject: hi\r", b"\n\r\n", b".starts with a dot\r\n.", b".two dots\r\nlast line\r\n")


@pytest.mark.parametrize(
    "kind", ["bytes-file", "list-of-bytes", "generator", "async-iterator", "bytearray"]
)
async def test_message_sources_deliver_the_same_bytes(
    smtpd_server: ThreadedSMTPServer, kind: str
) -> None:
    """aiosmtpd: files, iterables and async iterators of bytes are streamed to the same body."""
    message: object = {
        "bytes-file": io.BytesIO(b"".join(PIECES)),
        "list-of-bytes": list(PIECES),
        "generator": (piece for piece in PIECES),
        "async-iterator": agen(*PIECES),
        "bytearray": bytearray(b"".join(PIECES)),
    }[kind]
    async with smtp(smtpd_server) as client:
        assert await client.sendmail("a@x.test", ["b@x.test"], message) == {}
    assert [d.content for d in smtpd_server.handler.deliveries] == [BODY]


async def test_real_file_is_streamed_and_its_size_declared(
    smtpd_server: ThreadedSMTPServer, tmp_path: Path
) -> None:
    """aiosmtpd: a file on disk opened in binary mode; SIZE comes from its length."""
    path = tmp_path / "message.eml"
    path.write_bytes(BODY)
    async with smtp(smtpd_server) as client:
        with path.open("rb") as file:
            assert await client.sendmail("a@x.test", ["b@x.test"], file) == {}
    assert smtpd_server.handler.commands[1] == f"MAIL a@x.test SIZE={len(BODY)}"
    assert [d.content for d in smtpd_server.handler.deliveries] == [BODY]


@pytest.mark.parametrize(
    "message",
    [42, None, 3.5, object(), ["text, not bytes"], (b"ok", 7), io.StringIO("text file\r\n")],
    ids=["int", "None", "float", "object", "list-of-str", "tuple-with-int", "text-file"],
)
async def test_bad_message_type_raises_type_error_before_anything_is_sent(
    smtpd_server: ThreadedSMTPServer, message: object
) -> None:
    """aiosmtpd: no MAIL reaches the server, and the connection stays usable."""
    async with smtp(smtpd_server) as client:
        with pytest.raises(TypeError):
            await client.sendmail("a@x.test", ["b@x.test"], message)
        assert "MAIL" not in verbs(smtpd_server.handler.commands)
        assert await client.noop() == (250, b"2.0.0 OK")
    assert smtpd_server.handler.deliveries == []


@pytest.mark.parametrize("char", ["\r", "\n", "\0"], ids=["CR", "LF", "NUL"])
@pytest.mark.parametrize("where", ["from", "to", "later-to", "mail-option", "rcpt-option"])
@pytest.mark.parametrize("pipelining", [False, True], ids=["lockstep", "pipelining"])
async def test_cr_lf_nul_in_arguments_raise_value_error_before_anything_is_written(
    smtpd_server_factory: SMTPDServerFactory, char: str, where: str, pipelining: bool
) -> None:
    """aiosmtpd: a smuggled line ending anywhere in the envelope is refused before MAIL."""
    server = smtpd_server_factory(RecordingHandler(advertise_pipelining=pipelining))
    bad = f"x{char}RSET"
    sender = f"a{bad}@x.test" if where == "from" else "a@x.test"
    recipients = {
        "to": [f"b{bad}@x.test"],
        "later-to": ["b@x.test", f"c{bad}@x.test"],
    }.get(where, ["b@x.test"])
    mail_options = [f"BODY=8BITMIME{bad}"] if where == "mail-option" else []
    rcpt_options = [f"NOTIFY=NEVER{bad}"] if where == "rcpt-option" else []
    async with smtp(server) as client:
        await client.ehlo()
        with pytest.raises(ValueError):
            await client.sendmail(sender, recipients, BODY, mail_options, rcpt_options)
        assert await client.noop() == (250, b"2.0.0 OK")
    assert verbs(server.handler.commands) == ["EHLO", "NOOP", "QUIT"]


async def test_non_ascii_address_without_smtputf8_raises_before_mail(
    smtpd_server: ThreadedSMTPServer,
) -> None:
    """aiosmtpd without enable_SMTPUTF8: SMTPNotSupportedError, nothing of the envelope sent."""
    async with smtp(smtpd_server) as client:
        with pytest.raises(smtplib.SMTPNotSupportedError):
            await client.sendmail("a@x.test", ["jörg@x.test"], BODY)
    assert verbs(smtpd_server.handler.commands) == ["EHLO", "QUIT"]


async def test_non_ascii_address_is_sent_as_utf8_with_smtputf8(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """aiosmtpd with enable_SMTPUTF8: MAIL carries SMTPUTF8 and the addresses go as UTF-8."""
    server = smtpd_server_factory(RecordingHandler(), enable_SMTPUTF8=True)
    async with smtp(server) as client:
        assert await client.sendmail("émetteur@x.test", ["jörg@x.test"], BODY) == {}
    [delivery] = server.handler.deliveries
    assert (delivery.mail_from, delivery.rcpt_tos) == ("émetteur@x.test", ("jörg@x.test",))
    assert "SMTPUTF8" in delivery.mail_options
    assert delivery.content == BODY
