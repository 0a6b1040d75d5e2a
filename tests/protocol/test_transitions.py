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
from asmtp.protocol._state import OTHER_MOVES, REPLY_MOVES, BdatLast, Kind, mermaid_diagram

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
    assert wire or isinstance(command, (MessageData, Bdat))  # body content may be held


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


# How to make each move the diagram draws (REPLY_MOVES from each drawn source, and
# OTHER_MOVES): from a state reached by script_at (with the given extensions), the commands
# that lead to the drawn source state, then the answer that moves it (None: the TLS
# handshake completing instead of a reply).
Recipe = tuple[State, tuple[str, ...], tuple[Command, ...], bytes | None]
MOVE_RECIPES: dict[tuple[str, State], Recipe] = {
    ("greeting", State.AWAIT_GREETING): (State.AWAIT_GREETING, (), (), GREETING),
    ("250 to EHLO/HELO/LHLO", State.GREETED): (State.GREETED, (), (Ehlo(b"c"),), b"250 hi\r\n"),
    ("250 to EHLO/HELO/LHLO", State.MAIL): (State.MAIL, (), (Ehlo(b"c"),), b"250 hi\r\n"),
    ("250 to EHLO/HELO/LHLO", State.RCPT): (State.RCPT, (), (Helo(b"c"),), b"250 hi\r\n"),
    ("MAIL accepted (raw line)", State.READY): (
        State.READY,
        (),
        (Raw(b"MAIL FROM:<a@x>"),),
        b"250 ok\r\n",
    ),
    ("MAIL refused", State.MAIL): (State.READY, (), (Mail(b"a@x"),), b"550 no\r\n"),
    ("MAIL refused", State.RCPT): (
        State.READY,
        ("PIPELINING",),
        (Mail(b"a@x"), Rcpt(b"b@y")),
        b"550 no\r\n",
    ),
    ("RCPT accepted (raw line)", State.MAIL): (
        State.MAIL,
        (),
        (Raw(b"RCPT TO:<b@y>"),),
        b"250 ok\r\n",
    ),
    ("every RCPT refused", State.RCPT): (State.MAIL, (), (Rcpt(b"b@y"),), b"550 no\r\n"),
    ("354", State.DATA_REQUESTED): (State.RCPT, (), (Data(),), b"354 go\r\n"),
    ("354 to a raw DATA", State.RCPT): (State.RCPT, (), (Raw(b"DATA"),), b"354 go\r\n"),
    ("DATA refused", State.DATA_REQUESTED): (State.RCPT, (), (Data(),), b"451 later\r\n"),
    ("RSET accepted (raw line)", State.MAIL): (State.MAIL, (), (Raw(b"RSET"),), b"250 ok\r\n"),
    ("RSET accepted (raw line)", State.RCPT): (State.RCPT, (), (Raw(b"RSET"),), b"250 ok\r\n"),
    ("220", State.STARTTLS_REQUESTED): (State.READY, (), (StartTLS(),), b"220 go\r\n"),
    ("refusal", State.STARTTLS_REQUESTED): (State.READY, (), (StartTLS(),), b"454 no\r\n"),
    ("334", State.AUTH): (State.READY, (), (Auth(b"LOGIN"),), b"334 VXNlcm5hbWU6\r\n"),
    ("235 or refusal", State.AUTH): (
        State.READY,
        (),
        (Auth(b"PLAIN", b"AGEAYg=="),),
        b"535 no\r\n",
    ),
    ("QUIT answered (raw line)", State.READY): (State.READY, (), (Raw(b"QUIT"),), b"221 bye\r\n"),
    ("handshake done: tls_established()", State.TLS_HANDSHAKE): (State.TLS_HANDSHAKE, (), (), None),
}


def drawn_moves() -> list[tuple[str, State, State]]:
    """Every (label, source, target) edge the diagram draws for a reply-driven move."""
    edges = [(label, source, target) for source, label, target in OTHER_MOVES]
    for move in REPLY_MOVES:
        target = move.drawn_to or move.target
        assert isinstance(target, State)
        edges.extend(
            (move.label, source, target)
            for source in sorted(move.drawn_from or move.sources, key=list(State).index)
            if source is not target
        )
    return edges


def test_every_drawn_move_has_a_recipe() -> None:
    assert {(label, source) for label, source, _ in drawn_moves()} == set(MOVE_RECIPES)


@pytest.mark.parametrize(("label", "source", "target"), drawn_moves(), ids=lambda v: str(v))
def test_reply_move_in_the_diagram_is_what_the_connection_does(
    label: str, source: State, target: State
) -> None:
    start, keywords, commands, answer = MOVE_RECIPES[label, source]
    script = script_at(start, *keywords)
    script.send(*commands)
    assert script.state() is source
    if answer is None:
        script.conn.tls_established()
    else:
        script.receive(answer)
    assert script.state() is target


def test_drawn_sources_are_sources() -> None:
    for move in REPLY_MOVES:
        assert (move.drawn_from or move.sources) <= move.sources, move.label
        assert isinstance(move.target, State) or move.drawn_to is not None, move.label


def test_diagram_shows_every_move_that_changes_the_state() -> None:
    diagram = mermaid_diagram()
    assert diagram.startswith("stateDiagram-v2\n")
    for state, row in TRANSITIONS.items():
        for target in row.values():
            if target is not state:
                assert f"    {state.name} --> {target.name}: " in diagram
    for label, source, target in drawn_moves():
        assert f"    {source.name} --> {target.name}: on {label}\n" in diagram


@pytest.mark.parametrize(
    "state", [s for s in State if s not in (State.AWAIT_GREETING, State.ERROR)], ids=str
)
def test_a_reply_moves_the_state_as_the_table_says(state: State) -> None:
    """For every command allowed in ``state`` and every reply code, the table decides."""
    for command in COMMANDS:
        for code in _CODES:
            script = script_at(state, "PIPELINING", "CHUNKING")
            conn = script.conn
            if not conn.can_send(command):
                continue
            conn.send(command)
            if not conn.pending_count:
                continue  # message content awaits no reply of its own
            sent_state = conn.state
            accepted_before = conn.accepted_recipients
            script.receive(b"%d x\r\n" % code)
            if code == 421 or conn.state is State.ERROR:
                continue  # closing, or STARTTLS's injection check: not a table move
            answering = state is State.AUTH_CHALLENGE  # a raw line there answers a challenge
            expected = expected_after(sent_state, command, code, accepted_before, answering)
            assert conn.state is expected, (state, command, code)


def expected_after(
    state: State, command: Command, code: int, accepted: tuple[bytes, ...], answering: bool
) -> State:
    """The state :data:`REPLY_MOVES` names for ``command``'s reply."""
    kind = kind_of(command)
    raw = isinstance(command, Raw)
    if isinstance(command, Raw):
        kind = AuthResponse if answering else RAW_KINDS.get(command.line.split(b" ", 1)[0], Raw)
    for move in REPLY_MOVES:
        if kind not in move.kinds or (move.raw is not None and move.raw is not raw):
            continue
        if state in move.sources and move.on.matches(code):
            if isinstance(move.target, State):
                return move.target
            return State.RCPT if accepted else State.MAIL  # where the transaction stands
    return state


RAW_KINDS: dict[bytes, Kind] = {b"NOOP": Noop, b"MAIL": Mail, b"BDAT": Raw}
_CODES = [220, 221, 235, 250, 334, 354, 421, 451, 454, 503, 535, 550]


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
