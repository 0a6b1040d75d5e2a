"""Campaigns of 10,000 rows interrupted by SIGINT, SIGTERM and SIGKILL, then resumed.

The command runs as a process of its own against the capture server; each run is stopped
once the server has received a number of messages the seed picks. After the last resume
(with ``--resend-unknown`` for the rows a kill left unknown), what the server recorded is
held against the journal: every row not refused arrived, none twice unless the journal
once called it unknown, and the journal's accepted rows are exactly those that arrived.
"""

from __future__ import annotations

import functools
import random
import signal
import time
from pathlib import Path

import pytest

from asmtp.testing import CaptureServer
from support.campaigns import Plan, Runs, check, delivered, signals_for, unknown_rows

ROWS = 10_000
PLAN = Plan(
    ROWS,
    good=lambda n: f"reader{n}@example.com",
    refused=lambda n: f"reader{n}@refused.example",
    busy=lambda n: f"reader{n}@busy.example",
)


def _reached(server: CaptureServer, count: int) -> bool:
    return len(server.messages) >= count


def _runs(tmp_path: Path, server: CaptureServer, *extra: str) -> Runs:
    rows, template = PLAN.write(tmp_path, "news@example.org")
    journal = tmp_path / "campaign.db"
    args = [
        *("--rows", str(rows), "--id-column", "id", "--template", str(template)),
        *("--journal", str(journal), "--host", "127.0.0.1", "--port", str(server.port)),
        *("--tls", "none", "--retries", "1", "--connections", "4", *extra),
    ]
    return Runs(args, journal)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", [1, 2])
def test_interrupted_campaign_resumes_and_delivers_every_row_once(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    with CaptureServer() as server:
        server.refuse_recipient("*@refused.example", "550 5.1.1 No such user here")
        server.refuse_recipient("*@busy.example", "451 4.2.1 Mailbox busy, try again later")
        runs = _runs(tmp_path, server, "--grace", "10")
        unknown_ever: set[str] = set()
        for how in signals_for(seed):
            target = len(server.messages) + rng.randint(300, 2500)
            code = runs.interrupt(how, functools.partial(_reached, server, target))
            states = runs.states()
            in_flight = {row for row, state in states.items() if state == "in_flight"}
            if how == signal.SIGKILL:
                assert code == -signal.SIGKILL
                # Bounded by the pool's window (connections x batch) and the outcomes a
                # commit may wait for, not by the rows.
                assert len(in_flight) <= 4 * 16 + 32
                unknown_ever |= in_flight
            else:
                assert code == 130, runs.stderr[-1]
                assert not in_flight
                assert unknown_rows(states) <= unknown_ever  # a graceful stop knows them all
            assert "Traceback" not in runs.stderr[-1]
        assert runs.run() == 1  # to the end: refused and busy rows remain
        unknown_ever |= unknown_rows(runs.states())
        before = len(server.messages)
        assert runs.run() == 1  # nothing left to send: no message at all
        assert len(server.messages) == before
        if unknown_ever:
            runs.run("--resend-unknown")
        arrived = delivered((m.raw for m in server.messages), runs.campaign_id())
        check(PLAN, runs.states(), arrived, unknown_ever)


def test_a_second_ctrl_c_stops_at_once_and_in_flight_rows_are_unknown(tmp_path: Path) -> None:
    with CaptureServer() as server:
        server.stall("data", 30)  # the end of the data goes out, its reply does not come
        runs = _runs(tmp_path, server, "--grace", "60", "--timeout", "60")
        process = runs.start()
        time.sleep(1.5)
        process.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert process.poll() is None  # the grace period: waiting for the replies
        process.send_signal(signal.SIGINT)
        began = time.monotonic()
        _, stderr = process.communicate(timeout=20)
        assert time.monotonic() - began < 10
        assert process.returncode == 130, stderr
        states = runs.states()
        assert "in_flight" not in states.values()
        assert 0 < len(unknown_rows(states)) <= 4 * 16
        assert set(states.values()) <= {"pending", "unknown", "failed"}
