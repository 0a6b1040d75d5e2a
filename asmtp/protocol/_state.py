"""The state enum and the transition table: the only place that decides command order.

``TRANSITIONS[state][kind]`` is the state after sending a command of that kind; a kind
missing from a state's row may not be sent in that state. Sending is optimistic: with
PIPELINING the next command is sent before the previous one is answered, so the table
assumes success, and the replies move it back when they refuse: :data:`REPLY_MOVES` lists
every such move, and the connection applies them from that table.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ._events import (
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
    Mail,
    MessageData,
    Noop,
    Quit,
    Raw,
    Rcpt,
    Rset,
    StartTLS,
    Vrfy,
)

__all__ = [
    "AWAIT_GREETING",
    "BETWEEN_COMMANDS",
    "BODY",
    "ERROR",
    "GROUP_ENDERS",
    "MAIL",
    "MOVE_CHECKS",
    "OTHER_MOVES",
    "RAW_VERBS",
    "RCPT",
    "READY",
    "REOPEN_TRANSACTION",
    "REPLY_MOVES",
    "TLS_HANDSHAKE",
    "TRANSITIONS",
    "BdatLast",
    "On",
    "Reopen",
    "ReplyMove",
    "State",
    "mermaid_diagram",
    "raw_kind",
    "reply_moves_by_kind",
    "transition_key",
]


class State(enum.Enum):
    """Where the conversation stands, named for what may happen next."""

    AWAIT_GREETING = "await greeting"
    """Connected; nothing may be sent before the server's greeting."""
    GREETED = "greeted"
    """Say EHLO, HELO or LHLO (also after STARTTLS)."""
    READY = "ready"
    """Session open, no transaction: MAIL, AUTH, STARTTLS and session commands."""
    MAIL = "mail"
    """MAIL sent: RCPT next."""
    RCPT = "rcpt"
    """At least one RCPT sent: more RCPT, DATA or BDAT."""
    DATA_REQUESTED = "data requested"
    """DATA sent: wait for ``354``."""
    BODY = "body"
    """``354`` received: message data, then its end."""
    BDAT = "bdat"
    """A BDAT chunk without LAST sent: more chunks, or RSET."""
    AUTH = "auth"
    """AUTH or an answer to a challenge sent: wait for the reply."""
    AUTH_CHALLENGE = "auth challenge"
    """``334`` received: answer the challenge."""
    STARTTLS_REQUESTED = "starttls requested"
    """STARTTLS sent: wait for ``220``."""
    TLS_HANDSHAKE = "tls handshake"
    """``220`` to STARTTLS received: nothing may pass until the TLS handshake is done."""
    CLOSED = "closed"
    """QUIT sent, ``421`` received or the peer closed: nothing more may be sent."""
    ERROR = "error"
    """A protocol error happened: the connection must not be used again."""

    # Members are singletons compared by identity: hash them by identity too, in C, instead
    # of Enum's Python-level hash of the name (the table is looked up for every command).
    __hash__ = object.__hash__


class BdatLast:
    """Table key for ``Bdat(last=True)``, which ends the transaction unlike other chunks."""


Kind = type[Command] | type[BdatLast]


def transition_key(command: Command) -> Kind:
    """The table key for ``command``."""
    if isinstance(command, Bdat) and command.last:
        return BdatLast
    return type(command)


_S = State
_SESSION: Final[tuple[Kind, ...]] = (Noop, Vrfy, Expn, Help)


def _session_row(state: State, **extra: State) -> dict[Kind, State]:
    """Commands valid whenever no body is being sent; they leave the state as it is."""
    row: dict[Kind, State] = {kind: state for kind in _SESSION}
    row.update({Raw: state, Rset: _S.READY if state is not _S.GREETED else _S.GREETED})
    row.update({Ehlo: state, Helo: state, Lhlo: state, Quit: _S.CLOSED})
    return row


TRANSITIONS: Final[dict[State, dict[Kind, State]]] = {
    _S.AWAIT_GREETING: {},
    _S.GREETED: _session_row(_S.GREETED),
    _S.READY: {
        **_session_row(_S.READY),
        Mail: _S.MAIL,
        Auth: _S.AUTH,
        StartTLS: _S.STARTTLS_REQUESTED,
    },
    _S.MAIL: {**_session_row(_S.MAIL), Rcpt: _S.RCPT},
    _S.RCPT: {
        **_session_row(_S.RCPT),
        Rcpt: _S.RCPT,
        Data: _S.DATA_REQUESTED,
        Bdat: _S.BDAT,
        BdatLast: _S.READY,
    },
    _S.DATA_REQUESTED: {},
    _S.BODY: {MessageData: _S.BODY, EndOfData: _S.READY},
    _S.BDAT: {Bdat: _S.BDAT, BdatLast: _S.READY, Rset: _S.READY, Quit: _S.CLOSED},
    _S.AUTH: {},
    _S.AUTH_CHALLENGE: {AuthResponse: _S.AUTH, Raw: _S.AUTH},
    _S.STARTTLS_REQUESTED: {},
    _S.TLS_HANDSHAKE: {},
    _S.CLOSED: {},
    _S.ERROR: {},
}
"""Each state's valid commands, by type, and the state each leads to when sent; a command
missing from its state's row is refused with nothing sent. The last chunk of BDAT has a
row of its own. Moves made by replies are not here; the docs' state diagram is drawn from
this table."""

# RFC 2920 §3.1: these may only be the last command of a pipelined group. AUTH and STARTTLS
# change the session, and a raw line may be anything, so they end a group too.
GROUP_ENDERS: Final[frozenset[Kind]] = frozenset(
    {Ehlo, Helo, Lhlo, Data, Vrfy, Expn, Help, Noop, Quit, StartTLS, Auth, AuthResponse, Raw}
)

# No reply is owed in these, and no body is half sent: a command sent now reads its own reply.
BETWEEN_COMMANDS: Final = frozenset({_S.GREETED, _S.READY, _S.MAIL, _S.RCPT, _S.CLOSED})


class On(enum.Enum):
    """Which replies make a reply-driven move."""

    POSITIVE = "2xx"
    REFUSED = "not 2xx"
    GO_AHEAD = "354"
    NOT_GO_AHEAD = "not 354"
    CHALLENGE = "334"
    NOT_CHALLENGE = "not 334"
    TLS_READY = "220"
    NOT_TLS_READY = "not 220"
    ANY = "any reply"

    def matches(self, code: int) -> bool:
        """Whether a reply with ``code`` makes the move."""
        return _MATCHES[self](code)


_MATCHES: Final[dict[On, Callable[[int], bool]]] = {
    On.POSITIVE: lambda code: 200 <= code < 300,
    On.REFUSED: lambda code: not 200 <= code < 300,
    On.GO_AHEAD: lambda code: code == 354,
    On.NOT_GO_AHEAD: lambda code: code != 354,
    On.CHALLENGE: lambda code: code == 334,
    On.NOT_CHALLENGE: lambda code: code != 334,
    On.TLS_READY: lambda code: code == 220,
    On.NOT_TLS_READY: lambda code: code != 220,
    On.ANY: lambda code: True,
}


class Reopen(enum.Enum):
    """A move's target that depends on the open transaction, not on the reply alone."""

    TRANSACTION = "where the open transaction stands"
    """READY once MAIL was refused, RCPT while a recipient is accepted or awaited, else MAIL."""


# The members the core reads on every command and reply, as plain names: on Python 3.11
# each `State.READY` goes through EnumType.__getattr__, several times a global's cost.
AWAIT_GREETING: Final = State.AWAIT_GREETING
READY: Final = State.READY
MAIL: Final = State.MAIL
RCPT: Final = State.RCPT
BODY: Final = State.BODY
ERROR: Final = State.ERROR
TLS_HANDSHAKE: Final = State.TLS_HANDSHAKE
REOPEN_TRANSACTION: Final = Reopen.TRANSACTION


@dataclass(frozen=True, slots=True)
class ReplyMove:
    """One state change made by a reply rather than by sending.

    The reply to a command of one of ``kinds`` (sent structured, as a raw line, or either,
    per ``raw``), matching ``on``, moves the connection from any state in ``sources`` to
    ``target``. ``own_transaction`` limits the move to replies that belong to the
    transaction still open (with several transactions overlapped, a late reply to an
    earlier one moves nothing). The diagram draws the move from ``drawn_from`` (default:
    every source) to ``drawn_to`` (default: the target; required for
    :data:`Reopen.TRANSACTION`): moves that may happen in almost any state, because a raw
    line may be sent in any state, are drawn from the state they normally start from.
    """

    label: str
    kinds: tuple[Kind, ...]
    on: On
    sources: frozenset[State]
    target: State | Reopen
    raw: bool | None = None
    own_transaction: bool = False
    drawn_from: frozenset[State] | None = None
    drawn_to: State | None = None


_ANY_STATE: Final = frozenset(State) - {State.ERROR}
_HELLO: Final[tuple[Kind, ...]] = (Ehlo, Helo, Lhlo)

# Every reply-driven move: ClientConnection applies the first entry that matches a reply,
# and docs/protocol.md's diagram is drawn from the same entries.
REPLY_MOVES: Final[tuple[ReplyMove, ...]] = (
    ReplyMove(
        "250 to EHLO/HELO/LHLO",
        _HELLO,
        On.POSITIVE,
        frozenset({_S.GREETED, _S.READY, _S.MAIL, _S.RCPT}),
        _S.READY,
    ),
    ReplyMove(
        "MAIL accepted (raw line)", (Mail,), On.POSITIVE, frozenset({_S.READY}), _S.MAIL, raw=True
    ),
    ReplyMove(
        "MAIL refused",
        (Mail,),
        On.REFUSED,
        frozenset({_S.MAIL, _S.RCPT}),
        _S.READY,
        raw=False,
        own_transaction=True,
    ),
    ReplyMove(
        "RCPT accepted (raw line)",
        (Rcpt,),
        On.POSITIVE,
        frozenset({_S.MAIL, _S.RCPT}),
        _S.RCPT,
        raw=True,
    ),
    ReplyMove(
        "every RCPT refused",
        (Rcpt,),
        On.REFUSED,
        frozenset({_S.RCPT}),
        Reopen.TRANSACTION,
        raw=False,
        own_transaction=True,
        drawn_to=_S.MAIL,
    ),
    ReplyMove("354", (Data,), On.GO_AHEAD, frozenset({_S.DATA_REQUESTED}), _S.BODY),
    ReplyMove(
        "354 to a raw DATA",
        (Data,),
        On.GO_AHEAD,
        _ANY_STATE - {_S.DATA_REQUESTED},
        _S.BODY,
        raw=True,
        drawn_from=frozenset({_S.RCPT}),
    ),
    ReplyMove(
        "DATA refused",
        (Data,),
        On.NOT_GO_AHEAD,
        frozenset({_S.DATA_REQUESTED}),
        Reopen.TRANSACTION,
        drawn_to=_S.RCPT,
    ),
    ReplyMove(
        "RSET accepted (raw line)",
        (Rset,),
        On.POSITIVE,
        _ANY_STATE - {_S.GREETED},
        _S.READY,
        raw=True,
        drawn_from=frozenset({_S.MAIL, _S.RCPT}),
    ),
    # RFC 3207 §4.2: after 220 the handshake comes next whatever was sent (a raw STARTTLS
    # too), so that the injection checks apply.
    ReplyMove(
        "220",
        (StartTLS,),
        On.TLS_READY,
        _ANY_STATE,
        _S.TLS_HANDSHAKE,
        drawn_from=frozenset({_S.STARTTLS_REQUESTED}),
    ),
    ReplyMove(
        "refusal", (StartTLS,), On.NOT_TLS_READY, frozenset({_S.STARTTLS_REQUESTED}), _S.READY
    ),
    ReplyMove(
        "334",
        (Auth, AuthResponse),
        On.CHALLENGE,
        _ANY_STATE,
        _S.AUTH_CHALLENGE,
        drawn_from=frozenset({_S.AUTH}),
    ),
    ReplyMove(
        "235 or refusal",
        (Auth, AuthResponse),
        On.NOT_CHALLENGE,
        frozenset({_S.AUTH, _S.AUTH_CHALLENGE, _S.READY}),
        _S.READY,
        drawn_from=frozenset({_S.AUTH}),
    ),
    ReplyMove(
        "QUIT answered (raw line)",
        (Quit,),
        On.ANY,
        _ANY_STATE,
        _S.CLOSED,
        raw=True,
        drawn_from=frozenset({_S.READY}),
    ),
)

# Moves that no reply to a command makes, for the diagram only: the greeting (any reply
# while AWAIT_GREETING) and the end of the STARTTLS handshake, which the transport reports.
OTHER_MOVES: Final[tuple[tuple[State, str, State], ...]] = (
    (_S.AWAIT_GREETING, "greeting", _S.GREETED),
    (_S.TLS_HANDSHAKE, "handshake done: tls_established()", _S.GREETED),
)


def reply_moves_by_kind() -> dict[Kind, tuple[ReplyMove, ...]]:
    """:data:`REPLY_MOVES` indexed by command kind, in table order (for quick lookup)."""
    index: dict[Kind, list[ReplyMove]] = {}
    for move in REPLY_MOVES:
        for kind in move.kinds:
            index.setdefault(kind, []).append(move)
    return {kind: tuple(moves) for kind, moves in index.items()}


_ORDER: Final = list(State)


def mermaid_diagram() -> str:
    """The state diagram in Mermaid syntax, generated from the tables above.

    Labels in capitals are sends (:data:`TRANSITIONS`); labels starting "on" are moves made
    by a reply (:data:`REPLY_MOVES`).
    Session commands that leave the state unchanged are left out to keep it readable.
    """
    lines = ["stateDiagram-v2"]
    for state, row in TRANSITIONS.items():
        grouped: dict[State, list[str]] = {}
        for kind, target in row.items():
            if target is state:
                continue
            grouped.setdefault(target, []).append(
                "BDAT LAST" if kind is BdatLast else kind.__name__.upper()
            )
        for target, names in grouped.items():
            lines.append(f"    {state.name} --> {target.name}: {', '.join(names)}")
    for move in REPLY_MOVES:
        drawn = move.drawn_to or move.target
        assert isinstance(drawn, State)  # noqa: S101 - every Reopen move names drawn_to
        lines.extend(
            f"    {source.name} --> {drawn.name}: on {move.label}"
            for source in sorted(move.drawn_from or move.sources, key=_ORDER.index)
            if source is not drawn
        )
    for source, label, target in OTHER_MOVES:
        lines.append(f"    {source.name} --> {target.name}: on {label}")
    lines.append("    ERROR: ERROR (after any protocol error; terminal)")
    return "\n".join(lines) + "\n"


# REPLY_MOVES as ClientConnection matches them: per command kind and state, the conditions
# of each move that can start there, with the reply codes that make it as a set (the reply
# reader lets through 200 to 599). A pair with no entry makes no move.
MOVE_CHECKS: Final = {
    (kind, state): checks
    for kind, moves in reply_moves_by_kind().items()
    for state in State
    if (
        checks := tuple(
            (
                move.raw,
                frozenset(code for code in range(200, 600) if move.on.matches(code)),
                move.own_transaction,
                move.target,
            )
            for move in moves
            if state in move.sources
        )
    )
}

# A raw line is classified by its verb so that docmd() keeps the state in step with the server.
RAW_VERBS: Final[dict[bytes, Kind]] = {
    b"EHLO": Ehlo,
    b"HELO": Helo,
    b"LHLO": Lhlo,
    b"MAIL": Mail,
    b"RCPT": Rcpt,
    b"DATA": Data,
    b"RSET": Rset,
    b"QUIT": Quit,
    b"STARTTLS": StartTLS,
    b"AUTH": Auth,
}


def raw_kind(line: bytes, state: State) -> Kind:
    """The kind a raw line sent in ``state`` counts as: an AUTH answer while a challenge is
    open, else the command its verb names (:data:`RAW_VERBS`), else :class:`Raw`."""
    if state is State.AUTH_CHALLENGE:
        return AuthResponse
    return RAW_VERBS.get(line.split(b" ", 1)[0].upper(), Raw)
