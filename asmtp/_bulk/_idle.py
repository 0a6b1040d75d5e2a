"""The pool's idle connections and its rate limit: plain bookkeeping, no awaits.

Says which connection to reuse, which to close and how long to wait; the pool does the I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

from .._client import Session
from ..protocol import State

__all__ = ["Idle", "RateLimiter", "Slot"]

# Between transactions, nothing owed: greeted (a connection opened ahead, EHLO not said
# yet) or ready for MAIL.
_IN_STEP: Final = frozenset({State.GREETED, State.READY})


@dataclass
class Slot:
    """One pooled connection and what it has done."""

    session: Session
    sent: int = 0
    idle_since: float = 0.0
    worn: bool = False
    """The server refuses more on it (a 4xx to MAIL): close it instead of keeping it."""


class Idle:
    """Idle connections, newest last; says which to reuse and which to close."""

    def __init__(self, idle_timeout: float, max_messages: int) -> None:
        self.idle_timeout = idle_timeout
        self.max_messages = max_messages
        self._slots: deque[Slot] = deque()

    def __len__(self) -> int:
        return len(self._slots)

    def checkout(self, now: float) -> tuple[Slot | None, list[Slot]]:
        """A connection to reuse (or ``None``: open one) and the expired ones to close."""
        expired: list[Slot] = []
        while self._slots:
            slot = self._slots.pop()
            if now - slot.idle_since > self.idle_timeout:
                expired.append(slot)
                expired.extend(self._slots)  # older still: all expired
                self._slots.clear()
            elif slot.session.state in _IN_STEP and slot.session.reusable():
                # reusable() also reads what came while idle: a 421, a close, a stray reply.
                return slot, expired
            else:
                expired.append(slot)
        return None, expired

    def sweep(self, now: float) -> list[Slot]:
        """Take out, for closing, the connections idle too long or no longer usable.

        The pool's reaper calls it when :meth:`next_expiry` comes; like :meth:`checkout`
        it reads what the server sent meanwhile (a close, a 421), so those go too.
        """
        kept: deque[Slot] = deque()
        gone: list[Slot] = []
        for slot in self._slots:
            expired = now - slot.idle_since >= self.idle_timeout
            usable = slot.session.state in _IN_STEP and slot.session.reusable()
            (kept if usable and not expired else gone).append(slot)
        self._slots = kept
        return gone

    def next_expiry(self) -> float | None:
        """When the oldest idle connection passes ``idle_timeout`` (``None``: none idle)."""
        if not self._slots:
            return None
        return self._slots[0].idle_since + self.idle_timeout

    def checkin(self, slot: Slot, now: float) -> bool:
        """Keep ``slot`` for reuse if it is in step, under its message limit and not worn."""
        if slot.worn or slot.sent >= self.max_messages or not slot.session.is_connected:
            return False
        if slot.session.state not in _IN_STEP:
            return False
        slot.idle_since = now
        self._slots.append(slot)
        return True

    def oldest(self) -> list[Slot]:
        """The connection idle longest, taken out for closing (none if none is idle)."""
        return [self._slots.popleft()] if self._slots else []

    def drain(self) -> list[Slot]:
        """Every idle connection, for closing."""
        slots, self._slots = list(self._slots), deque()
        return slots


class RateLimiter:
    """Spaces sends at ``rate`` per second across the pool (``None``: no limit)."""

    def __init__(self, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate_limit must be positive, got {rate}")
        self._interval = 1.0 / rate if rate else 0.0
        self._next = 0.0

    @property
    def limited(self) -> bool:
        """Whether a rate is set."""
        return bool(self._interval)

    def reserve(self, now: float) -> float:
        """Seconds to wait before the next send may start."""
        if not self._interval:
            return 0.0
        start = max(now, self._next)
        self._next = start + self._interval
        return start - now
