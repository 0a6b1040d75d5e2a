"""Plan and run the benchmark: start the servers, run every job in a worker, report."""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import resource
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import asmtp

from ._jobs import SHAPES, Job, Layout, Measurement, make_message, write_message_files
from ._page import DOCS_PAGE, ROOT, write_docs
from ._report import machine_info, render, working_tree
from ._results import Case, MemoryCase, Results, RoundTripCase, Sample
from ._servers import Helpers, SmtpSink, ensure_postfix, machine_user_seconds

__all__ = ["main"]

CONCURRENCY: Final = 50
_FOREIGN_LIMIT: Final = 0.15
"""Share of one CPU other processes may use during a sample before it is taken again."""
_RETAKE_PAUSE: Final = 5.0
_MAX_RETAKES_PER_RUN: Final = 30
_MEMORY_SIZE: Final = 50 * 2**20
_QUICK_MEMORY_SIZE: Final = 5 * 2**20


def throughput_cases(pool: bool) -> list[Case]:
    """Every throughput case, in table order: one connection first, then fifty."""
    n = CONCURRENCY
    cases = [
        *(
            Case("asmtp", "single", loop, 1, "asmtp, 1 connection")
            for loop in ("asyncio", "uvloop", "trio")
        ),
        *(
            Case("asmtp", "batch", loop, 1, "asmtp, 1 connection, sendmail_many")
            for loop in ("asyncio", "uvloop")
        ),
        *(
            Case("aiosmtplib", "single", loop, 1, "aiosmtplib, 1 connection")
            for loop in ("asyncio", "uvloop")
        ),
        Case("smtplib", "single", "threads", 1, "smtplib, 1 connection"),
        Case("smtp-source", "single", "C", 1, "smtp-source (C), 1 session", scale=4.0),
    ]
    if pool:
        cases += [
            Case("asmtp", "pool", loop, n, f"asmtp SMTPPool(max_connections={n})")
            for loop in ("asyncio", "uvloop", "trio")
        ]
    cases += [
        *(
            Case("asmtp", "workers", loop, n, f"asmtp {n} connections (workers)")
            for loop in ("asyncio", "uvloop", "trio")
        ),
        *(
            Case("aiosmtplib", "workers", loop, n, f"aiosmtplib {n} connections (workers)")
            for loop in ("asyncio", "uvloop")
        ),
        *(
            Case("raw", "workers", loop, n, f"raw asyncio client (Python floor), {n} connections")
            for loop in ("asyncio", "uvloop")
        ),
        Case(
            "asmtp",
            "send",
            "asyncio",
            n,
            f"asmtp.sendmail() per message, {n} at once",
            scale=0.25,
        ),
        Case(
            "aiosmtplib",
            "send",
            "asyncio",
            n,
            f"aiosmtplib.send() per message, {n} at once",
            scale=0.25,
        ),
        Case("smtplib", "threads", "threads", n, f"smtplib, {n} threads"),
        Case("smtp-source", "sessions", "C", n, f"smtp-source (C), {n} sessions", scale=4.0),
    ]
    return cases


ROUNDTRIP_CASES: Final = (
    RoundTripCase("asmtp", "sink", "asmtp (PIPELINING)"),
    RoundTripCase("asmtp-many", "sink", "asmtp sendmail_many (PIPELINING, overlapped)"),
    RoundTripCase("asmtp", "chunking", "asmtp (PIPELINING + CHUNKING)"),
    RoundTripCase("aiosmtplib", "sink", "aiosmtplib"),
    RoundTripCase("smtplib", "sink", "smtplib"),
)
MEMORY_CASES: Final = (
    MemoryCase("asmtp", "file", "asmtp"),
    MemoryCase("asmtp", "bytes", "asmtp"),
    MemoryCase("aiosmtplib", "bytes", "aiosmtplib"),
    MemoryCase("smtplib", "bytes", "smtplib"),
)


@dataclasses.dataclass(frozen=True)
class Settings:
    repetitions: int
    counts: dict[str, int]
    roundtrip_messages: int
    roundtrip_repetitions: int
    delay: float
    memory_size: int
    job_timeout: float
    retakes: int
    """Times a sample is taken again when other processes used the CPU meanwhile."""
    budget: float
    """Seconds after which no further repetition is started (one always completes)."""

    @classmethod
    def for_run(cls, quick: bool, repetitions: int | None) -> Settings:
        if quick:
            return cls(
                repetitions=repetitions or 1,
                counts={shape.key: shape.quick_count for shape in SHAPES},
                roundtrip_messages=2,
                roundtrip_repetitions=1,
                delay=0.01,
                memory_size=_QUICK_MEMORY_SIZE,
                job_timeout=60.0,
                retakes=0,
                budget=60.0,
            )
        return cls(
            repetitions=repetitions or 4,
            counts={shape.key: shape.count for shape in SHAPES},
            roundtrip_messages=10,
            roundtrip_repetitions=3,
            delay=0.02,
            memory_size=_MEMORY_SIZE,
            job_timeout=300.0,
            retakes=3,
            budget=900.0,
        )


def export_asmtp(ref: str, into: Path) -> str:
    """Put asmtp/ as of git ``ref`` in ``into``, next to a link to benchmarks/.

    Workers started there import that asmtp (the current directory comes first on
    ``sys.path``), so a commit can be measured while the working tree is being edited.
    Returns the short commit hash.
    """
    commit = subprocess.run(  # noqa: S603 - fixed git commands
        ["git", "rev-parse", "--short", f"{ref}^{{commit}}"],  # noqa: S607 - git on PATH
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    archive = subprocess.run(  # noqa: S603
        ["git", "archive", "--format=tar", commit, "asmtp"],  # noqa: S607 - git on PATH
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            source = tar.extractfile(member) if member.isfile() else None
            if source is not None:  # regular files only; names are repository paths
                target = into / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(source.read())
    (into / "benchmarks").symlink_to(ROOT / "benchmarks", target_is_directory=True)
    return commit


def run_worker(
    job: Job, timeout: float, code: Path = ROOT, layout: Layout | None = None
) -> Measurement:
    """Run ``job`` in a fresh worker process in ``code`` (bounded by ``timeout``), at
    ``layout`` if given (otherwise a random hash seed and this process's environment)."""
    env = None if layout is None else layout.environment(dict(os.environ))
    out = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "benchmarks._worker", job.to_json()],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"worker failed for {job}:\n{out.stderr[-3000:]}")
    return Measurement.from_json(out.stdout)


class ForeignLoad:
    """How much user CPU processes other than ours used while a sample ran.

    The machine's user time (``/proc/stat``) minus ours (this process and the workers it
    waited for) and the sink's, as a share of one CPU. Other work on a shared machine would
    otherwise slow the clients without showing anywhere.
    """

    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink
        self._start = self._read()

    def _read(self) -> tuple[float, float, float]:
        own = sum(
            resource.getrusage(who).ru_utime
            for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        )
        return time.monotonic(), machine_user_seconds(), own + self._sink.cpu_times()[0]

    def share(self) -> float:
        wall, machine, ours = (
            end - start for end, start in zip(self._read(), self._start, strict=True)
        )
        return max(0.0, machine - ours) / wall if wall > 0 else 0.0


class Runner:
    def __init__(
        self, settings: Settings, workdir: Path, code: Path = ROOT, verbose: bool = True
    ) -> None:
        self.settings = settings
        self.code = code
        """Where workers start: the repository, or an exported asmtp (``--asmtp-ref``)."""
        self.workdir = workdir
        self.verbose = verbose
        self.started = time.monotonic()
        self.interfered = 0
        """Samples kept although other processes kept using the CPU."""
        self.retaken = 0

    def log(self, text: str) -> None:
        if self.verbose:
            print(f"[{time.monotonic() - self.started:6.1f}s] {text}", file=sys.stderr, flush=True)

    def throughput(self, results: Results, sink: SmtpSink) -> None:
        files = {
            shape.key: write_message_files(self.workdir, shape.size) for shape in results.shapes
        }
        for repetition in range(1, self.settings.repetitions + 1):
            if repetition > 1 and time.monotonic() - self.started > self.settings.budget:
                results.notes.append(f"Stopped after {repetition - 1} repetitions: time budget.")
                break
            for shape in results.shapes:
                crlf, lf = files[shape.key]
                for case in results.cases:
                    messages = max(1, round(self.settings.counts[shape.key] * case.scale))
                    job = Job(
                        kind="throughput",
                        client=case.client,
                        mode=case.mode,
                        loop=case.loop,
                        host="127.0.0.1",
                        port=sink.port,
                        messages=messages,
                        recipients=shape.recipients,
                        message_file=str(crlf),
                        concurrency=case.concurrency,
                        extra={"lf_file": str(lf)},
                    )
                    name = f"{case.key} {shape.key}"
                    sample = self._sample(job, sink, name, Layout.for_repetition(repetition))
                    measurement = sample.measurement
                    results.throughput.setdefault((case.key, shape.key), []).append(sample)
                    self.log(
                        f"rep {repetition} {shape.key:>9} {case.label} ({case.loop}): "
                        f"{measurement.rate:,.0f} msg/s, "
                        f"{measurement.cpu_per_message * 1e6:,.0f} µs CPU/msg "
                        f"(others: {sample.foreign:.0%} of a CPU)"
                    )

    def _sample(self, job: Job, sink: SmtpSink, name: str, layout: Layout) -> Sample:
        """Run a throughput job at ``layout``, checking every message arrived; retake it
        (bounded) when other processes used the CPU meanwhile."""
        retakes = min(self.settings.retakes, _MAX_RETAKES_PER_RUN - self.retaken)
        for take in range(max(0, retakes) + 1):
            before, sink_cpu, foreign = sink.messages(), sink.cpu_seconds(), ForeignLoad(sink)
            measurement = run_worker(job, self.settings.job_timeout, self.code, layout)
            sink_cpu = sink.cpu_seconds() - sink_cpu
            arrived = sink.wait_messages(before + job.messages) - before
            if arrived != job.messages:
                raise RuntimeError(f"{name}: sent {job.messages}, the sink got {arrived}")
            share = foreign.share()
            if share <= _FOREIGN_LIMIT:
                break
            self.log(f"{name}: other processes used {share:.0%} of a CPU meanwhile")
            if take < retakes:
                self.retaken += 1
                time.sleep(_RETAKE_PAUSE)
        else:
            self.interfered += 1
        return Sample(measurement, sink_cpu, share, layout)

    def roundtrips(self, results: Results, sink: SmtpSink) -> None:
        crlf, _ = write_message_files(self.workdir, 1024)
        with Helpers(sink.port, self.settings.delay) as helpers:
            ports = {"sink": helpers.sink_proxy, "chunking": helpers.chunking_proxy}
            for _ in range(self.settings.roundtrip_repetitions):
                for case in results.roundtrip_cases:
                    for rcpts in results.roundtrip_recipients:
                        job = Job(
                            kind="roundtrip",
                            client=case.client,
                            mode="single",
                            loop="asyncio",
                            host="127.0.0.1",
                            port=ports[case.server],
                            messages=self.settings.roundtrip_messages,
                            recipients=rcpts,
                            message_file=str(crlf),
                        )
                        measurement = run_worker(job, self.settings.job_timeout, self.code)
                        results.roundtrips.setdefault((case.key, rcpts), []).append(measurement)
                        per = measurement.elapsed / measurement.messages / (2 * self.settings.delay)
                        self.log(f"round trips {case.label}, {rcpts} rcpt: {per:.2f}")

    def memory(self, results: Results, sink: SmtpSink) -> None:
        path = self.workdir / "large.eml"
        path.write_bytes(make_message(self.settings.memory_size))
        for case in results.memory_cases:
            for probe in ("rss", "tracemalloc"):
                job = Job(
                    kind="memory",
                    client=case.client,
                    mode="single",
                    loop="asyncio",
                    host="127.0.0.1",
                    port=sink.port,
                    messages=1,
                    recipients=1,
                    message_file=str(path),
                    source=case.source,
                    probe=probe,
                )
                measurement = run_worker(job, self.settings.job_timeout, self.code)
                results.memory.setdefault((case.key, probe), []).append(measurement)
                self.log(
                    f"memory {case.label} ({case.source}, {probe}): "
                    f"{measurement.growth / measurement.size:.2f}x size"
                )
        path.unlink()


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description="asmtp against aiosmtplib, smtplib and smtp-source, on Postfix's smtp-sink.",
    )
    parser.add_argument("--quick", action="store_true", help="a small smoke run (< 1 minute)")
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help=f"write the table into {DOCS_PAGE.relative_to(ROOT)}",
    )
    parser.add_argument(
        "--repetitions",
        type=int,
        help="repetitions per case, each at its own memory layout (default 4; quick 1)",
    )
    parser.add_argument("--json", type=Path, help="also write the raw measurements here")
    parser.add_argument(
        "--asmtp-ref",
        metavar="REF",
        help="measure asmtp as of this git commit or branch instead of the working tree",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    return parser.parse_args(argv)


def _raw(results: Results) -> str:
    def samples(data: dict[tuple[str, str], list[Sample]]) -> dict[str, object]:
        return {
            f"{key}|{shape}": [
                {
                    **dataclasses.asdict(s.measurement),
                    "sink_cpu": s.sink_cpu,
                    "foreign": s.foreign,
                    "layout": dataclasses.asdict(s.layout) if s.layout else None,
                }
                for s in found
            ]
            for (key, shape), found in data.items()
        }

    return json.dumps(
        {
            "started": results.started.isoformat(),
            "throughput": samples(results.throughput),
            "roundtrips": {
                f"{key}|{n}": [dataclasses.asdict(m) for m in found]
                for (key, n), found in results.roundtrips.items()
            },
            "memory": {
                f"{key}|{probe}": [dataclasses.asdict(m) for m in found]
                for (key, probe), found in results.memory.items()
            },
        },
        indent=1,
    )


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds the context managers: the sink is stopped


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    args = _parse(argv)
    settings = Settings.for_run(args.quick, args.repetitions)
    ensure_postfix()
    pool = hasattr(asmtp, "SMTPPool")
    results = Results(
        cases=throughput_cases(pool),
        roundtrip_cases=list(ROUNDTRIP_CASES),
        memory_cases=list(MEMORY_CASES),
        counts=settings.counts,
        repetitions=settings.repetitions,
        delay=settings.delay,
        memory_size=settings.memory_size,
    )
    if not pool:
        results.notes.append("asmtp.SMTPPool is not available: its rows are left out.")
    if args.quick:
        results.notes.append("Quick run (--quick): small counts, one repetition; a smoke test.")
    with tempfile.TemporaryDirectory(prefix="asmtp-bench-") as tmp, SmtpSink() as sink:
        code, asmtp_source = ROOT, working_tree()
        if args.asmtp_ref:
            code = Path(tmp) / "code"
            code.mkdir()
            asmtp_source = (
                f"git {export_asmtp(args.asmtp_ref, code)}, from --asmtp-ref {args.asmtp_ref}"
            )
        runner = Runner(settings, Path(tmp), code, verbose=not args.quiet)
        runner.log(f"asmtp measured: {asmtp_source}")
        runner.log(f"smtp-sink pid {sink.pid} on 127.0.0.1:{sink.port}")
        runner.throughput(results, sink)
        runner.roundtrips(results, sink)
        runner.memory(results, sink)
        if runner.interfered:
            results.notes.append(
                f"{runner.interfered} samples were taken while other processes used more than "
                f"{_FOREIGN_LIMIT:.0%} of a CPU (after up to {settings.retakes} retakes each)."
            )
        results.wall_seconds = time.monotonic() - runner.started
    report = render(results, machine_info(asmtp_source))
    print(report)
    if args.json:
        args.json.write_text(_raw(results), encoding="utf-8")
    if args.write_docs:
        write_docs(report)
        print(f"wrote {DOCS_PAGE}", file=sys.stderr)
    return 0
