"""What a script of Steps means, whichever server plays it (sockets or in memory).

One place for the rules both :class:`~support.scripted.ScriptedServer` and
:class:`~support.memory.MemoryServer` follow: which bytes an ``Expect*`` step consumes (any
number of reads may make them up), how a step is named in a failure, and what every
scripted server has (:class:`ScriptServer`): the same options, the record of the client's
bytes per read and per connection, what each step consumed, failures naming the step and
the bytes received on that connection, and the same lifecycle.
"""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Final, TypeAlias

from .steps import (
    Expect,
    ExpectBytes,
    ExpectClosed,
    ExpectData,
    ExpectLine,
    StartTLS,
    Step,
)

__all__ = [
    "READ_STEPS",
    "STEP_TIMEOUT",
    "ReadStep",
    "ScriptServer",
    "StepError",
    "labelled",
    "taken",
    "wanted",
]

STEP_TIMEOUT: Final = 5.0
"""Seconds a step may wait for the client, unless the server or the step says otherwise."""

ReadStep: TypeAlias = Expect | ExpectLine | ExpectBytes | ExpectData
READ_STEPS: Final = (Expect, ExpectLine, ExpectBytes, ExpectData)
"""The steps that consume the client's bytes (:func:`taken` says how many)."""


class StepError(Exception):
    """The client did not follow the script; the message says how."""


def labelled(steps: Sequence[Step], implicit_tls: ssl.SSLContext | None) -> list[tuple[str, Step]]:
    """``(label, step)`` pairs naming each step in failures; implicit TLS goes first."""
    named = [(f"step {n} {step!r}", step) for n, step in enumerate(steps)]
    if implicit_tls is not None:
        named.insert(0, ("implicit TLS handshake", StartTLS(implicit_tls)))
    return named


def wanted(step: ReadStep | ExpectClosed) -> str:
    """What ``step`` waits for, in words, for failure messages."""
    if isinstance(step, Expect):
        return repr(step.data)
    if isinstance(step, ExpectLine):
        return f"a line starting {step.prefix!r}"
    if isinstance(step, ExpectBytes):
        return f"{step.n} bytes"
    if isinstance(step, ExpectData):
        return "the end of DATA (CRLF.CRLF)"
    return "the client to close"


def taken(step: ReadStep, pending: bytes | bytearray) -> int | None:
    """How many of the client's ``pending`` bytes ``step`` consumes; ``None`` while it needs
    more. :class:`StepError` once no further bytes could satisfy it."""
    if isinstance(step, Expect):
        want = step.data
        if len(pending) < len(want) and want.startswith(pending):
            return None
        if pending[: len(want)] != want:
            got = bytes(pending[: max(len(want), 1)])
            raise StepError(f"expected {want!r}, got {got!r}")
        return len(want)
    if isinstance(step, ExpectLine):
        end = pending.find(b"\r\n")
        if end < 0:
            return None
        line = bytes(pending[: end + 2])
        if not line.startswith(step.prefix):
            raise StepError(f"expected a line starting {step.prefix!r}, got {line!r}")
        return end + 2
    if isinstance(step, ExpectBytes):
        return step.n if len(pending) >= step.n else None
    return _data_end(pending)


def _data_end(pending: bytes | bytearray) -> int | None:
    """Where a DATA body ends: after ``CRLF.CRLF``, or a leading ``.CRLF`` (empty body)."""
    if pending.startswith(b".\r\n"):
        return 3
    at = pending.find(b"\r\n.\r\n")
    return None if at < 0 else at + 5


class ScriptServer:
    """What every scripted server shares: its scripts and options, the record of what it
    saw (safe to read from any thread while it plays) and its lifecycle (leaving its
    ``with`` block checks it unless the block raised, then stops it).

    ``scripts`` gives each connection (in connection order) its own steps; otherwise each
    of ``connections`` gets ``steps``. ``ssl_context`` makes every connection implicit
    TLS; ``unix_path`` serves on a Unix socket. ``step_timeout`` bounds each step that
    waits for the client and ``total_timeout`` a whole script, where waits are real.
    """

    def __init__(
        self,
        steps: Sequence[Step] = (),
        *,
        connections: int = 1,
        scripts: Sequence[Sequence[Step]] | None = None,
        unix_path: str | os.PathLike[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        step_timeout: float = STEP_TIMEOUT,
        total_timeout: float = 20.0,
    ) -> None:
        self.scripts = (
            [list(s) for s in scripts]
            if scripts is not None
            else [list(steps) for _ in range(connections)]
        )
        self.unix_path = os.fspath(unix_path) if unix_path is not None else None
        self.ssl_context = ssl_context
        self.step_timeout = step_timeout
        self.total_timeout = total_timeout
        self._lock = threading.Lock()
        self._reads: list[list[bytes]] = [[] for _ in self.scripts]
        self._captured: list[bytes] = []
        self._failures: list[str] = []
        self._prepare()

    def _prepare(self) -> None:
        """Set up what the server keeps besides its options and record (once, on creation)."""

    @property
    def reads(self) -> list[list[bytes]]:
        """The client's bytes as the server read them, per connection in connection order
        (a socket server: each ``recv()``; in memory: each write, or what piled up while
        the script slept)."""
        with self._lock:
            return [list(r) for r in self._reads]

    @property
    def received_per_connection(self) -> list[bytes]:
        return [b"".join(r) for r in self.reads]

    @property
    def received(self) -> bytes:
        """All bytes received, connections concatenated in connection order."""
        return b"".join(self.received_per_connection)

    @property
    def read_count(self) -> int:
        return sum(len(r) for r in self.reads)

    @property
    def captured(self) -> list[bytes]:
        """Bytes each Expect* step consumed, in the order the steps ran."""
        with self._lock:
            return list(self._captured)

    def _record_read(self, index: int, data: bytes) -> None:
        with self._lock:
            self._reads[index].append(data)

    def _record_capture(self, data: bytes) -> None:
        with self._lock:
            self._captured.append(data)

    def _fail(self, message: str) -> None:
        with self._lock:
            self._failures.append(message)

    def _report(self, index: int, label: str, message: str) -> None:
        """A failure of connection ``index`` at the step ``label``, with what it received."""
        with self._lock:
            received = b"".join(self._reads[index])
        self._fail(
            f"connection {index}, {label}: {message}\nreceived on this connection: {received!r}"
        )

    def _raise_failures(self) -> None:
        with self._lock:
            failures = list(self._failures)
        if failures:
            raise AssertionError("\n\n".join(failures))

    def check(self, timeout: float | None = None) -> None:
        """Raise AssertionError for every failure (servers first let their scripts end)."""
        self._raise_failures()

    def stop(self) -> None:
        """Stop playing and free what the server holds; bounded, never raises."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.stop()
            return
        try:
            self.check()
        finally:
            self.stop()
