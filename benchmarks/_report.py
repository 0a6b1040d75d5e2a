"""Turn measurements into the tables: averages, ratios against each peer, the targets.

The same Markdown is printed and, with ``--write-docs``, written into
``docs/performance.md`` by :mod:`._page`.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import statistics
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from ._jobs import SHAPES, Layout, Measurement, Shape
from ._page import ROOT

__all__ = [
    "Case",
    "MemoryCase",
    "Results",
    "RoundTripCase",
    "Sample",
    "machine_info",
    "render",
    "working_tree",
]


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


# -- formatting helpers ---------------------------------------------------------------------


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str) -> list[str]:
    """A Markdown table; ``align`` holds one ``l`` or ``r`` per column."""
    marks = {"l": "---", "r": "---:"}
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks[a] for a in align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"


# -- machine and software ---------------------------------------------------------------------


def _run(*command: str) -> str:
    try:
        out = subprocess.run(  # noqa: S603 - fixed read-only commands
            command, capture_output=True, text=True, timeout=10, check=False, cwd=ROOT
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def working_tree() -> str:
    """Which asmtp the working tree holds: its commit, and whether asmtp/ has changes."""
    commit = _run("git", "rev-parse", "--short", "HEAD") or "unknown"
    if _run("git", "status", "--porcelain", "--", "asmtp"):
        return f"working tree: git {commit} with uncommitted changes in asmtp/"
    return f"git {commit}"


def machine_info(asmtp_source: str) -> list[str]:
    """Lines describing the machine and the software measured."""
    postfix = _run("/usr/sbin/postconf", "-d", "-h", "mail_version") or "unknown"
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return [
        f"Machine: {_cpu_model()}, {os.cpu_count()} logical CPUs{memory}; "
        f"{platform.system()} {platform.release()}",
        f"Python {platform.python_version()} ({platform.python_implementation()}); "
        f"asmtp {_version('asmtp')} ({asmtp_source}); aiosmtplib {_version('aiosmtplib')}; "
        f"anyio {_version('anyio')}; uvloop {_version('uvloop')}; trio {_version('trio')}; "
        f"Postfix smtp-sink/smtp-source {postfix}",
    ]


# -- sections ----------------------------------------------------------------------------------


def _throughput_section(results: Results) -> list[str]:
    lines: list[str] = []
    for shape in results.shapes:
        lines += ["", f"#### {shape.title}", ""]
        rows = []
        for case in results.cases:
            samples = results.throughput.get((case.key, shape.key))
            if not samples:
                continue
            rates = [s.measurement.rate for s in samples]
            client_cpu = statistics.fmean(
                s.measurement.cpu / s.measurement.elapsed for s in samples
            )
            sink_cpu = statistics.fmean(s.sink_cpu / s.measurement.elapsed for s in samples)
            cpu = results.cpu(case.key, shape.key)
            rows.append(
                [
                    case.label,
                    case.loop,
                    _num(results.rate(case.key, shape.key)),
                    f"{_num(min(rates))}-{_num(max(rates))}",
                    _num(cpu * 1e6 if cpu is not None else None),
                    f"{client_cpu:.0%}",
                    f"{sink_cpu:.0%}",
                ]
            )
        header = ["client", "loop", "msg/s", "range", "CPU µs/msg", "client CPU", "sink CPU"]
        lines += _table(header, rows, "llrrrrr")
    return lines


# (asmtp case, peer case): the ratio tables compare like with like where a like exists.
PAIRS: Final = (
    ("asmtp/single/asyncio", "aiosmtplib/single/asyncio"),
    ("asmtp/single/uvloop", "aiosmtplib/single/uvloop"),
    ("asmtp/single/asyncio", "smtplib/single/threads"),
    ("asmtp/single/uvloop", "smtp-source/single/C"),
    ("asmtp/batch/asyncio", "aiosmtplib/single/asyncio"),
    ("asmtp/batch/uvloop", "aiosmtplib/single/uvloop"),
    ("asmtp/pool/asyncio", "aiosmtplib/workers/asyncio"),
    ("asmtp/pool/uvloop", "aiosmtplib/workers/uvloop"),
    ("asmtp/pool/asyncio", "smtplib/threads/threads"),
    ("asmtp/pool/uvloop", "smtp-source/sessions/C"),
    ("asmtp/workers/asyncio", "aiosmtplib/workers/asyncio"),
    ("asmtp/workers/uvloop", "aiosmtplib/workers/uvloop"),
    ("asmtp/workers/asyncio", "smtplib/threads/threads"),
    ("asmtp/workers/uvloop", "smtp-source/sessions/C"),
    ("asmtp/workers/asyncio", "raw/workers/asyncio"),
    ("asmtp/workers/uvloop", "raw/workers/uvloop"),
    ("asmtp/send/asyncio", "aiosmtplib/send/asyncio"),
    # asmtp on another event loop against itself on asyncio
    ("asmtp/workers/uvloop", "asmtp/workers/asyncio"),
    ("asmtp/workers/trio", "asmtp/workers/asyncio"),
    ("asmtp/pool/uvloop", "asmtp/pool/asyncio"),
    ("asmtp/pool/trio", "asmtp/pool/asyncio"),
)


def _ratio_section(results: Results) -> list[str]:
    labels = {case.key: f"{case.label} ({case.loop})" for case in results.cases}
    header = ["asmtp", "÷ peer"]
    for shape in results.shapes:
        header += [f"{shape.key} msg/s", f"{shape.key} CPU/msg"]
    rows = []
    for mine, peer in PAIRS:
        if mine not in labels or peer not in labels:
            continue
        row = [labels[mine], labels[peer]]
        for shape in results.shapes:
            row.append(_ratio(_div(results.rate(mine, shape.key), results.rate(peer, shape.key))))
            row.append(_ratio(_div(results.cpu(mine, shape.key), results.cpu(peer, shape.key))))
        rows.append(row)
    intro = [
        "",
        "asmtp's figure divided by the peer's: for msg/s above 1x means asmtp is faster; "
        "for CPU/msg below 1x means asmtp uses less CPU per message.",
        "",
    ]
    return intro + _table(header, rows, "ll" + "rr" * len(results.shapes))


def _roundtrip_section(results: Results) -> list[str]:
    header = ["client", "server", *(f"{n} recipient(s)" for n in results.roundtrip_recipients)]
    rows = [
        [
            case.label,
            "scripted (PIPELINING, CHUNKING)"
            if case.server == "chunking"
            else "smtp-sink (PIPELINING)",
            *(_num(results.round_trips(case.key, n), 2) for n in results.roundtrip_recipients),
        ]
        for case in results.roundtrip_cases
    ]
    delay_ms = results.delay * 1000
    intro = [
        "",
        f"Elapsed time per message on an open connection through a proxy adding {delay_ms:.0f} ms "
        f"each way, divided by the {2 * delay_ms:.0f} ms round trip.",
        "",
    ]
    return intro + _table(header, rows, "ll" + "r" * len(results.roundtrip_recipients))


def _memory_section(results: Results) -> list[str]:
    header = ["client", "message given as", "peak growth (RSS)", "x size"]
    header += ["peak growth (tracemalloc)", "x size"]
    rows = []
    for case in results.memory_cases:
        row = [case.label, case.source]
        for probe in ("rss", "tracemalloc"):
            found = results.growth(case.key, probe)
            row += [_mib(found[0]), f"{found[1]:.2f}"] if found else ["-", "-"]
        rows.append(row)
    intro = [
        "",
        f"One {_mib(results.memory_size)} message on one connection, in a fresh process: "
        "peak memory above the baseline taken once the message is loaded (bytes) or the "
        "file opened, as a fraction of the message size.",
        "",
    ]
    return intro + _table(header, rows, "llrrrr")


@dataclass(frozen=True)
class Target:
    text: str
    measured: float | None
    goal: float
    higher_is_better: bool
    unit: str = "x"

    @property
    def met(self) -> bool | None:
        if self.measured is None:
            return None
        if self.higher_is_better:
            return self.measured >= self.goal
        return self.measured <= self.goal


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
        return Target(text, _div(results.rate(mine, shape), results.rate(peer, shape)), goal, True)

    def leaner(text: str, mine: str, peer: str, goal: float, shape: str = "1k") -> Target:
        return Target(text, _div(results.cpu(mine, shape), results.cpu(peer, shape)), goal, False)

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


def _targets_section(results: Results) -> list[str]:
    rows = []
    for target in targets(results):
        verdict = {True: "met", False: "**missed**", None: "not measured"}[target.met]
        measured = "-" if target.measured is None else f"{target.measured:.2f}{target.unit}"
        rows.append([target.text, measured, verdict])
    intro = [
        "",
        "Round-trip targets allow 0.25 RT for processing time; memory targets use the RSS peak.",
        "",
    ]
    return intro + _table(["target", "measured", ""], rows, "lrl")


def render(results: Results, machine: Sequence[str]) -> str:
    """The whole report as Markdown."""
    when = results.started.strftime("%Y-%m-%d %H:%M UTC")
    counts = ", ".join(
        f"{shape.title}: {results.counts.get(shape.key, 0)}" for shape in results.shapes
    )
    lines = [
        f"Run on {when} in {results.wall_seconds:.0f} s.",
        "",
        *(f"- {line}" for line in machine),
        f"- Messages per measurement: {counts} (smtp-source x4, one-shot sends x0.25); "
        f"{results.repetitions} repetitions, each at its own hash seed and environment size; "
        "throughput: means, round trips and memory: medians.",
        *(f"- {note}" for note in results.notes),
        "",
        "### Throughput and client CPU",
        "",
        "msg/s: mean over the repetitions (range: slowest-fastest). CPU µs/msg: mean client "
        "CPU time per message (`time.process_time()`; for smtp-source, `RUSAGE_CHILDREN`). "
        "client CPU and sink CPU: share of one core used by the client and by smtp-sink "
        "while the measurement ran.",
        *_throughput_section(results),
        "",
        "### Ratios against each peer",
        *_ratio_section(results),
        "",
        "### Round trips per message",
        *_roundtrip_section(results),
        "",
        "### Peak memory for one large message",
        *_memory_section(results),
        "",
        "### Targets",
        *_targets_section(results),
    ]
    return "\n".join(lines) + "\n"
