"""pytest plugin: the ``smtp_sink`` fixtures, a capture server for each test or session.

Registered through the ``pytest11`` entry point, so it loads wherever asmtp is installed;
it imports only pytest and the standard library until a fixture is used, so projects
without the ``testing`` extra start pytest as before, and a test using the fixture without
the extra fails with the command that installs it. Disable with
``-p no:asmtp.testing.plugin``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from asmtp.testing import CaptureServer

__all__ = ["smtp_sink", "smtp_sink_session"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "smtp_sink(**options): options of the smtp_sink fixture's server "
        "(asmtp.testing.CaptureServer's keyword arguments, e.g. lmtp=True, chunking=True)",
    )


def _started(options: dict[str, Any]) -> CaptureServer:
    from asmtp.testing import CaptureServer, MissingExtra

    try:
        return CaptureServer(**options).start()
    except MissingExtra as exc:
        missing = str(exc)
    # Outside the except block: the report is this one line, not the chain of ImportErrors.
    pytest.fail(f"smtp_sink: {missing}", pytrace=False)


@pytest.fixture
def smtp_sink(request: pytest.FixtureRequest) -> Iterator[CaptureServer]:
    """A capture server on a free loopback port for this test, stopped after it.

    Send to ``smtp_sink.host``/``smtp_sink.port``; read ``smtp_sink.messages``. Options come
    from a ``@pytest.mark.smtp_sink(...)`` marker on the test, its class or module.
    """
    marker = request.node.get_closest_marker("smtp_sink")
    server = _started(dict(marker.kwargs) if marker is not None else {})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def smtp_sink_session() -> Iterator[CaptureServer]:
    """One capture server for the whole session: call ``reset()`` to forget what it got."""
    server = _started({})
    try:
        yield server
    finally:
        server.stop()
