#!/usr/bin/env python3
"""Run the interop suite and build the server x feature x event loop matrix from its results.

    python tests/interop/matrix.py            # run, print the Markdown table
    python tests/interop/matrix.py --write    # ...and put it in docs/interop.md
    python tests/interop/matrix.py -- -n 2    # arguments after -- go to pytest

Each cell counts the tests of that server and feature that ran on that event loop:
``✓ n`` all passed, ``✗ k/n`` k failed, and ``xfail k`` for strict expected failures
(each documents a defect in its reason). Tests that run no event loop of their own (the
command line, run as a user runs it) are counted in a ``sync`` column, shown when there
are any. It exits with pytest's status.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

HERE: Final = Path(__file__).resolve().parent
ROOT: Final = HERE.parents[1]
DOC: Final = ROOT / "docs" / "interop.md"
BEGIN: Final = "<!-- interop-matrix:begin -->"
END: Final = "<!-- interop-matrix:end -->"
BACKENDS: Final = ("asyncio", "trio", "uvloop")
SYNC: Final = "sync"
SERVER_ORDER: Final = ("Postfix", "Dovecot", "Exim", "OpenSMTPD")


def run(pytest_args: list[str], output: Path) -> tuple[int, float]:
    """Run pytest over tests/interop with the recording plugin; its status and seconds."""
    env = {
        **os.environ,
        "ASMTP_INTEROP_MATRIX": str(output),
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")])
        ),
    }
    argv = [sys.executable, "-bb", "-m", "pytest", "-p", "interop._matrix", "-m", "interop"]
    began = time.monotonic()
    status = subprocess.call([*argv, str(HERE), *pytest_args], cwd=ROOT, env=env)  # noqa: S603
    return status, time.monotonic() - began


def _cell(outcomes: list[str]) -> str:
    if not outcomes:
        return "—"
    bad = sum(outcome in ("failed", "xpassed") for outcome in outcomes)
    if bad:
        return f"✗ {bad}/{len(outcomes)}"
    xfailed = outcomes.count("xfailed")
    passed = outcomes.count("passed")
    parts = [f"✓ {passed}"] if passed else []
    if xfailed:
        parts.append(f"xfail {xfailed}")
    skipped = len(outcomes) - passed - xfailed
    if skipped:
        parts.append(f"skipped {skipped}")
    return ", ".join(parts)


def _server_key(server: str) -> tuple[int, str]:
    rank = next((i for i, name in enumerate(SERVER_ORDER) if server.startswith(name)), 99)
    return rank, server


def table(results: list[dict[str, str]]) -> str:
    """The Markdown matrix: one row per server and feature, one column per event loop."""
    cells: dict[tuple[str, str], dict[str, list[str]]] = collections.defaultdict(
        lambda: collections.defaultdict(list)
    )
    for result in results:
        cells[result["server"], result["feature"]][result["backend"]].append(result["outcome"])
    columns = BACKENDS + ((SYNC,) if any(r["backend"] == SYNC for r in results) else ())
    lines = [
        "| Server | Feature | " + " | ".join(columns) + " |",
        "| --- | --- |" + " --- |" * len(columns),
    ]
    for server, feature in sorted(cells, key=lambda key: (_server_key(key[0]), key[1].lower())):
        row = cells[server, feature]
        lines.append(
            f"| {server} | {feature} | " + " | ".join(_cell(row[b]) for b in columns) + " |"
        )
    return "\n".join(lines)


def summary(results: list[dict[str, str]], seconds: float) -> str:
    counts = collections.Counter(result["outcome"] for result in results)
    described = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
    revision = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    day = datetime.date.today().isoformat()
    return (
        f"Produced by `python tests/interop/matrix.py --write` on {day} at {revision or '?'}: "
        f"{described} in {seconds:.0f} s (daemon set-up included)."
    )


def write(doc: Path, text: str) -> None:
    """Replace what lies between the matrix markers of ``doc`` with ``text``."""
    page = doc.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(page):
        raise SystemExit(f"{doc} has no {BEGIN} ... {END} section")
    doc.write_text(pattern.sub(lambda _: f"{BEGIN}\n{text}\n{END}", page), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"update {DOC.relative_to(ROOT)}")
    parser.add_argument("pytest_args", nargs="*", help="after --: arguments for pytest")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        output = Path(work) / "matrix.json"
        status, seconds = run(args.pytest_args, output)
        if not output.exists():
            print("pytest wrote no results", file=sys.stderr)
            return status or 1
        results = json.loads(output.read_text(encoding="utf-8"))
    text = table(results) + "\n\n" + summary(results, seconds)
    print(text)
    if args.write:
        write(DOC, text)
    return status


if __name__ == "__main__":
    sys.exit(main())
