"""A stream of sends: many messages in, one :class:`~asmtp.SendOutcome` per message out.

:class:`SendStream` reads the caller's messages lazily, keeps at most ``window`` of them
between the input and the caller (in flight, or done and not yet taken), and yields
``(key, outcome)`` as each message completes, in completion order. Per-message failures
are outcomes, never exceptions, so a campaign can record every row the same way.

What happens when things stop early is the contract a journal relies on:

- the consumer leaves (cancelled, ``break``, an exception): no further message is read;
  those in flight get ``grace`` seconds to finish, then are cancelled, and each lands in
  :attr:`SendStream.unreported` with what is known of it (``accepted=None`` when it may
  have reached the server);
- the input raises: the messages in flight are still yielded, then the stream raises the
  input's exception.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import replace
from types import TracebackType
from typing import TypeVar

import anyio
from anyio.abc import TaskGroup

from .._client import Outgoing
from .._results import SendOutcome
from ..errors import SMTPRecipientsRefused, SMTPResponseException, SMTPTransactionInterrupted
from ._gate import Tracker

__all__ = ["SendFunction", "SendStream", "failure_outcome"]

K = TypeVar("K")

SendFunction = Callable[[Outgoing, "Callable[[], object] | None", Tracker], Awaitable[SendOutcome]]
"""Sends one message with its ``on_start`` hook, reporting its attempts to the tracker."""


def failure_outcome(exc: Exception) -> SendOutcome:
    """The outcome of a send that raised ``exc``: the exception's own when it has one.

    Refusals become ``accepted=False`` with what the server said: the refused dict for
    refused recipients, ``reply`` for a refused sender, DATA or greeting. ``attempts``
    is the pool's count on the exception.
    """
    attempts = vars(exc).get("attempts", 1)
    outcome = getattr(exc, "outcome", None)
    if isinstance(outcome, SendOutcome):
        return replace(outcome, attempts=attempts, error=exc)
    if isinstance(exc, SMTPRecipientsRefused):
        return SendOutcome(False, refused=dict(exc.recipients), attempts=attempts, error=exc)
    if isinstance(exc, SMTPResponseException):
        error = exc.smtp_error
        text = error if isinstance(error, bytes) else str(error).encode("utf-8", "replace")
        return SendOutcome(False, reply=(exc.smtp_code, text), attempts=attempts, error=exc)
    return SendOutcome(False, attempts=attempts, error=exc)


class SendStream(AsyncIterator[tuple[K, SendOutcome]]):
    """``(key, outcome)`` for each message, as it completes; see :meth:`SMTPPool.send_each`.

    Use it as ``async with pool.send_each(messages) as results: async for key, outcome in
    results: ...``. ``len(results)`` is how many outcomes were yielded so far; ``taken``,
    ``accepted``, ``failed`` and ``unknown`` count the rest of the progress.
    """

    def __init__(
        self,
        send: SendFunction,
        messages: Iterable[tuple[K, Outgoing]] | AsyncIterable[tuple[K, Outgoing]],
        *,
        window: int,
        on_start: Callable[[K], object] | None,
        grace: float,
        check: Callable[[], None] = lambda: None,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if grace < 0:
            raise ValueError(f"grace must be >= 0, got {grace}")
        self._send = send
        self._check = check  # raises when the sends cannot start (a closed pool, say)
        self._messages = messages
        self._on_start = on_start
        self._grace = grace
        self._window = window
        self._task_group: TaskGroup | None = None
        self._sends: set[anyio.CancelScope] = set()
        self._pending = 0  # messages read whose outcome is not known yet
        self._input_done = False
        self._input_error: BaseException | None = None
        self._stopped = False
        self._used = False
        self.taken = 0
        """Messages read from the input so far."""
        self.accepted = 0
        """Outcomes yielded with ``accepted`` True."""
        self.failed = 0
        """Outcomes yielded with ``accepted`` False (safe to send again, or refused)."""
        self.unknown = 0
        """Outcomes yielded with ``accepted`` None (may have been delivered)."""
        self.unreported: list[tuple[K, SendOutcome]] = []
        """After the consumer left early: the outcomes it did not take, in flight ones too."""

    def __len__(self) -> int:
        return self.accepted + self.failed + self.unknown

    @property
    def in_flight(self) -> int:
        """Messages read whose outcome is not known yet."""
        return self._pending

    def __repr__(self) -> str:
        return (
            f"<SendStream taken={self.taken} accepted={self.accepted} failed={self.failed} "
            f"unknown={self.unknown} in_flight={self.in_flight}>"
        )

    # -- the consumer's side ----------------------------------------------------------

    async def __aenter__(self) -> SendStream[K]:
        if self._used:
            raise RuntimeError("a SendStream runs once; call send_each() again for more")
        self._check()
        self._used = True
        # Made here, in the event loop: the stream object may be made outside one.
        self._room = anyio.Semaphore(self._window)
        self._sender, self._receiver = anyio.create_memory_object_stream[tuple[K, SendOutcome]](
            self._window
        )
        self._feeding = anyio.CancelScope()
        self._settled = anyio.Event()  # the input is done and every message reported
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._feed)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task_group = self._task_group
        assert task_group is not None  # noqa: S101 - __aenter__ made it
        try:
            await self._stop()
        finally:
            self._task_group = None
            # Every task is ending; the consumer's own exception (the input's error, a
            # cancellation) must reach it as it is, not wrapped in an exception group.
            try:
                await task_group.__aexit__(None, None, None)
            finally:
                self._sender.close()
                self._receiver.close()

    def __aiter__(self) -> SendStream[K]:
        return self

    async def __anext__(self) -> tuple[K, SendOutcome]:
        if self._task_group is None:
            raise RuntimeError("use the stream inside `async with pool.send_each(...) as results`")
        try:
            key, outcome = await self._receiver.receive()
        except anyio.EndOfStream:
            error, self._input_error = self._input_error, None
            if error is not None:
                raise error from None
            raise StopAsyncIteration from None
        self._room.release()
        if outcome.accepted:
            self.accepted += 1
        elif outcome.accepted is None:
            self.unknown += 1
        else:
            self.failed += 1
        return key, outcome

    async def _stop(self) -> None:
        """The consumer left: read no more; let the sends in flight finish, then cancel them."""
        self._stopped = True
        self._feeding.cancel()
        for _ in range(self._receiver.statistics().current_buffer_used):
            self.unreported.append(self._receiver.receive_nowait())  # done, never taken
        with anyio.CancelScope(shield=True), anyio.move_on_after(self._grace):
            await self._settled.wait()
        for scope in self._sends:
            scope.cancel()

    # -- reading the input and sending --------------------------------------------------

    async def _feed(self) -> None:
        try:
            with self._feeding:
                try:
                    await self._read_input()
                except Exception as exc:  # the input failed: what is in flight still reports
                    self._input_error = exc
        finally:  # also when the consumer's cancellation reached this task
            self._input_done = True
            self._settle()

    async def _read_input(self) -> None:
        next_pair = _reader(self._messages)
        while not self._stopped:
            await self._room.acquire()  # read a message only once there is room for it
            try:
                key, item = _checked(await next_pair())
            except StopAsyncIteration:
                return
            self.taken += 1
            self._pending += 1
            assert self._task_group is not None  # noqa: S101 - open while feeding
            self._task_group.start_soon(self._send_one, key, item)

    async def _send_one(self, key: K, item: Outgoing) -> None:
        tracker = Tracker()
        hook = None if self._on_start is None else functools.partial(self._on_start, key)
        outcome: SendOutcome | None = None
        with anyio.CancelScope(shield=True) as scope:  # the consumer's cancellation waits
            self._sends.add(scope)
            outcome = await self._send(item, hook, tracker)
        self._sends.discard(scope)
        if outcome is None:  # cancelled when the grace ran out
            known = tracker.known_outcome()
            reason = SMTPTransactionInterrupted(
                "cancelled: the stream stopped before this send ended", known
            )
            outcome = replace(known, error=reason)
        self._pending -= 1
        if self._stopped:
            self.unreported.append((key, outcome))
        else:
            self._sender.send_nowait((key, outcome))  # its room was taken when it was read
        self._settle()

    def _settle(self) -> None:
        """End the stream once the input is done and every message is reported."""
        if self._input_done and not self._pending:
            self._settled.set()
            self._sender.close()


def _reader(
    messages: Iterable[tuple[K, Outgoing]] | AsyncIterable[tuple[K, Outgoing]],
) -> Callable[[], Awaitable[tuple[K, Outgoing]]]:
    """The next item of a plain or async iterable; :class:`StopAsyncIteration` at its end."""
    if isinstance(messages, AsyncIterable):
        return aiter(messages).__anext__
    iterator = iter(messages)

    async def next_pair() -> tuple[K, Outgoing]:
        try:
            return next(iterator)
        except StopIteration:
            raise StopAsyncIteration from None

    return next_pair


def _checked(pair: tuple[K, Outgoing]) -> tuple[K, Outgoing]:
    """``pair`` if it is a ``(key, Outgoing)`` pair; else :class:`TypeError`, ending the stream."""
    if isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[1], Outgoing):
        return pair
    raise TypeError(f"send_each() takes (key, asmtp.Outgoing) pairs, got {pair!r:.100}")
