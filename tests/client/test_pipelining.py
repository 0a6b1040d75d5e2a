"""PIPELINING (RFC 2920) in sendmail: one write for the envelope, lock-step without it.

aiosmtpd proves the replies are paired with the right commands; scripts prove the write
pattern itself, because they answer nothing until the bytes they expect have arrived. They
run in memory, where each client write is one read of the script (the envelope test also
over sockets), so the pattern shows exactly, whatever the machine's load.
"""

from __future__ import annotations

import smtplib
from typing import TYPE_CHECKING

import pytest

import asmtp
from client._kit import ME, smtp, verbs
from support.aiosmtpd_server import RecordingHandler
from support.scripted import Close, Expect, ExpectData, Send, Sleep, Step, smtp_script

if TYPE_CHECKING:
    from support.fixtures import MemoryServerFactory, ScriptServerFactory, SMTPDServerFactory

pytestmark = pytest.mark.anyio

BODY = b"Subject: pipelined\r\n\r\n.dot\r\nbody\r\n"
STUFFED = b"Subject: pipelined\r\n\r\n..dot\r\nbody\r\n.\r\n"
EHLO = f"EHLO {ME}\r\n".encode()
PIPELINING_EHLO = b"250-scripted.test\r\n250-8BITMIME\r\n250 PIPELINING\r\n"
PLAIN_EHLO = b"250-scripted.test\r\n250 8BITMIME\r\n"
ENVELOPE = (
    b"MAIL FROM:<a@x.test> BODY=8BITMIME\r\n"
    b"RCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\nRCPT TO:<d@x.test>\r\n"
    b"DATA\r\n"
)


@pytest.mark.parametrize("refused", [(), ("b@x.test",), ("b@x.test", "d@x.test")])
async def test_pipelined_replies_are_paired_with_their_recipients(
    smtpd_server_factory: SMTPDServerFactory, refused: tuple[str, ...]
) -> None:
    """aiosmtpd advertising PIPELINING: each refusal lands on the recipient it answers."""
    replies = {"b@x.test": "550 5.1.1 no b", "d@x.test": "452 4.2.2 d is full"}
    handler = RecordingHandler(
        advertise_pipelining=True,
        refuse_recipients={address: replies[address] for address in refused},
    )
    server = smtpd_server_factory(handler)
    recipients = ["b@x.test", "c@x.test", "d@x.test"]
    async with smtp(server) as client:
        await client.ehlo()
        assert client.has_extn("pipelining")
        result = await client.sendmail("a@x.test", recipients, BODY)
        assert await client.sendmail("a@x.test", ["e@x.test"], BODY) == {}
    expected = {address: replies[address] for address in refused}
    assert result == {
        address: (int(reply[:3]), reply[4:].encode()) for address, reply in expected.items()
    }
    accepted = tuple(r for r in recipients if r not in refused)
    assert [d.rcpt_tos for d in handler.deliveries] == [accepted, ("e@x.test",)]
    assert [d.content for d in handler.deliveries] == [BODY, BODY]


async def test_pipelined_all_refused_and_sender_refused_raise_as_smtplib(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    """aiosmtpd advertising PIPELINING: the pipelined DATA reply is consumed, RSET follows,
    and the next transaction on the same connection is in step."""
    handler = RecordingHandler(
        advertise_pipelining=True,
        refuse_senders={"bad@x.test": "553 5.1.8 bad sender"},
        refuse_recipients={"b@x.test": "550 5.1.1 no b"},
    )
    server = smtpd_server_factory(handler)
    async with smtp(server) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as all_refused:
            await client.sendmail("a@x.test", ["b@x.test"], BODY)
        with pytest.raises(smtplib.SMTPSenderRefused) as sender_refused:
            await client.sendmail("bad@x.test", ["c@x.test"], BODY)
        assert await client.sendmail("a@x.test", ["c@x.test"], BODY) == {}
    assert all_refused.value.recipients == {"b@x.test": (550, b"5.1.1 no b")}
    assert (sender_refused.value.smtp_code, sender_refused.value.sender) == (553, "bad@x.test")
    assert verbs(handler.commands) == [
        *("EHLO", "MAIL", "RCPT", "RSET"),
        *("MAIL", "RSET"),
        *("MAIL", "RCPT", "DATA", "QUIT"),
    ]
    assert [d.rcpt_tos for d in handler.deliveries] == [("c@x.test",)]


def _pipelined_transaction(group_replies: bytes) -> list[Step]:
    """EHLO with PIPELINING; then the whole envelope must arrive before any reply is sent."""
    return smtp_script(
        [
            (EHLO, PIPELINING_EHLO),
            (ENVELOPE, group_replies),
            (STUFFED, b"250 2.0.0 queued\r\n"),
            (b"QUIT\r\n", b"221 bye\r\n"),
        ]
    )


async def test_envelope_goes_out_in_one_write_and_the_body_in_a_second(
    script_server_factory: ScriptServerFactory,
) -> None:
    """In memory and over sockets: the script waits for MAIL, every RCPT and DATA (one
    Expect) before answering all at once, so a lock-step client would deadlock. Its reads
    show exactly two client writes, hence two round trips, for the whole transaction."""
    replies = b"250 ok\r\n250 ok\r\n550 5.1.1 no c\r\n250 ok\r\n354 go ahead\r\n"
    server = script_server_factory(_pipelined_transaction(replies), step_timeout=2)
    async with smtp(server, timeout=2) as client:
        refused = await client.sendmail(
            "a@x.test",
            ["b@x.test", "c@x.test", "d@x.test"],
            BODY,
            mail_options=["BODY=8BITMIME"],
        )
    assert refused == {"c@x.test": (550, b"5.1.1 no c")}
    server.check()
    # One read per client write: the transaction took two (envelope, then body).
    assert server.reads == [[EHLO, ENVELOPE, STUFFED, b"QUIT\r\n"]]


async def test_replies_dribbled_one_byte_at_a_time_are_still_paired(
    memory_server_factory: MemoryServerFactory,
) -> None:
    """The group's replies arrive a byte per read, multi-line included."""
    replies = b"250 ok\r\n550-no\r\n550 such user\r\n250 ok\r\n251 forwarded\r\n354 go\r\n"
    steps = _pipelined_transaction(b"")
    group_reply_at = 4  # greeting, Expect EHLO, Send EHLO reply, Expect the group
    steps.insert(group_reply_at, Send(replies, per_byte_delay=0.001))
    server = memory_server_factory(steps)
    async with smtp(server) as client:
        refused = await client.sendmail(
            "a@x.test", ["b@x.test", "c@x.test", "d@x.test"], BODY, ["BODY=8BITMIME"]
        )
    assert refused == {"b@x.test": (550, b"no\nsuch user")}
    server.check()


async def test_replies_read_before_a_lost_connection_say_which_recipients_were_taken(
    memory_server_factory: MemoryServerFactory,
) -> None:
    """The server answers MAIL and part of the RCPTs, then closes: the interrupted send
    reports the recipients accepted so far in order, once each, and the refusal."""
    envelope = (
        b"MAIL FROM:<a@x.test>\r\n"
        + b"".join(b"RCPT TO:<%s@x.test>\r\n" % name for name in (b"b", b"c", b"b", b"d", b"e"))
        + b"DATA\r\n"
    )
    replies = b"250 ok\r\n250 ok b\r\n550 5.1.1 no c\r\n250 ok b again\r\n251 d forwarded\r\n"
    steps = smtp_script([(EHLO, PIPELINING_EHLO), (envelope, replies)])
    server = memory_server_factory([*steps, Close()])
    recipients = ["b@x.test", "c@x.test", "b@x.test", "d@x.test", "e@x.test"]
    async with smtp(server) as client:
        with pytest.raises(asmtp.SMTPTransactionInterrupted) as caught:
            await client.sendmail("a@x.test", recipients, BODY)
    outcome = caught.value.outcome
    assert outcome.accepted is False
    assert outcome.recipients == ("b@x.test", "d@x.test")
    assert dict(outcome.refused) == {"c@x.test": (550, b"5.1.1 no c")}
    server.check()


def _lockstep_steps(pairs: list[tuple[bytes, bytes]]) -> list[Step]:
    """Each command alone, then a pause, then its reply: anything sent ahead of a reply
    arrives during the pause and shows up in the same read as a later command (in memory
    always, where nothing depends on how fast the client writes)."""
    steps: list[Step] = [Send(b"220 scripted.test ESMTP\r\n")]
    for expected, reply in pairs:
        steps += [Expect(expected), Sleep(0.05), Send(reply)]
    return steps


async def test_without_pipelining_each_command_waits_for_its_reply(
    memory_server_factory: MemoryServerFactory,
) -> None:
    """Without PIPELINING: every read holds exactly one command, so the client never wrote
    a command before the previous reply arrived."""
    pairs = [
        (EHLO, PLAIN_EHLO),
        (b"MAIL FROM:<a@x.test>\r\n", b"250 ok\r\n"),
        (b"RCPT TO:<b@x.test>\r\n", b"250 ok\r\n"),
        (b"RCPT TO:<c@x.test>\r\n", b"550 no c\r\n"),
        (b"DATA\r\n", b"354 go\r\n"),
        (STUFFED, b"250 queued\r\n"),
        (b"QUIT\r\n", b"221 bye\r\n"),
    ]
    server = memory_server_factory(_lockstep_steps(pairs))
    async with smtp(server) as client:
        assert await client.sendmail("a@x.test", ["b@x.test", "c@x.test"], BODY) == {
            "c@x.test": (550, b"no c")
        }
    server.check()
    assert server.reads == [[expected for expected, _ in pairs]]


async def test_without_pipelining_a_refused_sender_stops_before_any_rcpt(
    memory_server_factory: MemoryServerFactory,
) -> None:
    """Without PIPELINING: after 550 to MAIL the next bytes are RSET, which a client that
    sent RCPT ahead of the MAIL reply could not produce."""
    pairs = [
        (EHLO, PLAIN_EHLO),
        (b"MAIL FROM:<a@x.test>\r\n", b"550 go away\r\n"),
        (b"RSET\r\n", b"250 ok\r\n"),
        (b"QUIT\r\n", b"221 bye\r\n"),
    ]
    server = memory_server_factory(_lockstep_steps(pairs))
    async with smtp(server) as client:
        with pytest.raises(smtplib.SMTPSenderRefused):
            await client.sendmail("a@x.test", ["b@x.test", "c@x.test"], BODY)
    server.check()
    assert server.reads == [[expected for expected, _ in pairs]]


async def test_pipelined_body_is_not_sent_when_the_envelope_failed(
    memory_server_factory: MemoryServerFactory,
) -> None:
    """MAIL refused but DATA answered 354 anyway; the client ends the empty body with a lone
    dot (RFC 2920 §3.1) before RSET, and never sends the message."""
    server = memory_server_factory(
        smtp_script(
            [
                (EHLO, PIPELINING_EHLO),
                (
                    b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n",
                    b"550 no\r\n503 need MAIL\r\n354 go\r\n",
                ),
                (ExpectData(), b"554 no valid recipients\r\n"),
                (b"RSET\r\n", b"250 ok\r\n"),
                (b"QUIT\r\n", b"221 bye\r\n"),
            ]
        )
    )
    async with smtp(server) as client:
        with pytest.raises(smtplib.SMTPSenderRefused):
            await client.sendmail("a@x.test", ["b@x.test"], BODY)
    server.check()
    assert b".\r\n" in server.captured
    assert BODY not in server.received
