"""trio's socket waits, bounded by a shared watchdog instead of a cancel scope each, and the
trio transport's reads that use them."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import trio
import trio.testing

from asmtp._transport._anyio import open_anyio
from asmtp._transport._trio_waits import wait_readable, watchdog

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    with ours, theirs:
        yield ours, theirs


async def test_a_wait_past_its_deadline_times_out_and_the_socket_stays_usable(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    started = trio.current_time()
    with pytest.raises(TimeoutError, match="read timed out"):
        await wait_readable(ours, started + 0.1)
    assert 0.1 <= trio.current_time() - started < 2.0
    theirs.send(b"x")
    await wait_readable(ours, trio.current_time() + 5)
    assert ours.recv(1) == b"x"
    assert watchdog().waiting == 0


async def test_a_deadline_already_passed_times_out_without_waiting(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    with pytest.raises(TimeoutError):
        await wait_readable(pair[0], trio.current_time() - 1)


async def test_an_earlier_deadline_wakes_a_watchdog_sleeping_until_a_later_one(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    other, other_peer = socket.socketpair()
    other.setblocking(False)
    with other, other_peer, trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_readable, other, trio.current_time() + 60)
            await trio.testing.wait_all_tasks_blocked()
            started = trio.current_time()
            with pytest.raises(TimeoutError):
                await wait_readable(pair[0], started + 0.1)
            assert trio.current_time() - started < 2.0
            other_peer.send(b"x")  # the long wait ends normally
    assert watchdog().waiting == 0


async def test_finished_waits_do_not_pile_up(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    for _ in range(2000):
        theirs.send(b"x")
        await wait_readable(ours, trio.current_time() + 60)
        assert ours.recv(1) == b"x"
    dog = watchdog()
    assert dog.waiting == 0
    assert dog.entries <= 100  # not one per wait: compacted past 64 finished ones


async def test_a_socket_closed_during_the_wait_is_a_reset_not_a_timeout(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, _ = pair
    failures: list[BaseException] = []

    async def waiting() -> None:
        try:
            await wait_readable(ours, trio.current_time() + 60)
        except ConnectionResetError as exc:
            failures.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiting)
        await trio.testing.wait_all_tasks_blocked()
        trio.lowlevel.notify_closing(ours)
    assert len(failures) == 1
    assert watchdog().waiting == 0


async def test_a_cancelled_wait_is_no_longer_counted(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    with trio.move_on_after(0.05) as scope:
        await wait_readable(ours, trio.current_time() + 0.2)
    assert scope.cancelled_caught
    assert watchdog().waiting == 0
    await trio.sleep(0.3)  # past the cancelled wait's deadline: nothing is woken by it
    theirs.send(b"x")
    await wait_readable(ours, trio.current_time() + 5)
    assert ours.recv(1) == b"x"


async def test_a_read_past_its_deadline_still_takes_what_already_arrived() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        transport = await open_anyio(
            "127.0.0.1",
            listener.getsockname()[1],
            tls_context=None,
            server_hostname=None,
            source_address=None,
            deadline=trio.current_time() + 5,
        )
        server, _ = listener.accept()  # connected already: in the listen backlog
        try:
            server.sendall(b"250 ok\r\n")
            await trio.sleep(0.05)
            assert await transport.receive(trio.current_time() - 1) == b"250 ok\r\n"
            with pytest.raises(TimeoutError):
                await transport.receive(trio.current_time() - 1)
        finally:
            await transport.aclose()
            server.close()
