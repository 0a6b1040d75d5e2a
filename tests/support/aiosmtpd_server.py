"""aiosmtpd on a private asyncio loop in a daemon thread, plus a recording handler.

The server's loop never meets the test's own loop (asyncio, trio or none), so any
test can reach it over 127.0.0.1 or a Unix socket. Only aiosmtpd's public handler
hooks are used; aiosmtpd's Controller is not (it assumes a fixed port).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from asmtp._transport import Connector, connect

HOST: Final = "127.0.0.1"
WAIT: Final = 5.0
"""Upper bound, in seconds, of every wait in this module."""


@dataclass(frozen=True)
class Delivery:
    """One accepted message: its envelope and the body bytes after dot-unstuffing."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    mail_options: tuple[str, ...]
    rcpt_options: tuple[tuple[str, ...], ...]
    content: bytes


class RecordingHandler:
    """aiosmtpd handler that records commands and deliveries and can misbehave.

    Hooks run on the server thread; the recorded lists are read from the test thread
    through locked copies. Commands are recorded as ``"VERB arg options..."`` in the
    order the hooks ran (aiosmtpd exposes no raw command log). aiosmtpd upper-cases
    MAIL parameters and answers 555 itself, before any hook, to MAIL parameters other
    than SIZE, BODY and SMTPUTF8 and to every RCPT parameter (so no DSN).

    In LMTP mode the handler answers the end of DATA once per accepted recipient
    (RFC 2033 §4.2) with ``lmtp_data_replies.get(rcpt, data_reply or "250 ...")``;
    ``lmtp_single_reply=True`` keeps aiosmtpd's own single reply instead.
    ``disconnect_after`` names a hook verb (``"EHLO"``, ``"MAIL"``, ``"RCPT"``,
    ``"DATA"`` (after the body), ``"RSET"``, ...) at which the connection is closed
    without a reply.
    """

    def __init__(
        self,
        *,
        refuse_senders: dict[str, str] | None = None,
        refuse_recipients: dict[str, str] | None = None,
        data_reply: str | None = None,
        lmtp_data_replies: dict[str, str] | None = None,
        lmtp_single_reply: bool = False,
        advertise_pipelining: bool = False,
        extra_ehlo_lines: Iterable[str] = (),
        disconnect_after: str | None = None,
        data_delay: float = 0.0,
    ) -> None:
        self.refuse_senders = dict(refuse_senders or {})
        self.refuse_recipients = dict(refuse_recipients or {})
        self.data_reply = data_reply
        self.lmtp_data_replies = dict(lmtp_data_replies or {})
        self.lmtp_single_reply = lmtp_single_reply
        self.advertise_pipelining = advertise_pipelining
        self.extra_ehlo_lines = list(extra_ehlo_lines)
        self.disconnect_after = disconnect_after
        self.data_delay = data_delay
        self._changed = threading.Condition()
        self._commands: list[str] = []
        self._deliveries: list[Delivery] = []
        self._errors: list[Exception] = []
        # Envelope.rcpt_options is flat; keep one tuple per recipient (server thread).
        self._rcpt_options: weakref.WeakKeyDictionary[Envelope, list[tuple[str, ...]]] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def commands(self) -> list[str]:
        """Hook calls so far, e.g. ``["EHLO c", "MAIL a@x SIZE=9", "RCPT b@x"]``."""
        with self._changed:
            return list(self._commands)

    @property
    def deliveries(self) -> list[Delivery]:
        """Messages answered with a 2xx reply after DATA, oldest first."""
        with self._changed:
            return list(self._deliveries)

    @property
    def errors(self) -> list[Exception]:
        """Exceptions aiosmtpd caught while running a session (answered with 500)."""
        with self._changed:
            return list(self._errors)

    def wait_for_deliveries(self, count: int, timeout: float = WAIT) -> list[Delivery]:
        """Block until at least ``count`` deliveries exist; AssertionError on timeout."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._deliveries) >= count, timeout):
                raise AssertionError(
                    f"{len(self._deliveries)} deliveries after {timeout}s, "
                    f"wanted {count}; commands: {self._commands}"
                )
            return list(self._deliveries)

    def reset(self) -> None:
        """Forget recorded commands, deliveries and errors."""
        with self._changed:
            self._commands.clear()
            self._deliveries.clear()
            self._errors.clear()

    def _record(self, command: str | None = None, delivery: Delivery | None = None) -> None:
        with self._changed:
            if command is not None:
                self._commands.append(command)
            if delivery is not None:
                self._deliveries.append(delivery)
            self._changed.notify_all()

    async def _enter(self, server: SMTP, verb: str, *args: str) -> None:
        """Record the hook; if it is the ``disconnect_after`` one, never return."""
        self._record(" ".join((verb, *args)))
        target = (self.disconnect_after or "").upper()
        if target not in {verb, "EHLO" if verb == "LHLO" else verb}:
            return
        if server.transport is not None:
            server.transport.close()
        # connection_lost() cancels the session task, so no reply is ever pushed.
        await asyncio.sleep(WAIT)
        raise RuntimeError(f"disconnect_after={verb}: still connected after {WAIT}s")

    # aiosmtpd's hooks, called with (server, session, envelope, *args).

    async def handle_HELO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str
    ) -> str:
        await self._enter(server, "HELO", hostname)
        session.host_name = hostname  # aiosmtpd sets it only when no hook exists
        return f"250 {server.hostname}"

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        await self._enter(server, "LHLO" if isinstance(server, LMTP) else "EHLO", hostname)
        session.host_name = hostname  # as for HELO
        lines = responses[:-1]
        if self.advertise_pipelining:
            lines.append("250-PIPELINING")
        lines.extend(f"250-{line}" for line in self.extra_ehlo_lines)
        return [*lines, responses[-1]]

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        await self._enter(server, "MAIL", address, *mail_options)
        if address in self.refuse_senders:
            return self.refuse_senders[address]
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        await self._enter(server, "RCPT", address, *rcpt_options)
        if address in self.refuse_recipients:
            return self.refuse_recipients[address]
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        self._rcpt_options.setdefault(envelope, []).append(tuple(rcpt_options))
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await self._enter(server, "DATA")
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        rcpts = list(envelope.rcpt_tos)
        if isinstance(server, LMTP) and not self.lmtp_single_reply:
            default = self.data_reply or "250 2.0.0 delivered"
            replies = [self.lmtp_data_replies.get(rcpt, default) for rcpt in rcpts]
            accepted = [i for i, reply in enumerate(replies) if reply.startswith("2")]
            reply = "\r\n".join(replies)  # aiosmtpd pushes it as several lines
        else:
            reply = self.data_reply or "250 2.0.0 OK"
            accepted = list(range(len(rcpts))) if reply.startswith("2") else []
        if accepted:
            options = self._rcpt_options.get(envelope, [])
            self._record(
                delivery=Delivery(
                    mail_from=envelope.mail_from or "",
                    rcpt_tos=tuple(rcpts[i] for i in accepted),
                    mail_options=tuple(envelope.mail_options),
                    rcpt_options=tuple(options[i] for i in accepted),
                    content=envelope.original_content or b"",
                )
            )
        return reply

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await self._enter(server, "RSET")
        return "250 2.0.0 OK"

    async def handle_NOOP(
        self, server: SMTP, session: Session, envelope: Envelope, arg: str | None
    ) -> str:
        await self._enter(server, "NOOP", *([arg] if arg else []))
        return "250 2.0.0 OK"

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await self._enter(server, "QUIT")
        return "221 2.0.0 Bye"

    def handle_STARTTLS(self, server: SMTP, session: Session, envelope: Envelope) -> bool:
        """Called (synchronously) once the TLS handshake after STARTTLS succeeded."""
        self._record("STARTTLS")
        return True

    async def handle_exception(self, error: Exception) -> str:
        with self._changed:
            self._errors.append(error)
            self._changed.notify_all()
        return f"500 5.0.0 ({type(error).__name__}) {error}"


class ThreadedSMTPServer:
    """aiosmtpd's SMTP (or LMTP) on 127.0.0.1 port 0 or a Unix socket, in its own thread.

    ``port`` binds a given port instead of a free one: a server started again where a
    stopped one listened, as a restarted mail server is. ``ssl_context`` makes it implicit
    TLS; ``tls_context`` offers STARTTLS. Other keyword arguments go to aiosmtpd's SMTP
    class (``decode_data`` is always False so deliveries keep raw bytes). ``start()``
    raises RuntimeError if the server is not listening within a few seconds; ``stop()`` if
    the thread does not end.
    """

    def __init__(
        self,
        handler: RecordingHandler | None = None,
        *,
        lmtp: bool = False,
        port: int = 0,
        unix_path: str | os.PathLike[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        hostname: str = "localhost",
        timeout: float = 60.0,
        enable_SMTPUTF8: bool = False,
        data_size_limit: int | None = 2**25,
        auth_require_tls: bool = False,
        authenticator: Any = None,
        **smtp_kwargs: Any,
    ) -> None:
        if "decode_data" in smtp_kwargs or "loop" in smtp_kwargs:
            raise TypeError("decode_data and loop are fixed by ThreadedSMTPServer")
        self.handler = handler if handler is not None else RecordingHandler()
        self.lmtp = lmtp
        self.host = HOST
        self._requested_port = port
        self.unix_path = os.fspath(unix_path) if unix_path is not None else None
        self._ssl_context = ssl_context
        self._smtp_kwargs: dict[str, Any] = {
            "tls_context": tls_context,
            "require_starttls": require_starttls,
            "hostname": hostname,
            "timeout": timeout,
            "enable_SMTPUTF8": enable_SMTPUTF8,
            "data_size_limit": data_size_limit,
            "auth_require_tls": auth_require_tls,
            "authenticator": authenticator,
            **smtp_kwargs,
            "decode_data": False,
        }
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._port: int | None = None
        self._sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()
        # Connections accepted so far; aiosmtpd makes one SMTP object per connection.
        self.connection_count = 0
        self.open_connections = 0
        """Connections open now."""
        self.most_connections_at_once = 0
        """The most connections that were open at the same time."""

    @property
    def connector(self) -> Connector:
        """What a client passes to reach it: asmtp's own sockets, as for every server
        here but the in-memory one."""
        return connect

    @property
    def port(self) -> int:
        """The TCP port the kernel chose; RuntimeError for Unix sockets or before start."""
        if self._port is None:
            raise RuntimeError("not listening on TCP (not started, or a Unix socket)")
        return self._port

    def start(self) -> ThreadedSMTPServer:
        if self._thread is not None:
            raise RuntimeError("ThreadedSMTPServer can only be started once")
        self._thread = threading.Thread(target=self._run, name="aiosmtpd-test-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(WAIT):
            self.stop()
            raise RuntimeError(f"aiosmtpd server not listening after {WAIT}s")
        if self._error is not None:
            self.stop()  # raises with the startup error
        return self

    def stop(self) -> None:
        """Close the listener and every session, end the loop and join the thread."""
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and stop_event is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                loop.call_soon_threadsafe(stop_event.set)
        thread.join(WAIT)
        if thread.is_alive():
            raise RuntimeError(f"aiosmtpd thread still running {WAIT}s after stop()")
        if self.unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.unix_path)
        error, self._error = self._error, None
        if error is not None:
            raise RuntimeError("aiosmtpd server thread failed") from error

    def __enter__(self) -> ThreadedSMTPServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # re-raised by stop() in the test thread
            self._error = exc
        finally:
            self._ready.set()

    def _make_session(self) -> SMTP:
        self.connection_count += 1
        self.open_connections += 1
        self.most_connections_at_once = max(self.most_connections_at_once, self.open_connections)
        cls = LMTP if self.lmtp else SMTP
        session = cls(self.handler, loop=self._loop, **self._smtp_kwargs)
        closed = session.connection_lost

        def connection_lost(error: Exception | None) -> None:
            self.open_connections -= 1
            closed(error)

        session.connection_lost = connection_lost  # type: ignore[method-assign]
        self._sessions.add(session)
        return session

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        tls: dict[str, Any] = {}
        if self._ssl_context is not None:
            tls = {"ssl": self._ssl_context, "ssl_handshake_timeout": WAIT}
        server: asyncio.Server
        if self.unix_path is not None:
            server = await self._loop.create_unix_server(self._make_session, self.unix_path, **tls)
        else:
            server = await self._loop.create_server(
                self._make_session, host=HOST, port=self._requested_port, **tls
            )
            self._port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stop_event.wait()
        finally:
            server.close()
            for session in list(self._sessions):
                if isinstance(session.transport, asyncio.Transport):
                    # Python 3.11.2's TLS transport raises AttributeError once its
                    # connection is gone.
                    with contextlib.suppress(AttributeError):
                        session.transport.abort()  # no TLS close_notify wait
            with contextlib.suppress(asyncio.TimeoutError):  # not builtin before 3.11
                await asyncio.wait_for(server.wait_closed(), WAIT)
            # asyncio.run() then cancels the session tasks and closes the loop.
