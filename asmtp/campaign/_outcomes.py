"""What the journal records of a :class:`~asmtp.SendOutcome`: a state, the server's words.

- ``accepted``: the server took the message (for at least one recipient);
- ``refused``: the server refused it for good (5xx): resuming does not send it again;
- ``failed``: not sent, and sending again is safe (a 4xx, a connection failure before the
  end of the data, a row that could not be rendered): resuming tries again;
- ``unknown``: the end of the data went out and no reply came: it may have arrived.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Final

from asmtp import SendOutcome
from asmtp.errors import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPException,
    SMTPHeloError,
    SMTPServerDisconnected,
    TLSRequiredError,
)

__all__ = ["Verdict", "error_text", "unreachable", "verdict"]

# No session, or none to be had: the server's trouble, not this message's. (Every
# smtplib exception is an OSError; a refusal of one message is not among these.)
_UNREACHABLE: Final = (
    ssl.SSLError,
    SMTPConnectError,
    SMTPAuthenticationError,
    SMTPHeloError,
    SMTPServerDisconnected,
    TLSRequiredError,
)
_MAX_TEXT: Final = 500


@dataclass(frozen=True, slots=True)
class Verdict:
    state: str
    code: int | None
    reply: str | None
    recipients: dict[str, tuple[int, str]]
    error: str | None


def _text(reply: bytes) -> str:
    return " ".join(reply.decode("utf-8", "replace").split())[:_MAX_TEXT]


def error_text(error: BaseException | None) -> str | None:
    """An exception as one line for the journal: its class and its words."""
    if error is None:
        return None
    words = " ".join(str(error).split())
    return f"{type(error).__name__}: {words}"[:_MAX_TEXT] if words else type(error).__name__


def verdict(outcome: SendOutcome) -> Verdict:
    """The journal's record of ``outcome`` (see the module for the states)."""
    final = outcome.reply
    if final is None and outcome.refused:  # every recipient refused: the first refusal
        final = next(iter(outcome.refused.values()))
    code, reply_text = (final[0], _text(final[1])) if final is not None else (None, None)
    per_recipient: dict[str, tuple[int, str]] = {}
    for address in outcome.recipients:
        reply = outcome.replies.get(address, outcome.reply)
        if reply is not None:
            text = reply_text if reply is final and reply_text is not None else _text(reply[1])
            per_recipient[address] = (reply[0], text)
    for address, (refusal, words) in outcome.refused.items():
        per_recipient[address] = (refusal, _text(words))
    if outcome.accepted:
        state = "accepted"
    elif outcome.accepted is None:
        state = "unknown"
    else:
        codes = [c for c, _ in outcome.refused.values()] + ([code] if code is not None else [])
        state = "refused" if codes and all(500 <= c < 600 for c in codes) else "failed"
    # The server's words are in code and reply; the exception is kept when it said nothing.
    error = None if outcome.accepted or code is not None else error_text(outcome.error)
    return Verdict(state, code, reply_text, per_recipient, error)


def unreachable(outcome: SendOutcome) -> bool:
    """Whether ``outcome`` says the server cannot be reached or logged into (as opposed to
    a refusal of this one message)."""
    error = outcome.error
    if outcome.accepted is not False or error is None:
        return False
    return isinstance(error, _UNREACHABLE) or (
        isinstance(error, OSError) and not isinstance(error, SMTPException)
    )
