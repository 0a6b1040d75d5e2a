"""What the core keeps while replies are owed: each command sent, each open transaction."""

from __future__ import annotations

from dataclasses import dataclass, field

from ._events import Command
from ._state import Kind, State

__all__ = ["Pending", "Transaction"]


@dataclass(eq=False, slots=True)
class Transaction:
    """One mail transaction as the replies reveal it."""

    mail_accepted: bool = False
    mail_refused: bool = False
    rcpts_pending: int = 0
    accepted: list[bytes] = field(default_factory=list)
    binary: bool = False
    """MAIL declared BODY=BINARYMIME: BDAT carries the body byte for byte (RFC 3030 §3)."""

    def mail_answered(self, accepted: bool) -> None:
        """This transaction's MAIL was answered."""
        self.mail_accepted, self.mail_refused = accepted, not accepted

    def recipient_answered(self, address: bytes, accepted: bool) -> None:
        """A RCPT of this transaction was answered: one fewer awaited, and ``address``
        counted if the server took it."""
        self.rcpts_pending -= 1
        if accepted:
            self.accepted.append(address)

    def reopened_state(self) -> State:
        """Where a refusal that reopens the transaction leaves it: READY once MAIL was
        refused, RCPT while a recipient is accepted or awaited, else MAIL."""
        if self.mail_refused:
            return State.READY
        if self.accepted or self.rcpts_pending:
            return State.RCPT
        return State.MAIL


@dataclass(eq=False, slots=True)
class Pending:
    """A command awaiting its reply (or, for LMTP's end of data, its replies)."""

    command: Command
    kind: Kind
    txn: Transaction | None
    answered: int = 0

    def lmtp_replies_expected(self) -> int:
        """For LMTP's end of data: one reply per recipient accepted (RFC 2033 §4.2)."""
        return max(1, len(self.txn.accepted)) if self.txn is not None else 1

    def lmtp_recipient(self) -> bytes | None:
        """The recipient LMTP's next reply to the end of data answers for, if known."""
        if self.txn is None or self.answered >= len(self.txn.accepted):
            return None
        return self.txn.accepted[self.answered]
