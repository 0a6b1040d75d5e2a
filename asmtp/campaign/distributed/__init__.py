"""Campaigns beyond one machine: jobs on a Redis stream, sent by taskiq workers.

Needs the ``taskiq`` extra (``pip install asmtp[taskiq]``). :func:`enqueue` turns a
campaign's rows into jobs, :class:`Worker` sends them (run its ``broker`` with
``taskiq worker``; a :class:`Sender` sends them from any other job queue), :class:`RedisJournal` records every row's fate with the states of the
SQLite journal, :class:`SharedRateLimit` caps the messages per second of all workers.
"""

from __future__ import annotations

from redis.exceptions import RedisError as RedisError  # what a client call raises

from ._journal import Lease, Outcome, RedisJournal, redis_client
from ._producer import Enqueued, enqueue
from ._queue import (
    GROUP,
    STREAM,
    TASK_NAME,
    job_arguments,
    job_payload,
    make_broker,
    requeue_stale,
)
from ._rate import SharedRateLimit
from ._sender import LeaseLost, Sender, ServerUnavailable
from ._worker import Worker

__all__ = [
    "GROUP",
    "STREAM",
    "TASK_NAME",
    "Enqueued",
    "Lease",
    "LeaseLost",
    "Outcome",
    "RedisJournal",
    "Sender",
    "ServerUnavailable",
    "SharedRateLimit",
    "Worker",
    "enqueue",
    "job_arguments",
    "job_payload",
    "make_broker",
    "redis_client",
    "requeue_stale",
]
