"""Distributed campaigns on Celery: the journal, lease and rate limit of asmtp's taskiq workers.

Copy this module and adjust its settings (or set the environment variables below). With
``pip install 'asmtp[taskiq]' 'celery[redis]'``, run workers on as many machines as you like::

    celery -A celery_mailer worker --concurrency 4 --prefetch-multiplier 1

and enqueue a campaign from any machine that can read its rows::

    python celery_mailer.py welcome people.csv welcome.eml

Each worker process runs one event loop and one :class:`~asmtp.SMTPPool` for its whole
life (Celery's ``worker_process_init`` and ``worker_process_shutdown`` signals open it and
close it, with QUIT). A job is one batch of a campaign's rows; the task sends it with
:class:`~asmtp.campaign.distributed.Sender`, the same code the taskiq workers run: the
batch's lease, the shared rate limit, each row claimed (in flight) in the Redis journal
before its first byte, rendered from the campaign's template with its own Message-ID,
and its outcome recorded. The task returns, and Celery acknowledges the job
(``acks_late``), only once every outcome is recorded. A worker process killed mid-job
gives its job back (``reject_on_worker_lost``); another process waits for the batch's
lease to expire and finds the rows the dead one had in flight: those become ``unknown``,
never sent twice by the campaign.

Stop a worker with SIGTERM to its main process (systemd: ``KillMode=mixed``): Celery's
warm shutdown lets the jobs in progress finish. A SIGTERM to every worker process ends
their jobs at once, as a killed process does.

The producer is :func:`~asmtp.campaign.distributed.enqueue`, as for taskiq: it makes a
batch's rows pending and adds its job to a Redis stream (:data:`OUTBOX`) in one atomic
step, so that no row is enqueued twice; :func:`forward` then hands each job on that
stream to Celery and deletes it there. A job forwarded twice (the producer died between
the two) is harmless: the second delivery waits for the batch's lease and finds its rows
done.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sys
from typing import Any, Final, cast

import anyio
import redis.asyncio
from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown

import asmtp
from asmtp.campaign import CampaignError, Rows, Template
from asmtp.campaign.distributed import (
    Enqueued,
    RedisError,
    RedisJournal,
    Sender,
    enqueue,
    job_arguments,
    redis_client,
)

REDIS_URL: Final = os.environ.get("MAILER_REDIS_URL", "redis://127.0.0.1:6379/0")
"""The Redis holding the campaigns' journals (and :data:`OUTBOX`)."""
BROKER_URL: Final = os.environ.get("MAILER_BROKER_URL", "redis://127.0.0.1:6379/1")
"""Celery's broker: another database of the same Redis here, any broker Celery supports."""
SMTP_URL: Final = os.environ.get("MAILER_SMTP_URL", "smtp://127.0.0.1:25")
CONNECTIONS: Final = int(os.environ.get("MAILER_CONNECTIONS", "10"))  # per worker process
# Tries per message (a 4xx reply, a connection lost before the end of the data).
RETRIES: Final = int(os.environ.get("MAILER_RETRIES", "3"))
# Seconds a dead worker process's batch stays taken before another process may send it.
LEASE: Final = float(os.environ.get("MAILER_LEASE", "10"))
OUTBOX: Final = "asmtp:celery"
"""The stream :func:`enqueue` adds jobs to and :func:`forward` empties into Celery."""

logger = logging.getLogger("celery_mailer")

app = Celery("celery_mailer", broker=BROKER_URL)
app.conf.update(
    task_acks_late=True,  # acknowledged once the task returns: every outcome is recorded
    task_reject_on_worker_lost=True,  # a killed worker process's job goes back to the queue
    worker_prefetch_multiplier=1,  # the other jobs stay on the queue for other workers
    # A job whose whole worker (not one process) vanished comes back after this; it must
    # be longer than the longest job.
    broker_transport_options={"visibility_timeout": 3600},
)


def make_pool() -> asmtp.SMTPPool:
    """The pool of one worker process: your server, credentials, TLS context."""
    return asmtp.SMTPPool(
        url=SMTP_URL, max_connections=CONNECTIONS, retry=asmtp.RetryPolicy(attempts=RETRIES)
    )


class _Process:
    """What a worker process holds between jobs."""

    loop: asyncio.AbstractEventLoop | None = None
    sender: Sender | None = None


@worker_process_init.connect
def open_sender(**_: object) -> None:
    """In each new worker process: one event loop, one pool, one Redis client."""
    loop = asyncio.new_event_loop()
    sender = Sender(REDIS_URL, make_pool, lease=LEASE)
    _Process.loop, _Process.sender = loop, sender
    try:
        loop.run_until_complete(sender.start())
    except (OSError, asmtp.SMTPException) as exc:  # the first message connects again
        logger.warning("cannot connect to the SMTP server yet: %s", exc)


@worker_process_shutdown.connect
def close_sender(**_: object) -> None:
    """QUIT on every idle connection, then close the loop."""
    loop, sender = _Process.loop, _Process.sender
    if loop is not None and sender is not None:
        try:
            loop.run_until_complete(sender.aclose())
        finally:
            loop.close()


@app.task(
    name="asmtp.campaign.send_rows",
    acks_late=True,
    reject_on_worker_lost=True,
    # Cut short (the SMTP server unreachable, Redis away too long, the lease lost): the
    # job runs again later and sends what is still pending.
    autoretry_for=(CampaignError, RedisError),
    retry_backoff=5,
    retry_backoff_max=300,
    max_retries=None,
)
def send_rows(campaign: str, batch: str, rows: list[dict[str, Any]]) -> int:
    """Send one batch of campaign ``campaign``'s rows; how many were sent."""
    loop, sender = _Process.loop, _Process.sender
    if loop is None or sender is None:
        raise RuntimeError("run by a Celery worker process (worker_process_init)")
    return loop.run_until_complete(sender.send(campaign, batch, rows))


async def forward(client: redis.asyncio.Redis) -> int:
    """Hand every job on :data:`OUTBOX` to Celery, oldest first, deleting each once Celery
    has it; how many."""
    moved = 0
    while True:
        # Entries as redis_client() reads them (bytes); redis-py's types allow str and None.
        entries = cast(
            "list[tuple[bytes, dict[bytes, bytes]]]", await client.xrange(OUTBOX, count=100)
        )
        if not entries:
            return moved
        for entry, fields in entries:
            job = job_arguments(fields[b"data"])
            await anyio.to_thread.run_sync(functools.partial(send_rows.apply_async, kwargs=job))
            await client.xdel(OUTBOX, entry)
            moved += 1


async def enqueue_campaign(name: str, rows: Rows, template: Template, **options: Any) -> Enqueued:
    """Enqueue campaign ``name`` (``options`` are :func:`enqueue`'s: ``rate``, ``sender``,
    ``batch_size``, ...) and hand its jobs to Celery. Run it again to enqueue only what is
    missing or ``failed``."""
    client = redis_client(REDIS_URL)
    try:
        done = await enqueue(RedisJournal(client, name), rows, template, stream=OUTBOX, **options)
        await forward(client)
        return done
    finally:
        await client.aclose()


def main(argv: list[str]) -> int:
    """``python celery_mailer.py CAMPAIGN ROWS TEMPLATE``: rows with an ``id`` column."""
    if len(argv) != 3:
        print("usage: celery_mailer.py CAMPAIGN ROWS TEMPLATE", file=sys.stderr)
        return 2
    name, rows, template = argv
    done = asyncio.run(
        enqueue_campaign(name, Rows(rows, id_column="id"), Template.from_file(template))
    )
    print(
        f"enqueued {done.enqueued} row(s) in {done.jobs} job(s); {done.skipped} left as they were"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
