"""The real Postfix and Dovecot for every test in this directory.

One session-scoped :func:`servers` fixture installs the packages when missing (root, Debian),
starts a private instance (``realservers.py``) and stops it at the end. Where they cannot
run (not root, no apt) the suite is skipped with the reason, unless ``CI=true``: then it
fails, since CI must run it. ``ASMTP_INTEROP_STATE=/path/state.json`` uses servers started
outside pytest (``python tests/interop/realservers.py start``) and leaves them running.
"""

from __future__ import annotations

import os
import shutil
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from interop import realservers

HERE = Path(__file__).parent
SETUP_TIMEOUT = 900.0
"""Seconds the first interop test may take: its setup may apt-get the packages."""


def _in_this_directory(item: pytest.Item) -> bool:
    return HERE in item.path.parents


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _in_this_directory(item):
            item.add_marker(pytest.mark.interop)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Give the first interop test room for the one-off install and start-up."""
    first = next((item for item in session.items if _in_this_directory(item)), None)
    if first is not None and os.environ.get("ASMTP_INTEROP_STATE") is None:
        first.add_marker(pytest.mark.timeout(SETUP_TIMEOUT))


def _cannot_run(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"interop suite must run in CI (CI=true) but cannot: {reason}", pytrace=False)
    pytest.skip(f"real servers unavailable: {reason}")


def _say(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"interop: {line}")


@pytest.fixture(scope="session")
def servers(request: pytest.FixtureRequest) -> Iterator[realservers.Servers]:
    """The running Postfix and Dovecot (see ``realservers.Servers`` for what they offer)."""
    config = request.config
    external = os.environ.get("ASMTP_INTEROP_STATE")
    if external:
        try:
            running = realservers.load(external)
        except (OSError, ValueError, realservers.StartError) as exc:
            pytest.fail(f"ASMTP_INTEROP_STATE={external}: {exc}", pytrace=False)
        down = {name: state for name, state in realservers.status(running).items() if state != "ok"}
        if down:
            pytest.fail(f"servers of {external} not answering: {down}", pytrace=False)
        yield running
        return

    try:
        began = time.monotonic()
        installed = realservers.install(log=lambda line: _say(config, line))
        if installed:
            _say(config, f"installed {' '.join(installed)} in {time.monotonic() - began:.1f} s")
        started = realservers.start(log=lambda line: _say(config, line))
    except realservers.Unavailable as exc:
        _cannot_run(str(exc))
    except realservers.StartError as exc:
        pytest.fail(f"real servers did not start: {exc}", pytrace=False)
    try:
        yield started
    finally:
        realservers.stop(started, log=lambda line: _say(config, line))
        if request.session.testsfailed:
            _say(config, f"logs and Maildirs kept in {started.state_dir}")
        else:
            shutil.rmtree(started.state_dir, ignore_errors=True)


@pytest.fixture
def ca_context(servers: realservers.Servers) -> ssl.SSLContext:
    """A client context trusting only the servers' throwaway CA."""
    return servers.client_context()
