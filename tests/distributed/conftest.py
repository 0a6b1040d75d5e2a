"""A private Redis for each distributed test; the suite fails rather than skips in CI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.redis_server import RedisServer, RedisUnavailable, ensure_installed


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.distributed)


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    try:
        ensure_installed()
        server = RedisServer(tmp_path_factory.mktemp("redis"))
        server.start()
    except RedisUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"distributed tests must run in CI (CI=true) but cannot: {exc}")
        pytest.skip(f"no Redis: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def anyio_backend() -> str:
    """redis-py's asyncio client: these tests run on asyncio only."""
    return "asyncio"
