"""Shared test configuration: the server kit's fixtures and the event loops to run on."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

pytest_plugins = ["support.fixtures", "pytester", "asmtp.testing.plugin"]

_BACKENDS: list[Any] = [
    pytest.param(("asyncio", {}), id="asyncio"),
    pytest.param(("trio", {}), id="trio"),
]
if importlib.util.find_spec("uvloop") is not None:
    _BACKENDS.append(pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"))


@pytest.fixture(params=_BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    """Every ``@pytest.mark.anyio`` test runs on asyncio, trio and (if installed) uvloop."""
    return request.param
