"""A campaign with its journal against the bare pool: ``python benchmarks/run.py campaign``.

Both send one 1 KB message per row of the same CSV file to Postfix's ``smtp-sink`` through
``SMTPPool(max_connections=10)`` on asyncio, each run in a fresh worker process:

- **pool**: the code a user writes without asmtp.campaign: read the CSV, format each
  message with an f-string, ``pool.send_each``, count the outcomes;
- **campaign**: ``asmtp.campaign.Campaign`` with a Jinja2 template and its SQLite journal
  (every row marked in flight, committed, before its first byte; every outcome recorded).

Reported: messages per second (the whole run, the journal's set-up included), client CPU
per message, and the worker's peak RSS, for 100,000 rows (throughput, several runs,
interleaved) and 10,000 rows (memory flat in the number of rows). The sink's counter is
checked after every run: each message arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

import asmtp

from ._jobs import LOCAL_HOSTNAME
from ._page import ROOT
from ._servers import SmtpSink, ensure_postfix

__all__ = ["main"]

CONNECTIONS: Final = 10
SENDER: Final = "news@example.org"
_FILLER: Final = "The quick brown fox jumps over the lazy dog. " * 19  # the body to ~1 KB
TEMPLATE: Final = (
    f"From: News <{SENDER}>\nTo: {{{{ email }}}}\nSubject: Issue 42 for {{{{ name }}}}\n\n"
    f"Hello {{{{ name }}}},\n\n{_FILLER}\n"
)


@dataclass(frozen=True)
class Run:
    mode: str
    rows: int
    seconds: float
    cpu: float
    peak_rss: int  # KiB
    accepted: int

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


def write_rows(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("id,email,name\n")
        out.writelines(f"{n},reader{n}@example.com,Reader {n}\n" for n in range(rows))


def _bare_messages(rows: Path) -> Iterator[tuple[int, asmtp.Outgoing]]:
    with rows.open(encoding="utf-8", newline="") as source:
        reader = csv.reader(source)
        next(reader)
        for row_id, email, name in reader:
            body = (
                f"From: News <{SENDER}>\r\nTo: {email}\r\nSubject: Issue 42 for {name}\r\n"
                f"\r\nHello {name},\r\n\r\n{_FILLER}\r\n"
            ).encode()
            yield int(row_id), asmtp.Outgoing(SENDER, [email], body)


async def _pool_run(port: int, rows: Path) -> int:
    accepted = 0
    async with asmtp.SMTPPool(
        "127.0.0.1", port, tls="none", local_hostname=LOCAL_HOSTNAME, max_connections=CONNECTIONS
    ) as pool:
        async with pool.send_each(_bare_messages(rows)) as results:
            async for _, outcome in results:
                accepted += bool(outcome.accepted)
    return accepted


async def _campaign_run(port: int, rows: Path, template: Path, journal: Path) -> int:
    from asmtp.campaign import Campaign, Rows, Template

    campaign = Campaign(Rows(rows, id_column="id"), Template.from_file(template), journal)
    async with asmtp.SMTPPool(
        "127.0.0.1", port, tls="none", local_hostname=LOCAL_HOSTNAME, max_connections=CONNECTIONS
    ) as pool:
        progress = await campaign.run(pool)
    return progress.accepted


def worker(mode: str, port: int, rows: Path, count: int, workdir: Path) -> Run:
    template = workdir / "template.eml"
    template.write_text(TEMPLATE, encoding="utf-8")
    journal = workdir / f"journal-{time.monotonic_ns()}.db"
    start, cpu = time.perf_counter(), time.process_time()
    if mode == "pool":
        accepted = asyncio.run(_pool_run(port, rows))
    else:
        accepted = asyncio.run(_campaign_run(port, rows, template, journal))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return Run(mode, count, seconds, cpu, peak, accepted)


def _in_worker(mode: str, port: int, rows: Path, count: int, workdir: Path) -> Run:
    done = subprocess.run(  # noqa: S603 - our interpreter and our module
        [
            sys.executable,
            "-m",
            "benchmarks._campaign",
            "--worker",
            mode,
            str(port),
            str(rows),
            str(count),
            str(workdir),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{mode} worker failed:\n{done.stderr[-3000:]}")
    return Run(**json.loads(done.stdout))


def _table(runs: list[Run]) -> str:
    lines = [
        "| mode | rows | msg/s | CPU µs/msg | peak RSS (MiB) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r.mode} | {r.rows:,} | {r.rate:,.0f} | {r.cpu / r.rows * 1e6:,.0f} | "
        f"{r.peak_rss / 1024:,.1f} |"
        for r in runs
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/run.py campaign")
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the throughput runs")
    parser.add_argument("--small", type=int, default=10_000, help="rows of the memory runs")
    parser.add_argument("--repetitions", type=int, default=2, help="runs of each mode")
    args = parser.parse_args(argv)
    ensure_postfix()
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="asmtp-campaign-bench-") as tmp, SmtpSink() as sink:
        workdir = Path(tmp)
        for count in (args.small, args.rows):
            rows = workdir / f"rows-{count}.csv"
            write_rows(rows, count)
            repetitions = args.repetitions if count == args.rows else 1
            for repetition in range(repetitions):
                for mode in ("pool", "campaign"):
                    before = sink.messages()
                    run = _in_worker(mode, sink.port, rows, count, workdir)
                    arrived = sink.wait_messages(before + count) - before
                    if arrived != count or run.accepted != count:
                        raise RuntimeError(f"{mode}: {run.accepted} accepted, {arrived} arrived")
                    runs.append(run)
                    print(
                        f"{mode:>8} {count:>7,} rows, run {repetition + 1}: {run.rate:,.0f} msg/s, "
                        f"{run.cpu / count * 1e6:,.0f} µs CPU/msg, peak RSS "
                        f"{run.peak_rss / 1024:,.1f} MiB",
                        file=sys.stderr,
                        flush=True,
                    )
    print(_table(runs))
    big = [r for r in runs if r.rows == args.rows]
    ratios = [c.rate / p.rate for p, c in zip(big[::2], big[1::2], strict=True)]
    print(
        f"\ncampaign / pool, {args.rows:,} rows: "
        + ", ".join(f"{ratio:.2f}" for ratio in ratios)
        + f" (median {statistics.median(ratios):.2f})"
    )
    for mode in ("pool", "campaign"):
        peaks = {r.rows: r.peak_rss for r in runs if r.mode == mode}
        print(
            f"{mode} peak RSS: {peaks[args.small] / 1024:.1f} MiB for {args.small:,} rows, "
            f"{peaks[args.rows] / 1024:.1f} MiB for {args.rows:,}"
        )
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        mode, port, rows, count, workdir = sys.argv[2:7]
        print(json.dumps(asdict(worker(mode, int(port), Path(rows), int(count), Path(workdir)))))
    else:
        sys.exit(main())
