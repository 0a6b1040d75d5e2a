"""What a send gives back: :class:`SendResult` when it finished, :class:`SendOutcome` always.

Owns the vocabulary that lets a caller (and the pool's retry policy) tell a message the
server took from one it cannot have taken and from one whose fate is unknown. Unknown is
never reported as not accepted: once the end of the data may have reached the server, only
its reply can say.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from ._frozen import maker

__all__ = ["SendOutcome", "SendResult", "send_outcome"]


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What became of one message.

    ``accepted`` is ``True`` when the server took the message (for at least one recipient),
    ``False`` when it cannot have (nothing was sent, a reply refused it, or the end of the
    data never went out), and ``None`` when the connection failed after the end of the
    data was sent and before the reply: the message may or may not have been accepted, so
    it must not be sent again blindly.

    ``recipients`` are those the server accepted, ``refused`` maps each refused recipient
    to ``(code, message)`` as smtplib does. ``reply`` is the server's final reply to the
    end of the data (its text usually carries the server's queue id, the handle for
    tracing the message in the server's logs); LMTP answers once per recipient, and
    ``replies`` holds each accepted recipient's final reply (for SMTP, the one reply for
    all). ``attempts`` counts the tries (the pool retries), ``error`` is the exception that
    ended an unsuccessful send.
    """

    accepted: bool | None
    recipients: tuple[str, ...] = ()
    refused: Mapping[str, tuple[int, bytes]] = field(default_factory=dict)
    body_started: bool = False
    """Whether any of the message body was read from its source and sent."""
    reply: tuple[int, bytes] | None = None
    replies: Mapping[str, tuple[int, bytes]] = field(default_factory=dict)
    attempts: int = 1
    error: BaseException | None = field(default=None, compare=False)

    @property
    def safe_to_retry(self) -> bool:
        """True when sending again cannot make a duplicate."""
        return self.accepted is False

    def with_attempts(self, attempts: int) -> SendOutcome:
        """The same outcome, counting ``attempts`` tries."""
        return self if attempts == self.attempts else replace(self, attempts=attempts)


send_outcome: Callable[
    [
        bool | None,
        tuple[str, ...],
        Mapping[str, tuple[int, bytes]],
        bool,
        tuple[int, bytes] | None,
        Mapping[str, tuple[int, bytes]],
        int,
        BaseException | None,
    ],
    SendOutcome,
] = maker(SendOutcome)
"""``SendOutcome(...)`` from every field in order, made without the frozen dataclass's
``object.__setattr__`` per field: every send makes one."""


class SendResult(dict[str, tuple[int, bytes]]):
    """What a send that finished returns: smtplib's refused-recipients dict, plus its outcome.

    As a dict it maps each refused recipient to ``(code, message)`` (empty when all were
    accepted), exactly what :meth:`smtplib.SMTP.sendmail` returns. ``outcome`` tells
    the rest: the accepted recipients, the server's final reply (:attr:`reply`) and how many
    attempts it took (:attr:`attempts`).
    """

    __slots__ = ("outcome",)

    def __init__(self, outcome: SendOutcome) -> None:
        # dict's own __init__ copies a mapping proxy through its keys() at several times
        # a dict's cost: skipped for the usual empty one.
        if outcome.refused:
            self.update(outcome.refused)
        self.outcome = outcome

    @property
    def reply(self) -> tuple[int, bytes] | None:
        """The server's final reply to the end of the data, as ``(code, message)``."""
        return self.outcome.reply

    @property
    def attempts(self) -> int:
        """How many times the message was tried (more than one only in a pool)."""
        return self.outcome.attempts

    def __repr__(self) -> str:
        return f"SendResult({dict(self)!r}, reply={self.reply!r}, attempts={self.attempts})"
