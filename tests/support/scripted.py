"""A socket-level server that plays a fixed script, for hostile and framing tests.

Blocking sockets on daemon threads, so the test's own loop (asyncio, trio or none)
stays free. Every wait is bounded; a failed step is stored and re-raised in the test
thread by ``check()`` as an AssertionError naming the step and the bytes received.
An ``Expect`` is satisfied by bytes from any number of reads, so a script that waits
for ``MAIL``, ``RCPT`` and ``DATA`` before answering proves the client pipelined them.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from typing import Final

from asmtp._transport import Connector, connect

from .script import (
    READ_STEPS,
    STEP_TIMEOUT,
    ScriptServer,
    StepError,
    labelled,
    taken,
    wanted,
)
from .steps import (
    Close,
    Expect,
    ExpectBytes,
    ExpectClosed,
    ExpectData,
    ExpectLine,
    Hold,
    PostHandshakeRecord,
    Send,
    Signal,
    Sleep,
    StartTLS,
    Step,
    smtp_script,
)

__all__ = [
    "STEP_TIMEOUT",
    "Close",
    "Expect",
    "ExpectBytes",
    "ExpectClosed",
    "ExpectData",
    "ExpectLine",
    "Hold",
    "PostHandshakeRecord",
    "ScriptedServer",
    "Send",
    "Signal",
    "Sleep",
    "StartTLS",
    "Step",
    "smtp_script",
]

_POLL: Final = 0.05  # how often blocked reads and accepts notice stop()
_CHUNK: Final = 65536


class _Connection:
    """One accepted socket, its unconsumed bytes and its read log."""

    def __init__(self, sock: socket.socket, server: ScriptedServer, index: int) -> None:
        self.sock = sock
        self.server = server
        self.index = index
        self.pending = bytearray()
        self.closed = False

    def _fill(self, deadline: float, what: str) -> bool:
        """Read once into ``pending``; False on EOF or reset, StepError on timeout."""
        while True:
            if self.server._stopping.is_set():
                raise StepError(f"server stopped while waiting for {what}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StepError(
                    f"timed out waiting for {what}; unconsumed bytes: {bytes(self.pending)!r}"
                )
            self.sock.settimeout(min(remaining, _POLL))
            try:
                data = self.sock.recv(_CHUNK)
            except TimeoutError:
                continue
            except ConnectionResetError:
                return False
            if not data:
                return False
            self.server._record_read(self.index, data)
            self.pending += data
            return True

    def _take(self, n: int) -> bytes:
        data = bytes(self.pending[:n])
        del self.pending[:n]
        self.server._record_capture(data)
        return data

    def _need(self, deadline: float, what: str) -> None:
        if not self._fill(deadline, what):
            raise StepError(
                f"connection closed while waiting for {what}; "
                f"unconsumed bytes: {bytes(self.pending)!r}"
            )

    def run(self, step: Step) -> None:
        if self.closed and not isinstance(step, Signal):
            raise StepError("step after Close()")
        timeout = getattr(step, "timeout", None) or self.server.step_timeout
        deadline = min(time.monotonic() + timeout, self.server._deadline)
        if isinstance(step, Send):
            self._send(step)
        elif isinstance(step, READ_STEPS):
            while (n := taken(step, self.pending)) is None:
                self._need(deadline, wanted(step))
            self._take(n)
        elif isinstance(step, Sleep):
            self.server._stopping.wait(step.seconds)
        elif isinstance(step, Hold):
            while not step.until.wait(_POLL):
                if self.server._stopping.is_set() or time.monotonic() > deadline:
                    raise StepError("the test never released the Hold")
        elif isinstance(step, Signal):
            step.event.set()
        elif isinstance(step, PostHandshakeRecord):
            if not isinstance(self.sock, ssl.SSLSocket):
                raise StepError("PostHandshakeRecord needs a TLS session")
            self.sock.verify_client_post_handshake()
            self.sock.do_handshake()  # sends the CertificateRequest now
        elif isinstance(step, Close):
            self.close(reset=step.reset)
        elif isinstance(step, ExpectClosed):
            while not self.pending and self._fill(deadline, wanted(step)):
                pass
            if self.pending:
                raise StepError(f"expected close, got {bytes(self.pending)!r}")
        else:
            self._start_tls(step, timeout)

    def _send(self, step: Send) -> None:
        try:
            self.sock.settimeout(self.server.step_timeout)
            if not step.per_byte_delay:
                self.sock.sendall(step.data)
                return
            for i in range(len(step.data)):
                self.sock.sendall(step.data[i : i + 1])
                if self.server._stopping.wait(step.per_byte_delay):
                    raise StepError("server stopped while sending")
        except OSError as exc:
            raise StepError(f"sending {step.data!r} failed: {exc!r}") from exc

    def _start_tls(self, step: StartTLS, timeout: float) -> None:
        if self.pending:
            raise StepError(f"bytes before the TLS handshake: {bytes(self.pending)!r}")
        try:
            self.sock = self.server._handshake(self.sock, step.context, timeout)
        except (OSError, ssl.SSLError) as exc:
            raise StepError(f"TLS handshake failed: {exc!r}") from exc

    def close(self, *, reset: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        if reset:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def finish(self) -> None:
        """End of script: FIN, then drain briefly so unread input does not cause a RST."""
        if self.closed:
            return
        if isinstance(self.sock, ssl.SSLSocket):  # draining would read raw TLS records
            self.close()
            return
        with contextlib.suppress(OSError, StepError):
            self.sock.shutdown(socket.SHUT_WR)
            deadline = min(time.monotonic() + 1.0, self.server._deadline)
            while self._fill(deadline, "EOF after the script"):
                pass
        self.close()


class ScriptedServer(ScriptServer):
    """Plays ``steps`` to each of ``connections`` clients on 127.0.0.1:0 or a Unix socket.

    ``scripts`` gives each connection (in accept order) its own steps instead.
    Connections are served concurrently. ``ssl_context`` makes every connection
    implicit TLS. Nothing is raised in the server threads: call ``check()`` (or
    leave the ``with`` block) to get an AssertionError for the first failure.
    What arrived is in ``reads`` (each ``recv()``), ``received`` and ``captured``.
    """

    def _prepare(self) -> None:
        self.host = "127.0.0.1"
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._deadline = 0.0
        self._listener: socket.socket | None = None

    @property
    def connector(self) -> Connector:
        """What a client passes to reach it: asmtp's own sockets (a
        :class:`~support.memory.MemoryServer` gives its in-memory one)."""
        return connect

    @property
    def port(self) -> int:
        """The TCP port the kernel chose; RuntimeError before start() or for a Unix socket."""
        if self._listener is None or self.unix_path is not None:
            raise RuntimeError("ScriptedServer is not listening on TCP")
        return int(self._listener.getsockname()[1])

    # Lifecycle.

    def start(self) -> ScriptedServer:
        if self._listener is not None:
            raise RuntimeError("ScriptedServer can only be started once")
        family = socket.AF_UNIX if self.unix_path is not None else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._listener.bind(self.unix_path if self.unix_path is not None else (self.host, 0))
            self._listener.listen(8)
        except OSError:
            self._listener.close()
            raise
        self._deadline = time.monotonic() + self.total_timeout
        self._spawn(self._accept_all, "scripted-accept", self._listener)
        return self

    def check(self, timeout: float | None = None) -> None:
        """Wait for every script to end, then raise AssertionError on any failure."""
        deadline = time.monotonic() + (timeout or self.total_timeout)
        while (alive := [t for t in list(self._threads) if t.is_alive()]) and (
            time.monotonic() < deadline
        ):
            alive[0].join(min(_POLL, max(0.0, deadline - time.monotonic())))
        if alive:
            self._fail(f"script still running after {timeout or self.total_timeout}s")
            self.stop()
        self._raise_failures()

    def stop(self) -> None:
        """Abort every script and close all sockets; bounded, never raises."""
        self._stopping.set()
        for thread in list(self._threads):
            thread.join(STEP_TIMEOUT)
        if self._listener is not None:
            self._listener.close()
        if self.unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.unix_path)

    def __enter__(self) -> ScriptedServer:
        return self.start()

    # Server threads.

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_all(self, listener: socket.socket) -> None:
        listener.settimeout(_POLL)
        for index in range(len(self.scripts)):
            while True:
                if self._stopping.is_set():
                    return
                if time.monotonic() > self._deadline:
                    self._fail(f"connection {index}: no client connected in time")
                    return
                try:
                    sock, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError as exc:
                    self._fail(f"connection {index}: accept failed: {exc!r}")
                    return
                break
            self._spawn(self._play, f"scripted-conn-{index}", index, sock)

    def _handshake(
        self, sock: socket.socket, context: ssl.SSLContext, timeout: float
    ) -> socket.socket:
        tls = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        try:
            tls.settimeout(timeout)
            tls.do_handshake()
        except BaseException:
            tls.close()  # it owns the socket now
            raise
        return tls

    def _play(self, index: int, sock: socket.socket) -> None:
        conn = _Connection(sock, self, index)
        steps = labelled(self.scripts[index], self.ssl_context)
        label = "start"
        try:
            for label, step in steps:  # noqa: B007 - label names the failing step
                conn.run(step)
        except StepError as exc:
            self._report(index, label, str(exc))
        except Exception as exc:  # a bug in a step must still reach check()
            self._report(index, label, f"{type(exc).__name__}: {exc}")
        finally:
            conn.finish()
