"""Fixtures of the observability tests: asmtp instrumented into in-memory exporters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from observe._kit import Telemetry, TelemetryFactory, telemetry_collecting


@pytest.fixture
def telemetry_factory() -> Iterator[TelemetryFactory]:
    """``make(record_addresses=False)``: asmtp instrumented until the test ends."""
    made: list[Telemetry] = []

    def make(*, record_addresses: bool = False) -> Telemetry:
        telemetry = telemetry_collecting(record_addresses=record_addresses)
        made.append(telemetry)
        return telemetry

    try:
        yield make
    finally:
        for telemetry in made:
            telemetry.stop()


@pytest.fixture
def telemetry(telemetry_factory: TelemetryFactory) -> Telemetry:
    """asmtp instrumented (addresses not recorded) until the test ends."""
    return telemetry_factory()
