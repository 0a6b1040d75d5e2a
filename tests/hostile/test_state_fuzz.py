"""Fuzzing the sans-IO core: random commands against random server bytes, valid and garbage.

A Hypothesis state machine drives :class:`asmtp.protocol.ClientConnection` the way any I/O
layer would (send a command, feed what was read in arbitrary pieces, take every event) and
checks after each step that:

- only :class:`~asmtp.protocol.ProtocolError` subclasses ever escape;
- a :class:`~asmtp.protocol.LocalProtocolError` (``BadArgument`` included) changes nothing:
  same state, same commands awaiting replies, same extensions, no bytes;
- a :class:`~asmtp.protocol.RemoteProtocolError` leaves the connection in ``ERROR`` for good,
  and ``send()`` raises one only when bytes arrived while no command was pending;
- the bytes buffered inside stay within the configured limits (small ones here, so that the
  fuzzer reaches them), plus at most the piece just fed.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Final

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from asmtp.protocol import (
    NEED_DATA,
    PEER_CLOSED,
    Auth,
    AuthResponse,
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
    ProtocolError,
    Quit,
    Raw,
    Rcpt,
    RemoteProtocolError,
    Reply,
    Rset,
    StartTLS,
    State,
    Vrfy,
)

MAX_LINE: Final = 40
MAX_LINES: Final = 4
MAX_REPLY: Final = 120
MAX_PENDING: Final = 6
MAX_PIECE: Final = 4 * (MAX_LINE + 8) + 120
"""The largest piece :data:`SERVER_BYTES` can produce (four replies or garbage blocks)."""

ARGS: Final = st.one_of(
    st.sampled_from(
        [b"a@x.test", b"b@x.test", b"", b"a\r\nb", b"x\x00", b"<a>", b"a b", b"SIZE=9"]
    ),
    st.binary(max_size=10),
)
PARAMS: Final = st.lists(ARGS, max_size=2).map(tuple)
RAW_LINES: Final = st.sampled_from(
    [b"MAIL FROM:<a@x>", b"RCPT TO:<b@x>", b"DATA", b"BDAT 3", b"RSET", b"QUIT", b"STARTTLS",
     b"AUTH PLAIN", b"EHLO c", b"NOOP", b"*"]
)  # fmt: skip
COMMANDS: Final = st.one_of(
    st.builds(Ehlo, ARGS),
    st.builds(Helo, ARGS),
    st.builds(Lhlo, ARGS),
    st.builds(Mail, ARGS, PARAMS),
    st.builds(Rcpt, ARGS, PARAMS),
    st.just(Data()),
    st.builds(MessageData, st.binary(max_size=30)),
    st.just(EndOfData()),
    st.builds(Bdat, st.binary(max_size=20), st.booleans()),
    st.just(Rset()),
    st.builds(Noop, ARGS),
    st.builds(Vrfy, ARGS),
    st.builds(Expn, ARGS),
    st.builds(Help, ARGS),
    st.just(Quit()),
    st.just(StartTLS()),
    st.builds(Auth, ARGS, st.none() | ARGS),
    st.builds(AuthResponse, ARGS),
    st.builds(Raw, RAW_LINES | ARGS, st.booleans()),
)

WELL_FORMED: Final = st.sampled_from(
    [Ehlo(b"c.test"), Mail(b"a@x.test"), Rcpt(b"b@x.test"), Rcpt(b"c@x.test"), Data(),
     MessageData(b"line\r\n.dot\n"), EndOfData(), Bdat(b"abc"), Bdat(b"z\r\n", last=True),
     Rset(), Noop(), StartTLS(), Auth(b"PLAIN", b"AGEAYg=="), Auth(b"LOGIN"),
     AuthResponse(b"dXNlcg=="), Raw(b"*"), Quit()]
)  # fmt: skip
"""Commands that make progress, so the machine reaches pipelining, bodies and AUTH."""

CODES: Final = st.sampled_from(
    [220, 221, 235, 250, 251, 334, 354, 421, 450, 454, 500, 501, 503, 535, 550, 554]
)
TEXTS: Final = st.one_of(
    st.sampled_from(
        [b"ok", b"PIPELINING", b"CHUNKING", b"STARTTLS", b"AUTH PLAIN", b"SIZE 10", b""]
    ),
    st.binary(max_size=12).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
)


@st.composite
def _reply(draw: st.DrawFn) -> bytes:
    code = b"%d" % draw(CODES)
    texts = draw(st.lists(TEXTS, min_size=1, max_size=MAX_LINES + 1))
    lines = [code + b"-" + text for text in texts[:-1]] + [code + b" " + texts[-1]]
    return b"".join(line + draw(st.sampled_from([b"\r\n", b"\n"])) for line in lines)


def _long_line(n: int) -> bytes:
    return b"250 " + b"x" * (n - 4) + b"\r\n"


SERVER_BYTES: Final = st.lists(
    st.one_of(
        _reply(),
        _reply(),
        st.binary(max_size=30),
        st.integers(MAX_LINE - 1, MAX_LINE + 3).map(_long_line),
    ),
    min_size=1,
    max_size=4,
).map(b"".join)


def _plausible(command: Command) -> bytes:
    if isinstance(command, (Ehlo, Lhlo)):
        return b"250-mx.test\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 STARTTLS\r\n"
    if isinstance(command, Data):
        return b"354 go\r\n"
    if isinstance(command, StartTLS):
        return b"220 go\r\n"
    if isinstance(command, Auth):
        return b"334 \r\n"
    if isinstance(command, Quit):
        return b"221 bye\r\n"
    return b"250 ok\r\n"


NEXT: Final[dict[State, list[Command]]] = {
    State.GREETED: [Ehlo(b"c.test")],
    State.READY: [Mail(b"a@x.test"), StartTLS(), Auth(b"LOGIN"), Auth(b"PLAIN", b"AGEAYg==")],
    State.MAIL: [Rcpt(b"b@x.test")],
    State.RCPT: [Data(), Bdat(b"abc"), Bdat(b"x\r\n", last=True), Rcpt(b"c@x.test")],
    State.BODY: [MessageData(b"a\r\n.b\n"), EndOfData()],
    State.BDAT: [Bdat(b"more"), Bdat(b"end\r\n", last=True)],
    State.AUTH_CHALLENGE: [AuthResponse(b"dXNlcg=="), Raw(b"*")],
}
"""The natural next command in each state, so the fuzzer gets deep into a transaction."""


class ConnectionMachine(RuleBasedStateMachine):
    """Random traffic through one ClientConnection."""

    def __init__(self) -> None:
        super().__init__()
        self.conn = ClientConnection(
            max_line_length=MAX_LINE,
            max_reply_lines=MAX_LINES,
            max_reply_bytes=MAX_REPLY,
            max_pending=MAX_PENDING,
        )
        self.errored = False

    def _snapshot(self) -> tuple[object, ...]:
        conn = self.conn
        return (conn.state, conn.pending, conn.extensions, conn.accepted_recipients)

    def _drain(self) -> None:
        while True:
            event = self.conn.next_event()
            if event is NEED_DATA or event is PEER_CLOSED:
                return
            assert isinstance(event, Reply)
            assert 200 <= event.code <= 599

    def _remote(self, error: RemoteProtocolError) -> None:
        assert self.conn.state is State.ERROR, f"{error!r} left state {self.conn.state}"
        self.errored = True

    @initialize(ehlo=st.booleans())
    def greet(self, ehlo: bool) -> None:
        """Start greeted, or already past EHLO (garbage greetings are test_replies' job)."""
        self.receive(b"220 mx.test ESMTP\r\n", [])
        if ehlo:
            self.send(Ehlo(b"c.test"))
            self.answer_plausibly(refuse=False, split=False)

    @rule(command=st.one_of(COMMANDS, WELL_FORMED, WELL_FORMED))
    def send(self, command: Command) -> None:
        before = self._snapshot()
        unsolicited = not self.conn.pending and self.conn.buffered > 0
        try:
            data = self.conn.send(command)
        except LocalProtocolError:
            assert self._snapshot() == before, "a refused command changed the connection"
            return
        except RemoteProtocolError as error:
            # Only bytes buffered while nothing was pending may stop a command.
            assert unsolicited, f"{error!r} with {before[1]!r} pending"
            self._remote(error)
            return
        assert isinstance(data, bytes)
        assert not self.errored, f"sent {command!r} after a protocol error"

    @rule(
        data=SERVER_BYTES,
        cuts=st.lists(st.integers(0, MAX_PIECE), max_size=3),
        dice=st.integers(0, 3),
    )
    def receive_random(self, data: bytes, cuts: list[int], dice: int) -> None:
        """Random server bytes (often fatal: most are unsolicited), so only now and then."""
        if dice == 3:  # not 0: Hypothesis favours the simplest value
            self.receive(data, cuts)

    def receive(self, data: bytes, cuts: list[int]) -> None:
        bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
        for start, end in itertools.pairwise(bounds):
            if start == end:
                continue  # b"" would mean the peer closed
            try:
                self.conn.receive_data(data[start:end])
                self._drain()
            except RemoteProtocolError as error:
                self._remote(error)
            except ProtocolError:
                pass

    @rule(choice=st.integers(0, 3))
    def advance(self, choice: int) -> None:
        if self.conn.state is State.TLS_HANDSHAKE:
            self.handshake_done()
            return
        options = NEXT.get(self.conn.state)
        if options:
            self.send(options[choice % len(options)])

    @rule(refuse=st.booleans(), split=st.booleans())
    def answer_plausibly(self, refuse: bool, split: bool) -> None:
        """Answer the oldest command the way a server would, so deep states get reached."""
        pending = self.conn.pending
        if not pending or self.errored:
            return
        reply = b"550 no\r\n" if refuse else _plausible(pending[0])
        pieces = [reply[i : i + 1] for i in range(len(reply))] if split else [reply]
        try:
            for piece in pieces:
                self.conn.receive_data(piece)
                self._drain()
        except RemoteProtocolError as error:
            self._remote(error)

    @rule(dice=st.integers(0, 9))
    def peer_closes(self, dice: int) -> None:
        if dice != 9:
            return  # rarely: a closed connection ends everything interesting
        try:
            self.conn.receive_data(b"")
            self._drain()
        except RemoteProtocolError as error:
            self._remote(error)

    @rule()
    def handshake_done(self) -> None:
        before = self._snapshot()
        try:
            self.conn.tls_established()
        except LocalProtocolError:
            assert self._snapshot() == before
            return
        assert before[0] is State.TLS_HANDSHAKE
        assert self.conn.extensions is None

    @invariant()
    def errors_are_final(self) -> None:
        if self.errored:
            assert self.conn.state is State.ERROR

    @invariant()
    def buffers_stay_within_limits(self) -> None:
        buffered = self.conn._reader.buffered
        state = self.conn.state.name
        bound = MAX_LINE + 2 + MAX_REPLY + MAX_PIECE
        assert buffered <= bound, f"{buffered} bytes buffered in state {state}"
        assert len(self.conn.pending) <= MAX_PENDING


def test_random_traffic_only_raises_protocol_errors_and_stays_bounded() -> None:
    run_state_machine_as_test(
        ConnectionMachine,
        settings=settings(
            max_examples=200,
            stateful_step_count=40,
            deadline=None,
            # Shrinking a long random run can take minutes; the unshrunk steps are shown.
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


def test_bytes_fed_after_a_protocol_error_do_not_pile_up() -> None:
    """The shortest form of what the machine checks: ERROR must not become a sink."""
    conn = ClientConnection(max_line_length=MAX_LINE, max_reply_bytes=MAX_REPLY)
    conn.receive_data(b"xyz\r\n")
    with contextlib.suppress(RemoteProtocolError):
        conn.next_event()
    assert conn.state is State.ERROR
    for _ in range(1000):
        with contextlib.suppress(ProtocolError):
            conn.receive_data(b"250 ok\r\n")
    assert conn._reader.buffered <= MAX_LINE + 2 + MAX_REPLY
