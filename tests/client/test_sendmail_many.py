"""SMTP.sendmail_many: back-to-back transactions on one connection (RFC 2920 §3.1).

Scripts, played in memory, prove the overlap byte for byte: they withhold a message's final
reply until the next message's envelope has arrived, which only a client that starts the
next transaction before that reply can satisfy. They also prove that each reply lands on
its own message when some are refused, and what each message's outcome is when the
connection fails or times out with several messages on the wire. A scripted socket server
proves a cancelled batch closes the connection (the client must really be waiting).
aiosmtpd proves the same results end to end, with PIPELINING advertised (overlapped) and
without it (one transaction after another).
"""

from __future__ import annotations

import email.message
from collections.abc import Iterator
from typing import TYPE_CHECKING

import anyio
import pytest

import asmtp
from asmtp import Outgoing
from client._kit import closing, smtp, verbs
from support.aiosmtpd_server import RecordingHandler
from support.scripted import Close, ExpectClosed, ExpectData, ExpectLine, Sleep, Step
from support.steps import smtp_script

if TYPE_CHECKING:
    from support.fixtures import MemoryServerFactory, ScriptedServerFactory, SMTPDServerFactory

pytestmark = pytest.mark.anyio

EHLO: tuple[bytes | Step, bytes] = (
    ExpectLine(b"EHLO"),
    b"250-scripted.test\r\n250 PIPELINING\r\n",
)
QUIT: tuple[bytes | Step, bytes] = (b"QUIT\r\n", b"221 bye\r\n")
ENVELOPE_OK = b"250 ok\r\n250 ok\r\n354 go ahead\r\n"


def group(recipient: bytes = b"b@x.test") -> bytes:
    return b"MAIL FROM:<a@x.test>\r\nRCPT TO:<" + recipient + b">\r\nDATA\r\n"


def outgoing(n: int, recipient: str = "b@x.test") -> Outgoing:
    return Outgoing("a@x.test", [recipient], f"Subject: {n}\r\n\r\nmessage {n}\r\n".encode())


def outcome_of(result: object) -> asmtp.SendOutcome:
    assert isinstance(result, (asmtp.SMTPTransactionInterrupted, asmtp.SMTPTransactionTimeout))
    return result.outcome


# -- the overlap, proved on the wire -----------------------------------------------------------


async def test_next_mail_goes_out_before_the_previous_final_reply(
    memory_server_factory: MemoryServerFactory,
) -> None:
    """Message n's 250 is sent only after message n+1's envelope arrived."""
    server = memory_server_factory(
        smtp_script(
            [
                EHLO,
                (group(), ENVELOPE_OK),
                (ExpectData(), b""),  # message 1 ended: its reply is withheld ...
                (group(), b"250 queued 1\r\n" + ENVELOPE_OK),  # ... until message 2 began
                (ExpectData(), b""),
                (group(), b"250 queued 2\r\n" + ENVELOPE_OK),
                (ExpectData(), b"250 queued 3\r\n"),
                QUIT,
            ]
        )
    )
    async with smtp(server) as client:
        results = await client.sendmail_many([outgoing(1), outgoing(2), outgoing(3)])
        assert client.last_outcome == asmtp.SendOutcome(
            True,
            ("b@x.test",),
            {},
            True,
            reply=(250, b"queued 3"),
            replies={"b@x.test": (250, b"queued 3")},
        )
    assert results == [{}, {}, {}]
    replies = [result.reply for result in results if isinstance(result, asmtp.SendResult)]
    assert replies == [(250, b"queued %d" % n) for n in (1, 2, 3)]
    bodies = [piece for piece in server.captured if piece.endswith(b"\r\n.\r\n")]
    assert bodies == [b"Subject: %d\r\n\r\nmessage %d\r\n.\r\n" % (n, n) for n in (1, 2, 3)]


async def test_each_reply_lands_on_its_own_message(
    memory_server_factory: MemoryServerFactory,
) -> None:
    """A refused end of data, an all-refused envelope and a good message.

    The end of data closes its transaction, so no RSET follows a refused one while the next
    envelope is already queued; a refused envelope is reset before the next message.
    """
    server = memory_server_factory(
        smtp_script(
            [
                EHLO,
                (group(), ENVELOPE_OK),
                (ExpectData(), b""),
                (
                    group(b"nobody@x.test"),
                    b"554 5.6.0 content rejected\r\n"
                    b"250 ok\r\n550 5.1.1 no such user\r\n554 5.5.1 no valid recipients\r\n",
                ),
                (b"RSET\r\n", b"250 flushed\r\n"),
                (group(), ENVELOPE_OK),
                (ExpectData(), b"250 queued\r\n"),
                QUIT,
            ]
        )
    )
    async with smtp(server) as client:
        first, second, third = await client.sendmail_many(
            [outgoing(1), outgoing(2, "nobody@x.test"), outgoing(3)]
        )
    assert isinstance(first, asmtp.SMTPDataError)
    assert (first.smtp_code, first.smtp_error) == (554, b"5.6.0 content rejected")
    assert isinstance(second, asmtp.SMTPRecipientsRefused)
    assert second.recipients == {"nobody@x.test": (550, b"5.1.1 no such user")}
    assert third == {}


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (outgoing(2, "evil@x.test>\r\nRSET"), ValueError),
        (Outgoing("a@x.test", ["evil@x.test"], 12345), TypeError),
    ],
    ids=["cr-in-address", "not-a-message"],
)
async def test_bad_input_fails_its_message_before_the_wire(
    memory_server_factory: MemoryServerFactory, bad: Outgoing, error: type[Exception]
) -> None:
    """Message 2 is bad; messages 1 and 3 go out as if it were not there."""
    server = memory_server_factory(
        smtp_script(
            [
                EHLO,
                (group(), ENVELOPE_OK),
                (ExpectData(), b""),
                (group(b"c@x.test"), b"250 queued 1\r\n" + ENVELOPE_OK),
                (ExpectData(), b"250 queued 3\r\n"),
                QUIT,
            ]
        )
    )
    async with smtp(server) as client:
        results = await client.sendmail_many([outgoing(1), bad, outgoing(3, "c@x.test")])
    assert results[0] == {} and results[2] == {}
    assert isinstance(results[1], error)
    assert b"evil" not in server.received


async def test_refused_partially_returns_that_messages_refused_dict(
    memory_server_factory: MemoryServerFactory,
) -> None:
    """One of two recipients refused in message 2 only."""
    two = b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\nDATA\r\n"
    server = memory_server_factory(
        smtp_script(
            [
                EHLO,
                (two, b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
                (ExpectData(), b""),
                (two, b"250 queued 1\r\n250 ok\r\n250 ok\r\n452 4.2.2 mailbox full\r\n354 go\r\n"),
                (ExpectData(), b"250 queued 2\r\n"),
                QUIT,
            ]
        )
    )
    pair = Outgoing("a@x.test", ["b@x.test", "c@x.test"], b"hi\r\n")
    async with smtp(server) as client:
        results = await client.sendmail_many([pair, pair])
    assert results == [{}, {"c@x.test": (452, b"4.2.2 mailbox full")}]


# -- the connection fails with messages on the wire --------------------------------------------


async def test_disconnect_after_an_end_of_data_tells_each_message_apart(
    memory_server_factory: MemoryServerFactory,
) -> None:
    """The script closes after message 1's end and message 2's envelope arrived.

    Message 1 may have been accepted (unknown), message 2 cannot have been, message 3
    never started: exactly what a caller needs to resend 2 and 3 and not 1.
    """
    server = memory_server_factory(
        [*smtp_script([EHLO, (group(), ENVELOPE_OK), (ExpectData(), b""), (group(), b"")]), Close()]
    )
    async with smtp(server) as client:
        results = await client.sendmail_many([outgoing(1), outgoing(2), outgoing(3)])
        assert not client.is_connected
    first, second, third = (outcome_of(result) for result in results)
    assert first.accepted is None and first.body_started
    assert first.recipients == ("b@x.test",)
    assert second.accepted is False and not second.body_started
    assert third.accepted is False and not third.body_started
    assert "not sent" in str(results[2])


async def test_421_at_the_end_of_data_stops_the_batch(
    memory_server_factory: MemoryServerFactory,
) -> None:
    """The script answers message 1's end with 421 and closes."""
    server = memory_server_factory(
        [
            *smtp_script(
                [
                    EHLO,
                    (group(), ENVELOPE_OK),
                    (ExpectData(), b""),
                    (group(), b"421 4.3.2 shutting down\r\n"),
                ]
            ),
            ExpectClosed(),
        ]
    )
    async with smtp(server) as client:
        results = await client.sendmail_many([outgoing(1), outgoing(2), outgoing(3)])
    assert isinstance(results[0], asmtp.SMTPDataError) and results[0].smtp_code == 421
    assert outcome_of(results[1]).accepted is False
    assert outcome_of(results[2]).accepted is False


async def test_timeout_waiting_for_the_final_reply(
    memory_server_factory: MemoryServerFactory,
) -> None:
    """The script goes silent with message 1's end and message 2's envelope unanswered
    (for longer than the client's timeout: its read times out at once)."""
    server = memory_server_factory(
        [
            *smtp_script([EHLO, (group(), ENVELOPE_OK), (ExpectData(), b""), (group(), b"")]),
            Sleep(1.5),
            Close(),
        ]
    )
    client = smtp(server, timeout=0.5)
    async with client:
        results = await client.sendmail_many([outgoing(1), outgoing(2)])
        assert not client.is_connected
    assert all(isinstance(result, asmtp.SMTPTransactionTimeout) for result in results)
    assert [outcome_of(result).accepted for result in results] == [None, False]


async def test_cancelled_batch_closes_the_connection(
    scripted_server_factory: ScriptedServerFactory,
) -> None:
    """Scripted socket server never answers message 1's end; the caller gives up."""
    server = scripted_server_factory(
        [
            *smtp_script([EHLO, (group(), ENVELOPE_OK), (ExpectData(), b""), (group(), b"")]),
            ExpectClosed(),
        ]
    )
    async with smtp(server) as client:
        with anyio.move_on_after(0.5) as scope:
            await client.sendmail_many([outgoing(1), outgoing(2)])
        assert scope.cancelled_caught
        assert not client.is_connected  # replies were owed: never reused
        assert client.last_outcome is not None


async def test_unconnected_client_raises_before_taking_any_message() -> None:
    """As every other method: nothing can have been sent, so no per-message results."""
    taken: list[int] = []

    def messages() -> Iterator[Outgoing]:
        for n in (1, 2):
            taken.append(n)
            yield outgoing(n)

    with pytest.raises(asmtp.SMTPServerDisconnected, match=r"please run connect\(\) first"):
        await asmtp.SMTP().sendmail_many(messages())
    assert taken == []


# -- aiosmtpd, end to end ----------------------------------------------------------------------


@pytest.mark.parametrize("pipelining", [True, False], ids=["overlapped", "lockstep"])
async def test_aiosmtpd_receives_every_message_once(
    smtpd_server_factory: SMTPDServerFactory, pipelining: bool
) -> None:
    """aiosmtpd, with PIPELINING advertised (overlapped) or not (one after another)."""
    handler = RecordingHandler(
        advertise_pipelining=pipelining, refuse_recipients={"gone@x.test": "550 5.1.1 gone"}
    )
    server = smtpd_server_factory(handler)
    message = email.message.EmailMessage()
    message["From"] = "a@x.test"
    message["To"] = "b@x.test"
    message["Bcc"] = "hidden@x.test"
    message["Subject"] = "by headers"
    message.set_content("sent with send_message's rules\n")
    batch = [
        outgoing(1),
        Outgoing("a@x.test", ["b@x.test", "gone@x.test"], b"Subject: 2\r\n\r\nmessage 2\r\n"),
        Outgoing.message(message),
        outgoing(4, "gone@x.test"),
        outgoing(5),
    ]
    async with smtp(server) as client:
        results = await client.sendmail_many(batch)
    assert results[:3] == [{}, {"gone@x.test": (550, b"5.1.1 gone")}, {}]
    assert isinstance(results[3], asmtp.SMTPRecipientsRefused)
    assert results[4] == {}
    deliveries = handler.deliveries
    assert [d.rcpt_tos for d in deliveries] == [
        ("b@x.test",),
        ("b@x.test",),
        ("b@x.test", "hidden@x.test"),
        ("b@x.test",),
    ]
    assert b"Bcc" not in deliveries[2].content and b"by headers" in deliveries[2].content
    assert b"message 5" in deliveries[3].content
    assert verbs(handler.commands).count("RSET") == 1  # after message 4's refused envelope


async def test_a_body_that_breaks_midway_closes_the_connection(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """aiosmtpd with PIPELINING: message 2's iterator yields str after its first chunk.

    Message 1 was delivered and says so; message 2 was cut short (not accepted, its
    TypeError kept as the cause); message 3 never began; the connection is not reused.
    """
    handler = RecordingHandler(advertise_pipelining=True)
    server = smtpd_server_factory(handler)

    def broken() -> Iterator[object]:
        yield b"Subject: 2\r\n\r\n"
        yield "not bytes"

    batch = [outgoing(1), Outgoing("a@x.test", ["b@x.test"], broken()), outgoing(3)]
    client = smtp(server)
    async with closing(client):
        await client.connect()
        results = await client.sendmail_many(batch)
        assert not client.is_connected
    assert results[0] == {}
    cut_short = results[1]
    assert outcome_of(cut_short).accepted is False
    assert isinstance(cut_short, Exception) and isinstance(cut_short.__cause__, TypeError)
    assert outcome_of(results[2]).accepted is False and "not sent" in str(results[2])
    assert [d.content.count(b"message 1") for d in handler.deliveries] == [1]


def test_outgoing_needs_an_envelope_or_a_message() -> None:
    with pytest.raises(TypeError):
        Outgoing(None, ["b@x.test"], b"hi")
    with pytest.raises(TypeError):
        Outgoing(None, None, b"not a message", from_headers=True)
