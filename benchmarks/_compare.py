"""asmtp against itself at another commit, measurements interleaved round by round.

``python benchmarks/run.py compare BASELINE [--head REF] [--rounds N] [--case LOOP/MODE]``
gives, per case, asmtp at ``--head`` (default ``HEAD``) divided by asmtp at ``BASELINE``.

Whole benchmark runs taken one after the other compare poorly on a shared machine: the
load of other work moves between them, and a run can land in a slow minute. Here each
round measures both versions back to back, in alternating order, on the same
``smtp-sink``, so slow drift touches both alike. Round N runs both at the same memory
layout (``_jobs.Layout``: hash seed and environment size, and both from the same
directory), a different one each round: a version's speed can move by a fifth or more
with the layout, in modes, and one fixed layout can favour either side. The figure is
therefore the ratio of the means over the rounds, not a median, which would pick a mode.
Both versions run from exported copies (``git archive``). ``--head`` the same commit as
``BASELINE`` measures the noise itself (an A/A run): its spread is what a difference
must exceed to count.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ._jobs import Job, Layout, Measurement, write_message_files
from ._servers import SmtpSink
from ._suite import export_asmtp, run_worker

__all__ = ["CASES", "case_job", "main", "run_from"]

# (loop, mode, connections, messages per measurement): 1 KB to one recipient.
CASES: Final = {
    "asyncio/workers": ("asyncio", "workers", 50, 4000),
    "uvloop/workers": ("uvloop", "workers", 50, 4000),
    "trio/workers": ("trio", "workers", 50, 4000),
    "asyncio/pool": ("asyncio", "pool", 50, 4000),
    "uvloop/pool": ("uvloop", "pool", 50, 4000),
    "asyncio/single": ("asyncio", "single", 1, 2000),
    "uvloop/single": ("uvloop", "single", 1, 2000),
    "asyncio/send": ("asyncio", "send", 50, 1000),
    "uvloop/send": ("uvloop", "send", 50, 1000),
    "trio/send": ("trio", "send", 50, 1000),
}
_TIMEOUT: Final = 300.0


@dataclass(frozen=True)
class Rounds:
    """Each round's measurement of the head and of the baseline, both at that round's layout."""

    head: list[Measurement]
    baseline: list[Measurement]

    def summary(self) -> str:
        def mean_rate(found: list[Measurement]) -> float:
            return statistics.fmean(m.rate for m in found)

        def mean_cpu(found: list[Measurement]) -> float:
            return statistics.fmean(m.cpu_per_message for m in found)

        per_round = [a.rate / b.rate for a, b in zip(self.head, self.baseline, strict=True)]
        return (
            f"msg/s x{mean_rate(self.head) / mean_rate(self.baseline):.3f} "
            f"(rounds {min(per_round):.2f}-{max(per_round):.2f}), "
            f"CPU/msg x{mean_cpu(self.head) / mean_cpu(self.baseline):.3f} "
            f"({mean_cpu(self.head) * 1e6:.0f} / {mean_cpu(self.baseline) * 1e6:.0f} µs)"
        )


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py compare",
        description="asmtp at --head against asmtp at BASELINE, interleaved round by round.",
    )
    parser.add_argument("baseline", help="the commit or branch compared with")
    parser.add_argument("--head", default="HEAD", help="the commit measured (default HEAD)")
    parser.add_argument("--rounds", type=int, default=16, help="rounds per case (default 16)")
    parser.add_argument(
        "--case",
        action="append",
        choices=sorted(CASES),
        help="a case to run (repeatable; default: all)",
    )
    options = parser.parse_args(argv)
    if options.rounds < 1:
        parser.error("--rounds must be at least 1")
    return options


def _measure(code: Path, case: str, port: int, message: Path, layout: Layout) -> Measurement:
    """Measure the asmtp in ``code`` from the round's own directory.

    The directory's path is in every module's file name and on ``sys.path``, so it moves
    the memory layout too: both versions run from the same path in a round, and the path's
    length changes from round to round.
    """
    stage = code.with_name("run" + "_" * (layout.padding % 64))
    with run_from(code, stage):
        return run_worker(case_job(case, port, message), _TIMEOUT, stage, layout)


def case_job(case: str, port: int, message: Path, messages: int | None = None) -> Job:
    """The worker's job for ``case``: asmtp sending the 1 KB ``message`` to one recipient,
    ``messages`` times (default: the case's own count)."""
    loop, mode, connections, count = CASES[case]
    return Job(
        kind="throughput",
        client="asmtp",
        mode=mode,
        loop=loop,
        host="127.0.0.1",
        port=port,
        messages=count if messages is None else messages,
        recipients=1,
        message_file=str(message),
        concurrency=connections,
    )


@contextlib.contextmanager
def run_from(code: Path, stage: Path) -> Iterator[None]:
    """Move the version in ``code`` to ``stage`` for the block, and back."""
    code.rename(stage)
    try:
        yield
    finally:
        stage.rename(code)


def compare(
    head: Path, baseline: Path, case: str, rounds: int, sink: SmtpSink, message: Path
) -> Rounds:
    """``rounds`` back-to-back measurements of ``case`` by the asmtp in each directory."""
    found = Rounds([], [])
    for number in range(rounds):
        pair = (head, baseline) if number % 2 == 0 else (baseline, head)
        layout = Layout.for_repetition(number)
        measured = {code: _measure(code, case, sink.port, message, layout) for code in pair}
        found.head.append(measured[head])
        found.baseline.append(measured[baseline])
    return found


def main(argv: Sequence[str]) -> int:
    options = _parse(argv)
    with tempfile.TemporaryDirectory(prefix="asmtp-compare-") as scratch:
        root = Path(scratch)
        head, baseline = root / "head", root / "baseline"
        head.mkdir()
        baseline.mkdir()
        names = export_asmtp(options.head, head), export_asmtp(options.baseline, baseline)
        message, _ = write_message_files(root, 1024)
        print(f"asmtp {names[0]} / asmtp {names[1]}, 1 KB, {options.rounds} rounds per case")
        with SmtpSink() as sink:
            for case in options.case or list(CASES):
                found = compare(head, baseline, case, options.rounds, sink, message)
                print(f"{case:16} {found.summary()}", flush=True)
    return 0
