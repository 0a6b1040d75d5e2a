"""The measurements of one run, by case: the means the tables show, and each case's best."""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from ._jobs import SHAPES, Layout, Measurement, Shape

__all__ = ["Case", "MemoryCase", "Results", "RoundTripCase", "Sample"]


@dataclass(frozen=True)
class Case:
    """A throughput case: a client used one way on one event loop."""

    client: str
    mode: str
    loop: str
    concurrency: int
    label: str
    scale: float = 1.0
    """Messages relative to the shape's count (fast or slow clients get more or fewer)."""

    @property
    def key(self) -> str:
        return f"{self.client}/{self.mode}/{self.loop}"


@dataclass(frozen=True)
class RoundTripCase:
    client: str
    server: str
    """``sink`` (smtp-sink: PIPELINING) or ``chunking`` (scripted: PIPELINING, CHUNKING)."""
    label: str

    @property
    def key(self) -> str:
        return f"{self.client}/{self.server}"


@dataclass(frozen=True)
class MemoryCase:
    client: str
    source: str
    label: str

    @property
    def key(self) -> str:
        return f"{self.client}/{self.source}"


@dataclass(frozen=True)
class Sample:
    measurement: Measurement
    sink_cpu: float = 0.0
    """Seconds of the sink's CPU while the sample ran."""
    foreign: float = 0.0
    """Share of one CPU that other processes used meanwhile."""
    layout: Layout | None = None
    """The worker's hash seed and environment size: the same for every case of a repetition."""


@dataclass
class Results:
    """Every sample, by case key and shape key (round trips: by recipients; memory: probe)."""

    throughput: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)
    roundtrips: dict[tuple[str, int], list[Measurement]] = field(default_factory=dict)
    memory: dict[tuple[str, str], list[Measurement]] = field(default_factory=dict)
    cases: list[Case] = field(default_factory=list)
    roundtrip_cases: list[RoundTripCase] = field(default_factory=list)
    memory_cases: list[MemoryCase] = field(default_factory=list)
    shapes: Sequence[Shape] = SHAPES
    counts: dict[str, int] = field(default_factory=dict)
    repetitions: int = 0
    delay: float = 0.02
    roundtrip_recipients: tuple[int, ...] = (1, 10)
    memory_size: int = 0
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    wall_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    # Throughput figures are means over the repetitions, not medians: each repetition runs
    # at its own memory layout, and a client whose speed depends on the layout has modes.
    # The mean weighs them as processes started anywhere meet them; a median picks one.
    def rate(self, key: str, shape: str) -> float | None:
        samples = self.throughput.get((key, shape))
        return statistics.fmean(s.measurement.rate for s in samples) if samples else None

    def cpu(self, key: str, shape: str) -> float | None:
        samples = self.throughput.get((key, shape))
        if not samples:
            return None
        return statistics.fmean(s.measurement.cpu_per_message for s in samples)

    def fastest_rate(self, key: str, shape: str) -> float | None:
        """The highest rate of any one repetition: a peer at its best."""
        samples = self.throughput.get((key, shape))
        return max(s.measurement.rate for s in samples) if samples else None

    def lowest_cpu(self, key: str, shape: str) -> float | None:
        """The least CPU per message of any one repetition: a peer at its best."""
        samples = self.throughput.get((key, shape))
        return min(s.measurement.cpu_per_message for s in samples) if samples else None

    def round_trips(self, key: str, rcpts: int) -> float | None:
        samples = self.roundtrips.get((key, rcpts))
        if not samples:
            return None
        return statistics.median(m.elapsed / m.messages / (2 * self.delay) for m in samples)

    def growth(self, key: str, probe: str) -> tuple[int, float] | None:
        """Median peak growth in bytes, and as a fraction of the message size."""
        samples = self.memory.get((key, probe))
        if not samples:
            return None
        growth = int(statistics.median(m.growth for m in samples))
        return growth, growth / samples[0].size
