"""What runs the current task, asked of asyncio or trio directly.

anyio runs on asyncio or trio; its own lookups (``anyio.current_time``,
``anyio.get_current_task``) first find which, at a cost paid on every step of a send.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

__all__ = ["clock", "current_task", "now", "task_lookup"]


def now() -> float:
    """The event loop's clock, which transport deadlines use."""
    # _get_running_loop answers None outside asyncio, where get_running_loop would raise
    # (an exception per step under trio).
    loop = asyncio._get_running_loop()
    return loop.time() if loop is not None else _trio().current_time()


def clock() -> Callable[[], float]:
    """The running loop's clock itself, for a connection to read without finding the loop
    again each time (on Python 3.11 each lookup is a system call)."""
    loop = asyncio._get_running_loop()
    return loop.time if loop is not None else _trio().current_time


def current_task() -> object:
    """The running task (asyncio's ``Task`` or trio's), compared by identity."""
    loop = asyncio._get_running_loop()
    return asyncio.current_task(loop) if loop is not None else _trio().lowlevel.current_task()


def task_lookup() -> Callable[[], object]:
    """:func:`current_task` bound to the running loop, for a connection to ask without
    finding the loop again each time (as :func:`clock`)."""
    loop = asyncio._get_running_loop()
    if loop is not None:
        return functools.partial(asyncio.current_task, loop)
    lookup: Callable[[], object] = _trio().lowlevel.current_task
    return lookup


@functools.cache
def _trio() -> Any:
    import trio

    return trio
