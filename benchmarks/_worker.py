"""Worker process: run one :class:`~benchmarks._jobs.Job` and print its measurement as JSON.

``python -m benchmarks._worker '<job json>'``. A fresh process per measurement keeps event
loops, allocator state and peak-memory counters from leaking between measurements.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import smtplib
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import aiosmtplib
import trio

import asmtp

from ._clients import ASYNC_CLIENTS, SYNC_CLIENTS, RoundTripClient, Workload, smtp_source
from ._jobs import LOCAL_HOSTNAME, SENDER, Job, Measurement, recipients

__all__ = ["main", "run_job"]

_T = TypeVar("_T")


def run_loop(loop: str, main: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run ``main`` to completion on the named event loop."""
    if loop == "asyncio":
        return asyncio.run(main())
    if loop == "uvloop":
        import uvloop

        result: _T = uvloop.run(main())
        return result
    if loop == "trio":
        return trio.run(main)
    raise ValueError(f"unknown event loop {loop!r}")


async def _timed(client: Callable[[Workload], Awaitable[None]], w: Workload) -> Measurement:
    start, cpu = time.perf_counter(), time.process_time()
    await client(w)
    return Measurement(time.perf_counter() - start, time.process_time() - cpu, w.messages)


def _throughput(job: Job) -> Measurement:
    if job.client == "smtp-source":
        return smtp_source(job)
    w = Workload(
        host=job.host,
        port=job.port,
        payload=Path(job.message_file).read_bytes(),
        recipients=recipients(job.recipients),
        messages=job.messages,
        concurrency=job.concurrency,
    )
    key = (job.client, job.mode)
    if key in SYNC_CLIENTS:
        start, cpu = time.perf_counter(), time.process_time()
        SYNC_CLIENTS[key](w)
        return Measurement(time.perf_counter() - start, time.process_time() - cpu, w.messages)
    client = ASYNC_CLIENTS[key]
    return run_loop(job.loop, lambda: _timed(client, w))


def _roundtrip(job: Job) -> Measurement:
    rt = RoundTripClient(job, Path(job.message_file).read_bytes(), recipients(job.recipients))
    if job.client == "smtplib":
        elapsed = rt.smtplib(job.messages, time.perf_counter)
    elif job.client == "aiosmtplib":
        elapsed = asyncio.run(rt.aiosmtplib(job.messages, time.perf_counter))
    elif job.client == "asmtp-many":
        elapsed = run_loop(job.loop, lambda: rt.asmtp_many(job.messages, time.perf_counter))
    else:
        elapsed = run_loop(job.loop, lambda: rt.asmtp(job.messages, time.perf_counter))
    return Measurement(elapsed=elapsed, cpu=0.0, messages=job.messages)


class _Probe:
    """Peak memory above a baseline: resident set size (whole process) or tracemalloc.

    ``rss``: the kernel's peak RSS (``VmHWM``) is reset to the current RSS when the probe
    starts (``/proc/self/clear_refs``), so neither start-up nor the parent's memory before
    ``exec`` (which ``ru_maxrss`` inherits) can hide the growth. Without ``/proc``, falls
    back to ``ru_maxrss``, which can only under-report.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._base = 0
        self._proc = True

    @staticmethod
    def _status(field: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # kB
        raise OSError(f"{field} not in /proc/self/status")

    def start(self) -> None:
        if self.kind == "tracemalloc":
            tracemalloc.start()
            self._base = tracemalloc.get_traced_memory()[0]
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS
            self._base = self._status("VmRSS")
        except OSError:
            self._proc = False
            self._base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def growth(self) -> int:
        if self.kind == "tracemalloc":
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            return peak - self._base
        if self._proc:
            return self._status("VmHWM") - self._base
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - self._base


def _memory(job: Job) -> Measurement:
    """Send one large message, given as bytes or as an open file; report peak growth."""
    path = Path(job.message_file)
    size = path.stat().st_size
    rcpts = recipients(job.recipients)
    probe = _Probe(job.probe)
    with contextlib.ExitStack() as stack:

        def load() -> bytes | BinaryIO:
            if job.source == "file":
                return stack.enter_context(path.open("rb"))
            return path.read_bytes()

        start = 0.0
        if job.client == "smtplib":
            with smtplib.SMTP(job.host, job.port, local_hostname=LOCAL_HOSTNAME) as smtp:
                smtp.ehlo()
                message = load()
                assert isinstance(message, bytes), "smtplib takes bytes"
                probe.start()
                start = time.perf_counter()
                smtp.sendmail(SENDER, rcpts, message)
                elapsed, growth = time.perf_counter() - start, probe.growth()
        elif job.client == "aiosmtplib":

            async def send_aiosmtplib() -> tuple[float, int]:
                async with aiosmtplib.SMTP(
                    hostname=job.host,
                    port=job.port,
                    local_hostname=LOCAL_HOSTNAME,
                    start_tls=False,
                    timeout=300,
                ) as smtp:
                    await smtp.ehlo()
                    message = load()
                    assert isinstance(message, bytes), "aiosmtplib takes bytes"
                    probe.start()
                    start = time.perf_counter()
                    await smtp.sendmail(SENDER, rcpts, message)
                    return time.perf_counter() - start, probe.growth()

            elapsed, growth = asyncio.run(send_aiosmtplib())
        else:

            async def send_asmtp() -> tuple[float, int]:
                async with asmtp.SMTP(
                    job.host, job.port, local_hostname=LOCAL_HOSTNAME, timeout=300
                ) as smtp:
                    await smtp.ehlo()
                    message = load()
                    probe.start()
                    start = time.perf_counter()
                    await smtp.sendmail(SENDER, rcpts, message)
                    return time.perf_counter() - start, probe.growth()

            elapsed, growth = run_loop(job.loop, send_asmtp)
    return Measurement(elapsed=elapsed, cpu=0.0, messages=1, growth=growth, size=size)


def run_job(job: Job) -> Measurement:
    if job.kind == "throughput":
        return _throughput(job)
    if job.kind == "roundtrip":
        return _roundtrip(job)
    return _memory(job)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m benchmarks._worker '<job json>'", file=sys.stderr)
        return 2
    print(run_job(Job.from_json(argv[1])).to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
