"""The Redis journal's moves, the producer's idempotence and the shared rate limit,
against a real Redis (no workers)."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
import redis.asyncio

from asmtp.campaign import JournalMismatch, Rows, Template
from asmtp.campaign.distributed import (
    GROUP,
    Outcome,
    RedisJournal,
    SharedRateLimit,
    enqueue,
    job_arguments,
    job_payload,
    redis_client,
    requeue_stale,
)
from support.redis_server import RedisServer

pytestmark = pytest.mark.anyio

STREAM = "test:jobs"


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    found = redis_client(redis_server.url)
    try:
        yield found
    finally:
        await found.aclose()


def _campaign(tmp_path: Path, rows: int, subject: str = "Hello") -> tuple[Rows, Template]:
    source = tmp_path / "people.csv"
    source.write_text(
        "id,email\n" + "".join(f"r{n},r{n}@example.com\n" for n in range(rows)),
        encoding="utf-8",
    )
    template = tmp_path / "t.eml"
    template.write_text(f"From: a@example.org\nSubject: {subject}\n\nHi {{{{ email }}}}\n")
    return Rows(source, id_column="id"), Template.from_file(template)


async def _jobs(client: redis.asyncio.Redis) -> list[list[str]]:
    entries = await client.xrange(STREAM)
    assert entries is not None
    jobs = []
    for _, fields in entries:
        assert fields is not None
        jobs.append([row["id"] for row in json.loads(fields[b"data"])["kwargs"]["rows"]])
    return jobs


async def test_enqueueing_twice_adds_no_row_twice(
    tmp_path: Path, client: redis.asyncio.Redis
) -> None:
    rows, template = _campaign(tmp_path, 250)
    journal = RedisJournal(client, "c1")
    first = await enqueue(journal, rows, template, batch_size=100, stream=STREAM)
    assert (first.enqueued, first.skipped, first.jobs) == (250, 0, 3)
    again = await enqueue(journal, rows, template, batch_size=100, stream=STREAM)
    assert (again.enqueued, again.skipped, again.jobs) == (0, 250, 0)
    jobs = await _jobs(client)
    assert [len(job) for job in jobs] == [100, 100, 50]
    assert sorted(row for job in jobs for row in job) == sorted(f"r{n}" for n in range(250))
    assert (await journal.counts())["pending"] == 250


async def test_only_failed_rows_are_enqueued_again(
    tmp_path: Path, client: redis.asyncio.Redis
) -> None:
    rows, template = _campaign(tmp_path, 10)
    journal = RedisJournal(client, "c2")
    await enqueue(journal, rows, template, stream=STREAM)
    for row_id, state in (("r1", "failed"), ("r2", "accepted"), ("r3", "unknown")):
        assert await journal.claim(row_id) == "send"
        assert await journal.record(row_id, state)
    again = await enqueue(journal, rows, template, stream=STREAM)
    assert (again.enqueued, again.skipped) == (1, 9)
    assert (await _jobs(client))[-1] == ["r1"]
    resend = await enqueue(journal, rows, template, stream=STREAM, resend_unknown=True)
    assert (resend.enqueued, (await _jobs(client))[-1]) == (1, ["r3"])


async def test_another_template_is_refused_unless_forced(
    tmp_path: Path, client: redis.asyncio.Redis
) -> None:
    rows, template = _campaign(tmp_path, 3)
    journal = RedisJournal(client, "c3")
    await enqueue(journal, rows, template, stream=STREAM)
    other = _campaign(tmp_path / "..", 3, subject="Changed")[1]
    with pytest.raises(JournalMismatch, match="digest"):
        await enqueue(journal, rows, other, stream=STREAM)
    await enqueue(journal, rows, other, stream=STREAM, force=True)
    assert (await journal.definition())["digest"] == other.digest


async def test_a_job_on_the_stream_reads_back_as_the_senders_arguments(
    tmp_path: Path, client: redis.asyncio.Redis
) -> None:
    rows, template = _campaign(tmp_path, 3)
    await enqueue(RedisJournal(client, "w"), rows, template, stream=STREAM)
    entries: Any = await client.xrange(STREAM)
    assert len(entries) == 1
    job = job_arguments(entries[0][1][b"data"])
    assert set(job) == {"campaign", "batch", "rows"} and job["campaign"] == "w"
    assert [row["id"] for row in job["rows"]] == ["r0", "r1", "r2"]
    assert job_arguments(job_payload("w", "b1", job["rows"])) == {**job, "batch": "b1"}
    for garbage in (
        b"job 1",
        b"{}",
        json.dumps(
            {"task_id": "1", "task_name": "other", "labels": {}, "args": [], "kwargs": {}}
        ).encode(),
    ):
        with pytest.raises(ValueError, match="not a job"):
            job_arguments(garbage)


async def test_a_row_moves_through_the_states_and_counts_follow(
    tmp_path: Path, client: redis.asyncio.Redis
) -> None:
    rows, template = _campaign(tmp_path, 3)
    journal = RedisJournal(client, "c4")
    await enqueue(journal, rows, template, stream=STREAM)
    assert await journal.claim("r0") == "send"
    assert (await journal.counts())["in_flight"] == 1
    assert await journal.record(
        "r0", "accepted", code=250, reply="ok", recipients={"r0@example.com": (250, "ok")}
    )
    assert not await journal.record("r0", "failed")  # not in flight: written once only
    assert await journal.claim("r0") == "accepted"  # delivered twice: nothing to do
    # A worker died with r1 in flight: the next claim calls it unknown, never sends it.
    assert await journal.claim("r1") == "send"
    assert await journal.claim("r1") == "unknown"
    assert await journal.claim("r1") == "unknown"  # and it stays unknown
    # ... unless the campaign resends unknown rows.
    assert await journal.claim("r2") == "send"
    assert await journal.claim("r2", resend_unknown=True) == "send"
    assert await journal.claim("nope") == "missing"
    counts = await journal.counts()
    assert counts == {
        "pending": 0,
        "in_flight": 1,
        "accepted": 1,
        "refused": 0,
        "failed": 0,
        "unknown": 1,
    }
    records = {r["id"]: r for r in await journal.rows()}
    assert records["r0"]["recipients"] == {"r0@example.com": [250, "ok"]}
    assert records["r0"]["attempts"] == 1 and records["r2"]["attempts"] == 2
    assert records["r1"]["error"] == "a worker stopped while it was in flight"
    assert [r["id"] for r in await journal.rows(["unknown"])] == ["r1"]


async def test_a_lease_is_held_by_one_holder_at_a_time(client: redis.asyncio.Redis) -> None:
    journal = RedisJournal(client, "c5")
    async with journal.lease("b1", ttl=0.5):
        began = time.monotonic()
        await client.set("asmtp:{c5}:lease:b2", "someone", px=300)  # a holder that died
        async with journal.lease("b2", ttl=0.5):
            assert time.monotonic() - began >= 0.25
        await anyio.sleep(0.7)  # renewed past its ttl while held
        assert await client.exists("asmtp:{c5}:lease:b1")
    assert not await client.exists("asmtp:{c5}:lease:b1")


async def test_the_shared_rate_limit_spaces_slots_across_holders(
    client: redis.asyncio.Redis,
) -> None:
    limits = [SharedRateLimit(client, "test:rate", 50.0) for _ in range(3)]
    delays = [await limits[n % 3].reserve() for n in range(30)]
    # Slots 20 ms apart whichever holder asks, none in the past, none bursting.
    steps = [b - a for a, b in itertools.pairwise(delays)]
    assert all(0.010 <= step <= 0.021 for step in steps), steps
    assert 0.5 <= delays[-1] <= 0.6
    with pytest.raises(ValueError, match="more than 0"):
        SharedRateLimit(client, "test:rate", 0)


async def test_a_job_left_unacknowledged_goes_back_on_the_stream(
    client: redis.asyncio.Redis,
) -> None:
    await client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    await client.xadd(STREAM, {b"data": b"job 1"})
    taken: Any = await client.xreadgroup(GROUP, "died", {STREAM: ">"}, count=1)
    assert taken and len(taken[0][1]) == 1  # delivered, never acknowledged
    assert await requeue_stale(client, stream=STREAM, claim_after=10) == 0  # not stale yet
    await anyio.sleep(0.15)
    assert await requeue_stale(client, stream=STREAM, claim_after=0.1) == 1
    pending: Any = await client.xpending(STREAM, GROUP)
    assert pending["pending"] == 0  # the old delivery is acknowledged ...
    again: Any = await client.xreadgroup(GROUP, "alive", {STREAM: ">"}, count=10)
    assert again is not None
    assert [fields for _, fields in again[0][1]] == [{b"data": b"job 1"}]  # ... and it is new


async def test_scripts_redis_forgot_before_a_batch_ran_are_loaded_and_run_once(
    tmp_path: Path,
    client: redis.asyncio.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A Redis restarted between a pipeline's check of its scripts and its run answers
    # NOSCRIPT to every call; SCRIPT FLUSH right after the check does the same here.
    rows, template = _campaign(tmp_path, 4)
    journal = RedisJournal(client, "c9")
    await enqueue(journal, rows, template, stream=STREAM)
    checked = cast(
        Callable[[redis.asyncio.client.Pipeline], Awaitable[None]],
        redis.asyncio.client.Pipeline.load_scripts,
    )
    flushes = 0

    async def check_then_forget(pipe: redis.asyncio.client.Pipeline) -> None:
        nonlocal flushes
        await checked(pipe)
        if flushes < 2:
            flushes += 1
            await client.script_flush()

    monkeypatch.setattr(redis.asyncio.client.Pipeline, "load_scripts", check_then_forget)
    assert await journal.claim_many(["r0", "r1", "r2"]) == ["send", "send", "send"]
    written = await journal.record_many([Outcome("r0", "accepted"), Outcome("r1", "failed")])
    assert written == [True, True]
    assert flushes == 2
    # Each script ran once per row: a second run would have made r0..r2 unknown, or
    # found r0 and r1 no longer in flight.
    records = {r["id"]: r for r in await journal.rows()}
    assert [records[f"r{n}"]["state"] for n in range(4)] == [
        "accepted",
        "failed",
        "in_flight",
        "pending",
    ]
    assert all(records[f"r{n}"]["attempts"] == 1 for n in range(3))
    assert (await journal.counts())["in_flight"] == 1
