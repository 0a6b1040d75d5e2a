"""asmtp against itself at another commit, measurements interleaved round by round.

``python benchmarks/run.py compare BASELINE [--head REF] [--rounds N] [--case LOOP/MODE]``
gives, per case, asmtp at ``--head`` (default ``HEAD``) divided by asmtp at ``BASELINE``.

Whole benchmark runs taken one after the other compare poorly on a shared machine: the
load of other work moves between them, and a run can land in a slow minute. Here each
round measures both versions back to back, in alternating order, on the same
``smtp-sink``; the figure is the median over the rounds of the per-round ratio, so slow
drift cancels out. Both versions run from exported copies (``git archive``), so neither
is favoured by where its files live. ``--head`` the same commit as ``BASELINE`` measures
the noise itself (an A/A run): its spread is what a difference must exceed to count.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ._jobs import Job, Measurement, write_message_files
from ._servers import SmtpSink
from ._suite import export_asmtp, run_worker

__all__ = ["main"]

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
}
_TIMEOUT: Final = 300.0


@dataclass(frozen=True)
class Ratios:
    """Per-round ratios of the head to the baseline: rate and CPU per message."""

    rate: list[float]
    cpu: list[float]

    def summary(self) -> str:
        return (
            f"msg/s x{statistics.median(self.rate):.3f} "
            f"(rounds {min(self.rate):.2f}-{max(self.rate):.2f}), "
            f"CPU/msg x{statistics.median(self.cpu):.3f}"
        )


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py compare",
        description="asmtp at --head against asmtp at BASELINE, interleaved round by round.",
    )
    parser.add_argument("baseline", help="the commit or branch compared with")
    parser.add_argument("--head", default="HEAD", help="the commit measured (default HEAD)")
    parser.add_argument("--rounds", type=int, default=12, help="rounds per case (default 12)")
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


def _measure(code: Path, case: str, port: int, message: Path) -> Measurement:
    loop, mode, connections, messages = CASES[case]
    job = Job(
        kind="throughput",
        client="asmtp",
        mode=mode,
        loop=loop,
        host="127.0.0.1",
        port=port,
        messages=messages,
        recipients=1,
        message_file=str(message),
        concurrency=connections,
    )
    return run_worker(job, _TIMEOUT, code)


def compare(
    head: Path, baseline: Path, case: str, rounds: int, sink: SmtpSink, message: Path
) -> Ratios:
    """``rounds`` back-to-back measurements of ``case`` by the asmtp in each directory."""
    rate: list[float] = []
    cpu: list[float] = []
    for number in range(rounds):
        pair = (head, baseline) if number % 2 == 0 else (baseline, head)
        measured = {code: _measure(code, case, sink.port, message) for code in pair}
        a, b = measured[head], measured[baseline]
        rate.append(a.rate / b.rate)
        cpu.append(a.cpu_per_message / b.cpu_per_message)
    return Ratios(rate, cpu)


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
                ratios = compare(head, baseline, case, options.rounds, sink, message)
                print(f"{case:16} {ratios.summary()}", flush=True)
    return 0
