"""The pool's connections to its one destination: reusing, opening, closing, reaping.

The decisions are made by plain bookkeeping (``_idle`` says which connection to reuse or
close, ``_backoff`` when a new one may be opened, ``_gate`` who holds one); the awaits
happen here. A connection goes back among the idle ones only when it is in step with the
server and not worn out; one the server closed while it idled is never handed out.
"""

from __future__ import annotations

import math
import time
from typing import Final

import anyio

from .._client import ClientSettings, Session, open_session, quit_session
from ..errors import SMTPException
from ..protocol import State
from ._backoff import ConnectBackoff, GaveUp, RetryPolicy, is_retryable
from ._gate import Gate, Job
from ._idle import Idle, Slot

__all__ = ["Connections"]

_QUIT_TIMEOUT: Final = 5.0


class Connections:
    """Connections to one server, at most ``max_connections`` of them in use at once."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        max_connections: int,
        max_messages: int,
        idle_timeout: float,
        retry: RetryPolicy,
    ) -> None:
        self.settings = settings
        self.retry = retry
        self.gate = Gate(max_connections)
        self.idle = Idle(idle_timeout, max_messages)
        self.backoff = ConnectBackoff(retry)
        self.live = 0
        """Connections open, idle or in use."""
        self.opening = 0
        """Connections being opened."""
        self.closing = 0
        """Connections being closed: the server may count them still."""
        self.closed = False
        self._changed: anyio.Event | None = None  # set when a send waiting to connect may go on
        self._reaper_wake: anyio.Event | None = None

    def reopen(self) -> None:
        """Usable again after :meth:`close_idle`, with a clean slate for the backoff."""
        if self.closed:
            self.closed = False
            self.backoff = ConnectBackoff(self.retry)

    def check_open(self) -> None:
        """:class:`RuntimeError` once closed."""
        if self.closed:
            raise RuntimeError(
                "the pool is closed; enter it again (`async with pool:`) to open it again"
            )

    # -- handing out connections ------------------------------------------------------

    async def get(self, job: Job) -> Slot:
        """An idle connection, or a new one when the backoff allows (:class:`ConnectBackoff`).

        A ``fresh`` job gets a new one, the oldest idle one closing first when the pool
        holds ``max_connections`` already. While the destination fails, the send waits here,
        within its own deadline, for the shared delay, the probe in flight, or a connection
        coming back. Raises :class:`GaveUp` when the pool gives up.
        """
        waited_for_close = False
        while True:
            self.check_open()
            now = time.monotonic()
            if job.fresh:
                # Never an idle connection; but one closes if a new one would pass the limit.
                slot, expired = None, self.idle.oldest() if self._full() else []
            else:
                slot, expired = self.idle.checkout(now)
            if expired:
                await self.close(expired)
            if slot is not None:
                job.reused = True
                return slot
            if self.closing and self._full() and not waited_for_close:
                # One the reaper is closing counts at the server until its QUIT is through.
                waited_for_close = True
                await self._wait_for_change(_QUIT_TIMEOUT)
                continue
            admission = self.backoff.admit(now, expires=job.expires, live=self.live)
            if admission.error is not None:
                raise GaveUp(admission.error)
            if admission.token is not None:
                session = await self._open_counted(admission.token)
                if session is not None:
                    return Slot(session)
                continue
            await self._wait_for_change(admission.wait)

    async def ready(self) -> None:
        """Make sure one connection is open and idle, opening it now if none is: any failure
        to connect, secure or log in is raised as is, neither retried nor counted."""
        self.check_open()
        slot, expired = self.idle.checkout(time.monotonic())
        await self.close(expired)
        if slot is None:
            if self._full():
                return  # as many as allowed are open or opening, all of them in use
            slot = Slot(await self._open_tracked())
            self.backoff.opened()
            self.live += 1
        await self.put_back(slot)

    async def put_back(self, slot: Slot) -> None:
        """Keep ``slot`` for reuse if it is in step and not worn out; close it otherwise."""
        if self.closed or not self.idle.checkin(slot, time.monotonic()):
            await self.close([slot])
            return
        if len(self.idle) == 1 and self._reaper_wake is not None:
            self._reaper_wake.set()  # the reaper was waiting for a first idle connection
        self._notify()  # a send waiting for the backoff can have it

    async def _open_counted(self, token: int) -> Session | None:
        """Open a connection and tell the backoff how it went; ``None`` when it failed."""
        try:
            session = await self._open_tracked()
        except Exception as exc:
            self.backoff.failed(token, exc, time.monotonic(), retryable=is_retryable(exc))
            self._notify()
            return None
        except BaseException:
            self.backoff.abandoned(token)
            self._notify()
            raise
        self.backoff.opened()
        self.live += 1
        self._notify()
        return session

    async def _open_tracked(self) -> Session:
        """:meth:`open`, counted in :attr:`opening` meanwhile."""
        self.opening += 1
        try:
            return await self.open()
        finally:
            self.opening -= 1

    def _full(self) -> bool:
        """Whether ``max_connections`` are open, being opened or being closed."""
        return self.live + self.opening + self.closing >= self.gate.limit

    async def _wait_for_change(self, timeout: float) -> None:
        """Wait up to ``timeout`` for :meth:`_notify`."""
        if self._changed is None:
            self._changed = anyio.Event()
        with anyio.move_on_after(timeout):
            await self._changed.wait()

    def _notify(self) -> None:
        """Wake the sends waiting to connect: the backoff or the idle connections changed."""
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def open(self) -> Session:
        """A new connection: connected, greeted, secured and logged in per the settings."""
        session = Session(self.settings)
        await open_session(session)
        return session

    # -- closing ----------------------------------------------------------------------

    async def close_idle(self) -> None:
        """Close every idle connection, and refuse further use (see :meth:`reopen`)."""
        self.closed = True
        self._notify()
        await self.close(self.idle.drain())

    async def reap(self) -> None:
        """Close idle connections as they pass ``idle_timeout``; runs until cancelled.

        Each wake also closes those the server closed or wrote to while they idled.
        """
        try:
            while True:
                expiry = self.idle.next_expiry()
                wait = math.inf if expiry is None else max(0.0, expiry - time.monotonic())
                self._reaper_wake = anyio.Event()
                with anyio.move_on_after(wait):
                    await self._reaper_wake.wait()
                await self.close(self.idle.sweep(time.monotonic()))
        finally:
            self._reaper_wake = None  # its event belongs to this event loop

    async def close(self, slots: list[Slot]) -> None:
        """QUIT (when in step) and close each connection, within a bounded, shielded time."""
        if not slots:
            return
        self.live -= len(slots)
        self.closing += len(slots)
        self._notify()
        try:
            for slot in slots:
                session = slot.session
                with anyio.move_on_after(_QUIT_TIMEOUT, shield=True):
                    try:
                        if session.is_connected and session.state in (State.GREETED, State.READY):
                            await session.run(quit_session, session)
                    except (OSError, SMTPException):
                        pass  # e.g. the server already closed it
                    finally:
                        await session.close()
        finally:
            self.closing -= len(slots)
            self._notify()
