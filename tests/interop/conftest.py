"""The real daemons for every test in this directory, each started once per session.

:func:`servers` installs Postfix and Dovecot when missing (root, Debian), starts a private
instance (``realservers.py``) and stops it at the end; :func:`exim` and :func:`opensmtpd`
do the same with privately unpacked packages (``_exim.py``, ``_opensmtpd.py``), and
:func:`oauth` starts the OAuth stack (``_oauth.py``) beside Postfix, and :func:`proxies`
SOCKS and HTTP proxies in front of it (``_proxies.py``). Where they cannot run
(not root, no apt) the tests are skipped with the reason, unless ``CI=true``: then they
fail, since CI must run them. ``ASMTP_INTEROP_STATE=/path/state.json`` uses a Postfix and
Dovecot started outside pytest (``python tests/interop/realservers.py start``) and leaves
them running.
"""

from __future__ import annotations

import os
import shutil
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn, Protocol, TypeVar

import pytest

from interop import _exim, _oauth, _opendkim, _opensmtpd, _proxies, realservers
from interop._daemon import StartError, Unavailable

HERE = Path(__file__).parent
TEST_TIMEOUT = 60.0
"""Seconds each test's own body may take; the daemons' session set-up is not counted."""

Log = Callable[[str], None]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "server(name): the real server an interop test runs against")
    config.addinivalue_line("markers", "feature(name): what an interop test proves (docs matrix)")


def _in_this_directory(item: pytest.Item) -> bool:
    return HERE in item.path.parents


def _backend(item: pytest.Item) -> str:
    callspec = getattr(item, "callspec", None)
    backend = callspec.params.get("anyio_backend") if callspec is not None else None
    if backend is None:
        return "sync"
    name, options = backend
    return "uvloop" if options.get("use_uvloop") else str(name)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not _in_this_directory(item):
            continue
        item.add_marker(pytest.mark.interop)
        # The one-off install and start-up happen in session fixtures, which this per-test
        # timeout leaves out; their own budgets bound them (see _debs and each start()).
        item.add_marker(pytest.mark.timeout(TEST_TIMEOUT, func_only=True))
        # What docs/interop.md's matrix is built from (tests/interop/matrix.py).
        server, feature = item.get_closest_marker("server"), item.get_closest_marker("feature")
        name = getattr(item, "originalname", item.name)
        item.user_properties += [
            ("server", server.args[0] if server else item.path.stem),
            ("feature", feature.args[0] if feature else name),
            ("backend", _backend(item)),
        ]


def _cannot_run(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"interop suite must run in CI (CI=true) but cannot: {reason}", pytrace=False)
    pytest.skip(f"real servers unavailable: {reason}")


def _say(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"interop: {line}")


class _Started(Protocol):
    @property
    def state_dir(self) -> str: ...


S = TypeVar("S", bound=_Started)


def _running(
    request: pytest.FixtureRequest,
    what: str,
    start: Callable[[Log], S],
    stop: Callable[[S, Log], None],
    *,
    keep_dir: bool = False,
) -> Iterator[S]:
    """Start a daemon for the session; skip (or fail in CI) when it cannot run here.

    Its directory is removed afterwards unless a test failed (or ``keep_dir``).
    """
    config = request.config

    def log(line: str) -> None:
        _say(config, line)

    try:
        started = start(log)
    except Unavailable as exc:
        _cannot_run(str(exc))
    except StartError as exc:
        pytest.fail(f"{what} did not start: {exc}", pytrace=False)
    try:
        yield started
    finally:
        stop(started, log)
        if request.session.testsfailed:
            _say(config, f"{what}: logs and Maildirs kept in {started.state_dir}")
        elif not keep_dir:
            shutil.rmtree(started.state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def servers(request: pytest.FixtureRequest) -> Iterator[realservers.Servers]:
    """The running Postfix and Dovecot (see ``realservers.Servers`` for what they offer)."""
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

    def start(log: Log) -> realservers.Servers:
        began = time.monotonic()
        installed = realservers.install(log=log)
        if installed:
            log(f"installed {' '.join(installed)} in {time.monotonic() - began:.1f} s")
        return realservers.start(log=log)

    yield from _running(request, "Postfix and Dovecot", start, realservers.stop)


@pytest.fixture
def ca_context(servers: realservers.Servers) -> ssl.SSLContext:
    """A client context trusting only the servers' throwaway CA."""
    return servers.client_context()


@pytest.fixture(scope="session")
def exim(request: pytest.FixtureRequest) -> Iterator[_exim.Exim]:
    """A running Exim 4 (see ``_exim.Exim``), unpacked and started on first use."""
    yield from _running(request, "Exim", _exim.start, _exim.stop)


@pytest.fixture(scope="session")
def opensmtpd(request: pytest.FixtureRequest) -> Iterator[_opensmtpd.OpenSMTPD]:
    """A running OpenSMTPD (see ``_opensmtpd.OpenSMTPD``), unpacked and started on first use."""
    yield from _running(request, "OpenSMTPD", _opensmtpd.start, _opensmtpd.stop)


@pytest.fixture(scope="session")
def oauth(
    request: pytest.FixtureRequest, servers: realservers.Servers
) -> Iterator[_oauth.OAuthStack]:
    """The token endpoint and the Dovecot behind Postfix's ``oauth_submission_port``.

    Its files live in the Postfix instance's directory, which that fixture cleans up.
    """

    def start(log: Log) -> _oauth.OAuthStack:
        return _oauth.start(servers.oauth_sasl_socket, log=log)

    yield from _running(request, "the OAuth stack", start, _oauth.stop, keep_dir=True)


@pytest.fixture(scope="session")
def proxies(
    request: pytest.FixtureRequest, servers: realservers.Servers
) -> Iterator[_proxies.Proxies]:
    """microsocks, Dante and tinyproxy in front of Postfix (see ``_proxies.Proxies``)."""

    def start(log: Log) -> _proxies.Proxies:
        return _proxies.start(servers, log=log)

    yield from _running(request, "the proxies", start, _proxies.stop)


@pytest.fixture(scope="session")
def opendkim(
    request: pytest.FixtureRequest, servers: realservers.Servers
) -> Iterator[_opendkim.OpenDKIM]:
    """OpenDKIM verifying what Postfix's ``dkim_port`` receives (see ``_opendkim.py``).

    Its files live in the Postfix instance's directory, which that fixture cleans up.
    """

    def start(log: Log) -> _opendkim.OpenDKIM:
        return _opendkim.start(servers.dkim_milter_socket, servers.domain, log=log)

    yield from _running(request, "OpenDKIM", start, _opendkim.stop, keep_dir=True)
