"""The capture server: aiosmtpd on an event loop of its own thread, recording what it accepts.

Because the server's loop never meets the caller's (asyncio, trio, or none at all), code
under test may send with any library from any thread. aiosmtpd and trustme are imported
only when a server starts, so importing this module needs neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import ssl
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from . import _assertions
from ._received import ReceivedMessage
from ._state import STALL_POINTS, CaptureState, Offer, Rule, Script, StallPoint, checked_reply
from ._tls import Certificates, MissingExtra

__all__ = ["CaptureServer"]

WAIT: Final = 5.0
"""Seconds that starting or stopping the server may take."""


class CaptureServer:
    """An SMTP or LMTP server that accepts mail and records it, on a thread of its own.

    Listens on ``host``:``port`` (port 0: a free port, see :attr:`port`) or on the Unix
    socket ``unix_path``. ``implicit_tls`` wraps every connection in TLS from the first
    byte. Other keyword arguments are :class:`Offer` fields (extensions advertised);
    :meth:`offer` changes them for the connections that follow. ``on_message`` runs on the
    server's thread for each message before it is acknowledged: if it raises, the client
    gets ``451`` and the message is not recorded.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        unix_path: str | os.PathLike[str] | None = None,
        lmtp: bool = False,
        implicit_tls: bool = False,
        hostname: str = "localhost",
        timeout: float = 300.0,
        on_message: Callable[[ReceivedMessage], None] | None = None,
        **offer: Any,
    ) -> None:
        self.host = host
        self.unix_path = os.fspath(unix_path) if unix_path is not None else None
        self.lmtp = lmtp
        self.implicit_tls = implicit_tls
        self.hostname = hostname
        self.timeout = timeout
        self._requested_port = port
        self._state = CaptureState(Offer(**offer), lmtp=lmtp, on_message=on_message)
        self._certificates: Certificates | None = None
        self._server_context: ssl.SSLContext | None = None
        self._tls_dir: str | None = None
        if implicit_tls or self._state.offer.starttls:
            self._make_certificates()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._port: int | None = None
        self._listening = False
        self._sessions: weakref.WeakSet[asyncio.BaseProtocol] = weakref.WeakSet()

    def __repr__(self) -> str:
        where = self.address if self._listening else "not listening"
        kind = "LMTP" if self.lmtp else "SMTP"
        return f"<CaptureServer {kind} {where}, {len(self._state.messages)} message(s)>"

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> CaptureServer:
        """Listen, and return once the server accepts connections.

        Raises :class:`MissingExtra` (an ImportError) without aiosmtpd, ``OSError`` when
        the address cannot be bound, RuntimeError when not listening within seconds.
        """
        if self._thread is not None:
            raise RuntimeError("a CaptureServer can only be started once")
        try:
            from . import _session
        except ImportError as exc:
            raise MissingExtra("aiosmtpd") from exc
        handler = _session.CaptureHandler(self._state)
        self._thread = threading.Thread(
            target=self._run, args=(_session, handler), name="asmtp-capture-server", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(WAIT):
            self.stop()
            raise RuntimeError(f"capture server not listening after {WAIT} s")
        if self._error is not None:
            error, self._error = self._error, None
            self.stop()
            raise error
        return self

    def stop(self) -> None:
        """Close the listener and every connection, and end the server's thread."""
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is not None:
            if loop is not None and stop_event is not None:
                with contextlib.suppress(RuntimeError):  # the loop has already closed
                    loop.call_soon_threadsafe(stop_event.set)
            thread.join(WAIT)
            if thread.is_alive():
                raise RuntimeError(f"capture server still running {WAIT} s after stop()")
        listening, self._listening = self._listening, False
        if self.unix_path is not None and listening:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.unix_path)
        if self._tls_dir is not None:
            shutil.rmtree(self._tls_dir, ignore_errors=True)
            self._tls_dir = None
        error, self._error = self._error, None
        if error is not None:
            raise RuntimeError("capture server thread failed") from error

    def __enter__(self) -> CaptureServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- where it listens -----------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port it listens on; RuntimeError before start or on a Unix socket."""
        if self._port is None:
            raise RuntimeError("not listening on TCP (not started, or a Unix socket)")
        return self._port

    @property
    def address(self) -> str:
        """``host:port`` (``[host]:port`` for IPv6), or the Unix socket's path."""
        if self.unix_path is not None:
            return self.unix_path
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def ca_file(self) -> Path:
        """A PEM file holding the CA that signed the server's certificate (TLS only)."""
        if self._certificates is None:
            raise RuntimeError("this server offers no TLS: pass starttls=True or implicit_tls")
        if self._tls_dir is None:
            self._tls_dir = tempfile.mkdtemp(prefix="asmtp-capture-tls-")
        path = Path(self._tls_dir) / "ca.pem"
        if not path.exists():
            self._certificates.write_ca(path)
        return path

    def client_context(self) -> ssl.SSLContext:
        """An SSL context that trusts this server's certificate (and nothing else)."""
        if self._certificates is None:
            raise RuntimeError("this server offers no TLS: pass starttls=True or implicit_tls")
        return self._certificates.client_context()

    # -- what it received -----------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMessage]:
        """Messages accepted so far, oldest first (a copy)."""
        return self._state.messages

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        return self._state.connections

    def wait_for(self, count: int = 1, *, timeout: float = WAIT) -> list[ReceivedMessage]:
        """Block until ``count`` messages arrived (AssertionError after ``timeout`` s)."""
        return self._state.wait_for(count, timeout)

    # -- scripting ------------------------------------------------------------------------

    @property
    def offered(self) -> Offer:
        """What new connections are offered (change it with :meth:`offer`)."""
        return self._state.offer

    def offer(self, **changes: Any) -> None:
        """Change what new connections are offered, e.g. ``offer(chunking=True)``."""
        offer = replace(self._state.offer, **changes)
        if offer.starttls and self._certificates is None:
            self._make_certificates()
        self._state.set_offer(offer)

    def refuse_sender(self, pattern: str, reply: str = "550 5.7.1 Sender refused") -> None:
        """Answer MAIL for senders matching ``pattern`` (a case-insensitive glob)."""
        rule = Rule(pattern, checked_reply(reply))
        self._state.change_script(lambda s: replace(s, senders=(*s.senders, rule)))

    def refuse_recipient(self, pattern: str, reply: str = "550 5.1.1 No such user here") -> None:
        """Answer RCPT for recipients matching ``pattern`` (a case-insensitive glob)."""
        rule = Rule(pattern, checked_reply(reply))
        self._state.change_script(lambda s: replace(s, recipients=(*s.recipients, rule)))

    def refuse_after_data(self, pattern: str, reply: str = "552 5.2.2 Mailbox full") -> None:
        """LMTP: accept matching recipients at RCPT, refuse them after the data."""
        if not self.lmtp:
            raise ValueError("only an LMTP server answers once per recipient after the data")
        rule = Rule(pattern, checked_reply(reply))
        self._state.change_script(lambda s: replace(s, after_data=(*s.after_data, rule)))

    def refuse_data(self, reply: str = "554 5.6.0 Message refused") -> None:
        """Answer the end of every message's data with ``reply`` (LMTP: for each recipient)."""
        checked = checked_reply(reply)
        self._state.change_script(lambda s: replace(s, data_reply=checked))

    def close_after(
        self,
        count: int,
        reply: str = "421 4.3.2 Service shutting down, closing transmission channel",
    ) -> None:
        """Accept ``count`` more messages, then answer MAIL with ``reply`` and close."""
        if count < 0:
            raise ValueError(f"count must be >= 0, not {count}")
        self._state.close_after(count, checked_reply(reply, "4"))

    def stall(self, at: StallPoint, seconds: float) -> None:
        """Wait ``seconds`` before answering: at ``"connect"`` (no greeting, then close),
        ``"ehlo"``, ``"mail"``, ``"rcpt"`` or ``"data"`` (the end of the data)."""
        if at not in STALL_POINTS:
            raise ValueError(f"stall point must be one of {STALL_POINTS}, not {at!r}")
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, not {seconds}")
        self._state.change_script(lambda s: replace(s, stalls=(*s.stalls, (at, seconds))))

    def reset(self) -> None:
        """Forget received messages and scripted failures (the offer stays)."""
        self._state.reset()

    @property
    def script(self) -> Script:
        """The scripted failures now in force."""
        return self._state.script

    # -- assertions -----------------------------------------------------------------------

    def assert_sent(self, **expected: Any) -> ReceivedMessage:
        """The one message matching ``expected`` (see :func:`asmtp.testing.assert_sent`)."""
        __tracebackhide__ = True
        return _assertions.assert_sent(self.messages, **expected)

    def assert_recipients(self, expected: Iterable[str]) -> None:
        """Every envelope recipient of every message, compared with ``expected``."""
        __tracebackhide__ = True
        _assertions.assert_recipients(self.messages, expected)

    def assert_nothing_sent(self) -> None:
        """No message arrived (see :func:`asmtp.testing.assert_nothing_sent`)."""
        __tracebackhide__ = True
        _assertions.assert_nothing_sent(self.messages)

    # -- the server's thread --------------------------------------------------------------

    def _make_certificates(self) -> None:
        self._certificates = Certificates(
            ["localhost", "127.0.0.1", "::1", self.host, self.hostname]
        )
        self._server_context = self._certificates.server_context()

    def _run(self, session_module: Any, handler: Any) -> None:
        try:
            asyncio.run(self._serve(session_module, handler))
        except BaseException as exc:  # re-raised in the caller's thread
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self, session_module: Any, handler: Any) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()

        def make_session() -> asyncio.BaseProtocol:
            protocol: asyncio.BaseProtocol = session_module.new_session(
                self._state,
                handler,
                hostname=self.hostname,
                tls_context=self._server_context,
                timeout=self.timeout,
                loop=loop,
            )
            self._sessions.add(protocol)
            return protocol

        tls: dict[str, Any] = {}
        if self.implicit_tls:
            tls = {"ssl": self._server_context, "ssl_handshake_timeout": WAIT}
        server: asyncio.Server
        if self.unix_path is not None:
            server = await loop.create_unix_server(make_session, self.unix_path, **tls)
        else:
            server = await loop.create_server(
                make_session, host=self.host, port=self._requested_port, **tls
            )
            self._port = server.sockets[0].getsockname()[1]
        self._listening = True
        self._ready.set()
        try:
            await self._stop_event.wait()
        finally:
            server.close()
            for session in list(self._sessions):
                transport = getattr(session, "transport", None)
                if isinstance(transport, asyncio.Transport):
                    # Python 3.11.2's TLS transport raises AttributeError once its
                    # connection is gone.
                    with contextlib.suppress(AttributeError):
                        transport.abort()  # no TLS close_notify wait
            with contextlib.suppress(asyncio.TimeoutError):  # not builtin before 3.11
                await asyncio.wait_for(server.wait_closed(), WAIT)
