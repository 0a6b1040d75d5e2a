"""Which event loop a pool belongs to.

A pool's connections, and the events its waiting sends sleep on, belong to the event loop
that made them; used from another loop they fail deep inside the loop ("Event loop is
closed", or a hang). :class:`LoopOwner` turns that into one clear error up front.
"""

from __future__ import annotations

import asyncio

__all__ = ["LoopOwner", "current_loop"]


def current_loop() -> object:
    """The running event loop: asyncio's (uvloop's) loop object, or trio's run token."""
    # _get_running_loop answers None outside asyncio, where get_running_loop would raise
    # (an exception per pool send under trio).
    loop = asyncio._get_running_loop()
    if loop is not None:
        return loop
    import trio  # anyio runs on asyncio or trio: no asyncio loop means trio's

    return trio.lowlevel.current_trio_token()


class LoopOwner:
    """The event loop a pool was opened in, until it is closed."""

    def __init__(self) -> None:
        self._loop: object | None = None

    def claim(self) -> None:
        """Belong to the running loop, or raise :class:`RuntimeError` if another owns it."""
        loop = current_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(
                "this SMTPPool is open in another event loop, and its connections belong to "
                "that loop; close it there (leave its `async with` block, or "
                "`await pool.aclose()`) before using it in this one, or open one pool per "
                "event loop (e.g. in the application's lifespan)"
            )

    def release(self) -> None:
        """The pool was closed: any loop may open it again."""
        self._loop = None
