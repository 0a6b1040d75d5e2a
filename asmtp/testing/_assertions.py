"""Assertions about received messages whose failures say what differed, field by field.

Plain functions raising :class:`AssertionError` with the whole comparison in the message,
so they read the same with or without pytest's assertion rewriting. Standard library only.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from ._received import ReceivedMessage

__all__ = ["assert_nothing_sent", "assert_recipients", "assert_sent"]

_TEXT_SHOWN: Final = 200


def assert_sent(
    messages: Sequence[ReceivedMessage],
    *,
    sender: str | None = None,
    to: Iterable[str] | None = None,
    subject: str | None = None,
    text_contains: str | None = None,
    headers: Mapping[str, str] | None = None,
    attachments: Iterable[str] | None = None,
) -> ReceivedMessage:
    """The one message of ``messages`` that matches every criterion given.

    ``sender`` is the envelope sender; ``to`` the envelope recipients in any order (Bcc
    included); ``text_contains`` a piece of the text body; ``headers`` exact decoded values;
    ``attachments`` the file names of the attached parts, in any order. Raises
    AssertionError listing, for each message, every criterion it failed, or the messages
    that matched when more than one did.
    """
    __tracebackhide__ = True
    wanted = _Criteria(sender, to, subject, text_contains, headers, attachments)
    failures = [(message, wanted.mismatches(message)) for message in messages]
    matched = [message for message, problems in failures if not problems]
    if len(matched) == 1:
        return matched[0]
    if matched:
        lines = [f"{len(matched)} messages match {wanted}; expected exactly one:"]
        lines += [f"  {m.summary()}" for m in matched]
        raise AssertionError("\n".join(lines))
    lines = [f"no message matches {wanted}; received {len(messages)}:"]
    for number, (message, problems) in enumerate(failures, 1):
        lines.append(f"  #{number} {message.summary()}")
        lines += [f"      {line}" for problem in problems for line in problem.splitlines()]
    raise AssertionError("\n".join(lines))


def assert_recipients(messages: Sequence[ReceivedMessage], expected: Iterable[str]) -> None:
    """The envelope recipients of all ``messages``, together, are exactly ``expected``."""
    __tracebackhide__ = True
    got = Counter(rcpt for message in messages for rcpt in message.rcpt_tos)
    want = Counter(expected)
    if got != want:
        raise AssertionError(
            f"recipients differ from {sorted(want.elements())}:\n"
            + _multiset_diff("recipients", want, got)
        )


def assert_nothing_sent(messages: Sequence[ReceivedMessage]) -> None:
    """``messages`` is empty; else AssertionError lists what arrived."""
    __tracebackhide__ = True
    if messages:
        listing = "\n".join(f"  {message.summary()}" for message in messages)
        raise AssertionError(f"expected no message, received {len(messages)}:\n{listing}")


class _Criteria:
    def __init__(
        self,
        sender: str | None,
        to: Iterable[str] | None,
        subject: str | None,
        text_contains: str | None,
        headers: Mapping[str, str] | None,
        attachments: Iterable[str] | None,
    ) -> None:
        self.sender = sender
        self.to = Counter(to) if to is not None else None
        self.subject = subject
        self.text_contains = text_contains
        self.headers = dict(headers) if headers is not None else None
        self.attachments = Counter(attachments) if attachments is not None else None

    def __str__(self) -> str:
        parts = []
        if self.sender is not None:
            parts.append(f"sender={self.sender!r}")
        if self.to is not None:
            parts.append(f"to={sorted(self.to.elements())}")
        if self.subject is not None:
            parts.append(f"subject={self.subject!r}")
        if self.text_contains is not None:
            parts.append(f"text_contains={self.text_contains!r}")
        if self.headers is not None:
            parts.append(f"headers={self.headers!r}")
        if self.attachments is not None:
            parts.append(f"attachments={sorted(self.attachments.elements())}")
        return "(" + ", ".join(parts) + ")" if parts else "(anything)"

    def mismatches(self, message: ReceivedMessage) -> list[str]:
        problems = []
        if self.sender is not None and message.mail_from != self.sender:
            problems.append(f"sender: expected {self.sender!r}, got {message.mail_from!r}")
        if self.to is not None and Counter(message.rcpt_tos) != self.to:
            problems.append(_multiset_diff("to", self.to, Counter(message.rcpt_tos)))
        if self.subject is not None and message.subject != self.subject:
            problems.append(_text_diff("subject", self.subject, message.subject))
        if self.text_contains is not None:
            text = message.text or ""
            if self.text_contains not in text:
                shown = text if len(text) <= _TEXT_SHOWN else text[:_TEXT_SHOWN] + "..."
                problems.append(f"text does not contain {self.text_contains!r}; text: {shown!r}")
        for name, value in (self.headers or {}).items():
            got = message.message[name]
            if got is None or str(got) != value:
                problems.append(
                    _text_diff(f"header {name}", value, None if got is None else str(got))
                )
        if self.attachments is not None:
            names = Counter(message.attachment_names)
            if names != self.attachments:
                problems.append(_multiset_diff("attachments", self.attachments, names))
        return problems


def _multiset_diff(what: str, want: Counter[str], got: Counter[str]) -> str:
    missing = sorted((want - got).elements())
    unexpected = sorted((got - want).elements())
    return (
        f"{what}: expected {sorted(want.elements())}, got {sorted(got.elements())}"
        f" (missing {missing or 'none'}, unexpected {unexpected or 'none'})"
    )


def _text_diff(what: str, want: str, got: str | None) -> str:
    if got is None:
        return f"{what}: expected {want!r}, got none"
    if "\n" not in want + got and len(want) + len(got) < 2 * _TEXT_SHOWN:
        return f"{what}: expected {want!r}, got {got!r}"
    diff = difflib.unified_diff(
        want.splitlines(), got.splitlines(), "expected", "received", lineterm=""
    )
    return f"{what} differs:\n" + "\n".join(diff)
