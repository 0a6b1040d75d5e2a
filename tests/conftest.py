"""Shared test configuration: the server kit's fixtures and the event loops to run on."""

from __future__ import annotations

import importlib.util
import warnings
from typing import Any

import pytest

if importlib.util.find_spec("redis") is not None:
    # redis-py 8.2 builds a set of str and bytes at import (a BytesWarning, an error under
    # `python -bb`); harmless there, so its import alone is let through.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BytesWarning)
        import redis  # noqa: F401

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
