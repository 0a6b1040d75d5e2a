"""The pool backs off from a failing destination as a whole, as an MTA's queue manager does.

A server answering ``421`` at the greeting once saw every queued send open connections of
its own and back off alone: 1,000 sends made 3,000 connections in under three seconds. Now a
connection-level failure stops new connections until one shared, growing delay has passed,
one probe goes out at a time, queued sends wait for it (within their own deadline), and when
the pool gives up each send gets the server's own error. The servers here count the
connections they accept.
"""

from __future__ import annotations

import time
from typing import Any, Final, cast

import anyio
import pytest
from hostile._kit import DelayedSMTPServer

import asmtp
from asmtp import RetryPolicy, SMTPPool
from pool._kit import STEP_TIMEOUT, attempts_of

pytestmark = pytest.mark.anyio

SENDER: Final = "sender@pool.test"
MESSAGE: Final = b"Subject: backoff\r\n\r\nhello\r\n"
FAST: Final = RetryPolicy(attempts=3, base_delay=0.05, max_delay=0.2)


def make_pool(server: DelayedSMTPServer, retry: RetryPolicy, **options: Any) -> SMTPPool:
    return SMTPPool(
        "127.0.0.1", server.port, tls="none", timeout=STEP_TIMEOUT, retry=retry, **options
    )


async def send_all(pool: SMTPPool, count: int) -> list[asmtp.SendResult | Exception]:
    """``count`` concurrent sends; each one's result or exception, in order."""
    results: list[asmtp.SendResult | Exception] = [Exception("not run")] * count

    async def send(n: int) -> None:
        try:
            results[n] = await pool.sendmail(SENDER, [f"r{n}@pool.test"], MESSAGE)
        except Exception as exc:
            results[n] = exc

    async with anyio.create_task_group() as tg:
        for n in range(count):
            tg.start_soon(send, n)
    return results


async def test_1000_sends_to_a_server_refusing_every_greeting_open_a_few_connections() -> None:
    max_connections = 10
    with DelayedSMTPServer(delay=0.0, refused_greetings=None) as server:
        started = time.monotonic()
        with anyio.fail_after(20):
            async with make_pool(server, FAST, max_connections=max_connections) as pool:
                results = await send_all(pool, 1000)
        elapsed = time.monotonic() - started
        # The connections in flight when the first 421 came, then one probe per retry.
        assert server.connection_count <= max_connections + FAST.attempts - 1
    errors = [result for result in results if isinstance(result, asmtp.SMTPConnectError)]
    assert len(errors) == len(results), [r for r in results if r not in errors][:3]
    assert {(error.smtp_code, error.smtp_error) for error in errors} == {
        (421, b"4.7.0 too many connections, try again later")
    }
    # Every send waited through the pool's three tries (those queued from the start too).
    assert {attempts_of(error) for error in errors[:max_connections]} == {FAST.attempts}
    assert all(1 <= cast(int, attempts_of(error)) <= FAST.attempts for error in errors)
    assert len({id(error) for error in errors}) == len(errors)  # each send its own
    assert elapsed < 5


async def test_a_server_that_comes_back_gets_the_queued_sends_after_one_shared_delay() -> None:
    """The first wave of connections is refused, then one probe: no other connection is
    opened before the shared delay, and once a probe succeeds every queued send goes out."""
    max_connections, policy = 5, RetryPolicy(attempts=3, base_delay=0.2, max_delay=0.4)
    refused = max_connections + 1  # the first wave, then the first probe
    with DelayedSMTPServer(delay=0.0, refused_greetings=refused) as server:
        with anyio.fail_after(20):
            async with make_pool(server, policy, max_connections=max_connections) as pool:
                results = await send_all(pool, 60)
        accepted_at = list(server.accepted_at)
        messages = server.messages
    assert all(isinstance(result, asmtp.SendResult) for result in results), results[:3]
    assert len(messages) == 60
    assert len(accepted_at) <= refused + max_connections
    wave_refused = accepted_at[0]
    first_probe, second_probe = accepted_at[max_connections], accepted_at[max_connections + 1]
    # Jitter keeps each delay within [0.5, 1.5) of its nominal value.
    assert first_probe - wave_refused >= 0.5 * policy.base_delay - 0.01
    assert second_probe - first_probe >= 0.5 * 2 * policy.base_delay - 0.01


async def test_a_queued_send_waits_no_longer_than_its_own_deadline() -> None:
    """A send whose deadline comes before the next try fails at once, with the real error."""
    slow = RetryPolicy(attempts=3, base_delay=30.0, max_delay=30.0, jitter=False)
    with DelayedSMTPServer(delay=0.0, refused_greetings=None) as server:
        async with make_pool(server, slow) as pool:
            started = time.monotonic()
            with pytest.raises(asmtp.SMTPConnectError) as caught:
                await pool.sendmail(SENDER, ["r@pool.test"], MESSAGE, deadline=1.0)
            elapsed = time.monotonic() - started
        assert server.connection_count == 1
    assert caught.value.smtp_code == 421
    assert attempts_of(caught.value) == 1
    assert elapsed < 1.0


async def test_after_giving_up_sends_fail_fast_until_the_delay_passes_then_one_probe() -> None:
    policy = RetryPolicy(attempts=3, base_delay=0.05, max_delay=0.1, jitter=False)
    with DelayedSMTPServer(delay=0.0, refused_greetings=policy.attempts) as server:
        async with make_pool(server, policy) as pool:
            with pytest.raises(asmtp.SMTPConnectError) as first:
                await pool.sendmail(SENDER, ["r@pool.test"], MESSAGE)
            assert attempts_of(first.value) == policy.attempts
            with pytest.raises(asmtp.SMTPConnectError) as fast:
                await pool.sendmail(SENDER, ["r@pool.test"], MESSAGE)
            assert attempts_of(fast.value) == 0  # no connection was tried for it
            assert fast.value is not first.value and fast.value.smtp_code == 421
            assert server.connection_count == policy.attempts
            await anyio.sleep(policy.max_delay + 0.05)
            result = await pool.sendmail(SENDER, ["r@pool.test"], MESSAGE)
            assert result == {} and result.attempts == 1
            assert server.connection_count == policy.attempts + 1
            again = await pool.sendmail(SENDER, ["r@pool.test"], MESSAGE)  # reset: reused
            assert again == {}
        assert server.connection_count == policy.attempts + 1
        assert len(server.messages) == 2
