"""The pool's gate: who gets a connection next, and which queued jobs a batch may take.

:class:`asmtp._bulk._gate.Gate` alone, with jobs that are never sent.
"""

from __future__ import annotations

import anyio
import pytest

from asmtp import Outgoing
from asmtp._bulk._gate import Gate, Job

pytestmark = pytest.mark.anyio


def job(*, batchable: bool = True, fresh: bool = False) -> Job:
    item = Outgoing("s@gate.test", ["r@gate.test"], b"Subject: x\r\n\r\nx\r\n")
    return Job(item, batchable=batchable, deadline=None, expires=float("inf"), fresh=fresh)


async def queue(gate: Gate, jobs: list[Job], promoted: list[Job], tg: anyio.abc.TaskGroup) -> None:
    """Queue each job in turn at ``gate``; each promoted one is appended to ``promoted``."""

    async def enter(queued: Job) -> None:
        if await gate.enter(queued):
            promoted.append(queued)

    for queued in jobs:
        tg.start_soon(enter, queued)
        await anyio.wait_all_tasks_blocked()


async def test_places_go_first_come_first_served() -> None:
    gate = Gate(1)
    assert await gate.enter(job())
    first, second = job(), job()
    promoted: list[Job] = []
    async with anyio.create_task_group() as tg:
        await queue(gate, [first, second], promoted, tg)
        gate.release()
        await anyio.wait_all_tasks_blocked()
        assert promoted == [first]
        gate.release()
    assert promoted == [first, second]
    gate.release()
    assert gate.in_use == 0


async def test_a_retry_bound_for_a_new_connection_queues_ahead_of_the_waiting_sends() -> None:
    """Its message came before them: it goes at once, and no batch takes a send past it."""
    gate = Gate(1)
    assert await gate.enter(job())
    waiting, retry = job(), job(batchable=False, fresh=True)
    promoted: list[Job] = []
    async with anyio.create_task_group() as tg:
        await queue(gate, [waiting, retry], promoted, tg)
        assert gate.take() is None  # the retry heads the queue, and rides in no batch
        gate.release()
        await anyio.wait_all_tasks_blocked()
        assert promoted == [retry]
        assert gate.take() is waiting
        waiting.finish(RuntimeError("sent elsewhere"))
    assert promoted == [retry]
    gate.release()
    assert gate.in_use == 0
