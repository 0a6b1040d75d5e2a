"""The client's one deadline mechanism: absolute deadlines that every transport enforces.

``timeout`` bounds each step (a connect, a write, a whole reply); a send's ``deadline``
bounds all its steps together. :class:`Deadlines` turns both into the absolute deadline a
step passes to the transport, and names the bound that applied, so a :class:`TimeoutError`
says which one expired. Only waits that are not the transport's (a worker thread, the
caller's own body iterator) get a cancel scope, from :meth:`Deadlines.bounded`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Final

import anyio

from ._checks import check_seconds
from ._running import now

__all__ = ["Deadlines"]


class _Unbounded(contextlib.AbstractContextManager[None]):
    """What :meth:`Deadlines.send` gives without a deadline: a context manager that does
    nothing, with static methods, so that entering it makes no bound method (every send
    enters one, and a one-shot send two)."""

    __slots__ = ()

    @staticmethod
    def __enter__() -> None:
        return None

    @staticmethod
    def __exit__(*exc_info: object) -> None:
        return None


_UNBOUNDED: Final = _Unbounded()


class Deadlines:
    """Per-step ``timeout`` (seconds, ``None``: none) and the deadline of the send under way."""

    __slots__ = ("_send", "_send_seconds", "clock", "timeout")

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.clock: Callable[[], float] = now
        """The event loop's clock: the connection's own loop's while it is open."""
        self._send = math.inf
        self._send_seconds: float | None = None

    def step(self) -> float:
        """The absolute deadline of a step starting now (:meth:`named` says which bound)."""
        step = math.inf if self.timeout is None else self.clock() + self.timeout
        return self._send if self._send < step else step

    def named(self, deadline: float) -> str:
        """How to name the bound that gave ``deadline`` in an error (only then formatted)."""
        if self._send_seconds is not None and deadline == self._send:
            return f"the send's deadline of {self._send_seconds} seconds"
        return f"the timeout of {self.timeout} seconds"

    def send(self, seconds: float | None) -> contextlib.AbstractContextManager[None]:
        """Bound every step inside by an overall deadline ``seconds`` from now."""
        check_seconds("deadline", seconds)
        return _UNBOUNDED if seconds is None else self._bounded_send(seconds)

    @contextlib.contextmanager
    def _bounded_send(self, seconds: float) -> Iterator[None]:
        outer = self._send, self._send_seconds
        self._send, self._send_seconds = min(self._send, self.clock() + seconds), seconds
        try:
            yield
        finally:
            self._send, self._send_seconds = outer

    @contextlib.contextmanager
    def bounded(self, what: str, *, per_step: bool = True) -> Iterator[None]:
        """Bound a wait that is not the transport's by the step's deadline (``per_step``)
        or by the send's alone; :class:`TimeoutError` naming ``what`` when it passes."""
        deadline = self.step() if per_step else self._send
        if deadline == math.inf:
            yield
            return
        with anyio.CancelScope(deadline=deadline) as scope:
            yield
        if scope.cancelled_caught:
            raise TimeoutError(f"{what} took longer than {self.named(deadline)}")
