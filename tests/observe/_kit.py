"""Helpers of the observability tests: spans and metrics read back from OpenTelemetry's SDK."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from asmtp.instrumentation import otel


@dataclass
class Telemetry:
    """What the instrumentation exported: finished spans, and metrics on demand."""

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """Finished spans (named ``name``), in the order they ended."""
        spans = list(self.exporter.get_finished_spans())
        return [span for span in spans if name is None or span.name == name]

    def points(self, metric: str) -> list[tuple[dict[str, object], float]]:
        """``(attributes, value)`` of each data point of ``metric`` (a histogram's: count)."""
        found: list[tuple[dict[str, object], float]] = []
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for each in scope.metrics:
                    if each.name != metric:
                        continue
                    for point in each.data.data_points:
                        if isinstance(point, HistogramDataPoint):
                            value: float = point.count
                        else:
                            assert isinstance(point, NumberDataPoint)
                            value = point.value
                        found.append((dict(point.attributes or {}), value))
        return found

    def count(self, metric: str, **attributes: object) -> float:
        """The sum of ``metric``'s points whose attributes include ``attributes``."""
        wanted = {key.replace("_", "."): value for key, value in attributes.items()}
        return sum(
            value
            for point, value in self.points(metric)
            if all(point.get(key) == value for key, value in wanted.items())
        )

    def stop(self) -> None:
        otel.uninstrument()


class TelemetryFactory(Protocol):
    def __call__(self, *, record_addresses: bool = False) -> Telemetry: ...


def telemetry_collecting(*, record_addresses: bool) -> Telemetry:
    """Instrument asmtp into fresh in-memory exporters."""
    otel.uninstrument()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    otel.instrument(
        tracer_provider=tracer_provider,
        meter_provider=MeterProvider(metric_readers=[reader]),
        record_addresses=record_addresses,
    )
    return Telemetry(exporter, reader)


def texts(telemetry: Telemetry) -> Iterator[str]:
    """Every string the instrumentation exported: names, attribute keys and values, events,
    statuses, metric attributes."""

    def of(attributes: Mapping[str, object] | None) -> Iterator[str]:
        for key, value in (attributes or {}).items():
            yield key
            yield from (str(v) for v in value) if isinstance(value, tuple) else (str(value),)

    for span in telemetry.spans():
        yield span.name
        yield from of(span.attributes)
        yield span.status.description or ""
        for event in span.events:
            yield event.name
            yield from of(event.attributes)
        for link in span.links:
            yield from of(link.attributes)
    for metric in ("smtp.client.messages", "smtp.client.send.duration", "smtp.client.connections"):
        for attributes, _ in telemetry.points(metric):
            yield from of(attributes)


def event_names(span: ReadableSpan) -> list[str]:
    return [event.name for event in span.events]


def event(span: ReadableSpan, name: str) -> dict[str, object]:
    """The attributes of ``span``'s only event named ``name``."""
    found: list[dict[str, object]] = [
        dict(event.attributes or {}) for event in span.events if event.name == name
    ]
    assert len(found) == 1, (name, event_names(span))
    return found[0]
