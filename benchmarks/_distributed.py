"""A distributed campaign with 1, 2 and 4 worker processes: ``python benchmarks/run.py distributed``.

A private Redis (Debian's ``redis-server``, as the tests start it) holds the queue and the
journal; ``taskiq worker`` processes (:mod:`asmtp.campaign.distributed.app`, 10
connections each) send one 1 KB message per row to Postfix's ``smtp-sink``. The workers
are started and idle before the rows are enqueued, so the figures leave out their
start-up. Reported: the producer's enqueue rate, then for each number of workers the
messages per second from the first enqueue to the last outcome in the journal, and the
workers' CPU per message (their processes' user and system time over the run, from
``/proc``). The sink's counter is checked after every run: each message arrived once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ._campaign import TEMPLATE, write_rows
from ._page import ROOT
from ._servers import SmtpSink, ensure_postfix

sys.path.insert(0, str(ROOT / "tests"))  # the tests' Redis and worker processes

from support.redis_server import RedisServer, Workers, ensure_installed

__all__ = ["main"]

CONNECTIONS: Final = 10
_TICKS: Final = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Run:
    workers: int
    rows: int
    enqueue_seconds: float
    seconds: float
    cpu: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


def _cpu(pids: list[int]) -> float:
    """User and system seconds of ``pids`` so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / _TICKS


async def _enqueue(url: str, name: str, rows: Path, template: Path) -> int:
    from asmtp.campaign import Rows, Template
    from asmtp.campaign.distributed import RedisJournal, enqueue, redis_client

    client = redis_client(url)
    try:
        done = await enqueue(
            RedisJournal(client, name), Rows(rows, id_column="id"), Template.from_file(template)
        )
    finally:
        await client.aclose()
    return done.enqueued


async def _counts(url: str, name: str) -> dict[str, int]:
    from asmtp.campaign.distributed import RedisJournal, redis_client

    client = redis_client(url)
    try:
        return await RedisJournal(client, name).counts()
    finally:
        await client.aclose()


def _run(
    count: int,
    workers: int,
    rows: Path,
    template: Path,
    redis: RedisServer,
    sink: SmtpSink,
    workdir: Path,
) -> Run:
    name = f"bench-{workers}-{time.monotonic_ns()}"
    group = Workers(
        {
            "ASMTP_REDIS_URL": redis.url,
            "ASMTP_SMTP_URL": f"smtp://127.0.0.1:{sink.port}",
            "ASMTP_CONNECTIONS": str(CONNECTIONS),
        }
    )
    processes = [group.start(workdir / f"{name}-{n}.log") for n in range(workers)]
    try:
        deadline = time.monotonic() + 30
        while any(group.child(p) is None for p in processes) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2.0)  # imports done, each worker reading the stream
        children = [pid for p in processes if (pid := group.child(p)) is not None]
        cpu = _cpu(children)
        start = time.perf_counter()
        enqueued = asyncio.run(_enqueue(redis.url, name, rows, template))
        enqueue_seconds = time.perf_counter() - start
        if enqueued != count:
            raise RuntimeError(f"enqueued {enqueued} of {count} rows")
        while True:
            counts = asyncio.run(_counts(redis.url, name))
            if counts["pending"] == 0 and counts["in_flight"] == 0:
                break
            if time.perf_counter() - start > 900:
                raise RuntimeError(f"not done after 900 s: {counts}")
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        cpu = _cpu(children) - cpu
        if counts["accepted"] != count:
            raise RuntimeError(f"{counts}")
    finally:
        group.stop()
    return Run(workers, count, enqueue_seconds, seconds, cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/run.py distributed")
    parser.add_argument("--rows", type=int, default=50_000, help="rows of each run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args(argv)
    ensure_postfix()
    ensure_installed()
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="asmtp-distributed-bench-") as tmp, SmtpSink() as sink:
        workdir = Path(tmp)
        rows, template = workdir / "rows.csv", workdir / "template.eml"
        write_rows(rows, args.rows)
        template.write_text(TEMPLATE, encoding="utf-8")
        redis = RedisServer(workdir)
        redis.start()
        try:
            for workers in args.workers:
                before = sink.messages()
                run = _run(args.rows, workers, rows, template, redis, sink, workdir)
                arrived = sink.wait_messages(before + args.rows) - before
                if arrived != args.rows:
                    raise RuntimeError(f"{arrived} of {args.rows} messages arrived")
                runs.append(run)
                print(
                    f"{workers} worker(s): {run.rate:,.0f} msg/s, "
                    f"{run.cpu / run.rows * 1e6:,.0f} µs CPU/msg, enqueue "
                    f"{run.rows / run.enqueue_seconds:,.0f} rows/s",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            redis.stop()
    print("| worker processes | rows | msg/s | worker CPU µs/msg | enqueue rows/s |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for r in runs:
        print(
            f"| {r.workers} | {r.rows:,} | {r.rate:,.0f} | {r.cpu / r.rows * 1e6:,.0f} | "
            f"{r.rows / r.enqueue_seconds:,.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
