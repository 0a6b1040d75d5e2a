"""The queue between producers and workers: a Redis stream read through taskiq.

taskiq-redis's ``RedisStreamBroker`` reads the stream in a consumer
group: a job stays in the group's pending list until it is acknowledged, and a job left
there longer than ``claim_after`` (its worker died) is claimed by another worker's next
read (``XAUTOCLAIM``). The job's task acknowledges it itself (``ack_type="manual"``),
after the outcome of each of its rows is in the journal; a job whose task failed is
never acknowledged, and so comes back.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any, Final

import pydantic
import redis.asyncio
from taskiq import TaskiqMessage
from taskiq.formatters.json_formatter import JSONFormatter
from taskiq_redis import RedisStreamBroker

from . import _scripts
from ._journal import redis_options

__all__ = [
    "GROUP",
    "STREAM",
    "TASK_NAME",
    "job_arguments",
    "job_payload",
    "make_broker",
    "requeue_stale",
]

STREAM: Final = "asmtp:campaigns"
"""The stream (taskiq's queue) jobs go to unless told otherwise."""
TASK_NAME: Final = "asmtp.campaign.send_rows"
"""The task every job names: it sends a batch of a campaign's rows."""
GROUP: Final = "asmtp"
"""The stream's consumer group, shared by every worker."""
LABELS: Final = {"ack_type": "manual"}


def make_broker(
    url: str,
    *,
    stream: str = STREAM,
    claim_after: float = 60.0,
    patience: float = 30.0,
    batches_at_once: int = 2,
) -> RedisStreamBroker:
    """A taskiq broker on the Redis at ``url`` reading ``stream``.

    ``claim_after`` (seconds) is how long a job taken by a worker that died waits before
    another worker takes it; ``patience`` how long a Redis outage is ridden out (every
    command retried) before an error; ``batches_at_once`` how many jobs one read takes.
    """
    return RedisStreamBroker(
        url,
        queue_name=stream,
        consumer_group_name=GROUP,
        consumer_id="0",  # a group created after the first jobs were added reads them too
        idle_timeout=int(claim_after * 1000),
        unacknowledged_lock_timeout=max(1.0, claim_after / 2),
        unacknowledged_batch_size=batches_at_once,
        xread_count=batches_at_once,
        xread_block=1000,
        **redis_options(patience),
    )


def job_payload(campaign: str, batch: str, rows: Sequence[dict[str, Any]]) -> bytes:
    """The stream entry of one job: taskiq's message calling :data:`TASK_NAME`."""
    message = TaskiqMessage(
        task_id=secrets.token_hex(16),
        task_name=TASK_NAME,
        labels=dict(LABELS),
        args=[],
        kwargs={"campaign": campaign, "batch": batch, "rows": list(rows)},
    )
    return JSONFormatter().dumps(message).message


def job_arguments(payload: bytes) -> dict[str, Any]:
    """What :func:`job_payload` made ``payload`` of: ``campaign``, ``batch`` and ``rows``,
    the arguments of :meth:`Sender.send <asmtp.campaign.distributed.Sender.send>`.
    Raises :exc:`ValueError` for anything else."""
    try:
        message = JSONFormatter().loads(payload)
    except pydantic.ValidationError as exc:
        raise ValueError(f"not a job: {exc}") from None
    if message.task_name != TASK_NAME:
        raise ValueError(f"not a job of {TASK_NAME}: {message.task_name!r}")
    return {key: message.kwargs[key] for key in ("campaign", "batch", "rows")}


async def requeue_stale(
    client: redis.asyncio.Redis,
    *,
    stream: str = STREAM,
    claim_after: float = 60.0,
    count: int = 100,
) -> int:
    """Put the jobs delivered more than ``claim_after`` seconds ago and never acknowledged
    back on ``stream`` as new entries (see ``_scripts.REQUEUE``); how many."""
    moved = await client.eval(
        _scripts.REQUEUE, 1, stream, GROUP, str(int(claim_after * 1000)), str(count)
    )
    return int(moved)
