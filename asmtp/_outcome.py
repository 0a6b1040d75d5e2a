"""What became of a message whose send did not finish normally.

Owns the bookkeeping that lets a caller (and the pool's retry policy) tell a message the
server cannot have accepted from one whose fate is unknown. Unknown is never reported as
not accepted: once the end of the data may have reached the server, only its reply can say.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["Progress", "SendOutcome"]


@dataclass(frozen=True)
class SendOutcome:
    """The state of one send when it ended.

    ``accepted`` is ``True`` when the server took the message, ``False`` when it cannot
    have (the end of the data never went out, or a reply refused it), and ``None`` when
    the connection failed after the end of the data was sent and before the reply: the
    message may or may not have been accepted, so it must not be sent again blindly.
    ``recipients`` are those the server accepted at RCPT (empty before the replies came);
    ``refused`` maps each refused recipient to ``(code, message)`` as smtplib does.
    """

    accepted: bool | None
    recipients: tuple[str, ...] = ()
    refused: Mapping[str, tuple[int, bytes]] = field(default_factory=dict)
    body_started: bool = False
    """Whether any of the message body was read from its source and sent."""

    @property
    def safe_to_retry(self) -> bool:
        """True when sending again cannot make a duplicate."""
        return self.accepted is False


class Progress:
    """Mutable record of one send in flight; :meth:`outcome` freezes it."""

    __slots__ = (
        "addresses",
        "body_started",
        "end_sent",
        "finished",
        "recipients",
        "refused",
        "succeeded",
    )

    def __init__(self) -> None:
        self.recipients: tuple[str, ...] = ()
        self.addresses: dict[bytes, str] = {}
        """Each RCPT's wire address to the caller's spelling of it."""
        self.refused: dict[str, tuple[int, bytes]] = {}
        self.body_started = False
        self.end_sent = False
        self.finished = False
        self.succeeded = False

    def rcpt_reply(self, address: bytes, code: int, message: bytes) -> None:
        """Record one RCPT verdict as it arrives, so an interruption still knows it."""
        original = self.addresses.get(address)
        if original is None:
            return
        if code in (250, 251):
            if original not in self.recipients:
                self.recipients += (original,)
        else:
            self.refused[original] = (code, message)

    def envelope_judged(self, recipients: list[str], refused: dict[str, tuple[int, bytes]]) -> None:
        """Record the RCPT verdicts."""
        self.refused = dict(refused)
        self.recipients = tuple(r for r in recipients if r not in refused)

    def outcome(self) -> SendOutcome:
        """The outcome as far as the replies tell."""
        if self.finished:
            accepted: bool | None = self.succeeded
        else:
            accepted = None if self.end_sent else False
        return SendOutcome(
            accepted, self.recipients, MappingProxyType(dict(self.refused)), self.body_started
        )
