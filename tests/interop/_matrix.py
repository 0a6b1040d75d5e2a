"""A pytest plugin recording each interop test's server, feature, event loop and outcome.

Loaded by ``matrix.py`` (``-p interop._matrix``); the conftest puts ``server``, ``feature``
and ``backend`` in every interop test's ``user_properties``. Under pytest-xdist the
workers' reports reach the controller, which alone writes the JSON file named by
:data:`OUTPUT_ENV`: a list of ``{"server", "feature", "backend", "outcome", "nodeid"}``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Final

import pytest

OUTPUT_ENV: Final = "ASMTP_INTEROP_MATRIX"

_results: dict[str, dict[str, str]] = {}


def _outcome(report: pytest.TestReport) -> str | None:
    """The test's outcome from one phase's report, or None if this phase says nothing."""
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    if report.failed:
        return "failed"
    if report.skipped:
        return "skipped"
    return "passed" if report.when == "call" else None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    properties = dict(report.user_properties)
    if "feature" not in properties:
        return
    outcome = _outcome(report)
    previous = _results.get(report.nodeid, {}).get("outcome")
    if outcome is None or previous == "failed":
        return  # a failed phase stays failed (e.g. a passing call, then a failing teardown)
    _results[report.nodeid] = {
        "server": str(properties["server"]),
        "feature": str(properties["feature"]),
        "backend": str(properties["backend"]),
        "outcome": outcome,
        "nodeid": report.nodeid,
    }


def pytest_sessionfinish(session: pytest.Session) -> None:
    output = os.environ.get(OUTPUT_ENV)
    if output and not hasattr(session.config, "workerinput"):
        Path(output).write_text(json.dumps(list(_results.values()), indent=1), encoding="utf-8")
