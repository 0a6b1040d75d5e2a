"""The running loop's clock and task, looked up once per connection instead of per step."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from asmtp._client._running import current_task, task_lookup

pytestmark = pytest.mark.anyio


async def test_the_bound_task_lookup_names_the_calling_task_in_each_task() -> None:
    """On asyncio and trio: the lookup made once answers, for each task calling it, that
    task, as the unbound lookup does."""
    lookup = task_lookup()
    seen: list[tuple[object, object]] = []

    async def report() -> None:
        await anyio.lowlevel.checkpoint()
        seen.append((lookup(), current_task()))

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(report)
    assert len(seen) == 3
    assert all(bound is unbound and bound is not None for bound, unbound in seen)
    assert len({id(bound) for bound, _ in seen}) == 3
    assert lookup() is current_task()
