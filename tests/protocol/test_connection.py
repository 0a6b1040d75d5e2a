"""ClientConnection's state machine: order, STARTTLS, closing, errors and raw command lines."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from asmtp.protocol import (
    NEED_DATA,
    PEER_CLOSED,
    TRANSITIONS,
    Auth,
    AuthResponse,
    Bdat,
    ClientConnection,
    Command,
    Data,
    Ehlo,
    EndOfData,
    Helo,
    LocalProtocolError,
    Mail,
    MessageData,
    Noop,
    Quit,
    Raw,
    Rcpt,
    RemoteProtocolError,
    Reply,
    Rset,
    StartTLS,
    State,
)

from ._helpers import GREETING, Script, ehlo_reply, greeted, script_at


def test_greeting_then_ehlo_opens_the_session() -> None:
    script = Script()
    assert script.conn.next_event() is NEED_DATA
    [greeting] = script.receive(GREETING)
    assert greeting == Reply(220, (b"mx.example ESMTP",), command=None)
    assert (script.state(), script.features()) == (State.GREETED, None)
    script.step(Ehlo(b"client.example"), sends=b"EHLO client.example\r\n")
    [reply] = script.receive(ehlo_reply("PIPELINING", "SIZE 1000"))
    assert reply.command == Ehlo(b"client.example")
    assert script.state() is State.READY
    assert script.features() == {"pipelining": "", "size": "1000"}


def test_refused_ehlo_falls_back_to_helo_without_extensions() -> None:
    script = Script()
    script.receive(GREETING)
    script.step(Ehlo(b"c.example"), sends=b"EHLO c.example\r\n", answers=b"502 unknown\r\n")
    assert (script.state(), script.features()) == (State.GREETED, None)
    script.step(Helo(b"c.example"), sends=b"HELO c.example\r\n", answers=b"250 hi\r\n")
    assert (script.state(), script.features()) == (State.READY, {})


def test_one_message_by_data() -> None:
    script = greeted()
    script.play([
        ((Mail(b"a@x"),), b"MAIL FROM:<a@x>\r\n", b"250 ok\r\n"),
        ((Rcpt(b"b@y"),), b"RCPT TO:<b@y>\r\n", b"250 ok\r\n"),
        ((Data(),), b"DATA\r\n", b"354 go ahead\r\n"),
        ((MessageData(b"Hi\n.\n"), MessageData(b"Bye")), b"Hi\r\n..\r\nBye", b""),
        ((EndOfData(),), b"\r\n.\r\n", b"250 queued as 1\r\n"),
        ((Quit(),), b"QUIT\r\n", b"221 bye\r\n"),
    ])  # fmt: skip
    assert script.state() is State.CLOSED


def test_one_message_by_bdat_with_a_refused_chunk_then_rset() -> None:
    script = script_at(State.RCPT, "CHUNKING")
    script.step(Bdat(b"part"), sends=b"")  # held until more content follows
    assert script.state() is State.BDAT
    script.step(Bdat(b"more"), sends=b"BDAT 4\r\npart", answers=b"250 ok\r\n")
    script.step(Bdat(b"rest"), sends=b"BDAT 4\r\nmore", answers=b"552 too big\r\n")
    assert script.state() is State.BDAT
    assert not script.conn.can_send(Mail(b"a@x"))
    script.step(Rset(), sends=b"RSET\r\n", answers=b"250 ok\r\n")
    assert script.state() is State.READY


@pytest.mark.parametrize(
    ("state", "command"),
    [
        (State.AWAIT_GREETING, Ehlo(b"c.example")),
        (State.AWAIT_GREETING, Quit()),
        (State.GREETED, Mail(b"a@x")),
        (State.READY, Rcpt(b"b@y")),
        (State.READY, Data()),
        (State.READY, MessageData(b"x")),
        (State.READY, EndOfData()),
        (State.READY, AuthResponse(b"x")),
        (State.MAIL, Data()),
        (State.MAIL, Mail(b"a@x")),
        (State.RCPT, MessageData(b"x")),
        (State.RCPT, Bdat(b"x")),
        (State.RCPT, Raw(b"BDAT 1 LAST")),
        (State.BODY, Rset()),
        (State.BODY, Quit()),
        (State.BDAT, Data()),
        (State.AUTH, Noop()),
        (State.STARTTLS_REQUESTED, Ehlo(b"c.example")),
        (State.TLS_HANDSHAKE, Ehlo(b"c.example")),
        (State.CLOSED, Noop()),
        (State.CLOSED, Quit()),
        (State.ERROR, Quit()),
    ],
    ids=repr,
)
def test_command_in_the_wrong_state_raises_and_changes_nothing(
    state: State, command: Command
) -> None:
    conn = script_at(state, "PIPELINING").conn
    conn_before = (conn.state, conn.pending)
    assert not conn.can_send(command)
    with pytest.raises(LocalProtocolError):
        conn.send(command)
    assert (conn.state, conn.pending) == conn_before


def test_bdat_needs_chunking() -> None:
    script = script_at(State.RCPT)
    with pytest.raises(LocalProtocolError, match="CHUNKING"):
        script.conn.send(Bdat(b"x", last=True))
    assert script.state() is State.RCPT


def test_ehlo_in_a_transaction_ends_it() -> None:
    script = script_at(State.RCPT)
    script.step(Ehlo(b"c.example"), sends=b"EHLO c.example\r\n", answers=ehlo_reply("DSN"))
    assert (script.state(), script.conn.accepted_recipients) == (State.READY, ())
    assert script.features() == {"dsn": ""}


@pytest.mark.parametrize(("code", "state"), [(451, State.RCPT), (354, State.BODY)])
def test_data_reply_decides_between_body_and_transaction(code: int, state: State) -> None:
    script = script_at(State.RCPT)
    script.step(Data(), sends=b"DATA\r\n", answers=b"%d reply\r\n" % code)
    assert script.state() is state


def test_auth_challenges_are_answered_until_the_final_reply() -> None:
    script = greeted("AUTH LOGIN")
    script.step(Auth(b"LOGIN"), sends=b"AUTH LOGIN\r\n", answers=b"334 VXNlcm5hbWU6\r\n")
    assert script.state() is State.AUTH_CHALLENGE
    script.step(AuthResponse(b"YQ=="), sends=b"YQ==\r\n", answers=b"334 UGFzc3dvcmQ6\r\n")
    assert script.state() is State.AUTH_CHALLENGE
    script.step(AuthResponse(b"Yg=="), sends=b"Yg==\r\n", answers=b"235 2.7.0 ok\r\n")
    assert script.state() is State.READY


def test_refused_auth_returns_to_ready() -> None:
    script = greeted("AUTH PLAIN")
    script.step(
        Auth(b"PLAIN", b"AGEAYg=="), sends=b"AUTH PLAIN AGEAYg==\r\n", answers=b"535 no\r\n"
    )
    assert script.state() is State.READY


def starttls_script() -> Script:
    script = greeted("STARTTLS", "PIPELINING")
    script.step(StartTLS(), sends=b"STARTTLS\r\n")
    assert script.state() is State.STARTTLS_REQUESTED
    return script


@pytest.mark.parametrize("injected", [b"250 injected\r\n", b"2"], ids=["reply", "one-byte"])
def test_bytes_after_starttls_220_in_the_same_chunk_are_an_injection(injected: bytes) -> None:
    script = starttls_script()
    script.conn.receive_data(b"220 go ahead\r\n" + injected)
    with pytest.raises(RemoteProtocolError, match="injection"):
        script.conn.next_event()
    assert script.state() is State.ERROR


def test_bytes_arriving_later_before_the_handshake_are_an_injection() -> None:
    script = starttls_script()
    [reply] = script.receive(b"220 go ahead\r\n")
    assert (reply.command, script.state()) == (StartTLS(), State.TLS_HANDSHAKE)
    with pytest.raises(RemoteProtocolError, match="injection"):
        script.conn.receive_data(b"250 injected\r\n")
    assert script.state() is State.ERROR


def test_tls_established_forgets_the_extensions_and_wants_ehlo_again() -> None:
    script = starttls_script()
    script.receive(b"220 go ahead\r\n")
    assert not script.conn.can_send(Ehlo(b"c.example"))
    script.conn.tls_established()
    assert (script.state(), script.features()) == (State.GREETED, None)
    assert not script.conn.can_send(Mail(b"a@x"))
    script.step(Ehlo(b"c.example"), sends=b"EHLO c.example\r\n", answers=ehlo_reply("AUTH PLAIN"))
    assert script.features() == {"auth": " PLAIN"}


def test_refused_starttls_keeps_the_session() -> None:
    script = starttls_script()
    script.receive(b"454 TLS not available\r\n")
    assert script.state() is State.READY
    assert script.conn.extensions is not None
    with pytest.raises(LocalProtocolError):
        script.conn.tls_established()


@pytest.mark.parametrize("code", [421, 221])
def test_unsolicited_421_or_221_while_idle_closes(code: int) -> None:
    """RFC 5321 §3.8: the server closing; Postfix says 221 to a line it will not take."""
    script = greeted()
    [reply] = script.receive(b"%d 4.3.2 shutting down\r\n" % code)
    assert (reply.code, reply.command, script.state()) == (code, None, State.CLOSED)
    with pytest.raises(LocalProtocolError):
        script.conn.send(Quit())


def test_421_answering_a_pending_command_closes_and_drops_the_queue() -> None:
    script = greeted("PIPELINING")
    script.conn.send(Mail(b"a@x"))
    script.conn.send(Rcpt(b"b@y"))
    [reply] = script.receive(b"421 closing\r\n")
    assert (reply.command, script.state(), script.conn.pending) == (
        Mail(b"a@x"),
        State.CLOSED,
        (),
    )


def test_unsolicited_reply_other_than_421_is_a_protocol_error() -> None:
    script = greeted()
    with pytest.raises(RemoteProtocolError, match="unsolicited"):
        script.receive(b"250 surprise\r\n")
    assert script.state() is State.ERROR


@pytest.mark.parametrize(
    ("answer", "shown"),
    [
        pytest.param(b"250 ok\r\n250 extra\r\n", b"250 extra\r\n", id="whole-reply"),
        pytest.param(b"250 ok\r\n25", b"25", id="partial-line"),
        pytest.param(b"250 ok\r\n250-first\r\n", b"250-first\r\n", id="partial-multiline"),
        pytest.param(b"250 ok\r\n421 4.4.2 bye\r\n", b"421 4.4.2 bye\r\n", id="unread-421"),
    ],
)
def test_a_command_with_nothing_pending_refuses_bytes_nobody_asked_for(
    answer: bytes, shown: bytes
) -> None:
    """Sent now, the command would be paired with those bytes and every later reply shift."""
    conn = greeted().conn
    conn.send(Noop())
    conn.receive_data(answer)
    reply = conn.next_event()
    assert isinstance(reply, Reply) and (reply.code, reply.command) == (250, Noop())
    assert conn.buffered == len(shown)
    with pytest.raises(RemoteProtocolError, match="unsolicited") as caught:
        conn.send(Noop())
    assert repr(shown) in str(caught.value)
    assert conn.state is State.ERROR


def test_bytes_after_the_greeting_refuse_the_first_command() -> None:
    conn = ClientConnection()
    conn.receive_data(GREETING + b"250 extra\r\n")
    assert isinstance(conn.next_event(), Reply)
    with pytest.raises(RemoteProtocolError, match="unsolicited"):
        conn.send(Ehlo(b"c.example"))
    assert conn.state is State.ERROR


def test_bytes_of_a_reply_owed_do_not_stop_pipelined_commands() -> None:
    """With a command pending, buffered bytes are its reply's beginning, not unsolicited."""
    script = greeted("PIPELINING")
    script.send(Mail(b"a@x"), Rcpt(b"b@y"))
    [mail] = script.receive(b"250 ok\r\n25")
    assert mail.command == Mail(b"a@x") and script.conn.buffered == 2
    assert script.send(Data()) == b"DATA\r\n"
    assert [r.command for r in script.receive(b"0 ok\r\n354 go\r\n")] == [Rcpt(b"b@y"), Data()]


def test_message_data_after_354_is_not_a_command_and_is_not_checked() -> None:
    """The body is written with nothing pending; its end, a command, is checked."""
    script = script_at(State.BODY)
    script.conn.receive_data(b"250 early\r\n")
    assert script.conn.send(MessageData(b"Hi")) == b"Hi"
    with pytest.raises(RemoteProtocolError, match="unsolicited"):
        script.conn.send(EndOfData())


def test_peer_closing_gives_peer_closed_and_keeps_what_it_left_unanswered() -> None:
    script = greeted()
    script.conn.send(Noop())
    script.conn.receive_data(b"")
    assert script.conn.next_event() is PEER_CLOSED
    assert (script.state(), script.conn.pending) == (State.CLOSED, (Noop(),))


def test_replies_buffered_before_the_close_are_still_delivered() -> None:
    script = greeted()
    script.conn.send(Quit())
    script.conn.receive_data(b"221 bye\r\n")
    script.conn.receive_data(b"")
    event = script.conn.next_event()
    assert isinstance(event, Reply) and event.command == Quit()
    assert script.conn.next_event() is PEER_CLOSED


def _malformed(conn: ClientConnection) -> None:
    conn.receive_data(b"2x0 nope\r\n")
    conn.next_event()


def _unsolicited(conn: ClientConnection) -> None:
    conn.receive_data(b"250 surprise\r\n")
    conn.next_event()


def _oversized(conn: ClientConnection) -> None:
    conn.receive_data(b"250 " + b"x" * 9000)


def _transport_failed(conn: ClientConnection) -> None:
    conn.fail()


@pytest.mark.parametrize(
    ("breaker", "raises"),
    [(_malformed, True), (_unsolicited, True), (_oversized, True), (_transport_failed, False)],
    ids=["malformed", "unsolicited", "oversized", "fail()"],
)
def test_a_protocol_error_is_final(
    breaker: Callable[[ClientConnection], None], raises: bool
) -> None:
    conn = greeted().conn
    if raises:
        with pytest.raises(RemoteProtocolError):
            breaker(conn)
    else:
        breaker(conn)
    assert conn.state is State.ERROR
    for command in (Noop(), Quit(), Rset()):
        assert not conn.can_send(command)
        with pytest.raises(LocalProtocolError, match="protocol error"):
            conn.send(command)
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    assert conn.state is State.ERROR


def test_raw_lines_keep_the_state_in_step_through_a_transaction() -> None:
    script = greeted()
    script.step(Raw(b"MAIL FROM:<a@x>"), sends=b"MAIL FROM:<a@x>\r\n", answers=b"250 ok\r\n")
    assert script.state() is State.MAIL
    script.step(Raw(b"RCPT TO:<b@y> NOTIFY=NEVER"), sends=b"RCPT TO:<b@y> NOTIFY=NEVER\r\n")
    script.receive(b"250 ok\r\n")
    assert (script.state(), script.conn.accepted_recipients) == (State.RCPT, (b"b@y",))
    [go] = script.step(Raw(b"DATA"), sends=b"DATA\r\n", answers=b"354 go\r\n")
    assert (go.command, script.state()) == (Raw(b"DATA"), State.BODY)
    script.step(MessageData(b".x"), EndOfData(), sends=b"..x\r\n.\r\n", answers=b"250 ok\r\n")
    assert script.state() is State.READY


@pytest.mark.parametrize(
    ("state", "line", "answer", "after"),
    [
        (State.READY, b"MAIL FROM:<a@x>", b"550 no\r\n", State.READY),
        (State.MAIL, b"RCPT TO:<b@y>", b"550 no\r\n", State.MAIL),
        (State.RCPT, b"RSET", b"250 ok\r\n", State.READY),
        (State.GREETED, b"RSET", b"250 ok\r\n", State.GREETED),
        (State.READY, b"QUIT", b"221 bye\r\n", State.CLOSED),
        (State.GREETED, b"EHLO c.example", ehlo_reply("SIZE"), State.READY),
        (State.READY, b"AUTH LOGIN", b"334 VXNlcm5hbWU6\r\n", State.AUTH_CHALLENGE),
        (State.AUTH_CHALLENGE, b"YQ==", b"235 ok\r\n", State.READY),
        (State.READY, b"STARTTLS", b"220 go\r\n", State.TLS_HANDSHAKE),
        (State.READY, b"XFOO bar", b"250 ok\r\n", State.READY),
        (State.READY, b"RCPT TO:<b@y>", b"503 need MAIL\r\n", State.READY),
    ],
    ids=lambda value: value.decode() if isinstance(value, bytes) else None,
)
def test_raw_line_moves_the_state_as_its_reply_says(
    state: State, line: bytes, answer: bytes, after: State
) -> None:
    script = script_at(state)
    script.step(Raw(line), sends=line + b"\r\n")
    assert script.state() is TRANSITIONS[state][Raw]
    [reply] = script.receive(answer)
    # A raw answer to a challenge is a credential: the reply names it as a sensitive line.
    named = Raw(line, sensitive=state is State.AUTH_CHALLENGE)
    assert (reply.command, script.state()) == (named, after)


def test_between_commands_only_when_no_reply_is_owed_and_no_body_is_open() -> None:
    script = Script()
    seen: list[tuple[State, bool]] = []

    def note() -> None:
        seen.append((script.state(), script.conn.between_commands))

    note()  # the greeting is owed
    script.receive(GREETING)
    note()
    script.step(Ehlo(b"c.example"), sends=b"EHLO c.example\r\n", answers=ehlo_reply())
    script.send(Mail(b"a@x"))
    note()  # MAIL's reply is owed
    script.receive(b"250 ok\r\n")
    script.step(Rcpt(b"b@y"), sends=b"RCPT TO:<b@y>\r\n", answers=b"250 ok\r\n")
    note()
    script.step(Data(), sends=b"DATA\r\n", answers=b"354 go\r\n")
    note()  # the body is open
    script.step(MessageData(b"x"), EndOfData(), sends=b"x\r\n.\r\n")
    note()  # the end of data is sent, its reply owed
    script.receive(b"250 queued\r\n")
    note()
    script.step(Quit(), sends=b"QUIT\r\n", answers=b"221 bye\r\n")
    note()
    assert seen == [
        (State.AWAIT_GREETING, False),
        (State.GREETED, True),
        (State.MAIL, False),
        (State.RCPT, True),
        (State.BODY, False),
        (State.READY, False),
        (State.READY, True),
        (State.CLOSED, True),
    ]
