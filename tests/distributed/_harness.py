"""A distributed campaign run for real: Redis, a capture server, worker processes.

The producer runs in the test's process (:func:`asmtp.campaign.distributed.enqueue`);
the workers are ``taskiq worker`` processes; what the server recorded is compared with
what the Redis journal says of every row (through ``support.campaigns``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Final

import anyio

from asmtp.campaign import Rows, Template
from asmtp.campaign.distributed import Enqueued, RedisJournal, enqueue, redis_client
from asmtp.testing import CaptureServer
from support.campaigns import Plan, delivered
from support.redis_server import RedisServer, Workers

RUN_TIMEOUT: Final = 45.0
SENDER: Final = "news@example.org"


class Run:
    """One campaign named ``name`` of ``plan``'s rows, against ``server`` and ``redis``."""

    def __init__(
        self,
        tmp_path: Path,
        plan: Plan,
        server: CaptureServer,
        redis: RedisServer,
        *,
        name: str = "welcome",
        lease: float = 1.0,
        claim_after: float = 2.0,
        patience: float = 30.0,
    ) -> None:
        self.tmp_path, self.plan, self.server, self.redis, self.name = (
            tmp_path,
            plan,
            server,
            redis,
            name,
        )
        self.rows_file, self.template_file = plan.write(tmp_path, SENDER)
        self.workers = Workers(
            {
                "ASMTP_REDIS_URL": redis.url,
                "ASMTP_SMTP_URL": f"smtp://127.0.0.1:{server.port}",
                "ASMTP_CONNECTIONS": "4",
                "ASMTP_RETRIES": "1",
                "ASMTP_LEASE": str(lease),
                "ASMTP_CLAIM_AFTER": str(claim_after),
                "ASMTP_PATIENCE": str(patience),
            }
        )

    def enqueue(self, **options: object) -> Enqueued:
        async def run() -> Enqueued:
            client = redis_client(self.redis.url)
            try:
                rows = Rows(self.rows_file, id_column="id")
                template = Template.from_file(self.template_file)
                return await enqueue(
                    RedisJournal(client, self.name),
                    rows,
                    template,
                    **options,  # type: ignore[arg-type]
                )
            finally:
                await client.aclose()

        return anyio.run(run)

    def query(self, ask: Callable[[RedisJournal], object]) -> object:
        async def run() -> object:
            client = redis_client(self.redis.url)
            try:
                found = ask(RedisJournal(client, self.name))
                return await found  # type: ignore[misc]
            finally:
                await client.aclose()

        return anyio.run(run)

    def counts(self) -> dict[str, int]:
        found = self.query(lambda journal: journal.counts())
        assert isinstance(found, dict)
        return found

    def states(self) -> dict[str, str]:
        found = self.query(lambda journal: journal.rows())
        assert isinstance(found, list)
        return {record["id"]: record["state"] for record in found}

    def campaign_id(self) -> str:
        found = self.query(lambda journal: journal.definition())
        assert isinstance(found, dict)
        return str(found["campaign"])

    def wait_until_done(self, timeout: float = RUN_TIMEOUT) -> dict[str, int]:
        """Poll the counts until no row is pending or in flight."""
        deadline = time.monotonic() + timeout
        while True:
            counts = self.counts()
            if counts["pending"] == 0 and counts["in_flight"] == 0:
                return counts
            assert time.monotonic() < deadline, f"not done after {timeout} s: {counts}"
            time.sleep(0.2)

    def arrived(self) -> Counter[str]:
        return delivered((m.raw for m in self.server.messages), self.campaign_id())

    def logs(self) -> str:
        return "\n".join(log.read_text(errors="replace") for log in self.workers.logs)
