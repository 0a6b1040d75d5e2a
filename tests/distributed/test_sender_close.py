"""A worker process told to stop closes its Sender while a job is still sending.

Celery runs ``Sender.aclose`` from ``worker_process_shutdown`` on the same event loop as
the job it interrupted, so the job goes on while the pool closes under it. A row the
closed pool refused was never sent: it must go back to pending for the job's next
delivery, not stay ``failed`` until someone resumes the campaign.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

import asmtp
from asmtp.campaign import CampaignError
from asmtp.campaign.distributed import STREAM, Sender, job_arguments, redis_client
from asmtp.testing import CaptureServer
from support.campaigns import Plan
from support.redis_server import RedisServer

from ._harness import Run

PLAN = Plan(
    400,
    good=lambda n: f"reader{n}@example.com",
    refused=lambda n: f"reader{n}@refused.example",
    busy=lambda n: f"reader{n}@busy.example",
    refused_every=10**9,  # every row good: any failed row is the close's doing
    busy_every=10**9,
)


@pytest.mark.timeout(60)
def test_rows_a_closing_sender_did_not_send_go_back_to_pending(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with CaptureServer() as server:
        run = Run(tmp_path, PLAN, server, redis_server)
        run.enqueue(batch_size=len(PLAN.ids("good")))
        job_rows: list[str] = []
        errors: list[BaseException] = []

        async def stop_midway() -> None:
            client = redis_client(redis_server.url)
            try:
                entries = await client.xrange(STREAM, count=1)  # the first job
            finally:
                await client.aclose()
            assert entries, "the producer enqueued no job"
            fields = entries[0][1]
            assert fields is not None
            payload = fields[b"data"]
            assert isinstance(payload, bytes)
            job = job_arguments(payload)
            job_rows.extend(str(row["id"]) for row in job["rows"])
            sender = Sender(
                redis_server.url,
                lambda: asmtp.SMTPPool("127.0.0.1", server.port, max_connections=2),
                lease=30.0,
            )
            await sender.start()
            async with anyio.create_task_group() as group:
                group.start_soon(_send, sender, job, errors)
                with anyio.fail_after(30):
                    while len(server.messages) < 50:  # noqa: ASYNC110 - another thread counts
                        await anyio.sleep(0.005)
                await sender.aclose()

        anyio.run(stop_midway)
        states = {row: state for row, state in run.states().items() if row in job_rows}
        arrived = run.arrived()

    accepted = {row for row, state in states.items() if state == "accepted"}
    assert set(states.values()) <= {"accepted", "pending"}, states
    assert accepted == set(arrived)
    assert max(arrived.values()) == 1
    assert 50 <= len(accepted) < len(states)  # stopped midway: some rows left pending
    # Not acknowledged: the job comes back, and its next delivery sends the pending rows.
    [error] = _leaves(errors)
    assert isinstance(error, CampaignError)
    assert "the sender closed before batch" in str(error)


async def _send(sender: Sender, job: dict[str, object], errors: list[BaseException]) -> None:
    try:
        await sender.send(**job)  # type: ignore[arg-type]
    except Exception as exc:
        errors.append(exc)


def _leaves(errors: list[BaseException]) -> list[BaseException]:
    """The exceptions inside any exception groups (the lease's task group wraps them)."""
    found: list[BaseException] = []
    for error in errors:
        inner = getattr(error, "exceptions", None)
        found.extend(_leaves(list(inner)) if inner else [error])
    return found
