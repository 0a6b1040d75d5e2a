"""``python benchmarks/run.py work BASELINE``: the work per message, counted, not timed.

On a shared machine two timings of the same code differ by more than the few per cent a
change makes (``compare``'s A/A spread is 3% at best, 10% when other work comes and goes).
This runs each version's worker under Valgrind's cachegrind, which counts what the CPU
is asked to do: instructions executed, first-level and last-level cache misses and branch
mispredictions of a simulated cache and predictor. The counts do not depend on other
load, so a 1% difference is visible. Each case runs twice, at two message counts; the
difference divided by the extra messages is the cost of one message, start-up, imports
and connecting excluded (except in ``send``, where a message is a connection).

The counts say how much work there is, not how long it takes on a real CPU: the client
runs about 50 times slower under Valgrind, so its reads find every reply already there
and the event loop turns less often than at full speed. Use them beside ``compare``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ._compare import CASES, case_job, run_from
from ._jobs import Layout, write_message_files
from ._servers import SmtpSink
from ._suite import export_asmtp

__all__ = ["main"]

# Messages per run for each mode: the smaller and larger count of a case.
_COUNTS: Final = {"workers": (400, 1600), "pool": (400, 1600), "single": (200, 800)}
_ONE_SHOT_COUNTS: Final = (100, 400)
_TIMEOUT: Final = 1800.0
# A rough cost model for one number: an instruction a cycle, a first-level miss served by
# the next level about 10, a last-level miss (memory) about 100, a mispredicted branch 15.
_L1_CYCLES: Final = 10
_LL_CYCLES: Final = 100
_MISPREDICT_CYCLES: Final = 15


@dataclass(frozen=True)
class Counts:
    """Cachegrind's totals for one run (or their difference, per message)."""

    instructions: float
    l1_misses: float
    ll_misses: float
    mispredicts: float

    @classmethod
    def from_file(cls, path: Path) -> Counts:
        """The ``summary:`` line of a cachegrind output file, by its ``events:`` names."""
        names: list[str] = []
        values: list[int] = []
        for line in path.read_text().splitlines():
            if line.startswith("events:"):
                names = line.split()[1:]
            elif line.startswith("summary:"):
                values = [int(value) for value in line.split()[1:]]
        count = dict(zip(names, values, strict=True))
        return cls(
            instructions=count["Ir"],
            l1_misses=count["I1mr"] + count["D1mr"] + count["D1mw"],
            ll_misses=count["ILmr"] + count["DLmr"] + count["DLmw"],
            mispredicts=count["Bcm"] + count["Bim"],
        )

    def per_message(self, fewer: Counts, extra_messages: int) -> Counts:
        """What one message adds: (this run - the run with ``fewer``) / extra messages."""
        return Counts(
            (self.instructions - fewer.instructions) / extra_messages,
            (self.l1_misses - fewer.l1_misses) / extra_messages,
            (self.ll_misses - fewer.ll_misses) / extra_messages,
            (self.mispredicts - fewer.mispredicts) / extra_messages,
        )

    @property
    def estimated_cycles(self) -> float:
        return (
            self.instructions
            + _L1_CYCLES * self.l1_misses
            + _LL_CYCLES * self.ll_misses
            + _MISPREDICT_CYCLES * self.mispredicts
        )


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py work",
        description="Work per message (instructions, cache misses, mispredicted branches) "
        "of asmtp at --head and at BASELINE, counted under Valgrind's cachegrind.",
    )
    parser.add_argument("baseline", help="the commit or branch compared with")
    parser.add_argument("--head", default="HEAD", help="the commit measured (default HEAD)")
    parser.add_argument(
        "--case",
        action="append",
        choices=sorted(CASES),
        help="a case to run (repeatable; default: all)",
    )
    return parser.parse_args(argv)


def _run(code: Path, case: str, messages: int, port: int, message: Path, out: Path) -> Counts:
    """Cachegrind's counts for the asmtp in ``code`` sending ``messages`` messages."""
    job = case_job(case, port, message, messages)
    command = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=yes",
        "--branch-sim=yes",
        f"--cachegrind-out-file={out}",
        sys.executable,
        "-m",
        "benchmarks._worker",
        job.to_json(),
    ]
    # One layout for every run: the counts then differ only by the code.
    env = Layout.for_repetition(0).environment(dict(os.environ))
    done = subprocess.run(  # noqa: S603 - valgrind and our own interpreter
        command, cwd=code, env=env, capture_output=True, text=True, timeout=_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"worker failed under valgrind for {job}:\n{done.stderr[-3000:]}")
    return Counts.from_file(out)


def _per_message(code: Path, case: str, port: int, message: Path, scratch: Path) -> Counts:
    """What one message of ``case`` costs the asmtp in ``code``.

    Both versions run from the same directory name: the path is in every module's file
    name and on ``sys.path``, and its length would count as a difference.
    """
    mode = CASES[case][1]
    fewer, more = _ONE_SHOT_COUNTS if mode == "send" else _COUNTS[mode]
    out, stage = scratch / "cachegrind.out", scratch / "run"
    with run_from(code, stage):
        small = _run(stage, case, fewer, port, message, out)
        large = _run(stage, case, more, port, message, out)
    return large.per_message(small, more - fewer)


def _ratio(head: float, baseline: float) -> str:
    return f"{head / 1000:7.1f}k / {baseline / 1000:7.1f}k x{head / baseline:.3f}"


def main(argv: Sequence[str]) -> int:
    options = _parse(argv)
    if shutil.which("valgrind") is None:
        print("work: needs Valgrind (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="asmtp-work-") as scratch:
        root = Path(scratch)
        head, baseline = root / "head", root / "baseline"
        head.mkdir()
        baseline.mkdir()
        names = export_asmtp(options.head, head), export_asmtp(options.baseline, baseline)
        message, _ = write_message_files(root, 1024)
        print(
            f"asmtp {names[0]} / asmtp {names[1]}: work per 1 KB message under cachegrind "
            f"(estimated cycles: instructions + {_L1_CYCLES} per L1 miss + {_LL_CYCLES} per "
            f"last-level miss + {_MISPREDICT_CYCLES} per mispredicted branch)"
        )
        print(f"{'case':16} {'instructions':>26} {'L1 misses':>26} {'estimated cycles':>26}")
        with SmtpSink() as sink:
            for case in options.case or list(CASES):
                ours = _per_message(head, case, sink.port, message, root)
                theirs = _per_message(baseline, case, sink.port, message, root)
                print(
                    f"{case:16} {_ratio(ours.instructions, theirs.instructions):>26} "
                    f"{_ratio(ours.l1_misses, theirs.l1_misses):>26} "
                    f"{_ratio(ours.estimated_cycles, theirs.estimated_cycles):>26}",
                    flush=True,
                )
    return 0
