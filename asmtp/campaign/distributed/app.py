"""A ready worker configured from the environment: ``taskiq worker asmtp.campaign.distributed.app:broker``.

``ASMTP_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``) names the Redis;
``ASMTP_SMTP_URL`` the SMTP server as :class:`~asmtp.SMTPPool`'s ``url`` takes it
(``smtp://``, ``smtp+starttls://``, ``smtps://``, with ``user:password@``);
``ASMTP_CONNECTIONS`` (10) the pool's connections per worker process, ``ASMTP_RETRIES``
(3) its tries per message; ``ASMTP_STREAM``
the stream; ``ASMTP_LEASE`` (10), ``ASMTP_CLAIM_AFTER`` (60) and ``ASMTP_PATIENCE`` (30)
seconds, see :class:`~asmtp.campaign.distributed.Worker`.
"""

from __future__ import annotations

import os

import asmtp

from ._queue import STREAM
from ._worker import Worker

__all__ = ["broker", "worker"]


def _pool() -> asmtp.SMTPPool:
    return asmtp.SMTPPool(
        url=os.environ.get("ASMTP_SMTP_URL", "smtp://127.0.0.1:25"),
        max_connections=int(os.environ.get("ASMTP_CONNECTIONS", "10")),
        retry=asmtp.RetryPolicy(attempts=int(os.environ.get("ASMTP_RETRIES", "3"))),
    )


worker = Worker(
    os.environ.get("ASMTP_REDIS_URL", "redis://127.0.0.1:6379/0"),
    _pool,
    stream=os.environ.get("ASMTP_STREAM", STREAM),
    lease=float(os.environ.get("ASMTP_LEASE", "10")),
    claim_after=float(os.environ.get("ASMTP_CLAIM_AFTER", "60")),
    patience=float(os.environ.get("ASMTP_PATIENCE", "30")),
)
"""The :class:`~asmtp.campaign.distributed.Worker` the environment describes."""
broker = worker.broker
"""Its taskiq broker: what ``taskiq worker`` runs."""
