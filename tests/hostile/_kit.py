"""Helpers shared by the hostile tests: scripted servers that may be cut short, a server
that streams an endless reply, a tolerant SMTP server with delayed replies, and a memory probe.

The kit's ScriptedServer fixture fails a test whose script did not run to the end; here the
client is *expected* to walk away mid-script (it closes on a protocol error or a timeout), so
:func:`unchecked` runs a script without that check. Every server binds 127.0.0.1 only and
every wait is bounded.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import anyio

import asmtp
from support.scripted import ScriptedServer, Step

HOST: Final = "127.0.0.1"
TIMEOUT: Final = 1.0
"""The client's per-operation timeout in these tests (seconds)."""
SLACK: Final = 1.0
"""How much later than its bound an operation may end on a loaded machine (seconds)."""

GREETING: Final = b"220 hostile.test ESMTP\r\n"
EHLO_LOCKSTEP: Final = b"250-hostile.test\r\n250 8BITMIME\r\n"
EHLO_PIPELINING: Final = b"250-hostile.test\r\n250-8BITMIME\r\n250 PIPELINING\r\n"
QUIT: Final = (b"QUIT\r\n", b"221 bye\r\n")
SENDER: Final = "a@x.test"
RECIPIENTS: Final = ("b@x.test", "c@x.test")

_WAIT: Final = 5.0


def client(port: int, **options: Any) -> asmtp.SMTP:
    """An unconnected client for 127.0.0.1:``port`` with the tests' short timeout."""
    options.setdefault("timeout", TIMEOUT)
    return asmtp.SMTP(HOST, port, "client.test", **options)


@contextlib.contextmanager
def unchecked(steps: Sequence[Step], **options: Any) -> Iterator[ScriptedServer]:
    """A started ScriptedServer whose script the client may abandon; always stopped.

    Assert on ``server.received`` instead of the script's completion.
    """
    options.setdefault("step_timeout", 3.0)
    options.setdefault("total_timeout", 15.0)
    server = ScriptedServer(steps, **options).start()
    try:
        yield server
    finally:
        server.stop()


async def idle_until(event: threading.Event) -> None:
    """Idle, as an application between two calls, until a scripted server sets ``event``.

    Then a little longer, so that an event loop reading ahead (asyncio's protocols) has
    taken whatever the server just sent into its buffer.
    """
    deadline = time.monotonic() + _WAIT
    while not event.is_set():  # the server is a thread: there is nothing to await
        if time.monotonic() > deadline:
            raise AssertionError("the scripted server never got there")
        await anyio.sleep(0.01)
    await anyio.sleep(0.05)


@contextlib.contextmanager
def peak_memory() -> Iterator[list[int]]:
    """Trace allocations in this process; the yielded list receives the peak in bytes."""
    result: list[int] = []
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        yield result
    finally:
        result.append(tracemalloc.get_traced_memory()[1] - base)
        if not was_tracing:
            tracemalloc.stop()


class StreamingServer:
    """One connection: a greeting, scripted replies, then an endless stream.

    Each of ``replies`` answers one command line; with ``wait_line`` one more line is read
    first. After ``pause`` seconds the server sends ``head``, then ``chunk`` again and again
    until ``total`` bytes went out or the client is gone, reading nothing more. The chunk is
    built once and no failure is ever formatted, so the server adds nothing to the test's
    memory peak.
    """

    def __init__(
        self,
        *,
        greeting: bytes,
        head: bytes,
        chunk: bytes,
        total: int,
        replies: Sequence[bytes] = (),
        wait_line: bool = False,
        pause: float = 0.0,
    ) -> None:
        self.sent = 0
        self.client_gone = False
        self._greeting, self._head, self._chunk, self._total = greeting, head, chunk, total
        self._replies, self._wait_line, self._pause = list(replies), wait_line, pause
        self._stop = threading.Event()
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(_WAIT)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="streaming", daemon=True)

    def __enter__(self) -> StreamingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(_WAIT)
        self._listener.close()

    def _serve(self) -> None:
        try:
            sock, _ = self._listener.accept()
        except OSError:
            return
        with sock:
            sock.settimeout(_WAIT)
            try:
                self._stream(sock)
            except OSError:
                self.client_gone = True

    def _stream(self, sock: socket.socket) -> None:
        sock.sendall(self._greeting)
        pending = b""
        for reply in [*self._replies, None] if self._wait_line else self._replies:
            while b"\n" not in pending:
                data = sock.recv(4096)
                if not data:
                    return
                pending += data
            pending = pending.split(b"\n", 1)[1]
            if reply is not None:
                sock.sendall(reply)
        if self._stop.wait(self._pause):
            return
        sock.sendall(self._head)
        view = memoryview(self._chunk)
        while self.sent < self._total and not self._stop.is_set():
            sock.sendall(view)
            self.sent += len(view)


@dataclass
class Dialogue:
    """A tiny SMTP server as a pure function of received bytes: :meth:`feed` returns replies.

    Every reply names the command it answers and its sequence number (``250 ok MAIL #3``),
    so a client that reads an earlier command's reply is caught by the text alone.
    """

    pipelining: bool = True
    commands: list[bytes] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    in_body: bool = False
    closed: bool = False
    _pending: bytes = b""

    @staticmethod
    def greeting() -> bytes:
        return GREETING

    @property
    def body_started(self) -> bool:
        """True once DATA was answered with 354 and until the end of data arrived."""
        return self.in_body

    def feed(self, data: bytes) -> list[bytes]:
        self._pending += data
        replies: list[bytes] = []
        while not self.closed:
            if self.in_body:
                end = self._pending.find(b"\r\n.\r\n")
                if end < 0:
                    break
                self.messages.append(self._pending[: end + 2])
                self._pending = self._pending[end + 5 :]
                self.in_body = False
                replies.append(b"250 2.0.0 queued #%d\r\n" % len(self.commands))
                continue
            end = self._pending.find(b"\r\n")
            if end < 0:
                break
            line, self._pending = self._pending[:end], self._pending[end + 2 :]
            self.commands.append(line)
            replies.append(self._answer(line))
        return replies

    def _answer(self, line: bytes) -> bytes:
        verb = line.split(b" ", 1)[0].upper()
        number = len(self.commands)
        if verb == b"EHLO":
            extra = b"250-PIPELINING\r\n" if self.pipelining else b""
            return b"250-mini.test\r\n" + extra + b"250 8BITMIME\r\n"
        if verb == b"DATA":
            self.in_body = True
            return b"354 go ahead #%d\r\n" % number
        if verb == b"QUIT":
            self.closed = True
            return b"221 bye #%d\r\n" % number
        if verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP", b"HELO"):
            return b"250 ok %s #%d\r\n" % (verb, number)
        return b"500 unknown command #%d\r\n" % number


class DelayedSMTPServer:
    """A threaded :class:`Dialogue` server on 127.0.0.1 waiting ``delay`` before each reply.

    Serves any number of connections and never fails when a client walks away; ``dialogues``
    holds each connection's record in accept order, ``accepted_at`` its ``time.monotonic()``.
    The first ``refused_greetings`` connections (every one when ``None``) get ``421`` as
    their greeting and are closed, as a server over its connection limit does.
    """

    def __init__(
        self, *, delay: float, pipelining: bool = True, refused_greetings: int | None = 0
    ) -> None:
        self.delay, self.pipelining = delay, pipelining
        self.refused_greetings = refused_greetings
        self.dialogues: list[Dialogue] = []
        self.accepted_at: list[float] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._threads = [threading.Thread(target=self._accept, name="delayed", daemon=True)]

    def __enter__(self) -> DelayedSMTPServer:
        self._threads[0].start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(_WAIT)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            dialogue = Dialogue(pipelining=self.pipelining)
            with self._lock:
                refused = self.refused_greetings is None or (
                    len(self.dialogues) < self.refused_greetings
                )
                self.dialogues.append(dialogue)
                self.accepted_at.append(time.monotonic())
            if refused:
                with sock, contextlib.suppress(OSError):
                    sock.sendall(b"421 4.7.0 too many connections, try again later\r\n")
                continue
            thread = threading.Thread(target=self._play, args=(sock, dialogue), daemon=True)
            with self._lock:
                self._threads.append(thread)
            thread.start()

    @property
    def connection_count(self) -> int:
        with self._lock:
            return len(self.dialogues)

    @property
    def messages(self) -> list[bytes]:
        """Every message delivered, over all connections."""
        with self._lock:
            return [message for dialogue in self.dialogues for message in dialogue.messages]

    def _play(self, sock: socket.socket, dialogue: Dialogue) -> None:
        with sock, contextlib.suppress(OSError):
            sock.settimeout(0.05)
            sock.sendall(dialogue.greeting())
            deadline = time.monotonic() + _WAIT * 2
            while not dialogue.closed and time.monotonic() < deadline:
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    if self._stop.is_set():
                        return
                    continue
                if not data:
                    return
                for reply in dialogue.feed(data):
                    if self._stop.wait(self.delay):
                        return
                    sock.sendall(reply)


USER: Final = "ada@x.test"
PASSWORD: Final = "S3cr3t-P4ss-Phrase"
TOKEN: Final = "ya29.T0k3n-0f-Acc3ss-xyzzy"


def secret_forms() -> list[tuple[str, str]]:
    """``(label, text)`` for every form in which :data:`PASSWORD` or :data:`TOKEN` could leak.

    The secret itself, and base64 of it at each of the three byte alignments (the part that
    does not depend on its neighbours), so a secret inside any base64 payload (PLAIN's
    ``\\0user\\0password``, XOAUTH2's ``auth=Bearer ...``) is found too.
    """
    forms: list[tuple[str, str]] = []
    for name, secret in (("password", PASSWORD), ("token", TOKEN)):
        raw = secret.encode()
        forms.append((name, secret))
        for shift in range(3):
            encoded = base64.b64encode(b"\0" * shift + raw).decode()
            start = 4 if shift else 0
            forms.append((f"{name} in base64 (alignment {shift})", encoded[start:-4]))
    return forms


def leaked(text: str) -> list[str]:
    """Labels of the secret forms found in ``text`` (never the secrets themselves)."""
    return [label for label, form in secret_forms() if form in text]
