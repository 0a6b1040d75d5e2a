"""The distributed tests: marked ``distributed``, on asyncio (``redis_server`` is in
``support.fixtures``: a private Redis per test, failing rather than skipping in CI)."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.distributed)


@pytest.fixture
def anyio_backend() -> str:
    """redis-py's asyncio client: these tests run on asyncio only."""
    return "asyncio"
