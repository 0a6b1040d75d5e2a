"""Properties of the whole machine: the transition table decides, and chunking never matters."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asmtp.protocol import (
    TRANSITIONS,
    Auth,
    AuthResponse,
    Bdat,
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
    Reply,
    Rset,
    StartTLS,
    State,
    Vrfy,
)
from asmtp.protocol._state import REPLY_MOVES, BdatLast, Kind, mermaid_diagram

from ._helpers import GREETING, greeted, script_at, split_at

# One command of every kind the table knows, plus raw lines whose verb matters.
COMMANDS: list[Command] = [
    Ehlo(b"c.example"),
    Helo(b"c.example"),
    Lhlo(b"c.example"),
    Mail(b"a@x"),
    Rcpt(b"b@y"),
    Data(),
    MessageData(b"x"),
    EndOfData(),
    Bdat(b"x"),
    Bdat(b"x", last=True),
    Rset(),
    Noop(),
    Vrfy(b"u"),
    Expn(b"l"),
    Help(),
    Quit(),
    StartTLS(),
    Auth(b"PLAIN", b"AGEAYg=="),
    AuthResponse(b"Kg=="),
    Raw(b"NOOP"),
    Raw(b"MAIL FROM:<a@x>"),
    Raw(b"BDAT 1 LAST"),
]
EXTENSION_SETS = [(), ("PIPELINING",), ("CHUNKING",), ("PIPELINING", "CHUNKING")]
# Why a command the table allows may still be refused: extensions, pipelining, LMTP.
ALLOWED_BUT_REFUSED = "PIPELINING|pipelined group|CHUNKING|LMTP|LHLO|payload|await replies"


def kind_of(command: Command) -> Kind:
    return BdatLast if isinstance(command, Bdat) and command.last else type(command)


def check_pair(state: State, command: Command, keywords: tuple[str, ...], lmtp: bool) -> None:
    """Either (state, kind) is in the table, or send() raises and changes nothing."""
    conn = script_at(state, *keywords, lmtp=lmtp).conn
    before = (conn.state, conn.pending)
    row = TRANSITIONS[state]
    predicted = conn.can_send(command)
    try:
        wire = conn.send(command)
    except LocalProtocolError as error:
        assert not predicted
        assert (conn.state, conn.pending) == before
        if kind_of(command) in row:
            assert any(word in str(error) for word in ALLOWED_BUT_REFUSED.split("|")), error
        return
    assert predicted
    assert kind_of(command) in row, (state, command)
    assert conn.state is row[kind_of(command)]
    assert wire or isinstance(command, MessageData)


def test_the_commands_cover_every_kind_in_the_table() -> None:
    kinds_in_table = {kind for row in TRANSITIONS.values() for kind in row}
    assert kinds_in_table <= {kind_of(command) for command in COMMANDS}
    assert set(TRANSITIONS) == set(State)


@pytest.mark.parametrize("state", list(State), ids=lambda state: state.name)
def test_every_state_and_command_pair_follows_the_table(state: State) -> None:
    for command in COMMANDS:
        for keywords in EXTENSION_SETS:
            for lmtp in (False, True):
                check_pair(state, command, keywords, lmtp)


@given(
    state=st.sampled_from(State),
    command=st.sampled_from(COMMANDS),
    keywords=st.sampled_from(EXTENSION_SETS),
    lmtp=st.booleans(),
)
def test_any_command_in_any_state_is_in_the_table_or_refused_untouched(
    state: State, command: Command, keywords: tuple[str, ...], lmtp: bool
) -> None:
    check_pair(state, command, keywords, lmtp)


# How to make each reply-driven move in REPLY_MOVES: from a state reached by script_at, the
# commands that lead to the move's source state, then the answer that moves it (None: the
# TLS handshake completing instead of a reply).
MOVE_RECIPES: dict[tuple[State, str], tuple[State, tuple[Command, ...], bytes | None]] = {
    (State.AWAIT_GREETING, "greeting"): (State.AWAIT_GREETING, (), GREETING),
    (State.GREETED, "250 to EHLO/HELO/LHLO"): (State.GREETED, (Ehlo(b"c"),), b"250 hi\r\n"),
    (State.MAIL, "MAIL refused"): (State.READY, (Mail(b"a@x"),), b"550 no\r\n"),
    (State.RCPT, "every RCPT refused"): (State.MAIL, (Rcpt(b"b@y"),), b"550 no\r\n"),
    (State.DATA_REQUESTED, "354"): (State.RCPT, (Data(),), b"354 go\r\n"),
    (State.DATA_REQUESTED, "DATA refused"): (State.RCPT, (Data(),), b"451 later\r\n"),
    (State.AUTH, "334"): (State.READY, (Auth(b"LOGIN"),), b"334 VXNlcm5hbWU6\r\n"),
    (State.AUTH, "235 or refusal"): (State.READY, (Auth(b"PLAIN", b"AGEAYg=="),), b"535 no\r\n"),
    (State.STARTTLS_REQUESTED, "220"): (State.READY, (StartTLS(),), b"220 go\r\n"),
    (State.STARTTLS_REQUESTED, "refusal"): (State.READY, (StartTLS(),), b"454 no\r\n"),
    (State.TLS_HANDSHAKE, "handshake done: tls_established()"): (State.TLS_HANDSHAKE, (), None),
}


def test_every_reply_move_has_a_recipe() -> None:
    assert {(source, label) for source, label, _ in REPLY_MOVES} == set(MOVE_RECIPES)


@pytest.mark.parametrize(("source", "label", "target"), REPLY_MOVES, ids=lambda v: str(v))
def test_reply_move_in_the_diagram_is_what_the_connection_does(
    source: State, label: str, target: State
) -> None:
    start, commands, answer = MOVE_RECIPES[source, label]
    script = script_at(start)
    script.send(*commands)
    assert script.state() is source
    if answer is None:
        script.conn.tls_established()
    else:
        script.receive(answer)
    assert script.state() is target


def test_diagram_shows_every_move_that_changes_the_state() -> None:
    diagram = mermaid_diagram()
    assert diagram.startswith("stateDiagram-v2\n")
    for state, row in TRANSITIONS.items():
        for target in row.values():
            if target is not state:
                assert f"    {state.name} --> {target.name}: " in diagram
    for source, label, target in REPLY_MOVES:
        assert f"    {source.name} --> {target.name}: on {label}\n" in diagram


_TEXT = st.binary(max_size=12).filter(lambda text: b"\r" not in text and b"\n" not in text)
_REPLY = st.tuples(
    st.sampled_from([250, 251, 252, 450, 451, 550, 553]),
    st.lists(st.tuples(_TEXT, st.sampled_from([b"\r\n", b"\n"])), min_size=1, max_size=3),
)


def wire_of(code: int, lines: list[tuple[bytes, bytes]]) -> bytes:
    last = len(lines) - 1
    return b"".join(
        b"%d%s%s%s" % (code, b" " if i == last else b"-", text, ending)
        for i, (text, ending) in enumerate(lines)
    )


def replies_for(stream: list[bytes], count: int) -> list[Reply]:
    """Pipeline MAIL and ``count - 1`` RCPTs, then feed the server's replies in ``stream``."""
    script = greeted("PIPELINING")
    script.send(Mail(b"a@x"), *(Rcpt(b"r%d@y" % i) for i in range(count - 1)))
    replies: list[Reply] = []
    for chunk in stream:
        replies += script.receive(chunk)
    assert script.conn.pending == ()
    return replies


@given(replies=st.lists(_REPLY, min_size=1, max_size=6), data=st.data())
def test_any_split_of_a_reply_stream_gives_the_same_replies(
    replies: list[tuple[int, list[tuple[bytes, bytes]]]], data: st.DataObject
) -> None:
    wire = b"".join(wire_of(code, lines) for code, lines in replies)
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=8))
    chunks = [chunk for chunk in split_at(wire, cuts) if chunk]  # b"" would mean "closed"
    whole = replies_for([wire], len(replies))
    assert [(r.code, r.lines) for r in whole] == [
        (code, tuple(text for text, _ in lines)) for code, lines in replies
    ]
    assert replies_for(chunks, len(replies)) == whole
