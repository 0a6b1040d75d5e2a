"""An in-memory server that plays the same Step scripts as ScriptedServer, without sockets.

Each connection a client opens through ``server.connector`` gets the next script, played
synchronously by a :class:`~asmtp._transport.MemoryPeer`: what the client writes is matched
against the ``Expect*`` steps as it arrives (an Expect may take any number of writes, so a
script that waits for MAIL, RCPT and DATA before answering still proves pipelining), and
the ``Send`` steps up to the next step that waits become the answer. Nothing runs on a
thread or waits in real time, so a test is fast and its outcome does not depend on load.

Time is the script's to say, not the clock's:

- ``Sleep(s)`` pauses the script: what it sends next reaches the client ``s`` seconds later
  (the client times out at once when that is past its deadline). Bytes the client writes
  meanwhile wait, as in a kernel buffer, and the script reads them in one read when it goes
  on, as a socket server would. ``Send(data, per_byte_delay=d)`` arrives one byte per read.
- A script waiting for bytes the client never sends is silence: the client's read times
  out at once. So nothing here can prove a cancellation or a real timeout; those tests
  keep real sockets.

``StartTLS`` is satisfied by the client's handshake (nothing is encrypted): the server
hostname the client asked for is recorded in ``handshakes``, and bytes buffered before it
fail the script. ``ssl_context`` makes every connection implicit TLS. ``Close(reset=True)``
makes the client's next read or write raise ConnectionResetError. ``Hold`` and
``PostHandshakeRecord`` need a real socket and fail the script here.

As with ScriptedServer, ``check()`` raises an AssertionError naming the failing step and
the bytes received on that connection, also for a script the client left unfinished.
"""

from __future__ import annotations

import math
import ssl
from typing import Final

from asmtp._transport import Connector, memory_connector

from .script import READ_STEPS, ScriptServer, StepError, labelled, taken, wanted
from .steps import Close, ExpectClosed, Send, Signal, Sleep, StartTLS, Step

__all__ = ["PORT", "MemoryServer"]

PORT: Final = 25
"""What ``MemoryServer.port`` says: clients need a port, nothing listens on it."""


def _timed(steps: list[tuple[str, Step]]) -> list[tuple[str, Step]]:
    """The steps with each dribbled Send spelled out: a byte, a pause, the next byte."""
    spelled: list[tuple[str, Step]] = []
    for label, step in steps:
        if not isinstance(step, Send) or not step.per_byte_delay:
            spelled.append((label, step))
            continue
        for i in range(len(step.data)):
            spelled += [(label, Send(step.data[i : i + 1])), (label, Sleep(step.per_byte_delay))]
    return spelled


class _ScriptedPeer:
    """One connection's server end: a :class:`~asmtp._transport.MemoryPeer` playing a script.

    ``_pending`` holds the bytes the script has read and not consumed; ``_unread`` those the
    client wrote while the script was paused (``_pause`` seconds to go) and did not read.
    """

    def __init__(self, server: MemoryServer, index: int, steps: list[tuple[str, Step]]) -> None:
        self._server, self._index, self._steps = server, index, _timed(steps)
        self._at = 0
        self._pending, self._unread, self._outbox = bytearray(), bytearray(), bytearray()
        self._pause: float | None = None
        self._closed = self._reset = self._client_gone = self._failed = False

    # The MemoryPeer protocol, called by the client's transport.

    def connected(self, host: str, port: int, tls: bool) -> bytes:
        self._server._record_connection(host, port)
        self._run()
        return self._answer()

    def received(self, data: bytes) -> bytes:
        if self._reset:
            raise ConnectionResetError("the scripted server reset the connection")
        if self._pause is not None:
            self._unread += data
        elif isinstance(self._step, StartTLS):
            self._fail_with(f"bytes during the TLS handshake: {data!r}")
        else:
            self._read(data)
            self._run()
        return self._answer()

    def silence(self) -> tuple[float, bytes]:
        if self._reset:
            raise ConnectionResetError("the scripted server reset the connection")
        if self._pause is None:  # waiting for the client, or done
            return (0.0, self._answer()) if self._outbox else (math.inf, b"")
        seconds = self._resume()
        return seconds, self._answer()

    def start_tls(self, server_hostname: str | None) -> None:
        self._resume()  # the client waits for the handshake: the pause ends
        if self._failed or not isinstance(self._step, StartTLS) or self._pending or self._unread:
            buffered = bytes(self._pending + self._unread)
            self._fail_with(
                f"the client started TLS for {server_hostname!r} here"
                + (f" with bytes buffered: {buffered!r}" if buffered else "")
            )
            raise ssl.SSLError("the scripted server expected no TLS handshake here")
        self._server._record_handshake(self._index, server_hostname)
        self._at += 1
        self._run()

    @property
    def closed(self) -> bool:
        # After a reset the client's next call raises instead of reading an end of stream.
        return self._closed and not self._reset

    def client_closed(self) -> None:
        self._client_gone = True
        self._resume()

    # Playing the script.

    @property
    def _step(self) -> Step | None:
        return self._steps[self._at][1] if self._at < len(self._steps) else None

    def _answer(self) -> bytes:
        data = bytes(self._outbox)
        self._outbox.clear()
        return data

    def _read(self, data: bytes) -> None:
        self._server._record_read(self._index, data)
        self._pending += data

    def _resume(self) -> float:
        """End the pause (its length is returned) and play on."""
        seconds, self._pause = self._pause or 0.0, None
        self._run()
        return seconds

    def _run(self) -> None:
        """Play steps until one waits for the client, a Sleep pauses, or the script ends."""
        while self._pause is None and not self._failed:
            if self._step is None:
                self._close_and_drain()  # as ScriptedServer at the end of a script
                return
            try:
                if self._closed and not isinstance(self._step, Signal):
                    raise StepError("step after Close()")
                if not self._play(self._step):
                    return
            except StepError as exc:
                self._fail_with(str(exc))
                return
            self._at += 1

    def _play(self, step: Step) -> bool:
        """Play ``step``: True when done, False while it waits for the client."""
        if isinstance(step, READ_STEPS):
            while (n := taken(step, self._pending)) is None:
                if not self._fill(wanted(step)):
                    return False
            self._server._record_capture(bytes(self._pending[:n]))
            del self._pending[:n]
        elif isinstance(step, ExpectClosed):
            self._fill(wanted(step))
            if self._pending:
                raise StepError(f"expected close, got {bytes(self._pending)!r}")
            return self._client_gone
        elif isinstance(step, Send):
            if not self._client_gone:
                self._outbox += step.data
        elif isinstance(step, Sleep):
            if not self._client_gone:  # nobody is left to wait for
                self._pause = step.seconds
        elif isinstance(step, Close):
            self._closed, self._reset = True, step.reset
        elif isinstance(step, Signal):
            step.event.set()
        elif isinstance(step, StartTLS):
            if self._pending or self._unread:
                buffered = bytes(self._pending + self._unread)
                raise StepError(f"bytes before the TLS handshake: {buffered!r}")
            if self._client_gone:
                raise StepError("connection closed while waiting for the TLS handshake")
            return False
        else:
            raise StepError(f"{type(step).__name__} needs a real socket: use ScriptedServer")
        return True

    def _fill(self, what: str) -> bool:
        """Read what piled up while the script paused; False if there is nothing yet.

        StepError once the client closed: nothing more can come.
        """
        if self._unread:
            self._read(bytes(self._unread))
            self._unread.clear()
            return True
        if self._client_gone and not isinstance(self._step, ExpectClosed):
            raise StepError(
                f"connection closed while waiting for {what}; "
                f"unconsumed bytes: {bytes(self._pending)!r}"
            )
        return False

    def _fail_with(self, message: str) -> None:
        """Report the current step as failed; the server then closes, as ScriptedServer does."""
        if not self._failed:
            label = self._steps[self._at][0] if self._at < len(self._steps) else "end"
            self._server._report(self._index, label, message)
        self._failed = True
        self._close_and_drain()

    def _close_and_drain(self) -> None:
        """Close; what the client wrote and the script never read still goes on record."""
        self._closed = True
        if self._unread:
            self._server._record_read(self._index, bytes(self._unread))
            self._unread.clear()

    def settle(self) -> None:
        """Let time pass with no more from the client; fail a script that did not end."""
        while self._pause is not None:
            self._resume()
        step = self._step
        if self._failed or step is None:
            return
        if isinstance(step, (*READ_STEPS, ExpectClosed)):
            what = wanted(step)
        else:
            what = "the TLS handshake" if isinstance(step, StartTLS) else repr(step)
        self._fail_with(
            f"the client stopped before the script did: waiting for {what}; "
            f"unconsumed bytes: {bytes(self._pending)!r}"
        )


class MemoryServer(ScriptServer):
    """Plays ``steps`` to each of ``connections`` clients in memory, as ScriptedServer would.

    Takes ScriptedServer's arguments, so a test switches by changing its fixture:
    ``scripts`` gives each connection its own steps, ``ssl_context`` makes every connection
    implicit TLS (its handshake is only recorded), and ``unix_path`` becomes ``host`` (with
    ``port`` :data:`PORT`), as for a server on a Unix socket. Timeouts are accepted and
    ignored: nothing here waits. Pass ``host``, ``port`` and ``connector`` to the client.
    A connection beyond the scripts is refused and fails ``check()``.
    """

    def _prepare(self) -> None:
        self.host = self.unix_path or "127.0.0.1"
        self.port = PORT
        self._peers: list[_ScriptedPeer] = []
        self._connected_to: list[tuple[str, int]] = []
        self._handshakes: list[list[str | None]] = [[] for _ in self.scripts]
        self._checked = False

    @property
    def connector(self) -> Connector:
        """The :class:`~asmtp._transport.Connector` a client passes to reach this server."""
        return memory_connector(self._accept)

    @property
    def connected_to(self) -> list[tuple[str, int]]:
        """``(host, port)`` each connection asked for, in connection order."""
        with self._lock:
            return list(self._connected_to)

    @property
    def handshakes(self) -> list[list[str | None]]:
        """Per connection, the server hostname of each TLS handshake the client made."""
        with self._lock:
            return [list(h) for h in self._handshakes]

    def _accept(self) -> _ScriptedPeer:
        """The server end of the next connection, playing the next script."""
        index = len(self._peers)
        if index >= len(self.scripts):
            self._fail(f"connection {index}: more connections than the {index} scripts")
            raise ConnectionRefusedError(f"no script left for connection {index}")
        peer = _ScriptedPeer(self, index, labelled(self.scripts[index], self.ssl_context))
        self._peers.append(peer)
        return peer

    def _record_connection(self, host: str, port: int) -> None:
        with self._lock:
            self._connected_to.append((host, port))

    def _record_handshake(self, index: int, server_hostname: str | None) -> None:
        with self._lock:
            self._handshakes[index].append(server_hostname)

    # The lifecycle of ScriptedServer, so either fits the same fixtures and helpers.

    def start(self) -> MemoryServer:
        return self

    def check(self, timeout: float | None = None) -> None:
        """Let every script run on with no more input, then raise AssertionError on any
        failure: a step the client broke, a script it left unfinished, a script no client
        connected for."""
        if not self._checked:
            self._checked = True
            for peer in self._peers:
                peer.settle()
            for index in range(len(self._peers), len(self.scripts)):
                self._fail(f"connection {index}: no client connected")
        self._raise_failures()

    def __enter__(self) -> MemoryServer:
        return self.start()
