"""The record of one send in flight, from which its :class:`~asmtp.SendOutcome` is read.

Updated as replies arrive, so that a send cut short (a lost connection, a timeout, a
cancellation) still knows which recipients were accepted and whether the end of the data
went out.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

from .._results import SendOutcome, send_outcome
from ..protocol import Reply
from ._upload import Upload

__all__ = ["Progress"]

_NO_REFUSALS: MappingProxyType[str, tuple[int, bytes]] = MappingProxyType({})


class Progress:
    """Mutable record of one send in flight; :meth:`outcome` freezes it."""

    __slots__ = (
        "accepted_so_far",
        "addresses",
        "answered",
        "body_started",
        "end_sent",
        "finished",
        "on_start",
        "recipients",
        "refused",
        "replies",
        "reply",
        "succeeded",
        "upload",
    )

    def __init__(self, on_start: Callable[[], object] | None = None) -> None:
        self.on_start = on_start
        """Called once, just before the first byte of this message is written."""
        self.addresses: dict[bytes, str] = {}
        """Each RCPT's wire address to the caller's spelling of it."""
        self.recipients: tuple[str, ...] | None = None
        """The recipients accepted, as listed, once the whole envelope was judged."""
        self.accepted_so_far: list[str] = []
        """Each recipient accepted as its reply arrived: what a send cut short before the
        envelope was judged reports (a list, not a tuple grown per reply: no cost that grows
        with the square of the recipients)."""
        self.refused: dict[str, tuple[int, bytes]] = {}
        self.answered = False
        """Whether the server answered any command of this send (a pool replaces a reused
        connection that died before it did, without counting an attempt)."""
        self.body_started = False
        self.end_sent = False
        self.finished = False
        self.succeeded = False
        self.reply: tuple[int, bytes] | None = None
        self.replies: dict[str, tuple[int, bytes]] = {}
        self.upload: Upload | None = None
        """The caller's upload progress callback, if any."""

    def starting(self) -> None:
        """The message's first byte is about to be written: tell whoever asked."""
        on_start, self.on_start = self.on_start, None
        if on_start is not None:
            on_start()

    def rcpt_reply(self, address: bytes, reply: Reply) -> None:
        """Record one RCPT verdict as it arrives, so an interruption still knows it."""
        original = self.addresses.get(address)
        if original is None:
            return
        code = reply.code
        if code == 250 or code == 251:
            self.accepted_so_far.append(original)
        else:
            self.refused[original] = (code, reply.message)  # the text only when refused

    def envelope_judged(
        self, recipients: tuple[str, ...], refused: dict[str, tuple[int, bytes]]
    ) -> None:
        """Record the verdicts on the whole envelope (``recipients`` in RCPT order)."""
        self.refused = dict(refused)
        if refused:
            self.recipients = tuple(r for r in recipients if r not in refused)
        else:
            self.recipients = recipients

    def finish(
        self,
        succeeded: bool,
        reply: tuple[int, bytes],
        replies: dict[str, tuple[int, bytes]] | None = None,
    ) -> None:
        """The end of the data was answered: ``reply`` (LMTP: one per recipient)."""
        self.finished, self.succeeded, self.reply = True, succeeded, reply
        if replies is not None:
            self.replies = replies
        else:
            self.replies = dict.fromkeys(self.recipients or (), reply)

    def outcome(self, error: BaseException | None = None) -> SendOutcome:
        """The outcome as far as the replies tell."""
        if self.finished:
            accepted: bool | None = self.succeeded
        else:
            accepted = None if self.end_sent else False
        return send_outcome(
            accepted,
            self.recipients
            if self.recipients is not None
            else tuple(dict.fromkeys(self.accepted_so_far)),  # each once, in order
            MappingProxyType(dict(self.refused)) if self.refused else _NO_REFUSALS,
            self.body_started,
            self.reply,
            MappingProxyType(dict(self.replies)),
            1,
            error,
        )
