"""Campaigns run as real processes, stopped by signals, resumed, and checked against a server.

Shared by the crash tests against the capture server (tests/campaign) and against Postfix
(tests/interop): write the rows and the template, run ``asmtp bulk send`` as a process,
send it SIGINT, SIGTERM or SIGKILL at a point of the test's choosing, and read back
what the journal says of every row, to compare with what the server recorded.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from asmtp.campaign import Journal

ROOT: Final = Path(__file__).resolve().parents[2]
RUN_TIMEOUT: Final = 120.0
MESSAGE_ID: Final = re.compile(
    rb"^Message-ID: <([0-9a-f]+)\.([^@>]+)@", re.MULTILINE | re.IGNORECASE
)


@dataclass(frozen=True)
class Plan:
    """Which rows go where: ``refused`` rows to an address refused with 5xx, ``busy`` ones
    to an address refused with 4xx, the others to ``good``."""

    rows: int
    good: Callable[[int], str]
    refused: Callable[[int], str]
    busy: Callable[[int], str]
    refused_every: int = 97
    busy_every: int = 101

    def address(self, n: int) -> str:
        if n % self.refused_every == 1:
            return self.refused(n)
        if n % self.busy_every == 2:
            return self.busy(n)
        return self.good(n)

    def kind(self, n: int) -> str:
        address = self.address(n)
        if address == self.refused(n):
            return "refused"
        return "busy" if address == self.busy(n) else "good"

    def ids(self, kind: str) -> set[str]:
        return {f"r{n}" for n in range(self.rows) if self.kind(n) == kind}

    def write(self, directory: Path, sender: str) -> tuple[Path, Path]:
        """The rows (CSV, ids r0, r1, ...) and a template; their paths."""
        rows = directory / "people.csv"
        with rows.open("w", encoding="utf-8") as out:
            out.write("id,email,name\n")
            out.writelines(f"r{n},{self.address(n)},Reader {n}\n" for n in range(self.rows))
        template = directory / "welcome.eml"
        template.write_text(
            f"From: Campaign <{sender}>\nTo: {{{{ address(name, email) }}}}\n"
            "Subject: Welcome, {{ name }}\n\nHello {{ name }}, row {{ id }}.\n",
            encoding="utf-8",
        )
        return rows, template


@dataclass
class Runs:
    """The command line of one campaign, and what each run of it ended with."""

    args: list[str]
    journal: Path
    exit_codes: list[int] = field(default_factory=list)
    signals: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        return subprocess.Popen(  # noqa: S603 - our interpreter and our module
            [sys.executable, "-m", "asmtp", "bulk", "send", *self.args, "-q", *extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path},
        )

    def run(self, *extra: str) -> int:
        """One run to its end."""
        return self._finish(self.start(*extra), "none")

    def interrupt(self, how: signal.Signals, when: Callable[[], bool], *extra: str) -> int:
        """One run, sent ``how`` as soon as ``when()`` is true (polled); its exit status."""
        process = self.start(*extra)
        deadline = time.monotonic() + RUN_TIMEOUT
        while process.poll() is None and not when() and time.monotonic() < deadline:
            time.sleep(0.005)
        sent = "none"
        if process.poll() is None:
            process.send_signal(how)
            sent = how.name
        return self._finish(process, sent)

    def _finish(self, process: subprocess.Popen[bytes], sent: str) -> int:
        try:
            _, stderr = process.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
        self.exit_codes.append(process.returncode)
        self.signals.append(sent)
        self.stderr.append(stderr.decode("utf-8", "replace"))
        return process.returncode

    def states(self) -> dict[str, str]:
        """Every row's state in the journal."""
        journal = Journal(self.journal, readonly=True)
        try:
            return {record["id"]: record["state"] for record in journal.rows()}
        finally:
            journal.close()

    def campaign_id(self) -> str:
        journal = Journal(self.journal, readonly=True)
        try:
            return str(journal.settings()["campaign"])
        finally:
            journal.close()


def delivered(raw_messages: Iterable[bytes], campaign: str) -> Counter[str]:
    """How many times each row of ``campaign`` arrived (by the Message-ID it carries)."""
    counts: Counter[str] = Counter()
    for raw in raw_messages:
        head = raw.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
        found = MESSAGE_ID.search(head)
        if found is not None and found.group(1).decode() == campaign:
            counts[found.group(2).decode()] += 1
    return counts


def check(
    plan: Plan, states: dict[str, str], arrived: Counter[str], unknown_ever: set[str]
) -> None:
    """The guarantees, against what the server recorded:

    every row that is not refused arrived, unless it is busy (4xx for ever); none twice
    unless the journal called it unknown at some point; refused rows never arrived; the
    journal's accepted rows are exactly the rows that arrived.
    """
    good, refused, busy = plan.ids("good"), plan.ids("refused"), plan.ids("busy")
    missing = good - set(arrived)
    assert not missing, f"{len(missing)} rows never arrived: {sorted(missing)[:10]}"
    twice = {row for row, count in arrived.items() if count > 1}
    assert twice <= unknown_ever, (
        f"sent twice though never unknown: {sorted(twice - unknown_ever)[:10]}"
    )
    assert not (refused | busy) & set(arrived)
    accepted = {row for row, state in states.items() if state == "accepted"}
    assert accepted == set(arrived)
    assert {row for row, state in states.items() if state == "refused"} == refused
    assert {row for row, state in states.items() if state == "failed"} == busy


def unknown_rows(states: dict[str, str]) -> set[str]:
    return {row for row, state in states.items() if state == "unknown"}


def signals_for(seed: int) -> Sequence[signal.Signals]:
    """The stops of one test: every kind, in an order the seed picks."""
    kinds = [signal.SIGKILL, signal.SIGTERM, signal.SIGINT]
    return kinds[seed % 3 :] + kinds[: seed % 3]
