"""The state enum and the transition table: the only place that decides command order.

``TRANSITIONS[state][kind]`` is the state after sending a command of that kind; a kind
missing from a state's row may not be sent in that state. Sending is optimistic: with
PIPELINING the next command is sent before the previous one is answered, so the table
assumes success and :meth:`ClientConnection._apply_reply` moves back when a reply refuses.
"""

from __future__ import annotations

import enum
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
    "GROUP_ENDERS",
    "REPLY_MOVES",
    "TRANSITIONS",
    "BdatLast",
    "State",
    "mermaid_diagram",
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

# RFC 2920 §3.1: these may only be the last command of a pipelined group. AUTH and STARTTLS
# change the session, and a raw line may be anything, so they end a group too.
GROUP_ENDERS: Final[frozenset[Kind]] = frozenset(
    {Ehlo, Helo, Lhlo, Data, Vrfy, Expn, Help, Noop, Quit, StartTLS, Auth, AuthResponse, Raw}
)

# The moves made by replies rather than by sending (ClientConnection._apply_reply), for the
# diagram; tests/protocol checks each one by driving a connection through it.
REPLY_MOVES: Final[tuple[tuple[State, str, State], ...]] = (
    (_S.AWAIT_GREETING, "greeting", _S.GREETED),
    (_S.GREETED, "250 to EHLO/HELO/LHLO", _S.READY),
    (_S.MAIL, "MAIL refused", _S.READY),
    (_S.RCPT, "every RCPT refused", _S.MAIL),
    (_S.DATA_REQUESTED, "354", _S.BODY),
    (_S.DATA_REQUESTED, "DATA refused", _S.RCPT),
    (_S.AUTH, "334", _S.AUTH_CHALLENGE),
    (_S.AUTH, "235 or refusal", _S.READY),
    (_S.STARTTLS_REQUESTED, "220", _S.TLS_HANDSHAKE),
    (_S.STARTTLS_REQUESTED, "refusal", _S.READY),
    (_S.TLS_HANDSHAKE, "handshake done: tls_established()", _S.GREETED),
)


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
    for source, label, target in REPLY_MOVES:
        lines.append(f"    {source.name} --> {target.name}: on {label}")
    lines.append("    ERROR: ERROR (after any protocol error; terminal)")
    return "\n".join(lines) + "\n"
