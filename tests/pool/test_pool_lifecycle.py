"""The pool's lifecycle: opened, closed, opened again; one event loop at a time; a check at
start-up; what web frameworks do with it (a module-level pool, one test client after
another)."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import asmtp
from asmtp import RetryPolicy, SMTPPool
from pool._kit import (
    PASSWORD,
    STEP_TIMEOUT,
    USER,
    Authenticator,
    body,
    message_ids,
    verbs,
)
from support.aiosmtpd_server import RecordingHandler, ThreadedSMTPServer

if TYPE_CHECKING:
    from support.fixtures import SMTPDServerFactory, TLSContexts

SENDER = "sender@pool.test"
PATIENT = RetryPolicy(attempts=3, base_delay=20.0, max_delay=20.0, jitter=False)
"""Retry delays no test waits out: a check that failed quickly was not retried."""
Backend = tuple[str, dict[str, Any]]


def make_pool(port: int, **options: Any) -> SMTPPool:
    return SMTPPool("127.0.0.1", port, tls="none", timeout=STEP_TIMEOUT, **options)


@pytest.fixture
def server(smtpd_server_factory: SMTPDServerFactory) -> ThreadedSMTPServer:
    return smtpd_server_factory(RecordingHandler())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens here once closed


# -- opened, closed, opened again -------------------------------------------------------


@pytest.mark.anyio
async def test_a_closed_pool_can_be_entered_again(server: ThreadedSMTPServer) -> None:
    pool = make_pool(server.port)
    async with pool:
        assert (await pool.sendmail(SENDER, "r@pool.test", body(1))) == {}
    with pytest.raises(RuntimeError, match="the pool is closed; enter it again"):
        await pool.sendmail(SENDER, "r@pool.test", body(2))
    async with pool:
        assert (await pool.sendmail(SENDER, "r@pool.test", body(3))) == {}
    assert message_ids(server.handler.deliveries) == {"1@pool.test": 1, "3@pool.test": 1}
    assert verbs(server.handler.commands).count("QUIT") == 2


@pytest.mark.anyio
async def test_entering_a_pool_that_is_already_open_is_refused(server: ThreadedSMTPServer) -> None:
    async with make_pool(server.port) as pool:
        with pytest.raises(RuntimeError, match="already open"):
            await pool.__aenter__()
        assert (await pool.sendmail(SENDER, "r@pool.test", body(1))) == {}


@pytest.mark.anyio
async def test_an_exception_inside_the_pool_block_reaches_the_caller_unwrapped(
    server: ThreadedSMTPServer,
) -> None:
    """The background task's task group must not turn the caller's error into a group."""
    with pytest.raises(KeyError) as caught:
        async with make_pool(server.port) as pool:
            await pool.sendmail(SENDER, "r@pool.test", body(1))
            raise KeyError("the caller's own")
    assert type(caught.value) is KeyError
    with anyio.move_on_after(0.1) as scope:
        async with make_pool(server.port):
            await anyio.sleep(5)
    assert scope.cancelled_caught  # a cancellation ends the block as promptly


def test_a_pool_is_opened_again_in_the_next_event_loop(
    anyio_backend: Backend, server: ThreadedSMTPServer
) -> None:
    """One pool object, created outside any loop, opened in one ``anyio.run`` after another
    (each web-app test client runs its own loop)."""
    pool = make_pool(server.port)
    name, options = anyio_backend

    async def use(n: int) -> asmtp.SendResult:
        async with pool:
            return await pool.sendmail(SENDER, "r@pool.test", body(n))

    assert [anyio.run(use, n, backend=name, backend_options=options) for n in (1, 2)] == [{}, {}]
    assert server.connection_count == 2


def test_a_pool_open_in_another_event_loop_raises_a_clear_error(
    anyio_backend: Backend, server: ThreadedSMTPServer
) -> None:
    """Its connections belong to the loop that opened them: saying so beats "Event loop is
    closed" from deep inside it. Once closed there, any loop may open it."""
    pool = make_pool(server.port)
    name, options = anyio_backend
    with anyio.from_thread.start_blocking_portal(name, options) as portal:
        assert portal.call(pool.sendmail, SENDER, "r@pool.test", body(1)) == {}

        async def use_here() -> None:
            await pool.sendmail(SENDER, "r@pool.test", body(2))

        for attempt in (use_here, pool.aclose, pool.connect, pool.__aenter__):
            with pytest.raises(RuntimeError, match="open in another event loop") as caught:
                anyio.run(attempt, backend=name, backend_options=options)
            assert "aclose()" in str(caught.value) and "one pool per event loop" in str(
                caught.value
            )
        portal.call(pool.aclose)

    async def reopen() -> asmtp.SendResult:
        async with pool:
            return await pool.sendmail(SENDER, "r@pool.test", body(3))

    assert anyio.run(reopen, backend=name, backend_options=options) == {}
    assert message_ids(server.handler.deliveries) == {"1@pool.test": 1, "3@pool.test": 1}


# -- connect(): a check at start-up ------------------------------------------------------


@pytest.mark.anyio
async def test_connect_opens_the_connection_the_first_send_uses(server: ThreadedSMTPServer) -> None:
    async with make_pool(server.port) as pool:
        await pool.connect()
        assert server.connection_count == 1
        await pool.connect()  # an idle connection is ready: nothing more to open
        result = await pool.sendmail(SENDER, "r@pool.test", body(1))
    assert result == {} and result.attempts == 1
    assert server.connection_count == 1
    assert verbs(server.handler.commands) == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]


@pytest.mark.anyio
async def test_connect_fails_fast_on_a_port_nobody_listens_on() -> None:
    started = time.monotonic()
    async with make_pool(free_port(), retry=PATIENT) as pool:
        with pytest.raises(OSError):
            await pool.connect()
    assert time.monotonic() - started < PATIENT.base_delay / 2  # not retried


@pytest.mark.anyio
async def test_connect_fails_fast_on_a_wrong_password(
    smtpd_server_factory: SMTPDServerFactory, tls_contexts: TLSContexts
) -> None:
    authenticator = Authenticator()
    server = smtpd_server_factory(
        RecordingHandler(),
        tls_context=tls_contexts.server,
        auth_require_tls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    settings: dict[str, Any] = {"tls": "starttls", "context": tls_contexts.client}
    async with SMTPPool(
        "127.0.0.1", server.port, username=USER, password="wrong", retry=PATIENT, **settings
    ) as pool:
        with pytest.raises(asmtp.SMTPAuthenticationError):
            await pool.connect()
    assert authenticator.attempts and not any(ok for _, _, ok in authenticator.attempts)
    async with SMTPPool(
        "127.0.0.1", server.port, username=USER, password=PASSWORD, **settings
    ) as pool:
        await pool.connect()
        assert (await pool.sendmail(SENDER, "r@pool.test", body(1))).attempts == 1
    assert server.connection_count == 2


# -- in a web app --------------------------------------------------------------------------


def web_app(pool: SMTPPool, *, lifespan: bool) -> Starlette:
    """An app whose one endpoint sends through ``pool``, made at import time as apps do."""

    async def notify(request: Request) -> JSONResponse:
        result = await pool.sendmail(SENDER, "r@pool.test", body(int(request.query_params["n"])))
        return JSONResponse({"attempts": result.attempts})

    @asynccontextmanager
    async def open_pool(app: Starlette) -> AsyncIterator[None]:
        async with pool:
            await pool.connect()
            yield

    routes = [Route("/notify", notify, methods=["POST"])]
    return Starlette(routes=routes, lifespan=open_pool if lifespan else None)


def test_a_module_level_pool_serves_one_test_client_after_another(
    server: ThreadedSMTPServer,
) -> None:
    """Each TestClient runs the app, and its lifespan, in an event loop of its own."""
    app = web_app(make_pool(server.port), lifespan=True)
    for n in range(3):
        with TestClient(app) as client:
            assert client.post("/notify", params={"n": n}).json() == {"attempts": 1}
    assert message_ids(server.handler.deliveries) == {f"{n}@pool.test": 1 for n in range(3)}
    assert server.connection_count == 3
    assert verbs(server.handler.commands).count("QUIT") == 3


def test_a_pool_outside_the_lifespan_says_what_to_do_in_the_second_test_client(
    server: ThreadedSMTPServer,
) -> None:
    """Without the lifespan, the pool stays in the first client's event loop."""
    pool = make_pool(server.port)
    app = web_app(pool, lifespan=False)
    with TestClient(app) as first:
        assert first.post("/notify", params={"n": 1}).json() == {"attempts": 1}
        with TestClient(app) as second, pytest.raises(RuntimeError, match="lifespan"):
            second.post("/notify", params={"n": 2})
        first.portal.call(pool.aclose)  # where its connection can still be closed
