"""The Celery recipe of the docs (docs/examples/celery_mailer.py), run as users run it.

A real ``celery worker`` (prefork, two processes) on the recipe's module, Redis as its
broker and journal, the recipe's own producer (``python celery_mailer.py``) enqueueing
2,000 rows through :func:`~asmtp.campaign.distributed.enqueue`: every row arrives exactly
once and the journal's counts are the server's record; with one worker process killed
by ``kill -9`` mid-run, the job comes back and only rows reported ``unknown`` may arrive
twice; the same when every process gets SIGTERM mid-run and the worker is started
again. Stopped (warm shutdown), each worker process says QUIT on every connection its
pool opened.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from asmtp.testing import CaptureServer
from support.aiosmtpd_server import ThreadedSMTPServer
from support.campaigns import ROOT, Plan, check
from support.redis_server import RedisServer

from ._harness import Run

RECIPE: Final = ROOT / "docs" / "examples"
ROWS: Final = 2000
PLAN: Final = Plan(
    ROWS,
    good=lambda n: f"reader{n}@example.com",
    refused=lambda n: f"reader{n}@refused.example",
    busy=lambda n: f"reader{n}@busy.example",
)


class Celery:
    """The recipe's worker and producer as processes, configured through its environment."""

    def __init__(
        self, tmp_path: Path, server: CaptureServer | ThreadedSMTPServer, redis: RedisServer
    ) -> None:
        path = os.pathsep.join(
            p for p in (str(RECIPE), str(ROOT), os.environ.get("PYTHONPATH", "")) if p
        )
        self.environment = {
            **os.environ,
            "PYTHONPATH": path,
            "MAILER_REDIS_URL": redis.url,
            "MAILER_BROKER_URL": redis.url.rsplit("/", 1)[0] + "/1",
            "MAILER_SMTP_URL": f"smtp://127.0.0.1:{server.port}",
            "MAILER_CONNECTIONS": "4",
            "MAILER_RETRIES": "1",
            "MAILER_LEASE": "1",
        }
        self.log = tmp_path / "celery.log"
        self.worker: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.worker = subprocess.Popen(  # noqa: S603 - our interpreter, Celery's module
                [
                    *(sys.executable, "-m", "celery", "-A", "celery_mailer", "worker"),
                    *("--pool", "prefork", "--concurrency", "2", "--prefetch-multiplier", "1"),
                    *("--loglevel", "WARNING", "--without-gossip", "--without-mingle"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.environment,
                start_new_session=True,
            )

    def enqueue(self, name: str, rows: Path, template: Path) -> str:
        done = subprocess.run(  # noqa: S603 - our interpreter, the recipe's producer
            [sys.executable, str(RECIPE / "celery_mailer.py"), name, str(rows), str(template)],
            capture_output=True,
            env=self.environment,
            timeout=30,
            check=True,
        )
        return done.stdout.decode()

    def children(self) -> list[int]:
        """The pids of the prefork pool's worker processes."""
        assert self.worker is not None
        deadline = time.monotonic() + 15
        while True:
            found = Path(f"/proc/{self.worker.pid}/task/{self.worker.pid}/children").read_text()
            pids = [int(pid) for pid in found.split()]
            if len(pids) >= 2 or time.monotonic() > deadline:
                return pids
            time.sleep(0.05)

    def working(self, pid: int) -> bool:
        """Whether worker process ``pid`` is in a job now: its event loop, which runs only
        inside a task, waits for the network (between jobs the process waits on Celery's
        pipe, or runs)."""
        try:
            return Path(f"/proc/{pid}/wchan").read_text() == "do_epoll_wait"
        except OSError:  # gone
            return False

    def stop(self, *, every_process: bool = False) -> None:
        """Celery's warm shutdown, SIGTERM to the main process: the jobs in progress finish,
        then each worker process closes its pool. ``every_process`` sends the SIGTERM to
        the worker processes too, as ``kill -TERM -PGID`` or systemd's default
        ``KillMode=control-group`` do, which ends their jobs at once. SIGKILL what is
        left after 20 s."""
        if self.worker is None or self.worker.poll() is not None:
            return
        if every_process:
            os.killpg(self.worker.pid, signal.SIGTERM)
        else:
            self.worker.send_signal(signal.SIGTERM)
        try:
            self.worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait()


def busy_worker_processes(celery: Celery, server: CaptureServer, children: list[int]) -> list[int]:
    """Once a quarter of the rows arrived, the worker processes seen inside a job (one
    between two jobs would lose nothing if stopped)."""
    deadline = time.monotonic() + 30
    while len(server.messages) < ROWS // 4:
        assert time.monotonic() < deadline, f"only {len(server.messages)} arrived"
        time.sleep(0.01)
    while not (busy := [pid for pid in children if celery.working(pid)]):
        assert time.monotonic() < deadline, "no worker process seen in a job"
    return busy


def check_jobs_lost_and_resumed(run: Run, counts: dict[str, int]) -> None:
    """After worker processes died mid-job: only rows reported ``unknown`` may arrive
    twice, and every row arrived or is ``unknown`` (none lost)."""
    states = run.states()
    unknown = {row for row, state in states.items() if state == "unknown"}
    arrived = run.arrived()
    print(f"{counts}, {sum(arrived.values()) - len(arrived)} repeats")
    assert {row for row, count in arrived.items() if count > 1} <= unknown
    # At most two processes' windows: 4 connections x 4, plus 8 claimed ahead, each.
    assert counts["unknown"] == len(unknown) <= 2 * (4 * 4 + 8)
    accepted = {row for row, state in states.items() if state == "accepted"}
    assert accepted <= set(arrived) and set(arrived) - accepted <= unknown
    assert not PLAN.ids("good") - set(arrived) - unknown  # lost: neither arrived nor reported
    assert sum(counts.values()) == ROWS
    assert counts["accepted"] + counts["unknown"] >= len(PLAN.ids("good"))


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    with CaptureServer() as server:
        server.refuse_recipient("*@refused.example", "550 5.1.1 No such user here")
        server.refuse_recipient("*@busy.example", "451 4.2.1 Mailbox busy, try again later")
        yield server


@pytest.mark.timeout(60)
def test_the_celery_recipe_delivers_every_row_exactly_once(
    tmp_path: Path, redis_server: RedisServer, server: CaptureServer
) -> None:
    run = Run(tmp_path, PLAN, server, redis_server)
    celery = Celery(tmp_path, server, redis_server)
    celery.start()
    try:
        printed = celery.enqueue(run.name, run.rows_file, run.template_file)
        assert printed == f"enqueued {ROWS} row(s) in {ROWS // 100} job(s); 0 left as they were\n"
        counts = run.wait_until_done()
        assert len(celery.children()) == 2  # prefork, two processes, both kept
    finally:
        celery.stop()
    arrived = run.arrived()
    assert max(arrived.values()) == 1
    check(PLAN, run.states(), arrived, unknown_ever=set())
    assert counts == {
        "pending": 0,
        "in_flight": 0,
        "accepted": len(arrived),
        "refused": len(PLAN.ids("refused")),
        "failed": len(PLAN.ids("busy")),
        "unknown": 0,
    }
    # One pool per worker process, kept across its jobs: not a connection per job.
    assert server.connections <= 2 * 4 + ROWS // 1000 + 2
    log = celery.log.read_text(errors="replace")
    assert "Traceback" not in log and "ERROR" not in log, log
    # Enqueued again: only the failed rows, to be tried again.
    assert celery.enqueue(run.name, run.rows_file, run.template_file).startswith(
        f"enqueued {len(PLAN.ids('busy'))} row(s)"
    )


@pytest.mark.timeout(60)
def test_a_celery_worker_process_killed_mid_run_repeats_only_unknown_rows(
    tmp_path: Path, redis_server: RedisServer, server: CaptureServer
) -> None:
    run = Run(tmp_path, PLAN, server, redis_server)
    celery = Celery(tmp_path, server, redis_server)
    celery.start()
    try:
        children = celery.children()
        celery.enqueue(run.name, run.rows_file, run.template_file)
        victim = busy_worker_processes(celery, server, children)[0]
        os.kill(victim, signal.SIGKILL)  # Celery starts another process; the job comes back
        counts = run.wait_until_done()
        assert victim not in celery.children()
    finally:
        celery.stop()
    check_jobs_lost_and_resumed(run, counts)
    assert "WorkerLostError" in celery.log.read_text(errors="replace")


@pytest.mark.timeout(90)
def test_a_sigterm_to_every_worker_process_loses_no_row(
    tmp_path: Path, redis_server: RedisServer, server: CaptureServer
) -> None:
    """SIGTERM to the worker processes as well as the main one (systemd's default
    ``KillMode``) ends the jobs in progress at once, as ``kill -9`` does: Celery gives them
    back, and a worker started again sends what is left."""
    run = Run(tmp_path, PLAN, server, redis_server)
    celery = Celery(tmp_path, server, redis_server)
    celery.start()
    try:
        children = celery.children()
        celery.enqueue(run.name, run.rows_file, run.template_file)
        busy_worker_processes(celery, server, children)
        celery.stop(every_process=True)
        assert "WorkerLostError" in celery.log.read_text(errors="replace")  # a job cut short
        celery.start()
        counts = run.wait_until_done()
    finally:
        celery.stop()
    check_jobs_lost_and_resumed(run, counts)


@pytest.mark.timeout(60)
def test_celery_worker_processes_quit_their_connections_when_the_worker_stops(
    tmp_path: Path, redis_server: RedisServer, smtpd_server: ThreadedSMTPServer
) -> None:
    plan = Plan(60, good=PLAN.good, refused=PLAN.good, busy=PLAN.good)
    rows, template = plan.write(tmp_path, "news@example.org")
    celery = Celery(tmp_path, smtpd_server, redis_server)
    celery.start()
    try:
        celery.enqueue("welcome", rows, template)
        smtpd_server.handler.wait_for_deliveries(60, timeout=30)
    finally:
        celery.stop()  # the job finishes; then worker_process_shutdown: the pool's QUIT
    assert celery.worker is not None and celery.worker.returncode == 0
    log = celery.log.read_text(errors="replace")
    assert "Traceback" not in log and "ERROR" not in log, log  # no job cut short
    commands = smtpd_server.handler.commands
    assert commands.count("DATA") == 60
    assert smtpd_server.connection_count >= 2  # each process connects as it starts
    assert commands.count("QUIT") == smtpd_server.connection_count
