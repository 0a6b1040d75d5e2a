"""PIPELINING (RFC 2920) and LMTP (RFC 2033): the FIFO pairs every reply with its command."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from asmtp.protocol import (
    NEED_DATA,
    Auth,
    BadArgument,
    Bdat,
    ClientConnection,
    Command,
    Data,
    Ehlo,
    EndOfData,
    Expn,
    Helo,
    Help,
    Lhlo,
    LocalProtocolError,
    Mail,
    MessageData,
    Noop,
    Quit,
    Raw,
    Rcpt,
    Rset,
    StartTLS,
    State,
    Vrfy,
)

from ._helpers import Script, greeted

MAIL = Mail(b"alice@example.org")
RCPT_BOB = Rcpt(b"bob@example.com")
RCPT_CAROL = Rcpt(b"carol@example.com")
RCPT_DAN = Rcpt(b"dan@example.com")
MAIL_WIRE = b"MAIL FROM:<alice@example.org>\r\n"
BOB_WIRE = b"RCPT TO:<bob@example.com>\r\n"
CAROL_WIRE = b"RCPT TO:<carol@example.com>\r\n"
DAN_WIRE = b"RCPT TO:<dan@example.com>\r\n"
GROUP_WIRE = MAIL_WIRE + BOB_WIRE + CAROL_WIRE + b"DATA\r\n"


def send_group(script: Script) -> None:
    script.step(MAIL, RCPT_BOB, RCPT_CAROL, Data(), sends=GROUP_WIRE)
    assert script.state() is State.DATA_REQUESTED
    assert script.conn.pending == (MAIL, RCPT_BOB, RCPT_CAROL, Data())


def test_group_is_sent_before_any_reply_and_replies_pair_in_order() -> None:
    script = greeted("PIPELINING")
    send_group(script)
    replies = script.receive(b"250 sender ok\r\n250 bob ok\r\n250 carol ok\r\n354 go ahead\r\n")
    assert [(r.code, r.command) for r in replies] == [
        (250, MAIL),
        (250, RCPT_BOB),
        (250, RCPT_CAROL),
        (354, Data()),
    ]
    assert script.state() is State.BODY
    assert script.conn.accepted_recipients == (b"bob@example.com", b"carol@example.com")
    script.step(MessageData(b"Subject: hi\r\n\r\n.body"), sends=b"Subject: hi\r\n\r\n..body")
    [done] = script.step(EndOfData(), sends=b"\r\n.\r\n", answers=b"250 queued\r\n")
    assert (done.code, done.command, script.state()) == (250, EndOfData(), State.READY)


def test_partially_refused_recipients_still_open_the_body() -> None:
    script = greeted("PIPELINING")
    send_group(script)
    replies = script.receive(b"250 ok\r\n550 no bob\r\n250 ok\r\n354 go\r\n")
    assert [r.code for r in replies] == [250, 550, 250, 354]
    assert script.conn.accepted_recipients == (b"carol@example.com",)
    assert script.state() is State.BODY


def test_all_recipients_refused_then_data_554_keeps_the_transaction_open() -> None:
    script = greeted("PIPELINING")
    send_group(script)
    script.receive(b"250 ok\r\n550 no bob\r\n550 no carol\r\n554 no valid recipients\r\n")
    assert script.state() is State.MAIL
    assert script.conn.accepted_recipients == ()
    script.step(RCPT_DAN, sends=b"RCPT TO:<dan@example.com>\r\n", answers=b"250 ok\r\n")
    assert script.state() is State.RCPT


def test_refused_mail_in_a_group_returns_to_ready_after_the_groups_replies() -> None:
    script = greeted("PIPELINING")
    send_group(script)
    script.receive(b"550 sender refused\r\n503 no sender\r\n503 no sender\r\n")
    assert script.state() is State.DATA_REQUESTED
    script.receive(b"503 no recipients\r\n")
    assert script.state() is State.READY
    assert script.conn.pending == ()
    assert script.conn.can_send(Mail(b"other@example.org"))


def test_refused_mail_without_data_returns_to_ready_at_once() -> None:
    script = greeted("PIPELINING")
    script.step(MAIL, RCPT_BOB, sends=MAIL_WIRE + BOB_WIRE)
    script.receive(b"550 sender refused\r\n")
    assert script.state() is State.READY
    script.receive(b"503 no sender\r\n")
    assert (script.state(), script.conn.pending) == (State.READY, ())


def test_refused_recipient_answered_before_data_moves_back_to_mail() -> None:
    script = greeted("PIPELINING")
    script.step(MAIL, RCPT_BOB, sends=MAIL_WIRE + BOB_WIRE, answers=b"250 ok\r\n550 no\r\n")
    assert script.state() is State.MAIL
    assert not script.conn.can_send(Data())


def test_without_pipelining_a_second_command_waits_for_the_first_reply() -> None:
    script = greeted("SIZE 1000")
    script.step(MAIL, sends=b"MAIL FROM:<alice@example.org>\r\n")
    with pytest.raises(LocalProtocolError, match="PIPELINING"):
        script.conn.send(RCPT_BOB)
    assert (script.state(), script.conn.pending) == (State.MAIL, (MAIL,))
    script.receive(b"250 ok\r\n")
    script.step(RCPT_BOB, sends=b"RCPT TO:<bob@example.com>\r\n")


@pytest.mark.parametrize(
    "ender",
    [Ehlo(b"c.example"), Helo(b"c.example"), Noop(), Vrfy(b"u"), Expn(b"l"), Help(), Raw(b"X")],
    ids=repr,
)
def test_group_ending_command_blocks_the_next_until_answered(ender: Command) -> None:
    script = greeted("PIPELINING")
    script.conn.send(ender)
    with pytest.raises(LocalProtocolError, match="ends a pipelined group"):
        script.conn.send(MAIL)
    assert script.conn.pending == (ender,)
    script.receive(b"250 ok\r\n")
    assert script.conn.can_send(MAIL)


@pytest.mark.parametrize(
    ("setup", "ender"),
    [((), StartTLS()), ((), Auth(b"LOGIN")), ((), Quit()), ((MAIL, RCPT_BOB), Data())],
    ids=["starttls", "auth", "quit", "data"],
)
def test_state_changing_ender_also_blocks_the_next(
    setup: tuple[Command, ...], ender: Command
) -> None:
    script = greeted("PIPELINING")
    for command in setup:
        script.conn.send(command)
    script.conn.send(ender)
    before = (script.state(), script.conn.pending)
    for follower in (Rset(), Noop(), MAIL):
        with pytest.raises(LocalProtocolError):
            script.conn.send(follower)
    assert (script.state(), script.conn.pending) == before


def test_rset_and_mail_may_be_followed_in_a_group() -> None:
    script = greeted("PIPELINING")
    wire = b"RSET\r\n" + MAIL_WIRE + BOB_WIRE + b"RSET\r\nNOOP\r\n"
    script.step(Rset(), MAIL, RCPT_BOB, Rset(), Noop(), sends=wire)
    replies = script.receive(b"250 a\r\n250 b\r\n250 c\r\n250 d\r\n250 e\r\n")
    assert [r.command for r in replies] == [Rset(), MAIL, RCPT_BOB, Rset(), Noop()]
    assert script.state() is State.READY


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_max_pending_bounds_the_commands_awaiting_replies(limit: int) -> None:
    script = greeted("PIPELINING", max_pending=limit)
    commands: list[Command] = [MAIL, *(Rcpt(b"r%d@example.com" % i) for i in range(limit))]
    for command in commands[:limit]:
        script.conn.send(command)
    with pytest.raises(LocalProtocolError, match=f"{limit} commands already await replies"):
        script.conn.send(commands[limit])
    assert script.conn.pending == tuple(commands[:limit])
    script.receive(b"250 ok\r\n")
    script.conn.send(commands[limit])


def test_default_max_pending_is_1000() -> None:
    assert ClientConnection().max_pending == 1000


def lmtp_transaction(script: Script) -> None:
    wire = MAIL_WIRE + BOB_WIRE + CAROL_WIRE + DAN_WIRE + b"DATA\r\n"
    script.step(MAIL, RCPT_BOB, RCPT_CAROL, RCPT_DAN, Data(), sends=wire)
    script.receive(b"250 ok\r\n250 ok\r\n550 no carol\r\n250 ok\r\n354 go\r\n")
    script.step(MessageData(b"body\r\n"), sends=b"body\r\n")


def test_lmtp_answers_the_end_of_data_once_per_accepted_recipient_in_order() -> None:
    script = greeted("PIPELINING", lmtp=True)
    lmtp_transaction(script)
    [first] = script.step(EndOfData(), sends=b".\r\n", answers=b"250 2.0.0 bob delivered\r\n")
    assert (first.code, first.command, first.recipient) == (250, EndOfData(), b"bob@example.com")
    assert list(script.conn.pending) == [EndOfData()]
    [second] = script.receive(b"452 4.2.2 dan over quota\r\n")
    assert (second.code, second.recipient) == (452, b"dan@example.com")
    assert not script.conn.pending
    assert script.conn.next_event() is NEED_DATA
    script.step(MAIL, sends=b"MAIL FROM:<alice@example.org>\r\n", answers=b"250 ok\r\n")
    assert script.state() is State.MAIL


def test_lmtp_replies_split_anyhow_still_name_their_recipients() -> None:
    script = greeted("PIPELINING", lmtp=True)
    lmtp_transaction(script)
    script.conn.send(EndOfData())
    replies = script.receive(b"250 bob\r\n25") + script.receive(b"0 dan\r\n")
    assert [r.recipient for r in replies] == [b"bob@example.com", b"dan@example.com"]


def test_lmtp_bdat_last_is_answered_per_recipient() -> None:
    script = greeted("PIPELINING", "CHUNKING", lmtp=True)
    wire = MAIL_WIRE + BOB_WIRE + CAROL_WIRE + b"BDAT 6 LAST\r\nbody\r\n"
    script.step(MAIL, RCPT_BOB, RCPT_CAROL, Bdat(b"body\r\n", last=True), sends=wire)
    replies = script.receive(b"250 ok\r\n250 ok\r\n250 ok\r\n250 bob\r\n250 carol\r\n")
    assert [(r.command, r.recipient) for r in replies[3:]] == [
        (Bdat(b"body\r\n", last=True), b"bob@example.com"),
        (Bdat(b"body\r\n", last=True), b"carol@example.com"),
    ]
    assert (script.state(), script.conn.pending) == (State.READY, ())


def test_smtp_answers_the_end_of_data_once() -> None:
    script = greeted("PIPELINING")
    send_group(script)
    script.receive(b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")
    [reply] = script.step(EndOfData(), sends=b".\r\n", answers=b"250 queued\r\n")
    assert reply.recipient is None
    assert script.conn.pending == ()


@pytest.mark.parametrize(
    ("lmtp", "command"),
    [(True, Ehlo(b"client.example")), (True, Helo(b"client.example")), (False, Lhlo(b"c"))],
    ids=["lmtp-ehlo", "lmtp-helo", "smtp-lhlo"],
)
def test_each_protocol_refuses_the_others_greeting(lmtp: bool, command: Command) -> None:
    script = Script(lmtp=lmtp)
    script.receive(b"220 ready\r\n")
    with pytest.raises(LocalProtocolError, match="LHLO"):
        script.conn.send(command)
    assert (script.state(), script.conn.pending) == (State.GREETED, ())


# -- send_all: a group is recorded whole or not at all -------------------------------------------


def test_send_all_gives_the_groups_bytes_and_records_every_command() -> None:
    script = greeted("PIPELINING")
    wire = script.conn.send_all([MAIL, RCPT_BOB, RCPT_CAROL, Data()])
    assert wire == GROUP_WIRE
    assert script.conn.pending == (MAIL, RCPT_BOB, RCPT_CAROL, Data())
    assert script.state() is State.DATA_REQUESTED


def test_send_all_with_a_bad_last_argument_records_nothing() -> None:
    """A CR in the last recipient: nothing of the group exists, the state is as before."""
    script = greeted("PIPELINING")
    bad = Rcpt(b"evil@example.com\r\nRSET")
    with pytest.raises(BadArgument):
        script.conn.send_all([MAIL, RCPT_BOB, bad, Data()])
    assert script.conn.pending == ()
    assert script.state() is State.READY
    send_group(script)  # the connection is as good as new


def test_send_all_refused_mid_transaction_restores_the_open_transaction() -> None:
    """Two RCPTs and DATA into an open transaction, then a RCPT after DATA: all taken back."""
    script = greeted("PIPELINING")
    script.step(MAIL, RCPT_BOB, sends=MAIL_WIRE + BOB_WIRE)
    with pytest.raises(LocalProtocolError, match="cannot be sent in state DATA_REQUESTED"):
        script.conn.send_all([RCPT_CAROL, RCPT_DAN, Data(), Rcpt(b"erin@example.com")])
    assert script.conn.pending == (MAIL, RCPT_BOB)
    assert script.state() is State.RCPT
    script.receive(b"250 sender ok\r\n250 bob ok\r\n")
    assert script.conn.accepted_recipients == (b"bob@example.com",)
    script.step(Data(), sends=b"DATA\r\n", answers=b"354 go ahead\r\n")
    assert script.state() is State.BODY


def test_send_all_refuses_message_content() -> None:
    script = greeted("PIPELINING")
    with pytest.raises(LocalProtocolError, match="message content"):
        script.conn.send_all([MAIL, MessageData(b"x")])
    assert script.conn.pending == ()


# -- send_all is send() for each command in turn, or nothing ------------------------------------

_GROUP_COMMANDS = [
    Mail(b"a@x"),
    Rcpt(b"b@y"),
    Rcpt(b"c@y"),
    Rcpt(b"bad@y\r\nRSET"),
    Raw(b"RCPT TO:<raw@y>"),
    Data(),
    Rset(),
    Noop(),
    Bdat(b"chunk", last=True),
]
_MAIL_OK = (Mail(b"a@x"), b"250 ok\r\n")
_SETUPS: dict[str, list[tuple[Command, bytes]]] = {
    "ready": [],
    "mail pending": [(Mail(b"a@x"), b"")],
    "rcpt pending": [(Mail(b"a@x"), b""), (Rcpt(b"b@y"), b"")],
    "noop pending": [(Noop(), b"")],
    "mail answered": [_MAIL_OK],
    "rcpt answered, one pending": [_MAIL_OK, (Rcpt(b"b@y"), b"250 ok\r\n"), (Rcpt(b"c@y"), b"")],
}


def _reference(conn: ClientConnection, commands: list[Command]) -> tuple[bytes, str | None]:
    """send() each command in turn: all their bytes, or the first error's type and text."""
    try:
        wire = [conn.send(command) for command in commands]
    except LocalProtocolError as exc:
        return b"", f"{type(exc).__name__}: {exc}"
    return b"".join(wire), None


@given(
    extensions=st.sampled_from([("PIPELINING", "CHUNKING"), ("CHUNKING",), ("PIPELINING",)]),
    max_pending=st.integers(min_value=1, max_value=6),
    setup=st.sampled_from(sorted(_SETUPS)),
    commands=st.lists(st.sampled_from(_GROUP_COMMANDS), min_size=1, max_size=8),
    answers=st.lists(
        st.sampled_from([b"250 ok\r\n", b"550 no\r\n", b"451 later\r\n"]),
        min_size=10,
        max_size=10,
    ),
)
# Each breaks one condition of send_all()'s quick path for a RCPT joining its group.
@example(("PIPELINING",), 2, "mail pending", [Rcpt(b"b@y"), Rcpt(b"c@y")], [b"250 ok\r\n"] * 10)
@example(("CHUNKING",), 6, "rcpt answered, one pending", [Rcpt(b"d@y")], [b"250 ok\r\n"] * 10)
@example(("PIPELINING",), 6, "mail answered", [Rcpt(b"b@y"), Rcpt(b"c@y")], [b"550 no\r\n"] * 10)
@example(("PIPELINING",), 6, "mail answered", [Rcpt(b"b@y"), Rcpt(b"c@y")], [b"250 ok\r\n"] * 10)
@example(("PIPELINING",), 6, "mail pending", [Rcpt(b"b@y"), Data()], [b"250 ok\r\n"] * 10)
def test_send_all_is_send_for_each_command_or_nothing(
    extensions: tuple[str, ...],
    max_pending: int,
    setup: str,
    commands: list[Command],
    answers: list[bytes],
) -> None:
    """Same bytes, state and replies as send() one by one; after a refusal, as before."""

    def prepared() -> Script:
        script = greeted(*extensions, max_pending=max_pending)
        for command, answer in _SETUPS[setup]:
            try:
                script.conn.send(command)
            except LocalProtocolError:
                break  # e.g. the server did not advertise PIPELINING
            if answer:
                script.receive(answer)
        return script

    grouped, single = prepared(), prepared()
    before = (grouped.state(), grouped.conn.pending)
    expected, error = _reference(single.conn, commands)
    try:
        wire = grouped.conn.send_all(commands)
    except LocalProtocolError as exc:
        assert f"{type(exc).__name__}: {exc}" == error
        assert (grouped.state(), grouped.conn.pending) == before
        single = prepared()
    else:
        assert error is None
        assert wire == expected
    assert (grouped.state(), grouped.conn.pending) == (single.state(), single.conn.pending)
    # The replies that follow are paired and counted alike (accepted recipients, moves).
    for answer in answers:
        if not grouped.conn.pending or grouped.state() is State.BODY:
            break
        replies = [script.receive(answer) for script in (grouped, single)]
        assert [(r.code, r.command) for r in replies[0]] == [
            (r.code, r.command) for r in replies[1]
        ]
        assert grouped.state() is single.state()
        assert grouped.conn.accepted_recipients == single.conn.accepted_recipients
