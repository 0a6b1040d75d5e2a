"""Waiting for a readable socket under trio, bounded by a deadline without a cancel scope.

Entering and leaving a trio cancel scope around every wait for a reply was a large share
of the client's cost per message with many connections open. So the waits of one trio run
share a watchdog instead: a system task that keeps their deadlines in a heap, sleeps until
the earliest, and wakes a wait still parked past its deadline as closing its socket would
(:func:`trio.lowlevel.notify_closing`). That wait raises :class:`TimeoutError`. A read
that timed out leaves the conversation out of step, so the client closes the connection
anyway.
"""

from __future__ import annotations

import heapq
import itertools
import math
import socket
from typing import Final

import trio

__all__ = ["wait_readable", "watchdog"]

# Finished waits stay in the heap until their deadline or a compaction; past this many
# more entries than twice the waits in progress, the heap is rebuilt without them.
_SLACK: Final = 64


class _Wait:
    __slots__ = ("done", "expired", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.done = False
        self.expired = False


class _Watchdog:
    """The deadlines of one trio run's socket waits; :meth:`run` is its system task."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Wait]] = []
        self._order = itertools.count()  # ties on a deadline never compare two waits
        self._waiting = 0
        self._sleep: trio.CancelScope | None = None

    def watch(self, deadline: float, wait: _Wait) -> None:
        heapq.heappush(self._heap, (deadline, next(self._order), wait))
        self._waiting += 1
        if self._sleep is not None and deadline < self._sleep.deadline:
            self._sleep.deadline = deadline
        if len(self._heap) > 2 * self._waiting + _SLACK:
            self._heap = [entry for entry in self._heap if not entry[2].done]
            heapq.heapify(self._heap)

    def finished(self, wait: _Wait) -> None:
        wait.done = True
        self._waiting -= 1

    @property
    def waiting(self) -> int:
        """Waits in progress."""
        return self._waiting

    @property
    def entries(self) -> int:
        """Deadlines held, finished waits' included (bounded by the compaction)."""
        return len(self._heap)

    async def run(self) -> None:
        while True:
            earliest = self._heap[0][0] if self._heap else math.inf
            with trio.CancelScope(deadline=earliest) as self._sleep:
                await trio.sleep_forever()
            self._sleep = None
            heap, now = self._heap, trio.current_time()
            while heap and heap[0][0] <= now:
                wait = heapq.heappop(heap)[2]
                # A wait whose socket was closed meanwhile is woken already.
                if not wait.done and wait.sock.fileno() != -1:
                    wait.expired = True
                    trio.lowlevel.notify_closing(wait.sock)


_WATCHDOG: trio.lowlevel.RunVar[_Watchdog] = trio.lowlevel.RunVar("asmtp_socket_deadlines")


def watchdog() -> _Watchdog:
    """This trio run's watchdog, started on first use."""
    try:
        return _WATCHDOG.get()
    except LookupError:
        found = _Watchdog()
        _WATCHDOG.set(found)
        trio.lowlevel.spawn_system_task(found.run, name="asmtp socket deadlines")
        return found


async def wait_readable(sock: socket.socket, deadline: float) -> None:
    """Wait until ``sock`` is readable; :class:`TimeoutError` once ``deadline`` (trio's
    clock) passed, :class:`ConnectionResetError` if the socket is closed meanwhile."""
    if deadline == math.inf:
        try:
            await trio.lowlevel.wait_readable(sock)
        except trio.ClosedResourceError as exc:
            raise _closed() from exc
        return
    if deadline <= trio.current_time():
        raise TimeoutError("read timed out")
    dog = watchdog()
    wait = _Wait(sock)
    dog.watch(deadline, wait)
    try:
        await trio.lowlevel.wait_readable(sock)
    except trio.ClosedResourceError as exc:
        if wait.expired:
            raise TimeoutError("read timed out") from None
        raise _closed() from exc
    finally:
        dog.finished(wait)


def _closed() -> ConnectionResetError:
    return ConnectionResetError("the connection was closed while receiving")
