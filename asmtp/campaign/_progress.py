"""Where a campaign stands: the rows in each state, and this run's pace."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Progress"]


@dataclass(frozen=True)
class Progress:
    """A campaign's rows by state, and the run in progress (or just ended).

    The state counts cover the whole journal, earlier runs included. ``to_send`` is how
    many rows this run set out to send, ``sent`` how many of them have an outcome so far,
    ``elapsed`` the run's seconds. ``stopped`` says why a run ended early (``None`` while
    running or when it went through); ``recovered`` counts the rows a killed earlier run
    left in flight, now ``unknown``; ``unknown_rows`` lists (some of) the unknown rows' ids.
    """

    total: int
    pending: int = 0
    in_flight: int = 0
    accepted: int = 0
    refused: int = 0
    failed: int = 0
    unknown: int = 0
    to_send: int = 0
    sent: int = 0
    elapsed: float = 0.0
    stopped: str | None = None
    recovered: int = 0
    unknown_rows: tuple[str, ...] = field(default=(), repr=False)

    @property
    def done(self) -> int:
        """Rows with an outcome: accepted, refused, failed or unknown."""
        return self.accepted + self.refused + self.failed + self.unknown

    @property
    def rate(self) -> float:
        """Outcomes per second in this run."""
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds until this run is through, at its pace so far (None before any outcome)."""
        rate = self.rate
        return max(0, self.to_send - self.sent) / rate if rate > 0 else None

    @property
    def complete(self) -> bool:
        """Every row was accepted."""
        return self.accepted == self.total
