"""Why a command may not be sent now: the order rules beyond the transition table.

Pure functions of what the connection knows (its state, the extensions, the replies owed),
so that :class:`~asmtp.protocol.ClientConnection` keeps only the bookkeeping.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._events import Bdat, Command, Ehlo, EndOfData, Helo, Lhlo, MessageData, Raw
from ._extensions import Extensions
from ._records import Pending
from ._state import ERROR, GROUP_ENDERS, TRANSITIONS, Kind, State

__all__ = ["group_problem", "order_problem"]


def order_problem(
    state: State,
    command: Command,
    kind: Kind,
    *,
    lmtp: bool,
    extensions: Extensions | None,
    pending: Sequence[Pending],
    max_pending: int,
) -> str | None:
    """What keeps ``command`` (of ``kind``) from being sent in ``state``, if anything."""
    if state is ERROR:
        return "the connection had a protocol error and cannot be used"
    if kind not in TRANSITIONS[state]:
        return f"{type(command).__name__} cannot be sent in state {state.name}"
    if lmtp and kind in (Ehlo, Helo):
        return "LMTP uses LHLO, not EHLO or HELO (RFC 2033 §4.1)"
    if not lmtp and kind is Lhlo:
        return "LHLO is LMTP's greeting; SMTP uses EHLO or HELO"
    if isinstance(command, Bdat) and not (extensions is not None and extensions.chunking):
        return "BDAT needs the CHUNKING extension, which the server did not advertise"
    if isinstance(command, Raw) and state is not State.AUTH_CHALLENGE:
        verb = command.line.split(b" ", 1)[0].upper()
        if verb == b"BDAT":
            return "BDAT needs its payload: send a Bdat command instead of a raw line"
    if pending and kind not in (MessageData, EndOfData):
        return group_problem(pending, extensions, max_pending)
    return None


def group_problem(
    pending: Sequence[Pending], extensions: Extensions | None, max_pending: int
) -> str | None:
    """What keeps a command from joining the pipelined group of those ``pending``."""
    last = pending[-1]
    if last.kind in GROUP_ENDERS:
        return f"{type(last.command).__name__} ends a pipelined group: wait for its reply"
    if extensions is None or not extensions.pipelining:
        return "the server did not advertise PIPELINING: wait for the pending reply"
    if len(pending) >= max_pending:
        return f"{max_pending} commands already await replies"
    return None
