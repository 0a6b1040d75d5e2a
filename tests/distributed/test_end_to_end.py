"""10,000 rows through Redis and three taskiq worker processes to a capture server.

Every row arrives exactly once; killed with ``kill -9`` mid-run, a worker's batches are
taken over by the others and its rows in flight are reported ``unknown``: no row is lost,
and only those may arrive twice. The shared rate limit holds across workers, and a Redis
that stops for a few seconds mid-run is ridden out.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from asmtp.testing import CaptureServer
from support.campaigns import Plan, check
from support.redis_server import RedisServer

from ._harness import Run

ROWS = 10_000
PLAN = Plan(
    ROWS,
    good=lambda n: f"reader{n}@example.com",
    refused=lambda n: f"reader{n}@refused.example",
    busy=lambda n: f"reader{n}@busy.example",
)


def _server() -> CaptureServer:
    server = CaptureServer()
    server.refuse_recipient("*@refused.example", "550 5.1.1 No such user here")
    server.refuse_recipient("*@busy.example", "451 4.2.1 Mailbox busy, try again later")
    return server


def _reached(server: CaptureServer, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while len(server.messages) < count:
        assert time.monotonic() < deadline, f"only {len(server.messages)} messages arrived"
        time.sleep(0.01)


@pytest.mark.timeout(120)
def test_three_workers_deliver_every_row_exactly_once(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with _server() as server:
        run = Run(tmp_path, PLAN, server, redis_server)
        first = run.enqueue()
        assert (first.enqueued, first.skipped, first.jobs) == (ROWS, 0, ROWS // 100)
        for n in range(3):
            run.workers.start(tmp_path / f"worker{n}.log")
        try:
            counts = run.wait_until_done()
        finally:
            run.workers.stop()
        arrived = run.arrived()
        assert max(arrived.values()) == 1
        check(PLAN, run.states(), arrived, unknown_ever=set())
        assert counts["unknown"] == 0
        assert counts["accepted"] == len(arrived)
        assert "Traceback" not in run.logs()


@pytest.mark.timeout(120)
def test_a_worker_killed_mid_run_loses_no_row_and_repeats_only_unknown_ones(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with _server() as server:
        run = Run(tmp_path, PLAN, server, redis_server)
        run.enqueue()
        workers = [run.workers.start(tmp_path / f"worker{n}.log") for n in range(3)]
        try:
            _reached(server, 3000)
            victim = run.workers.child(workers[0])
            assert victim is not None
            os.kill(victim, signal.SIGKILL)  # taskiq's manager starts a new child
            counts = run.wait_until_done()
        finally:
            run.workers.stop()
        states = run.states()
        unknown = {row for row, state in states.items() if state == "unknown"}
        arrived = run.arrived()
        twice = {row for row, count in arrived.items() if count > 1}
        assert twice <= unknown
        # The unknown rows were in flight on the killed worker: at most its batches.
        assert counts["unknown"] == len(unknown) <= 2 * 100
        good = PLAN.ids("good")
        assert good - unknown <= {row for row, state in states.items() if state == "accepted"}
        assert not good - set(arrived) - unknown  # lost: neither arrived nor reported
        accepted = {row for row, state in states.items() if state == "accepted"}
        assert accepted <= set(arrived)
        assert set(arrived) - accepted <= unknown
