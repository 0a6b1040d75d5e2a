"""Turn measurements into the tables: averages, ratios against each peer, the targets.

The same Markdown is printed and, with ``--write-docs``, written into
``docs/performance.md`` by :mod:`._page`.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from ._markdown import divide, mib, number, ratio, table
from ._page import ROOT
from ._results import Results
from ._targets import targets_section

__all__ = ["machine_info", "render", "working_tree"]


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
                    number(results.rate(case.key, shape.key)),
                    f"{number(min(rates))}-{number(max(rates))}",
                    number(cpu * 1e6 if cpu is not None else None),
                    f"{client_cpu:.0%}",
                    f"{sink_cpu:.0%}",
                ]
            )
        header = ["client", "loop", "msg/s", "range", "CPU µs/msg", "client CPU", "sink CPU"]
        lines += table(header, rows, "llrrrrr")
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
            row.append(ratio(divide(results.rate(mine, shape.key), results.rate(peer, shape.key))))
            row.append(ratio(divide(results.cpu(mine, shape.key), results.cpu(peer, shape.key))))
        rows.append(row)
    intro = [
        "",
        "asmtp's figure divided by the peer's: for msg/s above 1x means asmtp is faster; "
        "for CPU/msg below 1x means asmtp uses less CPU per message.",
        "",
    ]
    return intro + table(header, rows, "ll" + "rr" * len(results.shapes))


def _roundtrip_section(results: Results) -> list[str]:
    header = ["client", "server", *(f"{n} recipient(s)" for n in results.roundtrip_recipients)]
    rows = [
        [
            case.label,
            "scripted (PIPELINING, CHUNKING)"
            if case.server == "chunking"
            else "smtp-sink (PIPELINING)",
            *(number(results.round_trips(case.key, n), 2) for n in results.roundtrip_recipients),
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
    return intro + table(header, rows, "ll" + "r" * len(results.roundtrip_recipients))


def _memory_section(results: Results) -> list[str]:
    header = ["client", "message given as", "peak growth (RSS)", "x size"]
    header += ["peak growth (tracemalloc)", "x size"]
    rows = []
    for case in results.memory_cases:
        row = [case.label, case.source]
        for probe in ("rss", "tracemalloc"):
            found = results.growth(case.key, probe)
            row += [mib(found[0]), f"{found[1]:.2f}"] if found else ["-", "-"]
        rows.append(row)
    intro = [
        "",
        f"One {mib(results.memory_size)} message on one connection, in a fresh process: "
        "peak memory above the baseline taken once the message is loaded (bytes) or the "
        "file opened, as a fraction of the message size.",
        "",
    ]
    return intro + table(header, rows, "llrrrr")


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
        *targets_section(results),
    ]
    return "\n".join(lines) + "\n"
