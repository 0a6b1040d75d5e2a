"""asmtp's speed, round-trip and memory targets, as measured in one run.

A ratio against a peer is taken twice: mean against mean, as the targets are defined, and
against the peer's best repetition. Some peers run in modes (aiosmtplib with 50
connections takes 145 µs of CPU per message in some runs and 215 in others), and a target
met only against the slow mode would not hold in the next run.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._markdown import divide, ratio, table
from ._results import Results

__all__ = ["Target", "targets", "targets_section"]


@dataclass(frozen=True)
class Target:
    """A goal and what the run measured; for a ratio against a peer, also against the
    peer's best repetition (its highest rate, or its least CPU per message)."""

    text: str
    measured: float | None
    goal: float
    higher_is_better: bool
    unit: str = "x"
    against_best: float | None = None

    def _reaches(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value >= self.goal if self.higher_is_better else value <= self.goal

    @property
    def met(self) -> bool | None:
        """Whether the mean ratio reaches the goal: how the target is defined."""
        return self._reaches(self.measured)

    @property
    def verdict(self) -> str:
        """``met``, ``**missed**`` or ``not measured``; a target met on the means but not
        against the peer's best repetition says so, as it rests on the peer's slower ones."""
        if self.met is None:
            return "not measured"
        if not self.met:
            return "**missed**"
        return "met" if self._reaches(self.against_best) is not False else "met on the means only"


def targets(results: Results) -> list[Target]:
    """The speed, round-trip and memory targets, measured."""
    workers, pool, peer50 = (
        "asmtp/workers/asyncio",
        "asmtp/pool/asyncio",
        "aiosmtplib/workers/asyncio",
    )
    pipelined = results.round_trips("asmtp/sink", 1)
    chunked = results.round_trips("asmtp/chunking", 1)
    overlapped = results.round_trips("asmtp-many/sink", 1)
    streamed = results.growth("asmtp/file", "rss")
    as_bytes = results.growth("asmtp/bytes", "rss")
    large = f"{results.memory_size / 2**20:.0f} MiB message"

    def faster(text: str, mine: str, peer: str, goal: float, shape: str = "1k") -> Target:
        rate = results.rate(mine, shape)
        return Target(
            text,
            divide(rate, results.rate(peer, shape)),
            goal,
            higher_is_better=True,
            against_best=divide(rate, results.fastest_rate(peer, shape)),
        )

    def leaner(text: str, mine: str, peer: str, goal: float, shape: str = "1k") -> Target:
        cpu = results.cpu(mine, shape)
        return Target(
            text,
            divide(cpu, results.cpu(peer, shape)),
            goal,
            higher_is_better=False,
            against_best=divide(cpu, results.lowest_cpu(peer, shape)),
        )

    aio50 = "aiosmtplib 50 connections"
    return [
        faster(f"50 connections msg/s ≥ 2x {aio50} (1 KB)", workers, peer50, 2.0),
        leaner(f"50 connections CPU/msg ≤ 0.5x {aio50} (1 KB)", workers, peer50, 0.5),
        faster(f"SMTPPool(50) msg/s ≥ 2.5x {aio50} (1 KB)", pool, peer50, 2.5),
        leaner(f"SMTPPool(50) CPU/msg ≤ 0.4x {aio50} (1 KB)", pool, peer50, 0.4),
        faster(
            "1 connection msg/s ≥ 2x aiosmtplib 1 connection (1 KB)",
            "asmtp/single/asyncio",
            "aiosmtplib/single/asyncio",
            2.0,
        ),
        faster(
            f"50 connections msg/s ≥ 5x {aio50} (10 recipients)", workers, peer50, 5.0, "1k-10rcpt"
        ),
        faster(f"SMTPPool(50) msg/s ≥ 5x {aio50} (10 recipients)", pool, peer50, 5.0, "1k-10rcpt"),
        faster(f"SMTPPool(50) msg/s ≥ 3x {aio50} (100 KB)", pool, peer50, 3.0, "100k"),
        faster(
            "asmtp.sendmail() msg/s ≥ 1.3x aiosmtplib.send() (1 KB)",
            "asmtp/send/asyncio",
            "aiosmtplib/send/asyncio",
            1.3,
        ),
        leaner(
            "asmtp.sendmail() CPU/msg ≤ 0.8x aiosmtplib.send() (1 KB)",
            "asmtp/send/asyncio",
            "aiosmtplib/send/asyncio",
            0.8,
        ),
        faster("50 connections on trio ≥ 1x on asyncio (1 KB)", "asmtp/workers/trio", workers, 1.0),
        faster(
            "50 connections on uvloop ≥ 1.5x on asyncio (1 KB)",
            "asmtp/workers/uvloop",
            workers,
            1.5,
        ),
        faster(
            "50 connections on uvloop ≥ 0.6x smtp-source 50 sessions (1 KB)",
            "asmtp/workers/uvloop",
            "smtp-source/sessions/C",
            0.6,
        ),
        Target("round trips per message with PIPELINING = 2", pipelined, 2.25, False, " RT"),
        Target("round trips per message with CHUNKING = 1", chunked, 1.25, False, " RT"),
        Target(
            "round trips per message, transactions overlapped (RFC 2920) = 1",
            overlapped,
            1.25,
            False,
            " RT",
        ),
        Target(
            f"{large} streamed from a file: peak growth ≤ 0.1x size",
            streamed[1] if streamed else None,
            0.1,
            False,
        ),
        Target(
            f"{large} given as bytes: peak growth ≤ 1.2x size",
            as_bytes[1] if as_bytes else None,
            1.2,
            False,
        ),
    ]


def targets_section(results: Results) -> list[str]:
    """The targets as a Markdown table, with the note that explains its columns."""
    rows = []
    for target in targets(results):
        measured = "-" if target.measured is None else f"{target.measured:.2f}{target.unit}"
        rows.append([target.text, measured, ratio(target.against_best), target.verdict])
    intro = [
        "",
        "A ratio against a peer divides the means over the repetitions (measured) and, in "
        "the next column, asmtp's mean by the peer's best repetition: its highest rate, or "
        "its least CPU per message. A target met on the means alone rests on the peer's "
        "slower repetitions. Round-trip targets allow 0.25 RT for processing time; memory "
        "targets use the RSS peak.",
        "",
    ]
    header = ["target", "measured", "against the peer's best repetition", ""]
    return intro + table(header, rows, "lrrl")
