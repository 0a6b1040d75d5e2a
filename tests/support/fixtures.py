"""Pytest fixtures for the test servers; load with ``pytest_plugins = ["support.fixtures"]``.

Every server a fixture starts is stopped at teardown; scripted servers are also
checked there, so a script the client did not follow fails the test. A script plays over
real sockets (``scripted_server_factory``) or in memory (``memory_server_factory``): both
take the same steps and options and give a server with ``host``, ``port`` and
``connector`` to pass to the client, so a test switches by changing its fixture.
``script_server_factory`` runs a test on both.
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeAlias, TypeVar

import pytest
import trustme

from .aiosmtpd_server import RecordingHandler, ThreadedSMTPServer
from .memory import MemoryServer
from .redis_server import RedisServer, RedisUnavailable, ensure_installed
from .scripted import ScriptedServer, Step

SMTPDServerFactory: TypeAlias = Callable[..., ThreadedSMTPServer]
"""``(handler=None, **ThreadedSMTPServer options) -> started server``."""
ScriptedServerFactory: TypeAlias = Callable[..., ScriptedServer]
"""``(steps, **ScriptedServer options) -> started server``."""
MemoryServerFactory: TypeAlias = Callable[..., MemoryServer]
"""``(steps, **ScriptedServer options) -> MemoryServer``."""
ScriptServerFactory: TypeAlias = Callable[..., ScriptedServer | MemoryServer]
"""Either of the two above."""

_Server = TypeVar("_Server", ScriptedServer, MemoryServer)


class TLSContexts(NamedTuple):
    """A server context holding a certificate for 127.0.0.1 and localhost, and a
    client context that trusts only the CA that issued it."""

    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="session")
def trustme_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_contexts(trustme_ca: trustme.CA) -> TLSContexts:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme_ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    client = ssl.create_default_context()
    trustme_ca.configure_trust(client)
    return TLSContexts(server, client)


@pytest.fixture
def unix_socket_path() -> Iterator[Path]:
    """A fresh socket path in a short private directory (sun_path holds ~100 bytes)."""
    directory = tempfile.mkdtemp(prefix="asmtp-")
    try:
        yield Path(directory) / "s.sock"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def smtpd_server_factory() -> Iterator[SMTPDServerFactory]:
    """Start ThreadedSMTPServers with any options; all are stopped at teardown."""
    servers: list[ThreadedSMTPServer] = []

    def make(handler: RecordingHandler | None = None, **options: Any) -> ThreadedSMTPServer:
        server = ThreadedSMTPServer(handler, **options)
        servers.append(server)
        return server.start()

    yield make
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def smtpd_server(smtpd_server_factory: SMTPDServerFactory) -> ThreadedSMTPServer:
    """A started aiosmtpd SMTP server on 127.0.0.1 with a default RecordingHandler."""
    return smtpd_server_factory(RecordingHandler())


def _checked_at_teardown(
    kind: Callable[..., _Server],
) -> Iterator[Callable[..., _Server]]:
    """Start ``kind`` servers; at teardown check each, stop it, and fail the test with the
    failed steps and received bytes of every script the client did not follow."""
    servers: list[_Server] = []

    def make(steps: Sequence[Step] = (), **options: Any) -> _Server:
        server = kind(steps, **options)
        servers.append(server)
        return server.start()

    yield make
    failures = [failure for server in servers if (failure := _check_and_stop(server))]
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


@pytest.fixture
def scripted_server_factory() -> Iterator[ScriptedServerFactory]:
    """Start ScriptedServers (sockets); at teardown each is checked, then stopped."""
    yield from _checked_at_teardown(ScriptedServer)


@pytest.fixture
def memory_server_factory() -> Iterator[MemoryServerFactory]:
    """Make MemoryServers (the same scripts, in memory); at teardown each is checked."""
    yield from _checked_at_teardown(MemoryServer)


@pytest.fixture(params=["memory", "sockets"])
def script_server_factory(request: pytest.FixtureRequest) -> Iterator[ScriptServerFactory]:
    """A test run twice: its scripts played in memory, then over real sockets."""
    if request.param == "memory":
        yield from _checked_at_teardown(MemoryServer)
    else:
        yield from _checked_at_teardown(ScriptedServer)


def _check_and_stop(server: ScriptedServer | MemoryServer) -> str | None:
    try:
        server.check()
    except AssertionError as exc:
        return str(exc)
    finally:
        server.stop()
    return None


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private Redis (installed if missing); the test fails rather than skips in CI."""
    try:
        ensure_installed()
        server = RedisServer(tmp_path_factory.mktemp("redis"))
        server.start()
    except RedisUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"distributed tests must run in CI (CI=true) but cannot: {exc}")
        pytest.skip(f"no Redis: {exc}")
    try:
        yield server
    finally:
        server.stop()
