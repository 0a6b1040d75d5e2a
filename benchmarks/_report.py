"""Turn measurements into the tables: medians, ratios against each peer, the issue's targets.

The same Markdown is printed and, with ``--write-docs``, written into
``docs/performance.md`` between two markers (the page's explanatory text is kept).
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

from ._jobs import SHAPES, Measurement, Shape

__all__ = [
    "Case",
    "MemoryCase",
    "Results",
    "RoundTripCase",
    "Sample",
    "machine_info",
    "render",
    "working_tree",
    "write_docs",
]

ROOT: Final = Path(__file__).resolve().parent.parent
DOCS_PAGE: Final = ROOT / "docs" / "performance.md"
START_MARK: Final = "<!-- benchmark results: start (written by benchmarks/run.py --write-docs) -->"
END_MARK: Final = "<!-- benchmark results: end -->"


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

    def rate(self, key: str, shape: str) -> float | None:
        samples = self.throughput.get((key, shape))
        return statistics.median(s.measurement.rate for s in samples) if samples else None

    def cpu(self, key: str, shape: str) -> float | None:
        samples = self.throughput.get((key, shape))
        if not samples:
            return None
        return statistics.median(s.measurement.cpu_per_message for s in samples)

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
            client_cpu = statistics.median(
                s.measurement.cpu / s.measurement.elapsed for s in samples
            )
            sink_cpu = statistics.median(s.sink_cpu / s.measurement.elapsed for s in samples)
            cpu = results.cpu(case.key, shape.key)
            rows.append(
                [
                    case.label,
                    case.loop,
                    _num(statistics.median(rates)),
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
    ("asmtp/pool/asyncio", "aiosmtplib/send/asyncio"),
    ("asmtp/pool/asyncio", "smtplib/threads/threads"),
    ("asmtp/pool/uvloop", "smtp-source/sessions/C"),
    ("asmtp/workers/asyncio", "aiosmtplib/workers/asyncio"),
    ("asmtp/workers/uvloop", "aiosmtplib/workers/uvloop"),
    ("asmtp/workers/asyncio", "smtplib/threads/threads"),
    ("asmtp/workers/uvloop", "smtp-source/sessions/C"),
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
    """The targets from issue #6, measured."""
    pool = "asmtp/pool/asyncio"
    if not any(key == pool for key, _ in results.throughput):
        pool = "asmtp/workers/asyncio"
    peer50, single, peer1 = (
        "aiosmtplib/workers/asyncio",
        "asmtp/single/asyncio",
        "aiosmtplib/single/asyncio",
    )
    name = "SMTPPool(50)" if pool.endswith("pool/asyncio") else "asmtp 50 workers"
    uvpool = pool.replace("asyncio", "uvloop")
    pipelined = results.round_trips("asmtp/sink", 1)
    chunked = results.round_trips("asmtp/chunking", 1)
    overlapped = results.round_trips("asmtp-many/sink", 1)
    streamed = results.growth("asmtp/file", "rss")
    as_bytes = results.growth("asmtp/bytes", "rss")
    large = f"{results.memory_size / 2**20:.0f} MiB message"

    def rate_ratio(mine: str, peer: str, shape: str) -> float | None:
        return _div(results.rate(mine, shape), results.rate(peer, shape))

    return [
        Target(
            f"{name} msg/s ≥ 2x aiosmtplib 50 connections (1 KB)",
            rate_ratio(pool, peer50, "1k"),
            2.0,
            True,
        ),
        Target(
            f"{name} CPU/msg ≤ 0.5x aiosmtplib 50 connections (1 KB)",
            _div(results.cpu(pool, "1k"), results.cpu(peer50, "1k")),
            0.5,
            False,
        ),
        Target(
            f"{name} msg/s ≥ 5x aiosmtplib 50 connections (10 recipients)",
            rate_ratio(pool, peer50, "1k-10rcpt"),
            5.0,
            True,
        ),
        Target(
            f"{name} msg/s ≥ 3x aiosmtplib 50 connections (100 KB)",
            rate_ratio(pool, peer50, "100k"),
            3.0,
            True,
        ),
        Target(
            "1 connection msg/s ≥ 2x aiosmtplib 1 connection (1 KB)",
            rate_ratio(single, peer1, "1k"),
            2.0,
            True,
        ),
        Target(
            f"{name} on uvloop ≥ 0.8x smtp-source 50 sessions (1 KB)",
            rate_ratio(uvpool, "smtp-source/sessions/C", "1k"),
            0.8,
            True,
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
        f"- Messages per measurement: {counts} (smtp-source x4, aiosmtplib.send() x0.25); "
        f"{results.repetitions} repetitions, medians reported.",
        *(f"- {note}" for note in results.notes),
        "",
        "### Throughput and client CPU",
        "",
        "msg/s: median over the repetitions (range: slowest-fastest). CPU µs/msg: client CPU "
        "time per message (`time.process_time()`; for smtp-source, `RUSAGE_CHILDREN`). "
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
        "### Targets (issue #6)",
        *_targets_section(results),
    ]
    return "\n".join(lines) + "\n"


_PAGE_TEMPLATE: Final = """# Performance

How fast asmtp sends, how much CPU and memory it needs doing so, and how many network
round trips each message costs, measured side by side with
[aiosmtplib](https://aiosmtplib.readthedocs.io/), the standard library's `smtplib`, and
Postfix's own C load generator `smtp-source` as the ceiling.

## Method

- **Server**: Postfix's `smtp-sink` on 127.0.0.1 (an ephemeral port), which accepts and
  discards mail in a single C process and advertises PIPELINING. Its CPU use is reported
  next to every figure to show it is not the bottleneck, and its message counter is checked
  after every measurement: every message sent arrived.
- **Clients**, each in a fresh process per measurement, sending the same bytes (the same
  message file for `smtp-source -F`), with every reply checked:
  - asmtp on one connection, sending one message after another, and in batches of 100
    with `sendmail_many` (asyncio and uvloop); asmtp's `SMTPPool(max_connections=50)`
    with one task per message (started with `asyncio.gather` under asyncio and uvloop,
    as for `aiosmtplib.send()`; an anyio task group under trio); asmtp with 50
    connections each owned by a worker task pulling from a shared queue; under asyncio,
    uvloop and trio;
  - aiosmtplib on one connection and with 50 worker connections (asyncio and uvloop), and
    `aiosmtplib.send()` (a new connection per message) under a semaphore of 50;
  - `smtplib` on one connection, and 50 threads each with its own connection;
  - `smtp-source -d` with 1 and with 50 sessions (it does not pipeline).
- **Shapes**: 1 KB to 1 recipient, 100 KB to 1 recipient, 1 KB to 10 recipients.
- **Figures**: messages per second (connection set-up and QUIT included) and client CPU
  seconds per message (`time.process_time()`, or `RUSAGE_CHILDREN` for `smtp-source`);
  median of several repetitions, interleaved so drift affects every case alike.
- **Round trips**: a loopback proxy adds a fixed delay in each direction; the time per
  message on an open connection divided by the round-trip time. `smtp-sink` has no
  CHUNKING, so the CHUNKING figure uses a small scripted server that advertises PIPELINING
  and CHUNKING.
- **Memory**: one large message sent once, in a fresh process; the peak resident set size
  (`VmHWM`, reset just before the send) and, in a separate process, the tracemalloc peak,
  above the baseline taken once the message is in memory or its file is open.
- **Interference**: on a shared machine, a sample during which other processes used more
  than 15% of a CPU (machine user time minus ours and the sink's) is taken again, up to 3
  times; how many were kept anyway is reported with the results.

The figures depend on the machine; compare ratios, not absolute numbers, across machines.

## Running it

```sh
python benchmarks/run.py            # full run, about 10 minutes on 2 cores
python benchmarks/run.py --quick    # a smoke run in under a minute
python benchmarks/run.py --write-docs   # also replace the results below
python benchmarks/run.py --asmtp-ref HEAD   # measure a commit, not the working tree
```

It needs Postfix's `smtp-sink` and `smtp-source` (Debian: `apt-get install postfix`,
choosing "No configuration"; as root on Debian the script installs them itself), plus
aiosmtplib, uvloop and trio.

## Latest results

"""


def write_docs(report: str, page: Path = DOCS_PAGE) -> None:
    """Put ``report`` between the markers of the docs page, creating the page if needed."""
    block = f"{START_MARK}\n\n{report}\n{END_MARK}\n"
    text = page.read_text(encoding="utf-8") if page.exists() else _PAGE_TEMPLATE
    if START_MARK in text and END_MARK in text:
        head, rest = text.split(START_MARK, 1)
        tail = rest.split(END_MARK, 1)[1].lstrip("\n")
        text = head + block + (f"\n{tail}" if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    page.write_text(text, encoding="utf-8")
