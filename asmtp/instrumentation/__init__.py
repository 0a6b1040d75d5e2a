"""Instrumentations of asmtp for observability tools, each in an optional extra.

- :mod:`asmtp.instrumentation.otel`: OpenTelemetry traces and metrics (``asmtp[otel]``).

Python's audit events (``smtplib.connect``, ``smtplib.send``) need no instrumentation:
asmtp raises them as smtplib does (see the observability guide).
"""

from __future__ import annotations

__all__: list[str] = []
